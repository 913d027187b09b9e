"""Keys an animator can edit: a bone's solved rotations in its own rotation mode, and reduced to few Bézier keys.

The solver gives every bone a local rotation per frame as a quaternion.  A bone keeps the rotation mode its rig
gave it: quaternion bones get `rotation_quaternion`, Euler bones continuous `rotation_euler` in their own order
(no 360° jumps, the nearer of the two equivalent triples at each frame), axis-angle bones `rotation_axis_angle`.

Reduction keeps the fewest keys for which the Bézier curves through them stay within a tolerance of the solved
rotation, measured as the angle between the two (degrees, per bone, at every frame).  Each key's handles lie along
the solved curve's own slope there (broken into the two one-sided slopes at corners, the ictus of a beat), a third of
the way to the neighbouring key: with handles at the thirds a Bézier segment is exactly the cubic Hermite segment
evaluated here, so what Blender plays is what was measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .rotations import continuous, matrix_from_quat, normalise, quat_from_matrix

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
QUATERNION = "QUATERNION"
AXIS_ANGLE = "AXIS_ANGLE"
ROTATION_MODES = (QUATERNION, AXIS_ANGLE, *EULER_ORDERS)
# Property keyed for each mode, as Blender names it on a pose bone.
DATA_PATHS = {QUATERNION: "rotation_quaternion", AXIS_ANGLE: "rotation_axis_angle",
              **{order: "rotation_euler" for order in EULER_ORDERS}}
DEFAULT_TOLERANCE_DEG = 0.5
# The bones of a leg whose foot stands planted are reduced to this share of the tolerance: their errors add up down
# the leg (0.5° at the hip alone moves the foot 7 mm), and a sliding foot shows more than a hand a little off.
PLANTED_SHARE = 0.05
MIN_TOLERANCE_DEG, MAX_TOLERANCE_DEG = 0.01, 10.0
# A frame whose values lie this close to the straight line between its neighbours' (in channel units: a quaternion
# component or radians) adds nothing to linear keys. Over a run of such frames the line strays at most about
# run² / 8 times this from the samples: a thousandth of a degree over 10 s.
ON_THE_LINE = 1e-9


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    i, j = (axis + 1) % 3, (axis + 2) % 3
    m[..., axis, axis] = 1.0
    m[..., i, i] = c
    m[..., j, j] = c
    m[..., j, i] = s
    m[..., i, j] = -s
    return m


def matrix_from_euler(euler: np.ndarray, order: str) -> np.ndarray:
    """(…, 3) angles stored (x, y, z) like Blender → (…, 3, 3); 'XYZ' turns about X first, then Y, then Z."""
    euler = np.asarray(euler, dtype=np.float64)
    m = np.broadcast_to(np.eye(3), euler.shape[:-1] + (3, 3))
    for name in order:
        axis = "XYZ".index(name)
        m = _axis_rotation(axis, euler[..., axis]) @ m
    return m


def euler_from_matrix(m: np.ndarray, order: str) -> np.ndarray:
    """One of the two Euler triples of each rotation, middle angle in [-90°, 90°]."""
    i, j, k = ("XYZ".index(name) for name in order)
    # R = R_k(c) R_j(b) R_i(a); an odd permutation of the axes flips the signs of the off-diagonal terms used.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    out = np.empty(m.shape[:-2] + (3,))
    out[..., j] = np.arctan2(-sign * m[..., k, i], np.hypot(m[..., i, i], sign * m[..., j, i]))
    out[..., i] = np.arctan2(sign * m[..., k, j], m[..., k, k])
    out[..., k] = np.arctan2(sign * m[..., j, i], m[..., i, i])
    return out


def continuous_euler(euler: np.ndarray, order: str) -> np.ndarray:
    """(T, 3) Euler triples made continuous in time: each frame takes whichever of its two equivalent triples, with
    whole turns added, lies nearest the previous frame's."""
    i, j, k = ("XYZ".index(name) for name in order)
    flipped = euler.copy()
    flipped[:, i] += np.pi
    flipped[:, j] = np.pi - flipped[:, j]
    flipped[:, k] += np.pi
    out = np.empty_like(euler)
    out[0] = euler[0]
    for t in range(1, len(euler)):
        best = None
        for candidate in (euler[t], flipped[t]):
            near = candidate + 2 * np.pi * np.round((out[t - 1] - candidate) / (2 * np.pi))
            distance = np.abs(near - out[t - 1]).sum()
            if best is None or distance < best[0]:
                best = (distance, near)
        out[t] = best[1]
    return out


def channels(quaternions: np.ndarray, mode: str) -> np.ndarray:
    """(T, 4) solved local rotations (w, x, y, z) → (T, C) values of the property keyed in `mode`."""
    q = continuous(normalise(np.asarray(quaternions, dtype=np.float64)))
    if mode == QUATERNION:
        return q
    if mode == AXIS_ANGLE:
        vector = np.linalg.norm(q[:, 1:], axis=1)
        angle = 2.0 * np.arctan2(vector, q[:, 0])
        axis = q[:, 1:] / np.maximum(vector, 1e-12)[:, None]
        # Without rotation the axis is undefined: hold the last defined one rather than jump.
        defined = vector > 1e-9
        if defined.any():
            last = np.maximum.accumulate(np.where(defined, np.arange(len(q)), -1))
            last[last < 0] = np.argmax(defined)
            axis = axis[last]
        else:
            axis = np.tile([0.0, 1.0, 0.0], (len(q), 1))
        # (angle, axis) and (-angle, -axis) are one rotation: keep the axis from reversing where the rotation passes
        # through none or a whole turn, then let the angle run on past a turn.
        steps = np.sign(np.sum(axis[1:] * axis[:-1], axis=1))
        steps[steps == 0] = 1
        signs = np.concatenate([[1.0], np.cumprod(steps)])
        return np.column_stack([np.unwrap(angle * signs, period=2 * np.pi), axis * signs[:, None]])
    if mode in EULER_ORDERS:
        return continuous_euler(euler_from_matrix(matrix_from_quat(q), mode), mode)
    raise ValueError(f"unknown rotation mode {mode!r}; expected one of {', '.join(ROTATION_MODES)}")


def quaternions_of(values: np.ndarray, mode: str) -> np.ndarray:
    """(T, C) keyed values in `mode` → (T, 4) unit quaternions, as Blender turns them into a pose."""
    values = np.asarray(values, dtype=np.float64)
    if mode == QUATERNION:
        return normalise(values)
    if mode == AXIS_ANGLE:
        half = 0.5 * values[:, 0]
        return np.column_stack([np.cos(half), np.sin(half)[:, None] * normalise(values[:, 1:])])
    return quat_from_matrix(matrix_from_euler(values, mode))


def angle_between_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # In double precision: near 1, float32 dot products resolve angles no finer than about 0.04°.
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    dot = np.abs(np.sum(normalise(a) * normalise(b), axis=-1))
    return np.degrees(2.0 * np.arccos(np.clip(dot, 0.0, 1.0)))


# A frame is a corner (an ictus: the motion turns sharply) when its one-sided slopes differ by more than this share
# of their mean size.  A key there gets broken handles, one along each side's slope, as an animator keys a bounce.
CORNER = 0.5


@dataclass
class ReducedCurves:
    """One bone's kept keys: frame offsets (K,) into the solved samples, values (K, C), the slopes (per frame) the
    curves arrive with and leave with (K, C), equal except at corners, and which keys are corners (K,)."""

    frames: np.ndarray
    values: np.ndarray
    slopes_in: np.ndarray
    slopes_out: np.ndarray
    corners: np.ndarray

    def evaluate(self, at: np.ndarray) -> np.ndarray:
        """(len(at), C) values of the Hermite (Bézier with handles at the thirds) curves at frame offsets `at`."""
        at = np.asarray(at, dtype=np.float64)
        if len(self.frames) == 1:
            return np.repeat(self.values, len(at), axis=0)
        segment = np.clip(np.searchsorted(self.frames, at, side="right") - 1, 0, len(self.frames) - 2)
        return _hermite(self.values[segment], self.slopes_out[segment], self.values[segment + 1],
                        self.slopes_in[segment + 1], self.frames[segment], self.frames[segment + 1], at)

    def handles(self) -> tuple[np.ndarray, np.ndarray]:
        """(left, right) handle positions (K, C, 2) as (frame offset, value): along the arriving and the leaving
        slope, a third of the way to the neighbouring key (the end keys mirror their inner handle)."""
        gaps = np.diff(self.frames).astype(np.float64) / 3.0
        if len(gaps) == 0:
            gaps = np.array([1.0 / 3.0])
        before = np.concatenate([gaps[:1], gaps])[:, None]
        after = np.concatenate([gaps, gaps[-1:]])[:, None]
        frames = self.frames[:, None].astype(np.float64)
        left = np.stack(np.broadcast_arrays(frames - before, self.values - self.slopes_in * before), axis=-1)
        right = np.stack(np.broadcast_arrays(frames + after, self.values + self.slopes_out * after), axis=-1)
        return left, right


def _hermite(v0, s0, v1, s1, f0, f1, at):
    span = (np.asarray(f1) - np.asarray(f0)).astype(np.float64)[:, None]
    u = (np.asarray(at, dtype=np.float64)[:, None] - np.asarray(f0)[:, None]) / span
    return ((2 * u**3 - 3 * u**2 + 1) * v0 + (u**3 - 2 * u**2 + u) * span * s0
            + (-2 * u**3 + 3 * u**2) * v1 + (u**3 - u**2) * span * s1)


def sample_slopes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(arriving slopes, leaving slopes, corners) at every sample: the central difference where the motion is
    smooth, the one-sided second-order differences at corners."""
    central = np.gradient(values, axis=0) if len(values) > 1 else np.zeros_like(values)
    forward, backward = central.copy(), central.copy()
    if len(values) >= 3:
        forward[:-2] = (-3 * values[:-2] + 4 * values[1:-1] - values[2:]) / 2
        backward[2:] = (3 * values[2:] - 4 * values[1:-1] + values[:-2]) / 2
    size = 0.5 * (np.linalg.norm(forward, axis=1) + np.linalg.norm(backward, axis=1))
    corners = np.linalg.norm(forward - backward, axis=1) > CORNER * size
    return (np.where(corners[:, None], backward, central), np.where(corners[:, None], forward, central), corners)


def turning_frames(values: np.ndarray) -> np.ndarray:
    """The frames of (T, C) samples that linear keys need: both ends and every frame off the line between its
    neighbours. A bone holding still (a finger through a held grip) needs two keys, not one per frame."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 3:
        return np.arange(len(values))
    bends = np.abs(values[2:] - 2 * values[1:-1] + values[:-2]).max(axis=1) > ON_THE_LINE
    return np.concatenate([[0], np.flatnonzero(bends) + 1, [len(values) - 1]])


def reduce_curves(values: np.ndarray, mode: str, tolerance_deg: float = DEFAULT_TOLERANCE_DEG) -> ReducedCurves:
    """One bone's (T, C) values reduced: see reduce_bones."""
    return reduce_bones(np.asarray(values)[None], mode, tolerance_deg)[0]


# Candidate next keys tested at once per stretch: enough to bracket the next key in two or three rounds, few enough
# that a bone that hardly moves (keys seconds apart) is not tested at every frame of its long stretches.
CANDIDATES = 24
# Each bone is reduced in stretches of this many frames, all at once: the greedy search is sequential within a
# stretch, so long pieces would otherwise take one round per key.  A key at each stretch's end costs one extra key
# per 10 s.
STRETCH_FRAMES = 300


def reduce_bones(values: np.ndarray, mode: str, tolerance_deg: float = DEFAULT_TOLERANCE_DEG) -> list[ReducedCurves]:
    """Few keys, on solved samples, for which each bone's curves stay within `tolerance_deg` of its solved rotation
    at every frame; `values` (B, T, C) are B bones keyed in the same `mode`.

    Greedy from the first frame: each key is followed by the farthest frame that can be the next key.  It is
    bracketed by testing up to CANDIDATES frames at once, spread over a window that doubles while all of them fit,
    then over the bracket between the last that fits and the first that does not, until the two are neighbours.
    Every bone's stretches are searched together.  Keys are shared by a bone's channels so that its rotation is
    keyed as a whole, as animators key it."""
    values = np.asarray(values, dtype=np.float64)
    bones, n, width = values.shape
    flat = values.reshape(bones * n, width)
    slopes = [sample_slopes(v) for v in values]
    slopes_in = np.concatenate([s[0] for s in slopes])
    slopes_out = np.concatenate([s[1] for s in slopes])
    corners = np.concatenate([s[2] for s in slopes])
    target = quaternions_of(flat, mode)
    # Stretches as (first row, last row) of `flat`; each searched as its own sequence of keys.
    edges = list(range(0, n - 1, STRETCH_FRAMES)) + [n - 1]
    stretches = [(b * n + e0, b * n + e1) for b in range(bones) for e0, e1 in zip(edges, edges[1:])]
    last = [e1 for _, e1 in stretches]
    kept: list[list[int]] = [[e0] for e0, _ in stretches]
    start = [e0 for e0, _ in stretches]
    fits_to = [e0 + 1 for e0, _ in stretches]  # the farthest end known to fit (the neighbouring frame always does)
    misses_at: list[int | None] = [None] * len(stretches)  # the nearest end known not to fit
    window = [8] * len(stretches)
    for r, (e0, e1) in enumerate(stretches):
        # A stretch that is a straight line (a bone holding still) is its two ends, with no search.
        if fits_to[r] == last[r] or len(turning_frames(flat[e0:e1 + 1])) == 2:
            start[r] = last[r]
            kept[r].append(last[r])
    active = [r for r in range(len(stretches)) if start[r] < last[r]]
    while active:
        end, bounds = [], [0]
        for r in active:
            top = misses_at[r] - 1 if misses_at[r] is not None else min(last[r], start[r] + window[r])
            if top - fits_to[r] <= CANDIDATES:
                candidates = np.arange(fits_to[r] + 1, top + 1)
            else:
                candidates = np.unique(np.linspace(fits_to[r] + 1, top, CANDIDATES).round().astype(int))
            end.append(candidates)
            bounds.append(bounds[-1] + len(candidates))
        end = np.concatenate(end)
        count = np.diff(bounds)
        begin = np.repeat([start[r] for r in active], count)
        lengths = end - begin + 1
        owner = np.repeat(np.arange(len(end)), lengths)
        at = begin[owner] + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        first, final = begin[owner], end[owner]
        curve = _hermite(flat[first], slopes_out[first], flat[final], slopes_in[final], first, final, at)
        error = angle_between_deg(quaternions_of(curve, mode), target[at])
        fits = np.maximum.reduceat(error, np.cumsum(lengths) - lengths) <= tolerance_deg
        # Per stretch: how many of its candidates fit before the first that does not (all of them when none misses).
        offsets = np.array(bounds[:-1])
        local = np.arange(len(end)) - np.repeat(offsets, count)
        misses = np.minimum.reduceat(np.where(fits, np.repeat(count, count), local), offsets)
        last_fit = end[offsets + np.maximum(misses - 1, 0)].tolist()
        first_miss = end[np.minimum(offsets + misses, len(end) - 1)].tolist()
        still = []
        for r, miss, n_tested, fit_end, miss_end in zip(active, misses.tolist(), count.tolist(), last_fit, first_miss):
            if miss:
                fits_to[r] = fit_end
            if miss < n_tested:
                misses_at[r] = miss_end
            elif misses_at[r] is None and fits_to[r] < last[r]:
                window[r] *= 2
            if fits_to[r] == last[r] or (misses_at[r] is not None and misses_at[r] - fits_to[r] == 1):
                window[r] = max(8, 2 * (fits_to[r] - start[r]))
                start[r] = fits_to[r]
                kept[r].append(start[r])
                fits_to[r], misses_at[r] = start[r] + 1, None
                if fits_to[r] == last[r]:  # one frame left: it is the stretch's last key
                    start[r] = last[r]
                    kept[r].append(last[r])
            if start[r] < last[r]:
                still.append(r)
        active = still
    out = []
    per_bone = len(edges) - 1
    for b in range(bones):
        rows = np.unique(np.concatenate([kept[r] for r in range(b * per_bone, (b + 1) * per_bone)] or [[b * n]]))
        out.append(ReducedCurves(rows - b * n, flat[rows], slopes_in[rows], slopes_out[rows], corners[rows]))
    return out


def max_error_deg(curves: ReducedCurves, values: np.ndarray, mode: str) -> float:
    """The largest angle between the reduced curves' rotation and the solved one over every solved frame."""
    every = np.arange(len(values))
    return float(angle_between_deg(quaternions_of(curves.evaluate(every), mode), quaternions_of(values, mode)).max())
