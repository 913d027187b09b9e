"""Motiongrams (Jensenius): a video's motion squeezed into one image, one column per frame (no bpy).

Each frame's motion image is the absolute difference from the previous frame, with small differences (sensor noise,
compression) set to zero. Averaging a motion image over the image's width leaves one column that shows at which
heights something moved; the columns side by side show the rhythm of the movement over time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .capture import probe_video, read_frames

HEIGHT = 160  # most rows of a motiongram: taller frames are shrunk to this first, which also averages out noise
NOISE = 0.04  # differences below this fraction of full scale are treated as noise


def motiongram(frames, noise: float = NOISE) -> np.ndarray:
    """Grey frames (each (H, W), uint8 or [0, 1] floats) → (H, N − 1) float32 in [0, 1]: mean over the width of
    each thresholded frame difference."""
    columns = []
    previous = None
    for frame in frames:
        raw = np.asarray(frame)
        frame = raw.astype(np.float32) / 255.0 if np.issubdtype(raw.dtype, np.integer) else raw.astype(np.float32)
        if previous is not None:
            difference = np.abs(frame - previous)
            difference[difference < noise] = 0.0
            columns.append(difference.mean(axis=1))
        previous = frame
    if not columns:
        raise ValueError("a motiongram needs at least two frames")
    return np.stack(columns, axis=1).astype(np.float32)


def video_motiongram(path: str | Path, seconds: float | None = None, height: int = HEIGHT) -> tuple[np.ndarray, float]:
    """(motiongram, frames per second) of a video file, over its first `seconds` if given."""
    info = probe_video(path)
    limit = None if seconds is None else max(2, int(round(seconds * info.fps)) + 1)

    def frames():
        for index, frame in enumerate(read_frames(info, scale=min(1.0, height / info.height), grey=True)):
            if limit is not None and index >= limit:
                return
            yield frame

    return motiongram(frames()), info.fps
