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

from .rotations import continuous, matrix_from_quat, normalise

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
# Sparse location keys (the hips, moving over planted feet) stay within this many metres per degree of the rotation
# tolerance: half a millimetre at the default, so the feet do not slide.
LOCATION_PER_DEGREE = 0.001
MIN_TOLERANCE_DEG, MAX_TOLERANCE_DEG = 0.01, 10.0
# A frame whose values lie this close to the straight line between its neighbours' (in channel units: a quaternion
# component or radians) adds nothing to linear keys. Over a run of such frames the line strays at most about
# run² / 8 times this from the samples: a thousandth of a degree over 10 s.
ON_THE_LINE = 1e-9


def quat_from_euler(euler: np.ndarray, order: str) -> np.ndarray:
    """(…, 3) angles stored (x, y, z) like Blender → (…, 4) unit quaternions (w, x, y, z) with w ≥ 0; 'XYZ' turns
    about X first, then Y, then Z: the product of each turn's half-angle quaternion, later turns on the left."""
    half = 0.5 * np.asarray(euler, dtype=np.float64)
    q = np.zeros(half.shape[:-1] + (4,))
    q[..., 0] = 1.0
    for name in order:
        axis = "XYZ".index(name)
        c, s = np.cos(half[..., axis]), np.sin(half[..., axis])
        # (c, s·axis) ⊗ (w, v) = (c·w - s·v_axis, c·v + s·w·axis + s·axis × v)
        i, j = (axis + 1) % 3, (axis + 2) % 3
        w, v = q[..., 0].copy(), q[..., 1:].copy()
        q[..., 0] = c * w - s * v[..., axis]
        q[..., 1 + axis] = c * v[..., axis] + s * w
        q[..., 1 + i] = c * v[..., i] - s * v[..., j]
        q[..., 1 + j] = c * v[..., j] + s * v[..., i]
    return np.where(q[..., :1] < 0, -q, q)


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
    return quat_from_euler(values, mode)


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
    bends = (np.abs(values[2:] - 2 * values[1:-1] + values[:-2]) > ON_THE_LINE).any(axis=1)
    return np.concatenate([[0], np.flatnonzero(bends) + 1, [len(values) - 1]])


def reduce_curves(values: np.ndarray, mode: str, tolerance_deg: float = DEFAULT_TOLERANCE_DEG) -> ReducedCurves:
    """One bone's (T, C) values reduced: see reduce_bones."""
    return reduce_bones(np.asarray(values)[None], mode, tolerance_deg)[0]


# Each bone is reduced in stretches of this many frames, all at once: the search is sequential within a stretch, so
# long pieces would otherwise take one round per probe of every key.  A key at each stretch's end costs one extra key
# per 10 s.
STRETCH_FRAMES = 300
# The first probe from a stretch's first key, in frames; later keys start from the length of the segment before.
FIRST_GUESS = 8


def _played(begin: np.ndarray, end: np.ndarray, values: np.ndarray, slopes_in: np.ndarray,
            slopes_out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The segments with frames between their keys (rows begin[i] to end[i] of `values`) played along those frames:
    (which segments, each frame's segment among them, each frame's row, the curves (C, frames))."""
    inner = end - begin - 1
    tested = np.flatnonzero(inner > 0)
    begin, end, inner = begin[tested], end[tested], inner[tested]
    # Each segment's Hermite cubic in powers of u, the share of the way from its first key to its last, repeated for
    # each of its frames and laid out channel by channel, so that every step below runs along all frames at once.
    span = (end - begin).astype(np.float64)
    v0, v1 = values[begin].T, values[end].T
    m0, m1 = slopes_out[begin].T * span, slopes_in[end].T * span
    powers = np.repeat(np.stack([v0, m0, 3 * (v1 - v0) - 2 * m0 - m1, 2 * (v0 - v1) + m0 + m1]), inner, axis=2)
    segment = np.repeat(np.arange(len(tested)), inner)
    after = np.arange(len(segment)) - np.repeat(np.cumsum(inner) - inner, inner) + 1  # frames after the first key
    u = after / np.repeat(span, inner)
    return tested, segment, np.repeat(begin, inner) + after, ((powers[3] * u + powers[2]) * u + powers[1]) * u + powers[0]


def _rotations_fit(begin, end, values, slopes_in, slopes_out, target: np.ndarray, mode: str,
                   tolerance_deg: float) -> np.ndarray:
    """Whether each segment plays within `tolerance_deg` of the `target` unit quaternions at every frame between its
    keys (the keys themselves hold the solved values)."""
    fits = np.ones(len(begin), dtype=bool)
    tested, segment, rows, curve = _played(begin, end, values, slopes_in, slopes_out)
    # Blender normalises a keyed quaternion as it plays it, and the angle test below does not depend on its length.
    played = curve if mode == QUATERNION else quaternions_of(curve.T, mode).T
    # Within the tolerance: the angle 2·acos(|p·t| / |p|) ≤ tolerance, squared so as to need no root nor acos.
    dot = np.einsum("cn,cn->n", played, np.take(target, rows, axis=0).T)
    square = np.einsum("cn,cn->n", played, played)
    strays = dot * dot < np.cos(np.radians(tolerance_deg) / 2) ** 2 * square
    fits[tested[segment[strays]]] = False
    return fits


def _locations_fit(begin, end, values, slopes_in, slopes_out, tolerance: float) -> np.ndarray:
    """Whether each segment plays within `tolerance` (a distance) of the solved locations at every frame between its
    keys."""
    fits = np.ones(len(begin), dtype=bool)
    tested, segment, rows, curve = _played(begin, end, values, slopes_in, slopes_out)
    error = curve - np.take(values, rows, axis=0).T
    fits[tested[segment[np.einsum("cn,cn->n", error, error) > tolerance**2]]] = False
    return fits


def reduce_bones(values: np.ndarray, mode: str, tolerance_deg: float = DEFAULT_TOLERANCE_DEG) -> list[ReducedCurves]:
    """Few keys, on solved samples, for which each bone's curves stay within `tolerance_deg` of its solved rotation
    at every frame; `values` (B, T, C) are B bones keyed in the same `mode`.

    Greedy from the first frame: each key is followed by a frame that can be the next key while the frame after it
    cannot.  The search for it probes one segment per round: first as long as the segment before (motion keeps its
    pace from beat to beat); from there, while probes fit, 1, 2, 4, … frames longer, or, while they do not, 1, 2, 4,
    … frames shorter; then it bisects between the longest that fits and the shortest that does not.  Every bone's
    stretches are searched together, one probe each per round.  Keys are shared by a bone's channels so that its
    rotation is keyed as a whole, as animators key it."""
    values = np.asarray(values, dtype=np.float64)
    target = quaternions_of(values.reshape(-1, values.shape[2]), mode)
    return _reduce(values, lambda begin, end, flat, slopes_in, slopes_out: _rotations_fit(
        begin, end, flat, slopes_in, slopes_out, target, mode, tolerance_deg))


def reduce_locations(values: np.ndarray, tolerance: float) -> list[ReducedCurves]:
    """Few keys for which each bone's location curves stay within `tolerance` (a distance, in the locations' units)
    of its solved location at every frame; `values` (B, T, 3). The search is reduce_bones's."""
    values = np.asarray(values, dtype=np.float64)
    return _reduce(values, lambda begin, end, flat, slopes_in, slopes_out: _locations_fit(
        begin, end, flat, slopes_in, slopes_out, tolerance))


def _reduce(values: np.ndarray, segments_fit) -> list[ReducedCurves]:
    """reduce_bones's search over (B, T, C) `values`, with `segments_fit(begin rows, end rows, rows of values,
    arriving slopes, leaving slopes)` saying which segments play within the tolerance."""
    bones, n, width = values.shape
    flat = values.reshape(bones * n, width)
    slopes = [sample_slopes(v) for v in values]
    slopes_in = np.concatenate([s[0] for s in slopes])
    slopes_out = np.concatenate([s[1] for s in slopes])
    corners = np.concatenate([s[2] for s in slopes])
    bends = np.zeros((bones, n), dtype=bool)  # frames off the line between their neighbours (see turning_frames)
    bends[:, 1:-1] = (np.abs(values[:, 2:] - 2 * values[:, 1:-1] + values[:, :-2]) > ON_THE_LINE).any(axis=2)
    # Stretches as rows of `flat`, each searched as its own sequence of keys from its first row to its last; a bone
    # that never bends (a finger holding still through the piece) is one stretch.
    starts = np.arange(0, n - 1, STRETCH_FRAMES)
    ends = np.minimum(starts + STRETCH_FRAMES, n - 1)
    first = np.concatenate([b * n + (starts if bends[b].any() else starts[:1]) for b in range(bones)])
    last = np.concatenate([b * n + (ends if bends[b].any() else ends[-1:]) for b in range(bones)])
    kept = [np.arange(bones) * n, first, last]  # every bone's first frame (one frame is no stretch), stretches' ends
    start = first.copy()  # each stretch's latest key
    fits_to = start + 1  # the longest segment end known to fit (the neighbouring frame always does)
    misses_at = np.full(len(first), -1)  # the shortest end known not to fit, -1 while none is known
    # The next probe's distance from the end known to fit (or to miss).  A stretch that does not bend inside is
    # probed whole first: a straight line is one segment, two keys.
    inner_bends = np.cumsum(bends.ravel())
    straight = inner_bends[np.maximum(last - 1, first)] == inner_bends[first]
    step = np.where(straight, last - first - 1, FIRST_GUESS - 1)
    active = np.flatnonzero(last - start > 1)
    while len(active):
        key, fit, miss, end = start[active], fits_to[active], misses_at[active], last[active]
        first_probe = (fit == key + 1) & (miss < 0)
        galloping_down = (fit == key + 1) & (miss >= 0)  # only the neighbouring frame is known to fit
        probe = np.where(miss < 0, np.minimum(end, fit + step[active]),
                         np.where(galloping_down, np.maximum(fit + 1, miss - step[active]), (fit + miss) // 2))
        fits = segments_fit(key, probe, flat, slopes_in, slopes_out)
        step[active] = np.where(first_probe, 1, 2 * step[active])
        fit, miss = np.where(fits, probe, fit), np.where(fits, miss, probe)
        fits_to[active], misses_at[active] = fit, miss
        found = active[(fit == end) | (miss == fit + 1)]
        kept.append(fits_to[found])
        length = fits_to[found] - start[found]
        start[found] = fits_to[found]
        # The next search's first probe is a segment as long as this one.
        fits_to[found], misses_at[found], step[found] = start[found] + 1, -1, np.maximum(length, 2) - 1
        active = active[last[active] - start[active] > 1]  # a stretch's last frame is always a key
    rows = np.unique(np.concatenate(kept))
    by_bone = np.split(rows, np.searchsorted(rows, np.arange(1, bones) * n))
    return [ReducedCurves(r - b * n, flat[r], slopes_in[r], slopes_out[r], corners[r]) for b, r in enumerate(by_bone)]


def max_error_deg(curves: ReducedCurves, values: np.ndarray, mode: str) -> float:
    """The largest angle between the reduced curves' rotation and the solved one over every solved frame."""
    every = np.arange(len(values))
    return float(angle_between_deg(quaternions_of(curves.evaluate(every), mode), quaternions_of(values, mode)).max())
