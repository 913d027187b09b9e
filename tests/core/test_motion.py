import numpy as np
import pytest

from gm_blender_addon.core.motion import JOINT_NAMES, Motion, MotionFileError, normalise, resample


def _motion(n=40):
    rng = np.random.default_rng(0)
    return Motion(rng.uniform(0.3, 0.7, (n, 13, 2)), meta={"generator": "test", "seed": 3})


def test_npz_round_trip_keeps_arrays_and_metadata(tmp_path):
    motion = _motion()
    motion.world = np.ones((40, 13, 3), np.float32)
    path = motion.save(tmp_path / "clip.npz")
    loaded = Motion.load(path)
    np.testing.assert_array_equal(loaded.keypoints, motion.keypoints)
    assert loaded.meta == {"generator": "test", "seed": 3}
    assert loaded.fps == 30 and loaded.world.shape == (40, 13, 3) and loaded.visibility is None
    with np.load(path) as data:
        assert data["keypoints"].shape == (40, 13, 2)
        assert tuple(data["joint_names"]) == JOINT_NAMES


def test_save_keeps_the_name_the_user_gave(tmp_path):
    assert _motion().save(tmp_path / "clip.keys").name == "clip.keys"
    assert (tmp_path / "clip.keys").is_file()


@pytest.mark.parametrize("content", [b"not a numpy file", b""])
def test_loading_a_foreign_file_names_the_problem(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(MotionFileError, match="bad.npz"):
        Motion.load(path)


def test_loading_an_npz_without_keypoints_fails_clearly(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(MotionFileError, match="no 'keypoints'"):
        Motion.load(tmp_path / "other.npz")


def test_motion_rejects_wrong_shapes_and_nan():
    with pytest.raises(ValueError, match="shape"):
        Motion(np.zeros((5, 17, 2)))
    bad = np.zeros((5, 13, 2))
    bad[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Motion(bad)


def test_normalise_sets_shoulder_width_and_hip_centre():
    pixels = _motion().keypoints * 640
    pixels[:, 5, 0] = pixels[:, 6, 0] + 100  # left shoulder to the image right of the right one
    out = normalise(pixels, frame_width=640)
    assert np.mean(out[:, 5, 0] - out[:, 6, 0]) == pytest.approx(0.2, abs=1e-6)
    np.testing.assert_allclose(np.mean((out[:, 11] + out[:, 12]) / 2, axis=0), [0.5, 0.75], atol=1e-6)


def test_resample_to_30_fps_keeps_time():
    t = np.arange(0, 50) / 25.0
    series = np.sin(t)[:, None, None] * np.ones((1, 13, 2))
    out = resample(series.astype(np.float32), 25.0, 30.0)
    assert len(out) == 59
    np.testing.assert_allclose(out[:, 0, 0], np.sin(np.arange(59) / 30.0), atol=2e-3)
