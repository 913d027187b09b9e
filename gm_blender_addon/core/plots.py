"""Comparison plots as PNG files, drawn with matplotlib's object API (no pyplot state, no GUI backend, no bpy).

Every plot shows the generated conductor in blue and the captured performer in orange, on the music's clock.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import metrics
from .motion import FPS, Motion

GENERATED, CAPTURED, MUSIC = "tab:blue", "tab:orange", "0.35"
SIZE = (9.0, 5.0)
DPI = 110


def _figure(rows: int = 1, columns: int = 1, height: float | None = None):
    """A figure drawn by the Agg canvas, with its axes as a flat array (shared x down a column, y along a row)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(SIZE[0], height or SIZE[1]), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, sharex="col", sharey="row", squeeze=False).ravel()
    return figure, axes


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def wrist_trajectories(generated: Motion, captured: Motion, path: Path, labels=("generated", "captured")) -> Path:
    """Both wrists' paths in the picture plane (CM100 coordinates, y drawn upwards), one panel per hand."""
    figure, axes = _figure(columns=2)
    for ax, side in zip(axes, ("right", "left")):
        for motion, colour, label in ((generated, GENERATED, labels[0]), (captured, CAPTURED, labels[1])):
            wrist = motion.joint(f"{side}_wrist")
            ax.plot(wrist[:, 0], -wrist[:, 1], color=colour, lw=0.8, alpha=0.8, label=label)
            shoulder = motion.joint(f"{side}_shoulder").mean(axis=0)
            ax.plot(shoulder[0], -shoulder[1], "o", color=colour, ms=6, mfc="none")
        ax.set_title(f"{side} wrist (circles: mean shoulder)")
        ax.set_xlabel("x (CM100)")
        ax.set_aspect("equal", adjustable="datalim")
    axes[0].set_ylabel("height (CM100, up)")
    axes[0].legend(loc="best")
    return _save(figure, path)


def strength_and_loudness(generated: Motion, captured: Motion, loudness: np.ndarray | None, path: Path,
                          labels=("generated", "captured")) -> Path:
    """The SCE strength contour of both motions (2 s windows every 1 s) over the music's loudness."""
    figure, (ax,) = _figure()
    for motion, colour, label in ((generated, GENERATED, labels[0]), (captured, CAPTURED, labels[1])):
        if motion.n_frames < metrics.SCE_WINDOW:
            continue
        contour = metrics.strength_contour(motion.keypoints)
        centres = (np.arange(len(contour)) * metrics.SCE_STRIDE + metrics.SCE_WINDOW / 2) / FPS
        ax.plot(centres, contour, color=colour, marker=".", label=f"{label} strength")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("strength contour (CM100 units / frame)")
    if loudness is not None:
        twin = ax.twinx()
        twin.fill_between(np.arange(len(loudness)) / FPS, loudness, color=MUSIC, alpha=0.2, lw=0)
        twin.set_ylabel("music loudness (0–1)", color=MUSIC)
        twin.set_ylim(0, 1.05)
    ax.legend(loc="upper left")
    ax.set_title("Strength contour vs loudness")
    return _save(figure, path)


def power_spectrum(generated: Motion, captured: Motion, tempo_bpm: float | None, beats_per_bar: int | None,
                   path: Path, labels=("generated", "captured")) -> Path:
    """Welch power spectrum of the motion (mean over the 26 coordinate series) with the beat and bar rates marked."""
    from scipy import signal

    figure, (ax,) = _figure()
    for motion, colour, label in ((generated, GENERATED, labels[0]), (captured, CAPTURED, labels[1])):
        series = motion.keypoints.reshape(motion.n_frames, -1).astype(np.float64)
        freqs, psd = signal.welch(series, fs=FPS, axis=0, nperseg=min(256, motion.n_frames))
        ax.semilogy(freqs, psd.mean(axis=1), color=colour, label=label)
    if tempo_bpm:
        ax.axvline(tempo_bpm / 60.0, color="k", ls="--", lw=1, label=f"beat {tempo_bpm:.0f} BPM")
        if beats_per_bar:
            ax.axvline(tempo_bpm / 60.0 / beats_per_bar, color="k", ls=":", lw=1, label=f"bar ({beats_per_bar} beats)")
    low, high = metrics.RDE_BINS.start * FPS / 256, (metrics.RDE_BINS.stop - 1) * FPS / 256
    ax.axvspan(low, high, color=MUSIC, alpha=0.1, label="RDE band")
    ax.set_xlim(0, 6)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power spectral density")
    ax.set_title("Motion power spectrum")
    ax.legend(loc="upper right")
    return _save(figure, path)


def beats(generated: Motion, captured: Motion, music_beats: np.ndarray | None, path: Path,
          labels=("generated", "captured")) -> Path:
    """Music beats and each motion's beats (speed minima, as BC finds them) on one time axis, over the speeds."""
    figure, (ax,) = _figure(height=4.0)
    rows = ((generated, GENERATED, labels[0], 2.0), (captured, CAPTURED, labels[1], 1.0))
    for motion, colour, label, row in rows:
        speed = metrics.motion_speed(motion.keypoints)
        scaled = speed / max(float(np.percentile(speed, 99)), 1e-9)
        t = np.arange(motion.n_frames) / FPS
        ax.plot(t, row - 0.45 + 0.8 * np.clip(scaled, 0, 1), color=colour, lw=0.6, alpha=0.6)
        frames = metrics.motion_beat_frames(motion.keypoints)
        ax.plot(frames / FPS, np.full(len(frames), row), "|", color=colour, ms=18, mew=2, label=f"{label} beats")
    if music_beats is not None:
        for b in music_beats:
            ax.axvline(b, color=MUSIC, lw=0.8, alpha=0.6)
        ax.plot([], [], color=MUSIC, label="music beats")
    ax.set_yticks([1.0, 2.0], [labels[1], labels[0]])
    ax.set_ylim(0.3, 2.7)
    ax.set_xlabel("time (s)")
    ax.set_title("Music beats vs motion beats (ticks) over each motion's speed")
    ax.legend(loc="upper right", fontsize="small")
    return _save(figure, path)


def motiongrams(grams: list[tuple[str, np.ndarray, float]], path: Path) -> Path:
    """Motiongrams (label, image (H, N), fps) stacked on one time axis, brightest = most motion."""
    figure, axes = _figure(rows=len(grams), height=1.0 + 1.7 * len(grams))
    for ax, (label, image, fps) in zip(axes, grams):
        shown = image / max(float(np.percentile(image, 99.5)), 1e-6)
        ax.imshow(np.clip(shown, 0, 1), aspect="auto", cmap="magma", origin="upper",
                  extent=(0.0, image.shape[1] / fps, image.shape[0], 0))
        ax.set_facecolor("black")  # a shorter motiongram ends in "no motion", not in white
        ax.set_ylabel(label, fontsize="small")
        ax.set_yticks([])
    axes[-1].set_xlim(0.0, max(image.shape[1] / fps for _, image, fps in grams))
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title("Motiongrams (frame differences averaged over the width; top of picture at the top)")
    return _save(figure, path)


def gesture_map(points: dict, path: Path) -> Path:
    """A gesture vocabulary's joint embedding in 2-D (`gesture_vocabulary.map_points`): each entry's gesture,
    description and meaning joined as a triangle, coloured by its description."""
    from matplotlib import colormaps

    figure, (ax,) = _figure(height=7.0)
    colours = colormaps["tab20"].resampled(max(len(points["description_texts"]), 1))
    for g, d, m in zip(points["gestures"], points["description_of"], points["meaning_of"]):
        corners = np.array([g, points["descriptions"][d], points["meanings"][m], g])
        ax.plot(corners[:, 0], corners[:, 1], color=colours(d), lw=0.6, alpha=0.5)
        ax.plot(*g, "o", color=colours(d), ms=4)
    for index, (xy, text) in enumerate(zip(points["descriptions"], points["description_texts"])):
        ax.plot(*xy, "s", color=colours(index), ms=9, mec="k", label=_shortened(text))
    for xy, text in zip(points["meanings"], points["meaning_texts"]):
        ax.plot(*xy, "^", color="k", ms=9, mfc="w")
        ax.annotate(_shortened(text), xy, fontsize="x-small", xytext=(4, 4), textcoords="offset points")
    ax.plot([], [], "o", color="0.4", label="gesture clip")
    ax.plot([], [], "^", color="k", mfc="w", label="meaning (labelled)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("Gesture vocabulary: each entry's gesture, description and meaning")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="x-small", title="description")
    return _save(figure, Path(path))


def _shortened(text: str, length: int = 48) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"
