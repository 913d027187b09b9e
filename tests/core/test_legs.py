"""Weight shifts and the give of the knees: the hips move as the motion's do and the legs bend to keep the feet
planted, on rigs whose map names the legs."""

import numpy as np

from gm_blender_addon.core.lift import MAX_HIP_TRAVEL, hip_travel
from gm_blender_addon.core.motion import FPS, JOINT, Motion
from gm_blender_addon.core.retarget import (LEG_PARTS, forward_kinematics, pelvis_offsets, proportions,
                                            stands_on_legs)
from gm_blender_addon.generators.procedural import conduct
from gm_blender_addon.pipeline import solve_for_rig
from helpers import humanoid, steady_analysis


def _parts(skeleton):
    return {name: name for name in skeleton.names} | {"hips": "spine", "spine": "spine.001", "chest": "spine.003",
                                                      "neck": "spine.004", "head": "spine.006"}


def _swaying(keypoints: np.ndarray) -> np.ndarray:
    """The keypoints with the hips (and the body above them) swaying sideways and dipping, as a weight shift and a
    give of the knees move them."""
    t = np.arange(len(keypoints)) / FPS
    moved = keypoints.copy()
    moved[:, :, 0] += 0.012 * np.sin(2 * np.pi * t / 4.0)[:, None]
    moved[:, :, 1] += 0.005 * (1 - np.cos(2 * np.pi * t))[:, None]
    return moved


def test_the_hips_sway_and_dip_while_the_feet_stay_planted():
    skeleton = humanoid(roll_seed=4, legs=True)
    parts = _parts(skeleton)
    assert stands_on_legs(parts)
    pose = solve_for_rig(Motion(_swaying(conduct(steady_analysis(seconds=8.0), seed=0))), skeleton, parts, 0.0)
    assert set(pose.locations) == {"spine"} and {"thigh.L", "shin.R", "foot.L"} <= pose.rotations.keys()
    world = forward_kinematics(skeleton, pose.rotations, pose.locations)
    hips = world[:, skeleton.index["spine"], :3, 3]
    assert np.ptp(hips[:, 0]) > 0.04 and np.ptp(hips[:, 2]) > 0.01  # it sways sideways and dips
    for side in "LR":
        foot = skeleton.index[f"foot.{side}"]
        heel, toe = world[:, foot, :3, 3], world[:, foot] @ np.array([0.0, 1.0, 0.0, 1.0])
        np.testing.assert_allclose(heel, np.broadcast_to(skeleton.rest[foot, :3, 3], heel.shape), atol=1e-4)
        rest_toe = skeleton.rest[foot] @ np.array([0.0, 1.0, 0.0, 1.0])
        np.testing.assert_allclose(toe, np.broadcast_to(rest_toe, toe.shape), atol=1e-4)  # flat, not turning
        knee = world[:, skeleton.index[f"shin.{side}"], :3, 3]
        assert (knee[:, 1] < skeleton.head(f"shin.{side}")[1] + 1e-3).all()  # knees bend forward, never back


def test_hip_travel_is_limited_to_a_standing_conductors_range():
    skeleton = humanoid(legs=True)
    parts = _parts(skeleton)
    keypoints = conduct(steady_analysis(seconds=4.0), seed=0)
    walking = keypoints.copy()
    walking[:, :, 0] += np.linspace(0.0, 0.5, len(keypoints))[:, None]  # across the whole frame
    rig = proportions(skeleton, parts)
    travel = hip_travel(Motion(walking), rig)
    assert np.abs(travel[:, 0]).max() <= MAX_HIP_TRAVEL * rig.shoulder_width + 1e-9
    assert (travel[:, 2] <= 0).all() and (travel[:, 1] == 0).all()
    pelvis = pelvis_offsets(travel, skeleton, parts)
    for side in "LR":
        reach = np.linalg.norm(skeleton.head(f"thigh.{side}") + pelvis - skeleton.head(f"foot.{side}"), axis=1)
        full = (np.linalg.norm(skeleton.head(f"shin.{side}") - skeleton.head(f"thigh.{side}"))
                + np.linalg.norm(skeleton.head(f"foot.{side}") - skeleton.head(f"shin.{side}")))
        assert reach.max() <= full  # a leg never has to stretch beyond its length


def test_rigs_without_legs_keep_their_hips_where_they_are():
    skeleton = humanoid(roll_seed=1)
    parts = _parts(skeleton)
    assert not stands_on_legs(parts) and not set(LEG_PARTS) & parts.keys()
    pose = solve_for_rig(Motion(_swaying(conduct(steady_analysis(seconds=4.0), seed=0))), skeleton, parts, 0.0)
    assert pose.locations == {} and "thigh.L" not in pose.rotations


def test_the_procedural_conductor_shifts_its_weight_and_gives_at_the_knees():
    analysis = steady_analysis(seconds=30.0)
    keypoints = conduct(analysis, seed=0)
    hips = 0.5 * (keypoints[:, JOINT["left_hip"]] + keypoints[:, JOINT["right_hip"]])
    assert np.ptp(hips[:, 0]) > 0.008  # from one foot to the other
    downbeats = np.round(analysis.downbeats[1:-1] * FPS).astype(int) + 1
    between = downbeats + int(0.5 * FPS)  # half a bar later
    assert (hips[downbeats, 1] - hips[between, 1]).mean() > 0.002  # lower (+y) on the downbeat
