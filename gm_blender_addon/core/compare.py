"""A generated and a captured performance of the same music, side by side in numbers (no bpy).

The captured performer plays the part of the "real" motion in the shared metrics (core/metrics.py) and the generated
conductor the "fake" one. The two rarely start at the same instant, so the captured motion is first shifted by the
lag (within ±MAX_LAG_S) that minimises the mean squared error; every paired metric is then taken over the overlap.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from . import metrics
from .analysis import MusicAnalysis
from .motion import FPS, Motion

Progress = Callable[[float, str], None]
# (label, motiongram (H, N), frames per second)
Motiongram = tuple[str, np.ndarray, float]
# Renders the two rigs for `seconds` into a scratch folder and returns their motiongrams (the Blender layer's job).
RigMotiongrams = Callable[[float, Path], list[Motiongram]]

MAX_LAG_S = 2.0
MIN_OVERLAP = FPS  # frames: below a second, rhythm and liveliness have no meaning
# FGD compares feature statistics per 30 s window, as Diffusion-Conductor's M2S-GAN evaluation did.
FGD_WINDOW = 30 * FPS


class CompareError(ValueError):
    """Two motions that cannot be compared, with the reason."""


@dataclass
class Comparison:
    generated: str
    captured: str
    lag_frames: int  # the captured motion's frame k + lag is matched with the generated motion's frame k
    frames: int  # length of the overlap that paired metrics use
    values: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # metric → why it is missing

    @property
    def lag_seconds(self) -> float:
        return self.lag_frames / FPS

    def rows(self) -> list[tuple[str, str]]:
        """(metric, value as text) for display, missing metrics with their reason."""
        out = [("Lag (captured − generated)", f"{self.lag_seconds:+.2f} s"), ("Overlap", f"{self.frames / FPS:.1f} s")]
        for name, value in self.values.items():
            out.append((name, "—" if math.isnan(value) else f"{value:.4g}"))
        for name, why in self.notes.items():
            out.append((name, f"— ({why})"))
        return out

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        data = {
            "generated": self.generated, "captured": self.captured, "lag_frames": self.lag_frames,
            "lag_seconds": self.lag_seconds, "overlap_frames": self.frames,
            "metrics": {k: (None if math.isnan(v) else v) for k, v in self.values.items()}, "missing": self.notes,
        }
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["metric", "value", "note"])
            writer.writerow(["lag_seconds", f"{self.lag_seconds:.4f}", "captured − generated"])
            writer.writerow(["overlap_frames", self.frames, ""])
            for name, value in self.values.items():
                writer.writerow([name, "" if math.isnan(value) else repr(value), ""])
            for name, why in self.notes.items():
                writer.writerow([name, "", why])
        return path


def best_lag(generated: np.ndarray, captured: np.ndarray, max_lag: int) -> tuple[int, float]:
    """(lag, MSE) minimising the MSE of generated[k] against captured[k + lag] over their overlap.

    Overlaps shorter than half the shorter motion are not considered, so a tiny overlap cannot win by chance.
    """
    n_gen, n_cap = len(generated), len(captured)
    if min(n_gen, n_cap) < MIN_OVERLAP:
        raise CompareError(f"Both motions need at least {MIN_OVERLAP / FPS:.0f} s; got {n_gen} and {n_cap} frames.")
    minimum = max(MIN_OVERLAP, min(n_gen, n_cap) // 2)
    best = (0, float("inf"))
    for lag in range(-max_lag, max_lag + 1):
        start = max(0, -lag)
        stop = min(n_gen, n_cap - lag)
        if stop - start < minimum:
            continue
        error = float(np.mean((generated[start:stop] - captured[start + lag : stop + lag]) ** 2))
        if error < best[1]:
            best = (lag, error)
    return best


def overlap(generated: np.ndarray, captured: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    start = max(0, -lag)
    stop = min(len(generated), len(captured) - lag)
    return generated[start:stop], captured[start + lag : stop + lag]


def _windows(motion: np.ndarray, size: int) -> list[np.ndarray]:
    if len(motion) < size:
        return [motion]
    return [motion[s : s + size] for s in range(0, len(motion) - size + 1, size)]


def compare(
    generated: Motion,
    captured: Motion,
    music_beats: np.ndarray | None = None,
    m2snet: str | Path | None = None,
    names: tuple[str, str] = ("generated", "captured"),
    progress: Progress | None = None,
) -> Comparison:
    """The shared metrics for one generated and one captured motion of the same music.

    music_beats: beat times in seconds (BC is skipped without them). m2snet: an M2S-Net weights file, for SE and FGD.
    """
    for motion, name in ((generated, names[0]), (captured, names[1])):
        if abs(motion.fps - FPS) > 1e-6:
            raise CompareError(f"{name} is at {motion.fps} fps; both motions must be at {FPS} fps.")
    gen, cap = generated.keypoints.astype(np.float64), captured.keypoints.astype(np.float64)
    if progress:
        progress(0.0, "Aligning the two performances in time")
    lag, aligned_mse = best_lag(gen, cap, int(round(MAX_LAG_S * FPS)))
    gen_part, cap_part = overlap(gen, cap, lag)
    result = Comparison(generated=names[0], captured=names[1], lag_frames=lag, frames=len(gen_part))
    result.values["MSE (aligned)"] = aligned_mse

    if progress:
        progress(0.2, "Rhythm and strength")
    if len(gen_part) >= metrics.RDE_MIN_FRAMES:
        result.values["RDE"] = metrics.rde(cap_part, gen_part)
    else:
        result.notes["RDE"] = f"needs {metrics.RDE_MIN_FRAMES / FPS:.1f} s of overlap"
    if len(gen_part) >= metrics.SCE_WINDOW:
        result.values["SCE"] = metrics.sce(cap_part, gen_part)
    else:
        result.notes["SCE"] = f"needs {metrics.SCE_WINDOW / FPS:.0f} s of overlap"
    result.values["SDP (%)"] = metrics.sdp(cap_part, gen_part)

    if music_beats is not None:
        # Each against the music on its own clock: both are performances of the audio from its first sample, and
        # the motion lag above measures how the gestures differ, not where the music starts.
        beats = np.asarray(music_beats, dtype=np.float64)
        for motion, name in ((gen, names[0]), (cap, names[1])):
            # Beats after a motion ends would count as misses it never had the chance to hit.
            result.values[f"BC {name}"] = metrics.beat_consistency(motion, beats[beats * FPS < len(motion)])
    else:
        result.notes["BC"] = "no music given"

    features = None
    if m2snet is None:
        result.notes["SE"] = result.notes["FGD"] = "needs M2S-Net weights"
    else:
        if progress:
            progress(0.5, "Motion features (M2S-Net)")
        try:
            features = metrics.motion_features_fn(m2snet)
        except ImportError:  # Blender's Python carries no torch
            result.notes["SE"] = result.notes["FGD"] = "needs PyTorch, which is not installed here"
        except ValueError as exc:  # the checkpoint loader's CheckpointError names what is wrong with the file
            raise CompareError(f"M2S-Net weights {Path(m2snet).name}: {exc}") from exc
    if features is not None:
        result.values["SE"] = metrics.sync_error(cap_part, gen_part, features)
        pairs = list(zip(_windows(cap_part, FGD_WINDOW), _windows(gen_part, FGD_WINDOW)))
        result.values["FGD"] = metrics.fgd(
            [features(c) for c, _ in pairs], [features(g) for _, g in pairs], per_window=True, official_fallback=True
        )
    if progress:
        progress(1.0, "Compared")
    return result


@dataclass
class CompareOutputs:
    comparison: Comparison
    files: list[Path]
    warnings: list[str]


def write_comparison(
    generated: Motion,
    captured: Motion,
    out_dir: str | Path,
    analysis: MusicAnalysis | None = None,
    m2snet: str | Path | None = None,
    video: str | Path | None = None,
    motiongram_seconds: float = 10.0,
    rig_motiongrams: RigMotiongrams | None = None,
    progress: Progress | None = None,
) -> CompareOutputs:
    """Compare, then write metrics.json, metrics.csv and the plots (PNG) into `out_dir`."""
    from . import plots
    from .motiongram import video_motiongram

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    step = (lambda lo, hi: (lambda f, m: progress(lo + (hi - lo) * f, m))) if progress else (lambda lo, hi: None)
    comparison = compare(generated, captured, analysis.beats if analysis else None, m2snet, progress=step(0.0, 0.4))
    files = [comparison.to_json(out / "metrics.json"), comparison.to_csv(out / "metrics.csv")]
    warnings = []
    if progress:
        progress(0.45, "Drawing the plots")
    files.append(plots.wrist_trajectories(generated, captured, out / "wrist_trajectories.png"))
    files.append(plots.strength_and_loudness(generated, captured, analysis.loudness if analysis else None,
                                             out / "strength_vs_loudness.png"))
    files.append(plots.power_spectrum(generated, captured, analysis.tempo_bpm if analysis else None,
                                      analysis.beats_per_bar if analysis else None, out / "power_spectrum.png"))
    files.append(plots.beats(generated, captured, analysis.beats if analysis else None, out / "beats.png"))
    if analysis is None:
        warnings.append("no music given: BC, loudness and tempo are left out")

    grams: list[Motiongram] = []
    if video and Path(video).is_file():
        if progress:
            progress(0.55, "Motiongram of the source video")
        image, fps = video_motiongram(video, motiongram_seconds)
        grams.append(("source video", image, fps))
    else:
        warnings.append(f"source video {video or '(not named)'} not found: its motiongram is left out")
    if rig_motiongrams is not None:
        if progress:
            progress(0.65, "Rendering the rigs for their motiongrams")
        grams.extend(rig_motiongrams(motiongram_seconds, out))
    if grams:
        files.append(plots.motiongrams(grams, out / "motiongrams.png"))
    if progress:
        progress(1.0, "Comparison written")
    return CompareOutputs(comparison=comparison, files=files, warnings=warnings)


def compare_files(
    generated: str | Path,
    captured: str | Path,
    out_dir: str | Path,
    audio: str | Path | None = None,
    m2snet: str | Path | None = None,
    video: str | Path | None = None,
    motiongram_seconds: float = 10.0,
    rig_motiongrams: Callable[[Motion, Motion, float, Path], list[Motiongram]] | None = None,
    progress: Progress | None = None,
) -> CompareOutputs:
    """The headless comparison: two keypoint files and (optionally) their music → `write_comparison`'s outputs.

    `rig_motiongrams(generated, captured, seconds, folder)` renders both motions on rigs (see blender/performer.py).
    Raises MotionFileError, AudioError, AnalysisError or CompareError.
    """
    from .analysis import analyse
    from .audio import load_audio

    generated_motion, captured_motion = Motion.load(generated), Motion.load(captured)
    analysis = analyse(load_audio(audio)) if audio else None
    renderer = None if rig_motiongrams is None else partial(rig_motiongrams, generated_motion, captured_motion)
    return write_comparison(
        generated_motion, captured_motion, out_dir, analysis, m2snet,
        video or captured_motion.meta.get("video"), motiongram_seconds, renderer, progress,
    )
