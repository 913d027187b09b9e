"""Beat-lock: a smooth, monotonic time-warp that puts a generated motion's beats on the music's beats.

The learned generators see only the mel, so their right hand strikes where the network guesses, not on the analysed
beats, and an official checkpoint cannot be given the beats. The beats are brought to the motion afterwards: at each
frame t of the music the conductor shows the generated motion at a frame w(t) near t, played a little faster or
slower than real time so that each ictus falls on a beat. The warp is monotonic, so every gesture is the network's,
in its order; a beat with no ictus near it gets none, and an ictus between two beats stays between them.

1. The ictus to lock (`lockable_ictus`): the right wrist's lowest points (`metrics.ictus_frames`) that stand out by
   MIN_STROKE of the wrist's vertical range, placed between frames by the parabola through the three frames around
   each.
2. Matching (`match_beats`): dynamic programming picks the monotone chain of (ictus, beat) pairs, each at most
   MAX_OFFSET apart, that locks the most beats, where going from one pair to the next implies a mean rate (motion
   time per music time) within RATE_BOUNDS, costing RATE_COST·log²(rate) and RATE_CHANGE_COST·(change of log rate
   from the step before)². Ictus and beats may stay unmatched.
3. The warp (`time_warp`): the least-squares w through the pairs whose rate stays near 1, changes over about
   RATE_SMOOTHING rather than at once, and whose offset w(t) − t relaxes to 0 over about RELAX away from the pairs,
   so that silences (no beats) and the ends run in real time. It never reaches outside the generated frames, and
   pairs are let go until its rate stays within WARP_RATE_BOUNDS (`bounded_warp`).
4. Every joint is resampled along w (cubic interpolation).

The constants were chosen on the demo and five validation-work excerpts (benchmarks/neural.py), trading beats locked
against changes of speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.interpolate import CubicSpline
from scipy.linalg import solveh_banded

from .metrics import ictus_frames
from .motion import FPS, JOINT

# An ictus worth locking stands out by at least this share of the range of the wrist's height (5th to 95th
# percentile over the piece); smaller dips are wobbles of the network's output, left where they are.
MIN_STROKE = 0.1
# An ictus is moved by at most this much (seconds), so the gestures stay with the music the network made them for.
MAX_OFFSET = 0.35
# The mean rate between consecutive locked beats (motion seconds per music second) and what departing from 1 costs,
# against a gain of 1 for each beat locked.
RATE_BOUNDS = (0.75, 1.33)
RATE_COST = 1.0
RATE_CHANGE_COST = 5.0
# The warp's rate, frame to frame, stays within these bounds: a pair that would push it outside is let go.
WARP_RATE_BOUNDS = (0.7, 1.4)
# Time scales (seconds) of the warp: how gradually the rate changes, and how fast the offset dies away where nothing
# is locked.
RATE_SMOOTHING = 0.3
RELAX = 2.0
# Pairs further apart than this (seconds) are chained without a rate check: their offsets differ by at most
# 2·MAX_OFFSET, so the mean rate between them is within 1 ± 0.07.
HORIZON = 10.0
# Weight of the pairs in the least-squares warp: they are met to about 1e-4 frame.
PAIR_WEIGHT = 1e6


@dataclass
class BeatLock:
    """A beat-locked motion: the warped keypoints, the generated frame shown at each frame (`warp`), how many beats
    there were and were locked, and how many ictus the motion had to lock (`report` sums it up for the meta)."""

    keypoints: np.ndarray
    warp: np.ndarray
    beats: int
    locked: int
    ictus: int

    @property
    def rate(self) -> np.ndarray:
        """Motion frames per music frame, frame to frame."""
        return np.diff(self.warp)

    def report(self) -> dict:
        change = np.abs(self.rate - 1.0) if len(self.warp) > 1 else np.zeros(1)
        return {
            "beats": self.beats,
            "locked": self.locked,
            "locked_share": round(self.locked / self.beats, 4) if self.beats else 0.0,
            "ictus": self.ictus,
            # |rate − 1|: how much faster or slower than generated the motion is shown
            "speed_change_max": round(float(change.max()), 4),
            "speed_change_p95": round(float(np.percentile(change, 95)), 4),
        }


def lockable_ictus(keypoints: np.ndarray) -> np.ndarray:
    """Frames (between frames, to the parabola's vertex) of the ictus worth locking, in order."""
    y = np.asarray(keypoints, dtype=np.float64)[:, JOINT["right_wrist"], 1]
    if len(y) < 3:
        return np.zeros(0)
    stroke = np.percentile(y, 95) - np.percentile(y, 5)
    if not stroke > 0:
        return np.zeros(0)
    frames, _ = ictus_frames(keypoints, prominence=MIN_STROKE * stroke)
    before, at, after = y[frames - 1], y[frames], y[frames + 1]
    curvature = before - 2.0 * at + after  # negative at a strict maximum
    shift = np.divide(0.5 * (before - after), curvature, out=np.zeros(len(frames)), where=curvature < 0)
    return frames + np.clip(shift, -0.5, 0.5)


def match_beats(ictus: np.ndarray, beats: np.ndarray, n_frames: int, fps: float = FPS) -> np.ndarray:
    """(K, 2) indices (ictus, beat) of the locked pairs, both increasing; ictus and beats in frames of a piece of
    `n_frames`.

    Every pair leaves room for the warp at the ends: before the first pair there is enough motion to fill the music
    before it at the slowest rate allowed, and likewise after the last.
    """
    max_offset, horizon = MAX_OFFSET * fps, HORIZON * fps
    low, high = RATE_BOUNDS
    first = np.searchsorted(ictus, beats - max_offset)
    last = np.searchsorted(ictus, beats + max_offset, "right")
    states = [(j, i) for j in range(len(beats)) for i in range(first[j], last[j])]  # by beat, then ictus
    if not states:
        return np.zeros((0, 2), int)
    beat_of, ictus_of = np.array(states).T
    b, m = beats[beat_of], ictus[ictus_of]
    can_start = m >= low * b
    can_end = (n_frames - 1 - m) >= low * (n_frames - 1 - b)
    score = np.full(len(states), -np.inf)
    back = np.full(len(states), -1)
    # The log rate of the step into each state on its best chain (a chain starts from real time, rate 1).
    incoming = np.zeros(len(states))
    settled, best_settled = 0, -1  # states over the horizon behind, and the best of them
    for s in range(len(states)):
        while b[settled] < b[s] - horizon:
            if score[settled] > (score[best_settled] if best_settled >= 0 else -np.inf):
                best_settled = settled
            settled += 1
        options = [(0.0 if can_start[s] else -np.inf, -1)]
        if best_settled >= 0:
            options.append((score[best_settled], best_settled))
        near = np.arange(settled, s)
        near = near[(beat_of[near] < beat_of[s]) & (ictus_of[near] < ictus_of[s])]
        if len(near):
            rate = (m[s] - m[near]) / (b[s] - b[near])
            allowed = (rate >= low) & (rate <= high)
            near, rate = near[allowed], rate[allowed]
            if len(near):
                log_rate = np.log(rate)
                values = score[near] - RATE_COST * log_rate**2 - RATE_CHANGE_COST * (log_rate - incoming[near]) ** 2
                options.append((values.max(), near[values.argmax()]))
        value, back[s] = max(options, key=lambda option: option[0])
        score[s] = 1.0 + value
        if back[s] >= 0:
            incoming[s] = np.log((m[s] - m[back[s]]) / (b[s] - b[back[s]]))
    ending = np.where(can_end, score, -np.inf)
    if not np.isfinite(ending.max()):
        return np.zeros((0, 2), int)
    chain, s = [], int(ending.argmax())
    while s >= 0:
        chain.append((ictus_of[s], beat_of[s]))
        s = back[s]
    return np.array(chain[::-1], int)


def time_warp(music: np.ndarray, motion: np.ndarray, n: int, fps: float = FPS) -> np.ndarray:
    """(n,) the motion frame shown at each of n music frames: through (music[k], motion[k]) (frames, increasing),
    rate near 1 and changing gradually, offset relaxing to 0 away from the pairs, within [0, n − 1]."""
    music, motion = np.asarray(music, float), np.asarray(motion, float)
    if n < 3 or not len(music):
        return np.arange(n, dtype=float)
    frames = np.arange(n, dtype=float)
    slope = sparse.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], (n - 1, n))
    bend = sparse.diags([np.ones(n - 2), -2 * np.ones(n - 2), np.ones(n - 2)], [0, 1, 2], (n - 2, n))
    smoothing, relax = RATE_SMOOTHING * fps, RELAX * fps
    base = slope.T @ slope + smoothing**2 * (bend.T @ bend) + sparse.identity(n) / relax**2
    base_rhs = slope.T @ np.ones(n - 1) + frames / relax**2

    def solve(at: np.ndarray, value: np.ndarray) -> np.ndarray:
        left = np.minimum(np.floor(at).astype(int), n - 2)
        share = at - left
        rows = np.arange(len(at))
        pick = sparse.csr_matrix((np.r_[1 - share, share], (np.r_[rows, rows], np.r_[left, left + 1])),
                                 shape=(len(at), n))
        matrix = (base + PAIR_WEIGHT * (pick.T @ pick)).todia()
        banded = np.zeros((3, n))
        for offset in range(3):
            banded[2 - offset, offset:] = matrix.diagonal(offset)
        return solveh_banded(banded, base_rhs + PAIR_WEIGHT * (pick.T @ value))

    warp = solve(music, motion)
    # Where a free end would reach outside the generated motion, it is pinned to the first or last frame.
    ends = [frame for frame, outside in ((0.0, warp[0] < 0), (n - 1.0, warp[-1] > n - 1)) if outside]
    if ends:
        warp = solve(np.r_[music, ends], np.r_[motion, ends])
    return np.clip(warp, 0, n - 1)


def bounded_warp(ictus: np.ndarray, beats: np.ndarray, pairs: np.ndarray, n: int,
                 fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """(`time_warp` through the pairs, the pairs kept): pairs are let go, the nearest to the worst frame first,
    until the warp's rate stays within WARP_RATE_BOUNDS everywhere (the identity when none is left)."""
    low, high = WARP_RATE_BOUNDS
    while len(pairs):
        warp = time_warp(beats[pairs[:, 1]], ictus[pairs[:, 0]], n, fps)
        rate = np.diff(warp)
        outside = np.maximum(low - rate, rate - high)
        if not len(rate) or outside.max() <= 0:
            return warp, pairs
        worst = np.argmax(outside) + 0.5
        pairs = np.delete(pairs, np.argmin(np.abs(beats[pairs[:, 1]] - worst)), axis=0)
    return np.arange(n, dtype=float), pairs


def beat_lock(keypoints: np.ndarray, beats: np.ndarray, fps: float = FPS) -> BeatLock:
    """Warp `keypoints` (T, 13, 2) so that its ictus fall on `beats` (seconds) where they can."""
    keypoints = np.asarray(keypoints)
    n = len(keypoints)
    beats = np.asarray(beats, dtype=float) * fps
    beats = beats[(beats >= 0) & (beats <= n - 1)]
    ictus = lockable_ictus(keypoints)
    warp, pairs = bounded_warp(ictus, beats, match_beats(ictus, beats, n, fps), n, fps)
    if not len(pairs):
        return BeatLock(keypoints.copy(), warp, len(beats), 0, len(ictus))
    flat = keypoints.reshape(n, -1).astype(np.float64)
    warped = CubicSpline(np.arange(n), flat, axis=0)(warp).reshape(keypoints.shape).astype(keypoints.dtype)
    return BeatLock(warped, warp, len(beats), len(pairs), len(ictus))
