"""Keys an animator can edit: rotation modes and the reduction to sparse Bézier keys (core.keys)."""

import numpy as np
import pytest

from gm_blender_addon.core import keys
from gm_blender_addon.core.rotations import axis_angle, matrix_from_quat, quat_from_matrix


def _turning(frames: int = 400) -> np.ndarray:
    """A bone swinging on two axes at once, with sharp turns like a beat's ictus: (frames, 4) quaternions."""
    t = np.arange(frames) / 30.0
    swing = np.abs(np.sin(np.pi * t / 0.6)) * 0.9  # |sin|: a corner at every beat
    sway = 0.3 * np.sin(2 * np.pi * t / 4.0)
    m = axis_angle(np.array([1.0, 0.0, 0.0]), swing) @ axis_angle(np.array([0.0, 0.0, 1.0]), sway)
    return quat_from_matrix(m)


@pytest.mark.parametrize("order", keys.EULER_ORDERS)
def test_euler_triples_make_the_same_quaternions_and_round_trip_in_every_order(order):
    rng = np.random.default_rng(1)
    euler = rng.uniform(-1.5, 1.5, (200, 3))
    # 'XYZ' turns about X first: the matrix is Rz Ry Rx.
    x, y, z = (axis_angle(np.eye(3)[i], euler[:, i]) for i in range(3))
    first, second, third = ({"X": x, "Y": y, "Z": z}[name] for name in order)
    matrices = third @ second @ first
    quaternions = keys.quat_from_euler(euler, order)
    np.testing.assert_allclose(matrix_from_quat(quaternions), matrices, atol=1e-12)
    again = keys.quat_from_euler(keys.euler_from_matrix(matrices, order), order)
    np.testing.assert_allclose(matrix_from_quat(again), matrices, atol=1e-9)
    assert (quaternions[:, 0] >= 0).all()


@pytest.mark.parametrize("mode", keys.ROTATION_MODES)
def test_every_mode_keys_the_same_rotation_without_jumps(mode):
    # Three whole turns about an axis near the first one turned (Euler's singularity, the middle axis at ±90°, is
    # then never reached): the angles must run on past ±180° rather than jump back.
    first = "XYZ".index(mode[0]) if mode in keys.EULER_ORDERS else 2
    t = np.linspace(0.0, 6 * np.pi, 600)
    q = quat_from_matrix(axis_angle(np.eye(3)[first] + np.array([0.1, 0.15, 0.05]), t))
    values = keys.channels(q, mode)
    assert values.shape == (600, 3 if mode in keys.EULER_ORDERS else 4)
    assert keys.angle_between_deg(keys.quaternions_of(values, mode), q).max() < 1e-4
    step = np.abs(np.diff(values, axis=0)).max()
    assert step < 0.2, f"{mode}: a jump of {step:.2f} between neighbouring frames"


def test_axis_angle_holds_its_axis_through_no_rotation():
    angle = np.concatenate([np.linspace(0.5, 0.0, 20), np.zeros(10), np.linspace(0.0, 0.5, 20)])
    q = quat_from_matrix(axis_angle(np.array([0.0, 0.0, 1.0]), angle))
    values = keys.channels(q, keys.AXIS_ANGLE)
    np.testing.assert_allclose(values[:, 1:], np.tile([0.0, 0.0, 1.0], (50, 1)), atol=1e-9)


@pytest.mark.parametrize("mode", ["QUATERNION", "XYZ", "ZXY", "AXIS_ANGLE"])
def test_sparse_keys_stay_within_the_tolerance_at_every_frame(mode):
    values = keys.channels(_turning(), mode)
    for tolerance in (0.2, 0.5, 2.0):
        curves = keys.reduce_curves(values, mode, tolerance)
        assert keys.max_error_deg(curves, values, mode) <= tolerance + 1e-9
        assert curves.frames[0] == 0 and curves.frames[-1] == len(values) - 1
        # Axis-angle keys turn their axis fast wherever the swing passes through no rotation: more keys there.
        assert len(curves.frames) < len(values) / (2 if mode == keys.AXIS_ANGLE else 3)


def test_the_ictus_gets_a_broken_key_and_smooth_stretches_aligned_ones():
    values = keys.channels(_turning(), keys.QUATERNION)
    curves = keys.reduce_curves(values, keys.QUATERNION, 0.5)
    cusps = np.arange(0, 400, 18)[1:]  # |sin| with a 0.6 s period at 30 fps touches zero every 18 frames
    broken = curves.frames[curves.corners]
    assert all(np.min(np.abs(broken - c)) <= 1 for c in cusps)
    smooth = ~curves.corners
    assert smooth.any()
    np.testing.assert_allclose(curves.slopes_in[smooth], curves.slopes_out[smooth])


def test_handles_sit_at_the_thirds_along_the_slopes():
    values = keys.channels(_turning(), keys.QUATERNION)
    curves = keys.reduce_curves(values, keys.QUATERNION, 0.5)
    left, right = curves.handles()
    gaps = np.diff(curves.frames)
    np.testing.assert_allclose(right[:-1, 0, 0] - curves.frames[:-1], gaps / 3)
    np.testing.assert_allclose(curves.frames[1:] - left[1:, 0, 0], gaps / 3)
    np.testing.assert_allclose(right[:-1, :, 1], curves.values[:-1] + curves.slopes_out[:-1] * (gaps / 3)[:, None])


def test_a_still_bone_needs_two_keys_and_many_bones_reduce_as_one_each():
    still = np.tile(keys.channels(_turning()[:1], keys.QUATERNION), (300, 1))
    moving = keys.channels(_turning(300), keys.QUATERNION)
    together = keys.reduce_bones(np.stack([still, moving]), keys.QUATERNION, 0.5)
    assert list(together[0].frames) == [0, 299]
    np.testing.assert_array_equal(together[1].frames, keys.reduce_curves(moving, keys.QUATERNION, 0.5).frames)


def test_an_unknown_rotation_mode_is_refused():
    with pytest.raises(ValueError, match="rotation mode"):
        keys.channels(_turning(10), "XZZ")


def test_linear_keys_skip_frames_on_the_line_between_their_neighbours():
    t = np.linspace(0.0, 1.0, 50)[:, None]
    still = np.tile([1.0, 0.0, 0.0, 0.0], (50, 1))
    assert keys.turning_frames(still).tolist() == [0, 49]
    assert keys.turning_frames(0.2 * t).tolist() == [0, 49]
    bent = np.minimum(t, 0.5)  # a glide that stops halfway
    assert keys.turning_frames(bent).tolist() == [0, 24, 25, 49]
    curve = np.sin(3 * t)
    assert keys.turning_frames(curve).tolist() == list(range(50))
    assert keys.turning_frames(curve[:2]).tolist() == [0, 1]


def _rough(frames: int, seed: int) -> np.ndarray:
    """A bone jittering about three axes: its turning speed takes a random step every frame, with sudden changes of
    pace; (frames, 4) quaternions that stay within about a radian of rest (Euler's singularity is never reached)."""
    rng = np.random.default_rng(seed)
    speed = np.cumsum(rng.normal(0.0, 0.004, (frames, 3)), axis=0) + np.where(rng.random((frames, 1)) < 0.02,
                                                                                 rng.normal(0.0, 0.03, (frames, 3)), 0)
    turn = np.cumsum(speed, axis=0)
    turn = 0.9 * turn / max(1.0, np.abs(turn).max())
    return quat_from_matrix(axis_angle(turn, np.linalg.norm(turn, axis=1)))


@pytest.mark.parametrize("mode", ["QUATERNION", "YZX", "AXIS_ANGLE"])
def test_rough_bones_over_many_stretches_stay_within_the_tolerance_with_no_key_to_spare(mode):
    # Long enough for several stretches, with a still bone and a bone still for a stretch amid motion.
    frames = 2 * keys.STRETCH_FRAMES + 57
    still_then_moving = _rough(frames, 3)
    still_then_moving[: keys.STRETCH_FRAMES + 1] = still_then_moving[keys.STRETCH_FRAMES]
    bones = [_rough(frames, 1), _rough(frames, 2), np.tile(_rough(1, 4), (frames, 1)), still_then_moving]
    values = np.stack([keys.channels(q, mode) for q in bones])
    tolerance = 0.5
    reduced = keys.reduce_bones(values, mode, tolerance)
    assert list(reduced[2].frames) == [0, frames - 1]
    assert reduced[3].frames[1] == keys.STRETCH_FRAMES
    stretch_ends = set(range(0, frames, keys.STRETCH_FRAMES)) | {frames - 1}
    for curves, bone in zip(reduced, values):
        assert keys.max_error_deg(curves, bone, mode) <= tolerance + 1e-9
        # Greedy: no key could have been left out for a segment one frame longer, but at a stretch's end.
        slopes_in, slopes_out, corners = keys.sample_slopes(bone)
        for key, following in zip(curves.frames[:-1], curves.frames[1:]):
            if following in stretch_ends:
                continue
            longer = np.array([key, following + 1])
            stretched = keys.ReducedCurves(longer, bone[longer], slopes_in[longer], slopes_out[longer],
                                           corners[longer])
            span = bone[key:following + 2]
            assert keys.max_error_deg(stretched, span, mode) > tolerance, (key, following)


def test_sparse_location_keys_stay_within_their_distance():
    """The hips' location over planted feet: a slow sway with a dip on each beat, kept within half a millimetre."""
    t = np.arange(900) / 30.0
    location = np.stack([0.03 * np.tanh(3 * np.sin(np.pi * t / 8)), np.zeros_like(t),
                         -0.01 * np.exp(-((t % 0.5 - 0.05) / 0.08) ** 2)], axis=1)
    curves = keys.reduce_locations(location[None], 0.0005)[0]
    played = curves.evaluate(np.arange(len(t)))
    assert np.linalg.norm(played - location, axis=1).max() <= 0.0005
    assert len(curves.frames) < len(t) / 3
