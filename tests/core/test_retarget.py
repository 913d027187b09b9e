import numpy as np
import pytest

from gm_blender_addon.core import lift, retarget, rotations
from gm_blender_addon.core.motion import JOINT, Motion
from gm_blender_addon.generators.procedural import conduct
from gm_blender_addon.resources import rig_maps_dir
from helpers import BUNDLED_PARTS, humanoid, steady_analysis


@pytest.fixture(scope="module")
def motion():
    return Motion(conduct(steady_analysis(), seed=4))


def _solve(motion, skeleton, smoothing=0.0):
    parts = retarget.RigMap("test", "", BUNDLED_PARTS).resolve(skeleton.names)
    joints = lift.lift(motion, retarget.proportions(skeleton, parts), smoothing=smoothing)
    rotations_by_bone = retarget.solve(joints, skeleton, parts)
    return joints, rotations_by_bone, retarget.forward_kinematics(skeleton, rotations_by_bone)


@pytest.mark.parametrize("arm_angle, rolls", [(0.0, None), (40.0, None), (30.0, 7), (60.0, 11)])
def test_wrists_and_elbows_reach_the_lifted_targets_whatever_the_rest_pose(motion, arm_angle, rolls):
    skeleton = humanoid(arm_angle, rolls)
    joints, _, world = _solve(motion, skeleton)
    for side, key in (("L", "left"), ("R", "right")):
        shoulder = world[:, skeleton.index[f"upper_arm.{side}"], :3, 3]
        for bone, joint in ((f"forearm.{side}", "elbow"), (f"hand.{side}", "wrist")):
            reached = world[:, skeleton.index[bone], :3, 3] - shoulder
            target = joints[:, JOINT[f"{key}_{joint}"]] - joints[:, JOINT[f"{key}_shoulder"]]
            assert np.abs(reached - target).max() < 1e-6


def test_elbow_bends_about_its_hinge_not_by_twisting_the_forearm(motion):
    skeleton = humanoid(40.0, roll_seed=3)
    _, rotations_by_bone, _ = _solve(motion, skeleton)
    parts = BUNDLED_PARTS
    hinge = retarget._hinge_axis(skeleton, parts, "R")
    forearm_local = rotations.matrix_from_quat(rotations_by_bone["forearm.R"])
    # Express the forearm's rotation in the upper arm's frame: its axis should be the hinge.
    rest_fore = skeleton.rest[skeleton.index["forearm.R"], :3, :3]
    rest_upper = skeleton.rest[skeleton.index["upper_arm.R"], :3, :3]
    offset = rest_upper.T @ rest_fore
    in_upper = offset @ forearm_local @ offset.T
    angle = np.arccos(np.clip((np.trace(in_upper, axis1=1, axis2=2) - 1) / 2, -1, 1))
    bent = angle > np.radians(15)
    axis = np.stack([in_upper[:, 2, 1] - in_upper[:, 1, 2], in_upper[:, 0, 2] - in_upper[:, 2, 0],
                     in_upper[:, 1, 0] - in_upper[:, 0, 1]], axis=1)[bent]
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    assert np.median(np.abs(axis @ hinge)) > 0.98


def test_quaternions_are_sign_continuous_and_unit(motion):
    _, rotations_by_bone, _ = _solve(motion, humanoid(40.0, 5))
    for q in rotations_by_bone.values():
        assert np.allclose(np.linalg.norm(q, axis=1), 1.0)
        assert (np.sum(q[1:] * q[:-1], axis=1) > 0).all()


def test_head_nods_down_on_downbeats(motion):
    skeleton = humanoid(40.0)
    _, _, world = _solve(motion, skeleton)
    head_up = world[:, skeleton.index["spine.006"], :3, 1]
    assert head_up[:, 1].min() < head_up[:, 1].max() - 0.05  # tilts forward (−Y) and back


def test_smoothing_strength_is_bounded_and_smooths(motion):
    skeleton = humanoid(40.0)
    rough = _solve(motion, skeleton, 0.0)[0]
    smooth = _solve(motion, skeleton, 1.0)[0]
    jerk = lambda j: np.abs(np.diff(j[:, JOINT["right_wrist"]], 3, axis=0)).mean()  # noqa: E731
    assert jerk(smooth) < jerk(rough)
    with pytest.raises(ValueError, match="between 0 and 1"):
        lift.smoothing_sigma(1.5)


def test_missing_bones_are_listed():
    skeleton = humanoid()
    names = [n for n in skeleton.names if n not in ("forearm.L", "spine.006")]
    bundled = retarget.RigMap.load(rig_maps_dir() / "bundled.json")
    with pytest.raises(retarget.RigMapError, match=r"missing bones spine\.006, forearm\.L"):
        bundled.resolve(names, armature="Armature 'Bob'")


def test_maps_match_namespaced_and_differently_cased_bones():
    bundled = retarget.RigMap.load(rig_maps_dir() / "bundled.json")
    names = ["rig:" + n.upper() for n in humanoid().names]
    resolved = bundled.resolve(names)
    assert resolved["hand.L"] == "rig:HAND.L"
    assert retarget.detect_map(names, [bundled]) is bundled


def test_map_files_round_trip_and_bad_files_are_named(tmp_path):
    bundled = retarget.RigMap.load(rig_maps_dir() / "bundled.json")
    saved = retarget.RigMap.load(bundled.save(tmp_path / "mine.json"))
    assert saved.bones == bundled.bones
    (tmp_path / "broken.json").write_text("{ not json")
    with pytest.raises(retarget.RigMapError, match="broken.json"):
        retarget.RigMap.load(tmp_path / "broken.json")
    (tmp_path / "odd.json").write_text('{"name": "x", "bones": {"tail": "t"}}')
    with pytest.raises(retarget.RigMapError, match="unknown parts"):
        retarget.RigMap.load(tmp_path / "odd.json")
