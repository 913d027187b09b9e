"""Long pieces in pieces: cutting the input into windows and joining the generated motion without seams.

Two ways, for the two kinds of network (numpy only; the networks are called through callbacks):

- `overlap_save`, for networks whose output at a frame depends only on nearby input (convolutions and BatchNorm in
  eval mode, such as the music encoder): each chunk runs with `context` extra frames on both sides and only its
  middle is kept. The result equals one pass over the whole input (to float rounding) while memory stays bounded.
- `WindowPlan` and `join_windows`, for networks that look at a whole window at once and sample it (the diffusion
  transformer): windows of one length overlapping by at least `overlap` frames; inside each overlap the later window
  takes over from the earlier one at the frame where that shows least (a gesture's turning point, as motion graphs
  place their transitions), keeping position and velocity continuous, and its remaining offset from the earlier
  window dies away over a short blend (offset blending).

`seam_report` measures what the issue asks for: the largest frame-to-frame jump at a seam against the median jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

# (fraction done, message), as in core.analysis.Progress.
Progress = Callable[[float, str], None]


def fit_frames(array: np.ndarray, n_frames: int) -> np.ndarray:
    """Crop axis 0 to `n_frames`, or extend it by mirroring the end (repeatedly if needed, so any length works).

    Mirroring keeps the music's texture and tempo at the joint, unlike zeros (silence) or a frozen last frame; the
    frames made this way are only context and are cropped from the output again.
    """
    array = np.asarray(array)
    if n_frames <= 0:
        raise ValueError(f"need a positive length, got {n_frames}")
    if array.shape[0] >= n_frames:
        return array[:n_frames]
    if array.shape[0] < 2:
        return np.concatenate([array] + [array[-1:]] * (n_frames - array.shape[0]))
    pad = [(0, n_frames - array.shape[0])] + [(0, 0)] * (array.ndim - 1)
    return np.pad(array, pad, mode="reflect")


def overlap_save(
    n_frames: int,
    run: Callable[[int, int], np.ndarray],
    chunk: int,
    context: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """Apply a local operator to frames [0, n_frames) chunk by chunk.

    `run(lo, hi)` must return the operator's output for input frames [lo, hi) (hi − lo frames along axis 0). Each
    chunk [a, b) is computed from [a − context, b + context) clipped to the input, and frames [a, b) are kept; with
    `context` at least the operator's reach, chunk borders cannot be told apart from a single pass.
    """
    if chunk <= 0 or context < 0:
        raise ValueError("chunk must be positive and context non-negative")
    pieces = []
    starts = range(0, n_frames, chunk)
    for number, a in enumerate(starts):
        b = min(n_frames, a + chunk)
        lo, hi = max(0, a - context), min(n_frames, b + context)
        out = np.asarray(run(lo, hi))
        if out.shape[0] != hi - lo:
            raise ValueError(f"run({lo}, {hi}) returned {out.shape[0]} frames, expected {hi - lo}")
        pieces.append(out[a - lo : b - lo])
        if progress is not None:
            progress((number + 1) / len(starts), "Encoding the music")
    return np.concatenate(pieces, axis=0)


def raised_cosine(n: int) -> np.ndarray:
    """n values rising smoothly from near 0 to near 1 (sampled at the centres of n equal steps)."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / max(n, 1))


@dataclass(frozen=True)
class WindowPlan:
    """Equal-length windows covering [0, n_frames), consecutive ones overlapping by at least `overlap` frames.

    In each overlap the handover happens over its middle, leaving `margin` frames at both ends where one window
    alone counts: the outermost frames of a window are the least reliable (padding effects, no context).
    """

    n_frames: int
    length: int
    starts: tuple[int, ...]
    margin: int

    @classmethod
    def cover(cls, n_frames: int, length: int, overlap: int, margin: int = 0) -> "WindowPlan":
        """As few windows of `length` frames as keep every overlap ≥ `overlap`, spread evenly; one if it fits."""
        if n_frames <= 0 or length <= 0:
            raise ValueError("n_frames and length must be positive")
        if not 0 <= 2 * margin < overlap <= length // 2:
            raise ValueError("need 0 ≤ 2·margin < overlap ≤ length/2 (so only neighbouring windows overlap)")
        if n_frames <= length:
            return cls(n_frames, n_frames, (0,), margin)
        count = math.ceil((n_frames - overlap) / (length - overlap))
        span = n_frames - length
        starts = tuple(int(round(i * span / (count - 1))) for i in range(count))
        return cls(n_frames, length, starts, margin)

    @property
    def windows(self) -> list[tuple[int, int]]:
        return [(s, s + self.length) for s in self.starts]

    def handover(self, k: int) -> tuple[int, int]:
        """Frames [a, b) over which window k takes over from window k − 1 (k ≥ 1)."""
        start, previous_stop = self.starts[k], self.starts[k - 1] + self.length
        return start + self.margin, previous_stop - self.margin

    def previous_weight(self, k: int) -> np.ndarray:
        """(length,) how strongly window k is steered to continue the already-joined motion; 0 for k = 0.

        1 up to the handover, a raised cosine down to 0 across it, 0 after (see `join_windows`).
        """
        weight = np.zeros(self.length)
        if k == 0:
            return weight
        a, b = self.handover(k)
        start = self.starts[k]
        weight[: a - start] = 1.0
        weight[a - start : b - start] = 1.0 - raised_cosine(b - a)
        return weight


@dataclass
class Joined:
    """Joined motion (n_frames, ...) and the frame at which each window took over from the one before."""

    motion: np.ndarray
    seams: list[int]


def offset_decay(blend: int) -> tuple[np.ndarray, np.ndarray]:
    """(blend + 1,) ×2: how a position offset and a velocity offset die away over `blend` frames after a cut.

    Both are the quintics with value, slope and curvature fixed at each end: the position one goes from 1 to 0
    starting flat, the velocity one starts at 0 with slope 1 (one unit per frame) and ends at 0; all end flat.
    """
    s = np.arange(blend + 1) / blend
    position = (1.0 - s) ** 3 * (1.0 + 3.0 * s + 6.0 * s * s)
    velocity = blend * s * (1.0 - s) ** 3 * (1.0 + 3.0 * s)
    return position, velocity


def stitch(previous: np.ndarray, new: np.ndarray, cut: int, blend: int) -> np.ndarray:
    """`previous` before frame `cut`, `new` from it on, with the difference between them at the cut (position
    and velocity) added to `new` and dying away over `blend` frames.

    This is offset blending (inertialisation, as game engines switch animations): the result keeps the previous
    motion's position and velocity through the cut and then settles onto the new motion, whose own shape is kept,
    where a cross-fade would average two different gestures. Both arrays cover the same frames; 1 ≤ cut and
    cut + blend < len(new).
    """
    position, velocity = offset_decay(blend)
    shape = (-1,) + (1,) * (new.ndim - 1)
    offset = previous[cut] - new[cut]
    velocity_offset = (previous[cut] - previous[cut - 1]) - (new[cut] - new[cut - 1])
    out = new.copy()
    out[:cut] = previous[:cut]
    out[cut : cut + blend + 1] += position.reshape(shape) * offset + velocity.reshape(shape) * velocity_offset
    return out


def calmest_cut(previous: np.ndarray, new: np.ndarray, lo: int, hi: int, blend: int) -> int:
    """The frame in [lo, hi) where stitching `new` onto `previous` (see `stitch`) shows least.

    Two things can show: the switch itself, seen in the frame-to-frame jumps around the cut (least where both
    motions turn, at a gesture's turning point, as motion graphs place their transitions), and the offset dying
    away afterwards, seen as added speed (least where the two agree). The cut minimises the larger of the two.
    """
    best, best_cost = (lo + hi) // 2, np.inf
    for cut in range(max(lo, 2), min(hi, len(new) - blend - 2)):
        stitched = stitch(previous, new, cut, blend)
        switch = frame_jumps(stitched[cut - 2 : cut + 3]).max()
        added = frame_jumps(stitched[cut : cut + blend + 1] - new[cut : cut + blend + 1]).max()
        cost = max(switch, added)
        if cost < best_cost:
            best, best_cost = cut, cost
    return best


def join_windows(
    plan: WindowPlan,
    run: Callable[[int, int, np.ndarray | None, np.ndarray], np.ndarray],
    blend: int,
    progress: Progress | None = None,
    message: str = "Generating",
) -> Joined:
    """Generate window after window and stitch each onto what came before at its calmest moment.

    `run(start, stop, known, weight)` returns the window's motion for frames [start, stop). `known` is the motion
    already joined for those frames (None for the first window) and `weight` (the plan's `previous_weight`) how
    strongly to follow it, so a sampler can steer the new window to continue it. The cut is then placed inside the
    handover where the stitch shows least (`calmest_cut`), and the new window's offset from the old at the cut dies
    away over `blend` frames (`stitch`).
    """
    out: np.ndarray | None = None
    seams = []
    for k, (start, stop) in enumerate(plan.windows):
        known = None if out is None else out[start:stop]
        motion = np.asarray(run(start, stop, known, plan.previous_weight(k)), dtype=np.float64)
        if motion.shape[0] != stop - start:
            raise ValueError(f"window [{start}, {stop}) produced {motion.shape[0]} frames")
        if out is None:
            out = np.zeros((plan.n_frames,) + motion.shape[1:])
            out[start:stop] = motion
        else:
            a, b = plan.handover(k)
            cut = calmest_cut(known, motion, a - start, b - start, blend)
            out[start:stop] = stitch(known, motion, cut, blend)
            seams.append(start + cut)
        if progress is not None:
            progress((k + 1) / len(plan.starts), f"{message} ({k + 1}/{len(plan.starts)})")
    return Joined(out, seams)


def frame_jumps(keypoints: np.ndarray) -> np.ndarray:
    """(T, 13, 2) → (T − 1,): Euclidean distance between consecutive frames over all 26 coordinates."""
    flat = np.asarray(keypoints, dtype=np.float64).reshape(len(keypoints), -1)
    return np.linalg.norm(np.diff(flat, axis=0), axis=1)


def seam_report(keypoints: np.ndarray, seams: list[int], radius: int = 1) -> dict:
    """Largest frame-to-frame jump within ±radius frames of each seam, against the median jump of the clip.

    jump t is the step from frame t to t + 1. Returns {"max_seam_jump", "median_jump", "ratio", "per_seam"}; the
    acceptance bar for joined windows is ratio ≤ 2.
    """
    jumps = frame_jumps(keypoints)
    per_seam = []
    for seam in seams:
        lo, hi = max(0, seam - radius - 1), min(len(jumps), seam + radius)
        per_seam.append(float(jumps[lo:hi].max()))
    median = float(np.median(jumps))
    worst = max(per_seam) if per_seam else 0.0
    return {
        "max_seam_jump": worst,
        "median_jump": median,
        "ratio": worst / median if median > 0 else float("inf") if worst > 0 else 0.0,
        "per_seam": per_seam,
    }
