"""Vectorised rotation helpers on (..., 3, 3) matrices and (..., 4) quaternions stored (w, x, y, z) like Blender."""

from __future__ import annotations

import numpy as np


def normalise(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def frame(x_axis: np.ndarray, y_hint: np.ndarray) -> np.ndarray:
    """Rotation whose columns are X = x_axis and Y = the part of y_hint orthogonal to it."""
    x = normalise(x_axis)
    y = normalise(y_hint - np.sum(y_hint * x, axis=-1, keepdims=True) * x)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def swing(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction src to dst (Rodrigues), robust for opposite vectors."""
    a, b = normalise(src), normalise(dst)
    axis = np.cross(a, b)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)
    # Opposite directions have no unique axis: any perpendicular one gives a valid half turn.
    fallback = np.cross(a, np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]))
    axis = np.where((sin < 1e-9)[..., None], normalise(fallback), axis / np.maximum(sin, 1e-12)[..., None])
    angle = np.arctan2(sin, cos)
    return axis_angle(axis, angle)


def axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    k = normalise(axis)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    skew = np.stack([np.stack([zero, -kz, ky], -1), np.stack([kz, zero, -kx], -1), np.stack([-ky, kx, zero], -1)], -2)
    eye = np.broadcast_to(np.eye(3), skew.shape)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return eye + s * skew + (1 - c) * skew @ skew


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """(…, 3, 3) → (…, 4) unit quaternions, choosing the numerically best pivot per element."""
    m = np.asarray(m, dtype=np.float64)
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    candidates = np.stack(
        [
            np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        -2,
    )
    pivots = np.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = np.argmax(pivots, axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = normalise(q)
    return np.where(q[..., :1] < 0, -q, q)


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.moveaxis(normalise(np.asarray(q, dtype=np.float64)), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def slerp(q0: np.ndarray, q1: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    t = np.asarray(t, dtype=np.float64)
    t = t[..., None] if t.ndim else t
    angle = np.arccos(np.clip(dot, -1.0, 1.0))
    sin = np.sin(angle)
    linear = sin < 1e-6
    w0 = np.where(linear, 1 - t, np.sin((1 - t) * angle) / np.where(linear, 1, sin))
    w1 = np.where(linear, t, np.sin(t * angle) / np.where(linear, 1, sin))
    return normalise(w0 * q0 + w1 * q1)


def partial(rotation: np.ndarray, fraction: float) -> np.ndarray:
    """The rotation `fraction` of the way from identity to `rotation`."""
    q = quat_from_matrix(rotation)
    identity = np.zeros_like(q)
    identity[..., 0] = 1
    return matrix_from_quat(slerp(identity, q, fraction))


def continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 so neighbouring keys are in the same hemisphere (Blender interpolates per channel).

    Flipping key i flips its dot product with key i+1 too, so the sign of key i is the running product of the raw
    neighbour signs.
    """
    q = np.asarray(q, dtype=np.float64)
    steps = np.sign(np.sum(q[1:] * q[:-1], axis=-1))
    steps[steps == 0] = 1
    signs = np.concatenate([np.ones((1,) + steps.shape[1:]), np.cumprod(steps, axis=0)])
    return q * signs[..., None]
