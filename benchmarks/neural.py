"""Figures for the learned generators. Prints a report; asserts nothing.

    .venv/bin/python benchmarks/neural.py [--threads 2] [--data data/corpus/cm100] [--split test]
                                          [--max-windows N] [--skip-ictus] [--skip-1000] [--skip-table]

1. Speed on a 5-minute piece (the bundled demo repeated): M2S-GAN mel + generation, diffusion at the default steps,
   and the beat-lock added to either (core/beatlock.py), with how much it changes the motion's speed.
2. Seams of the 5-minute outputs: the largest frame-to-frame jump at a window seam against the median jump, as
   sampled and as keyed (beat-locked).
3. Seed variation (std across seeds / temporal std) with the beat consistency of each seed, without and with the
   beat-lock.
4. Ictus F (the right hand's lowest points against the beats, ±70 ms) of each generator with the beat-lock off and on,
   on the demo and on rendered score excerpts: validation works, on which the beat-lock's constants were chosen, and
   the held-out works of benchmarks/backbone.py.
5. Diffusion at the default steps against all 1000 steps on held-out windows.
6. The held-out metrics table: procedural, project M2S-GAN, project diffusion, and the official M2S-GAN when
   ../shared/reference/virtualconductor holds it.

Project weights come from weights/ (see weights/README.md); sections that need missing weights say so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from backbone import PIECES, repeated_demo  # noqa: E402
from gm_blender_addon.core import metrics  # noqa: E402
from gm_blender_addon.core.analysis import analyse  # noqa: E402
from gm_blender_addon.core.audio import Audio, load_audio, official_mel  # noqa: E402
from gm_blender_addon.core.beatlock import beat_lock  # noqa: E402
from gm_blender_addon.generators import diffusion as diffusion_generator  # noqa: E402
from gm_blender_addon.generators import m2sgan as m2sgan_generator  # noqa: E402
from gm_blender_addon.generators.networks import ENCODER_CHUNK, open_denoiser, open_m2sgan, to_cm100  # noqa: E402
from gm_blender_addon.generators import registry  # noqa: E402
from gm_blender_addon.generators.windows import frame_jumps, seam_report  # noqa: E402
from gm_blender_addon.resources import demo_audio_file  # noqa: E402
from gm_blender_addon.training import evaluation  # noqa: E402
from gm_blender_addon.training.dataset import WindowDataset, read_split  # noqa: E402
from gm_blender_addon.training.score_render import render_excerpt  # noqa: E402
from gm_blender_addon.training.tracker_train import f_measure  # noqa: E402
from gm_blender_addon.weights import default_checkpoint  # noqa: E402

OFFICIAL_GAN = ROOT.parent / "shared" / "reference" / "virtualconductor" / "M2SGAN_official_pretrained.pt"
SECONDS = 300
SEAM_SEEDS = 4
# Validation works of the corpus (training/corpus.py VAL_GROUPS), 60 s from bar 1: the beat-lock's constants were
# chosen on these and the demo. The held-out works are benchmarks/backbone.py's PIECES.
DEV_EXCERPTS = [
    ("mozart/k156/movement1", 1, 60.0),
    ("mozart/k156/movement2", 1, 60.0),
    ("mozart/k156/movement3", 1, 60.0),
    ("beethoven/opus59no3/movement3", 1, 60.0),
    ("beethoven/opus59no3/movement4", 1, 60.0),
]
EXCERPT_SEED = 3


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def _seam_line(motion: np.ndarray, seams: list[int], radius: int = 1) -> str:
    """The acceptance figure, plus where the worst seam jump ranks among all jumps of the clip: a motion whose
    own jumps often exceed 2x the median can fail the ratio at a seam that is not there."""
    report = seam_report(motion, seams, radius)
    jumps = frame_jumps(motion)
    rank = 100.0 * np.mean(jumps < report["max_seam_jump"])
    mean_ratio = np.mean(report["per_seam"]) / np.mean(jumps)
    return (f"max jump within ±{radius} frames of {len(seams)} seams {report['max_seam_jump']:.4f} vs median "
            f"{report['median_jump']:.4f}: ratio {report['ratio']:.2f} (target <= 2); that jump is at the "
            f"{rank:.0f}th percentile of all jumps, 2x the median is at the "
            f"{100 * np.mean(jumps < 2 * report['median_jump']):.0f}th; mean seam jump / mean jump {mean_ratio:.2f}")


def _blend_line(motion: np.ndarray, seams: list[int], blend: int) -> str:
    """Whether the offsets dying away after the seams show: the fastest jump over each seam's blend, ranked among
    the fastest jumps over every stretch of the same length in the clip."""
    stretches = np.lib.stride_tricks.sliding_window_view(frame_jumps(motion), blend + 2).max(axis=1)
    ranks = [100.0 * np.mean(stretches < stretches[seam - 1]) for seam in seams if seam - 1 < len(stretches)]
    return (f"fastest jump over the {blend}-frame blend after each seam, as a percentile among all {blend + 2}-frame "
            f"stretches: mean {np.mean(ranks):.0f}th, highest {max(ranks):.0f}th (50th = an ordinary stretch)")


def _gan_checkpoints() -> dict[str, Path]:
    found = {}
    if default_checkpoint("m2sgan", onnx=True):
        found["project M2S-GAN"] = default_checkpoint("m2sgan", onnx=True)
    if OFFICIAL_GAN.is_file():
        found["official M2S-GAN"] = OFFICIAL_GAN
    return found


def _lock_line(report: dict) -> str:
    return (f"{report['locked']}/{report['beats']} beats locked; speed change |rate - 1| max "
            f"{report['speed_change_max']:.2f}, 95th percentile {report['speed_change_p95']:.2f}")


def speed_and_seams(audio: Audio, beats: np.ndarray) -> None:
    n_frames = int(np.ceil(audio.duration * 30))
    print(f"\n## Speed on a {audio.duration:.0f} s piece ({audio.name}), beat-locked to its {len(beats)} analysed "
          "beats")
    for label, path in _gan_checkpoints().items():
        generator = open_m2sgan(path)
        mel, mel_seconds = _timed(official_mel, audio)
        motion, gen_seconds = _timed(m2sgan_generator.smoothed_keypoints, generator, mel, n_frames, 0)
        locked, lock_seconds = _timed(beat_lock, motion, beats)
        print(f"{label}: mel {mel_seconds:.2f} s + generation and smoothing {gen_seconds:.2f} s + beat-lock "
              f"{lock_seconds:.2f} s = {mel_seconds + gen_seconds + lock_seconds:.2f} s (target <= 4 s)")
        print(f"  beat-lock: {_lock_line(locked.report())}")
        borders = list(range(ENCODER_CHUNK, n_frames, ENCODER_CHUNK))
        print(f"  encoder chunk borders (one pass, so no seams by construction): {_seam_line(motion, borders)}")
    path = default_checkpoint("diffusion", onnx=True)
    if path is None:
        print("diffusion: no project weights installed (weights/diffusion.onnx.zip); skipped")
        return
    denoiser = open_denoiser(path)
    steps, guidance = diffusion_generator.DEFAULT_STEPS, diffusion_generator.DEFAULT_GUIDANCE
    mel, mel_seconds = _timed(official_mel, audio)
    ratios = []
    for seed in range(SEAM_SEEDS):
        piece, gen_seconds = _timed(diffusion_generator.sample_piece, denoiser, mel, n_frames, seed, steps, guidance)
        locked, lock_seconds = _timed(beat_lock, piece.motion, beats)
        keyed_seams = list(np.searchsorted(locked.warp, piece.seams))  # where the keyed motion shows the seams
        ratios.append((seam_report(piece.motion, piece.seams)["ratio"],
                       seam_report(locked.keypoints, keyed_seams)["ratio"]))
        if seed > 0:
            continue
        total = mel_seconds + gen_seconds + lock_seconds
        print(f"project diffusion ({steps} steps, guidance {guidance}): mel {mel_seconds:.2f} s + sampling "
              f"{gen_seconds:.2f} s + beat-lock {lock_seconds:.2f} s = {total:.2f} s (target <= 30 s)")
        print(f"  beat-lock: {_lock_line(locked.report())}")
        for radius in (1, 3):
            print(f"  window seams, seed 0: {_seam_line(piece.motion, piece.seams, radius)}")
            print(f"  window seams, seed 0, beat-locked: {_seam_line(locked.keypoints, keyed_seams, radius)}")
        print(f"  window seams, seed 0: {_blend_line(piece.motion, piece.seams, diffusion_generator.BLEND_FRAMES)}")
    print(f"  seam ratio (±1 frame) for seeds 0-{SEAM_SEEDS - 1}: {', '.join(f'{r:.2f}' for r, _ in ratios)}; "
          f"beat-locked {', '.join(f'{r:.2f}' for _, r in ratios)}; worst {np.max(ratios):.2f} (target <= 2)")


def seed_variation(audio: Audio, beats: np.ndarray, seconds: float = 60.0, seeds: int = 4) -> None:
    n_frames = int(seconds * 30)
    mel = official_mel(audio)[: 3 * n_frames]
    mel_beats = metrics.music_beat_times(mel)
    beats = beats[beats < seconds]
    print(f"\n## Seed variation on the first {seconds:.0f} s, seeds 0-{seeds - 1}")
    makers = {label: (lambda seed, g=open_m2sgan(path): m2sgan_generator.smoothed_keypoints(g, mel, n_frames, seed))
              for label, path in _gan_checkpoints().items()}
    if default_checkpoint("diffusion", onnx=True):
        denoiser = open_denoiser(default_checkpoint("diffusion", onnx=True))
        makers["project diffusion"] = lambda seed: diffusion_generator.generate_keypoints(
            denoiser, mel, n_frames, seed, diffusion_generator.DEFAULT_STEPS, diffusion_generator.DEFAULT_GUIDANCE)
    for label, make in makers.items():
        generated = [make(seed) for seed in range(seeds)]
        for locked in (False, True):
            motions = [to_cm100(beat_lock(m, beats).keypoints if locked else m)[0] for m in generated]
            bc = [metrics.beat_consistency(m, mel_beats) for m in motions]
            print(f"{label}{', beat-locked' if locked else ''}: seed variation {metrics.seed_variation(motions):.1f} % "
                  f"of the temporal std; BC per seed {', '.join(f'{b:.3f}' for b in bc)}")


def _excerpts():
    """(set, name, audio, true beats): the demo, then the rendered dev and held-out excerpts."""
    labels = json.loads((demo_audio_file().parent / "demo_labels.json").read_text())
    yield "dev", "demo: weber/concertino_clarinet (6/8)", load_audio(demo_audio_file()), np.array(labels["beats"])
    for name, excerpts in (("dev", DEV_EXCERPTS), ("held-out", PIECES)):
        for work, start, seconds in excerpts:
            excerpt = render_excerpt(work, start_bar=start, seconds=seconds, seed=EXCERPT_SEED, stereo=False)
            audio = Audio(excerpt.audio, excerpt.sample_rate, Path(work.replace("/", "_") + ".wav"), "")
            yield name, f"{work} ({excerpt.meter})", audio, np.asarray(excerpt.beats)


def ictus_table() -> None:
    """Each generator's ictus F with the beat-lock off and on, against the analysed beats (what it locks to) and the
    score's true beats, per excerpt and averaged per set; and how much the lock changes the motion's speed."""
    generators = [("procedural", "procedural", None)]
    generators += [(label, "m2sgan", path) for label, path in _gan_checkpoints().items()]
    if default_checkpoint("diffusion", onnx=True):
        generators.append(("project diffusion", "diffusion", None))
    print("\n## Ictus F (right hand's lowest points against the beats, ±70 ms): beat-lock off -> on")
    print(f"{'excerpt':48s} {'beats':>5s} " + " ".join(f"{label:>18s}" for label, _, _ in generators))
    rows = []
    for name, title, audio, true_beats in _excerpts():
        analysis = analyse(audio)
        scores = {}
        for label, generator, checkpoint in generators:
            for locked in ((False,) if generator == "procedural" else (False, True)):
                options = {} if generator == "procedural" else {"beat_lock": locked}
                motion = registry.generate(generator, registry.Request(
                    audio=audio, analysis=analysis, checkpoint=checkpoint, options=options))
                ictus = metrics.ictus_times(motion.keypoints)
                scores[label, locked] = (f_measure(ictus, analysis.beats), f_measure(ictus, true_beats),
                                         motion.meta.get("beat_lock"))
        rows.append((name, scores))
        cells = [f"{scores[label, False][0]:.2f}" + (f" -> {scores[label, True][0]:.2f}" if generator != "procedural"
                                                      else "") for label, generator, _ in generators]
        print(f"{title:48s} {len(analysis.beats):5d} " + " ".join(f"{cell:>18s}" for cell in cells))
    for name in ("dev", "held-out"):
        table = [scores for set_name, scores in rows if set_name == name]

        def mean(label: str, locked: bool, against: int) -> float:  # against 0: the analysed beats, 1: the true
            return float(np.mean([scores[label, locked][against] for scores in table]))

        print(f"\nmean over the {len(table)} {name} excerpts: ictus F vs the analysed beats | vs the true beats")
        for label, generator, _ in generators:
            if generator == "procedural":
                print(f"  {label:18s} {mean(label, False, 0):.3f} | {mean(label, False, 1):.3f}")
                continue
            reports = [scores[label, True][2] for scores in table]
            print(f"  {label:18s} {mean(label, False, 0):.3f} -> {mean(label, True, 0):.3f} | "
                  f"{mean(label, False, 1):.3f} -> {mean(label, True, 1):.3f}; beats locked "
                  f"{np.mean([r['locked_share'] for r in reports]):.2f}, speed change max "
                  f"{max(r['speed_change_max'] for r in reports):.2f}, 95th percentile "
                  f"{np.mean([r['speed_change_p95'] for r in reports]):.2f}")


def steps_against_1000(dataset: WindowDataset, windows: int) -> None:
    path = default_checkpoint("diffusion", onnx=True)
    if path is None:
        print("\n## Diffusion steps: no project weights installed; skipped")
        return
    print(f"\n## Diffusion at {diffusion_generator.DEFAULT_STEPS} steps against 1000 steps ({windows} windows)")
    denoiser = open_denoiser(path)
    guidance = diffusion_generator.DEFAULT_GUIDANCE
    candidates = [
        evaluation.Candidate(f"{steps} steps", lambda mel, n, seed, steps=steps: diffusion_generator.generate_keypoints(
            denoiser, mel, n, seed, steps, guidance))
        for steps in (diffusion_generator.DEFAULT_STEPS, 1000)
    ]
    for candidate in candidates:
        started = time.perf_counter()
        results = evaluation.evaluate(dataset, [candidate], seeds=(0,), max_windows=windows)
        print(evaluation.format_table({candidate.label: results[candidate.label]}).splitlines()[-1]
              + f"   ({(time.perf_counter() - started) / windows:.1f} s per 30 s window)")


def metrics_table(dataset: WindowDataset, windows: int | None) -> None:
    from gm_blender_addon.core.metrics import motion_features_fn

    candidates = [evaluation.procedural_candidate()]
    for label, path in _gan_checkpoints().items():
        candidates.append(evaluation.m2sgan_candidate(path, label))
    if default_checkpoint("diffusion", onnx=True):
        candidates.append(evaluation.diffusion_candidate(
            default_checkpoint("diffusion", onnx=True), diffusion_generator.DEFAULT_STEPS, diffusion_generator.DEFAULT_GUIDANCE,
            f"project diffusion ({diffusion_generator.DEFAULT_STEPS} steps)"))
    m2snet = default_checkpoint("m2snet")
    features = motion_features_fn(m2snet) if m2snet else None
    results = evaluation.evaluate(dataset, candidates, seeds=(0, 1), features=features, max_windows=windows)
    count = results["recorded motion"]["windows"]
    print(f"\n## Held-out metrics: {count} windows of {dataset.window_seconds} s"
          f"{'' if features else ' (no project M2S-Net: diversity n/a)'}")
    print(evaluation.format_table(results))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "corpus" / "cm100")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-windows", type=int)
    parser.add_argument("--skip-ictus", action="store_true")
    parser.add_argument("--skip-1000", action="store_true")
    parser.add_argument("--skip-table", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(f"torch threads: {args.threads}")
    with tempfile.TemporaryDirectory() as folder:
        piece = load_audio(repeated_demo(SECONDS, Path(folder)))
    beats = analyse(piece).beats
    speed_and_seams(piece, beats)
    seed_variation(piece, beats)
    if not args.skip_ictus:
        ictus_table()
    if not (args.data / args.split).is_dir():
        print(f"\n{args.data / args.split} does not exist: no held-out figures")
        return
    dataset = WindowDataset(read_split(args.data, args.split), 30)
    if not args.skip_1000:
        steps_against_1000(dataset, windows=min(3, len(dataset)))
    if not args.skip_table:
        metrics_table(dataset, args.max_windows)


if __name__ == "__main__":
    main()
