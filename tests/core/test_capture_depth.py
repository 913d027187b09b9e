"""Lifting captured motion with the world landmarks' depth: it chooses front or behind, the bone lengths the amount."""

import numpy as np
import pytest

from gm_blender_addon.core import lift, retarget
from gm_blender_addon.core.motion import JOINT, Motion
from gm_blender_addon.generators.procedural import conduct
from helpers import BUNDLED_PARTS, humanoid, steady_analysis


@pytest.fixture(scope="module")
def setup():
    skeleton = humanoid(40.0)
    parts = retarget.RigMap("test", "", BUNDLED_PARTS).resolve(skeleton.names)
    return Motion(conduct(steady_analysis(seconds=4.0), seed=2)), retarget.proportions(skeleton, parts)


def test_depth_that_agrees_with_the_prior_changes_nothing(setup):
    motion, proportions = setup
    depth = np.zeros(motion.keypoints.shape[:2])
    depth[:, [JOINT["left_elbow"], JOINT["right_elbow"]]] = 0.2  # elbows in front of the shoulders
    depth[:, [JOINT["left_wrist"], JOINT["right_wrist"]]] = 0.4
    np.testing.assert_allclose(lift.lift(motion, proportions, depth=depth), lift.lift(motion, proportions))


def test_a_wrist_measured_behind_its_elbow_is_lifted_behind(setup):
    motion, proportions = setup
    depth = np.zeros(motion.keypoints.shape[:2])
    depth[:, JOINT["right_elbow"]] = 0.2
    depth[:, JOINT["right_wrist"]] = 0.2 - 0.5 * proportions.forearm[1]  # well behind the elbow
    plain = lift.lift(motion, proportions)
    measured = lift.lift(motion, proportions, depth=depth)
    wrist, elbow = JOINT["right_wrist"], JOINT["right_elbow"]
    # Armature −Y is towards the camera: the wrist's offset from the elbow flips to +Y, with the same length.
    assert np.all(measured[:, wrist, 1] - measured[:, elbow, 1] >= -1e-9)
    np.testing.assert_allclose(np.linalg.norm(measured[:, wrist] - measured[:, elbow], axis=1), proportions.forearm[1])
    np.testing.assert_allclose(measured[:, JOINT["left_wrist"]], plain[:, JOINT["left_wrist"]])
    # Within the tolerance the measurement is treated as noise and the prior stays.
    depth[:, JOINT["right_wrist"]] = 0.2 - 0.5 * lift.BEHIND_TOLERANCE * proportions.forearm[1]
    np.testing.assert_allclose(lift.lift(motion, proportions, depth=depth), plain)


def test_depth_of_the_wrong_shape_is_rejected(setup):
    motion, proportions = setup
    with pytest.raises(ValueError, match="depth must have shape"):
        lift.lift(motion, proportions, depth=np.zeros((3, 13)))


def test_the_pipeline_lifts_captured_motion_with_its_world_landmarks(setup):
    from gm_blender_addon.pipeline import solve_for_rig

    motion, proportions = setup
    skeleton = humanoid(40.0)
    parts = retarget.RigMap("test", "", BUNDLED_PARTS).resolve(skeleton.names)
    world = np.zeros(motion.keypoints.shape[:2] + (3,))
    # MediaPipe's world z grows away from the camera: this wrist is measured well behind its elbow.
    world[:, JOINT["right_elbow"], 2] = -0.2
    world[:, JOINT["right_wrist"], 2] = -0.2 + 0.5 * proportions.forearm[1]
    captured = Motion(motion.keypoints, world=world)
    measured = solve_for_rig(captured, skeleton, parts, smoothing=0.0).joints
    plain = solve_for_rig(motion, skeleton, parts, smoothing=0.0).joints
    wrist, elbow = JOINT["right_wrist"], JOINT["right_elbow"]
    assert np.all(measured[:, wrist, 1] - measured[:, elbow, 1] >= -1e-9)
    assert not np.allclose(measured[:, wrist], plain[:, wrist])
