"""Held-out evaluation: generators run on the windows of one split and scored with core.metrics.

Every generator gets the window's official mel (and nothing else: the data layout has no audio; networks with the
beats as input get the beats that the procedural row conducts to, `analysis_from_mel`) and must return (F, 13, 2)
motion, which is re-centred exactly as the add-on does before scoring; the learned generators' motion
is also smoothed as the add-on keys it (networks.smooth_network_output), so the table scores what users get. Per
generator:

  MSE, RDE, SCE   against the recorded motion of the window (VirtualConductor's formulas; lower is better)
  SDP             liveliness: mean SD generated / recorded × 100 (100 is best)
  BC              corrected beat consistency against librosa beats tracked on the window's mel (higher is better)
  diversity       Diffusion-Conductor's feature diversity over the windows (needs an M2S-Net motion encoder)
  seed var %      how much motion changes with the seed: mean over frames and coordinates of the std across seeds,
                  over the mean temporal std of the motion, × 100 (the official M2S-GAN: about 0.3 %)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..core import metrics
from ..core.analysis import LOUDNESS_RANGE_DB, SILENCE_DB, MusicAnalysis
from ..core.motion import FPS
from .dataset import WindowDataset

Progress = Callable[[float, str], None]
DEFAULT_BEATS_PER_BAR = 4


@dataclass
class Candidate:
    """A generator under evaluation: `generate(mel (3F, 128), n_frames, seed)` → motion (F, 13, 2)."""

    label: str
    generate: Callable[[np.ndarray, int, int], np.ndarray]


def analysis_from_mel(mel: np.ndarray) -> MusicAnalysis:
    """A MusicAnalysis from the official mel alone, for the procedural conductor on data that has no audio.

    Beats: librosa's tracker on the mel's onset envelope (the music side of BC). The meter cannot be told from a
    mel reliably here, so it is taken as 4/4 with the first beat as a downbeat. Loudness: frame power recovered
    from the mel's dB scale, mapped as core.analysis maps it (0 at 36 dB below the loudest frame, silent below
    -50 dB). So the procedural row measures the procedural conductor with a cruder analysis than the add-on's.
    """
    mel = np.asarray(mel, dtype=np.float64)
    n_frames = mel.shape[0] // 3
    duration = n_frames / FPS
    beats = metrics.music_beat_times(mel)
    beats = beats[beats < duration]
    if len(beats) < 2:
        beats = np.arange(0.5, duration, 0.5)  # no pulse found: a neutral 120 BPM grid
    # Rows hold (dB + 80) / 80 relative to the clip's loudest bin; back to power, summed over the bands.
    power = (10.0 ** ((mel[: 3 * n_frames] * 80.0 - 80.0) / 10.0)).sum(axis=1)
    level = 10.0 * np.log10(np.maximum(power.reshape(n_frames, 3).mean(axis=1), 1e-12))
    level -= level.max()
    loudness = np.clip((level + LOUDNESS_RANGE_DB) / LOUDNESS_RANGE_DB, 0.0, 1.0).astype(np.float32)
    silent = level < SILENCE_DB
    loudness[silent] = 0.0
    ibi = np.diff(beats)
    tempo = np.interp(np.arange(n_frames) / FPS, 0.5 * (beats[1:] + beats[:-1]), 60.0 / ibi).astype(np.float32)
    onset = np.zeros(n_frames, np.float32)
    return MusicAnalysis(
        duration=duration, beats=beats, downbeats=beats[::DEFAULT_BEATS_PER_BAR],
        beats_per_bar=DEFAULT_BEATS_PER_BAR, subdivision=2, tempo_bpm=float(60.0 / np.median(ibi)), tempo=tempo,
        loudness=loudness, level_db=level.astype(np.float32), silent=silent, held=np.zeros(n_frames, bool),
        onset=onset, tracker="librosa-on-mel",
    )


def procedural_candidate() -> Candidate:
    from ..generators.procedural import conduct

    return Candidate("procedural", lambda mel, n, seed: conduct(analysis_from_mel(mel), seed)[:n])


def m2sgan_candidate(checkpoint: Path, label: str | None = None) -> Candidate:
    from ..generators.m2sgan import smoothed_keypoints
    from ..generators.networks import open_m2sgan

    generator = open_m2sgan(checkpoint)

    def generate(mel: np.ndarray, n: int, seed: int) -> np.ndarray:
        analysis = analysis_from_mel(mel)
        return smoothed_keypoints(generator, mel, n, seed, beats=analysis.beats, downbeats=analysis.downbeats)

    return Candidate(label or f"m2sgan ({Path(checkpoint).name})", generate)


def diffusion_candidate(checkpoint: Path, steps: int, guidance: float, label: str | None = None) -> Candidate:
    from ..generators.diffusion import generate_keypoints
    from ..generators.networks import open_denoiser

    denoiser = open_denoiser(checkpoint)

    def generate(mel: np.ndarray, n: int, seed: int) -> np.ndarray:
        analysis = analysis_from_mel(mel)
        return generate_keypoints(denoiser, mel, n, seed, steps, guidance, beats=analysis.beats,
                                  downbeats=analysis.downbeats)

    return Candidate(label or f"diffusion ({Path(checkpoint).name}, {steps} steps, w={guidance:g})", generate)


def m2snet_sync_accuracy(checkpoint: Path, dataset: WindowDataset) -> dict:
    """How well an M2S-Net tells synchronised music and motion from each kind of negative on `dataset` (0.5 is
    chance), with the segment length it was trained on (the official 10 s when its file does not say)."""
    import torch

    from ..generators.nets import load_m2snet
    from .trainers import M2SNetTrainer, sync_accuracy

    raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    recipe = raw.get("meta", {}).get("recipe", {}) if isinstance(raw, dict) else {}
    clip_seconds = float(recipe.get("clip_seconds", M2SNetTrainer.RECIPE["clip_seconds"]))
    return {"clip_seconds": clip_seconds,
            **sync_accuracy(load_m2snet(checkpoint), dataset, clip_seconds, torch.from_numpy)}


def evaluate(
    dataset: WindowDataset,
    candidates: list[Candidate],
    seeds: tuple[int, ...] = (0, 1),
    features: Callable[[np.ndarray], np.ndarray] | None = None,
    max_windows: int | None = None,
    progress: Progress | None = None,
) -> dict[str, dict]:
    """Scores per candidate label (plus "recorded motion" for the data's own BC and diversity)."""
    from ..generators.networks import to_cm100

    report = progress or (lambda fraction, message: None)
    count = min(len(dataset), max_windows or len(dataset))
    windows = [dataset.window(i) for i in range(count)]
    mels = [w[0] for w in windows]
    real = [w[1] for w in windows]
    beat_times = [metrics.music_beat_times(mel) for mel in mels]
    results = {"recorded motion": _scores(real, real, beat_times, features)}
    for number, candidate in enumerate(candidates):
        outputs, variation = [], []
        for i, mel in enumerate(mels):
            per_seed = [to_cm100(candidate.generate(mel, dataset.frames, seed))[0] for seed in seeds]
            outputs.append(per_seed[0])
            if len(seeds) > 1:
                variation.append(metrics.seed_variation(per_seed))
            report((number + (i + 1) / count) / len(candidates), f"{candidate.label}: window {i + 1}/{count}")
        scores = _scores(real, outputs, beat_times, features)
        scores["seed_var_pct"] = float(np.mean(variation)) if variation else float("nan")
        results[candidate.label] = scores
    return results


def _scores(real, fake, beat_times, features) -> dict:
    scores = {
        "windows": len(real),
        "mse": metrics.mse(real, fake),
        "rde": metrics.rde(real, fake) if real[0].shape[0] >= metrics.RDE_MIN_FRAMES else float("nan"),
        "sce": metrics.sce(real, fake),
        "sdp": metrics.sdp(real, fake),
        "bc": metrics.mean_over(metrics.beat_consistency(f, b) for f, b in zip(fake, beat_times)),
        "diversity": float("nan"),
    }
    if features is not None:
        scores["diversity"] = metrics.diversity([features(f) for f in fake], seed=0)
    return scores


COLUMNS = (("mse", "MSE", ".5f"), ("rde", "RDE", ".3f"), ("sce", "SCE", ".3f"), ("sdp", "SDP %", ".1f"),
           ("bc", "BC", ".3f"), ("diversity", "Div", ".1f"), ("seed_var_pct", "Seed var %", ".1f"))


def format_table(results: dict[str, dict]) -> str:
    """A plain-text table, one row per generator (n/a where a score does not apply)."""
    width = max(len(label) for label in results) + 2
    header = "model".ljust(width) + "".join(title.rjust(11) for _, title, _ in COLUMNS)
    lines = [header, "-" * len(header)]
    for label, scores in results.items():
        cells = []
        for key, _, fmt in COLUMNS:
            value = scores.get(key, float("nan"))
            cells.append(("n/a" if value is None or np.isnan(value) else format(value, fmt)).rjust(11))
        lines.append(label.ljust(width) + "".join(cells))
    return "\n".join(lines)
