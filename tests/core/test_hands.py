"""Wrists and fingers: the motion's hand arrays, the rules that make them from any motion and its music, and the
solve that puts them on a rig's finger bones."""

from dataclasses import replace

import numpy as np
import pytest

from gm_blender_addon.core import hands
from gm_blender_addon.core import rotations as rot
from gm_blender_addon.core.hands import hand_poses
from gm_blender_addon.core.lift import lift
from gm_blender_addon.core.motion import FPS, JOINT, Motion, MotionFileError
from gm_blender_addon.core.retarget import (forward_kinematics, palm_normal, proportions, solve,
                                            to_armature_space)
from gm_blender_addon.generators.procedural import conduct
from gm_blender_addon.pipeline import solve_for_rig, with_hands_and_breath
from gm_blender_addon.core.score_guide import Cue, ScoreGuide
from helpers import humanoid, steady_analysis

LEFT, RIGHT = 0, 1
THUMB, INDEX, MIDDLE, RING, LITTLE = range(5)
FLEXION, TURN = 0, 1


@pytest.fixture(scope="module")
def analysis():
    return steady_analysis(seconds=12.0)


@pytest.fixture(scope="module")
def keypoints(analysis):
    return conduct(analysis, seed=0)


def _parts(skeleton):
    return {name: name for name in skeleton.names} | {"hips": "spine", "spine": "spine.001", "chest": "spine.003",
                                                      "neck": "spine.004", "head": "spine.006"}


def test_hand_arrays_are_saved_beside_the_keypoints(tmp_path, keypoints, analysis):
    fingers, wrists = hand_poses(keypoints, analysis)
    motion = Motion(keypoints, fingers=fingers, wrists=wrists)
    loaded = Motion.load(motion.save(tmp_path / "hands.npz"))
    assert loaded.has_hands
    np.testing.assert_array_equal(loaded.fingers, fingers)
    np.testing.assert_array_equal(loaded.wrists, wrists)
    np.testing.assert_array_equal(loaded.keypoints, keypoints)
    # A file of the older layout, keypoints alone, still loads.
    assert not Motion.load(Motion(keypoints).save(tmp_path / "old.npz")).has_hands


def test_hand_arrays_are_checked(keypoints):
    fingers, wrists = hand_poses(keypoints)
    with pytest.raises(ValueError, match="together"):
        Motion(keypoints, fingers=fingers)
    with pytest.raises(ValueError, match="fingers must have shape"):
        Motion(keypoints, fingers=fingers[:, :, :4], wrists=wrists)
    bad = wrists.copy()
    bad[3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="wrists contains NaN"):
        Motion(keypoints, fingers=fingers, wrists=bad)


def test_a_damaged_hand_array_names_the_file(tmp_path, keypoints):
    fingers, wrists = hand_poses(keypoints)
    path = tmp_path / "damaged.npz"
    np.savez(path, keypoints=keypoints, fingers=fingers[:-1], wrists=wrists)
    with pytest.raises(MotionFileError, match="damaged.npz: fingers must have shape"):
        Motion.load(path)


def test_the_baton_hand_grips(keypoints, analysis):
    fingers, _ = hand_poses(keypoints, analysis)
    right = fingers[:, RIGHT]
    # Closed round the handle: the last fingers wrap it more than the index, which lies along it.
    assert np.all(right[:, LITTLE] > right[:, INDEX] + 0.3)


def test_the_wrist_flicks_the_tip_into_the_ictus_ahead_of_the_hand():
    t = np.arange(6 * FPS) / FPS
    keypoints = np.tile(conduct(steady_analysis(seconds=6.0), seed=0)[:1], (len(t), 1, 1))
    dips = 0.08 * np.cos(2 * np.pi * t) ** 8  # the wrist's lowest points, once a second
    keypoints[:, JOINT["right_wrist"], 1] += dips
    _, wrists = hand_poses(keypoints)
    flexion = wrists[:, RIGHT, FLEXION]
    middle = slice(FPS, 5 * FPS)
    assert (flexion[middle] - hands.BATON_GRIP.values[5]).max() > 0.1  # bent down into the ictus: the tip goes further
    around = slice(int(1.2 * FPS), int(1.8 * FPS))  # one dip, at 1.5 s
    lead = np.argmax(dips[around]) - np.argmax(flexion[around])
    assert 1 <= lead <= 4  # frames ahead of the wrist


def _raised(keypoints):
    """The left wrist held at chest height, where the music shapes the hand."""
    raised = keypoints.copy()
    raised[:, JOINT["left_wrist"], 1] = 0.58
    return raised


def test_the_left_hand_rests_relaxed_by_the_side(keypoints, analysis):
    resting = keypoints.copy()
    resting[:, JOINT["left_wrist"], 1] = 0.76
    fingers, wrists = hand_poses(resting, analysis)
    np.testing.assert_allclose(fingers[:, LEFT], np.tile(hands.RELAXED.values[:5], (len(fingers), 1)), atol=1e-4)
    np.testing.assert_allclose(wrists[:, LEFT, TURN], np.pi / 2, atol=1e-4)


def test_the_left_palm_rises_in_a_crescendo_and_presses_down_in_a_diminuendo(keypoints, analysis):
    _, wrists = hand_poses(_raised(keypoints), analysis)
    # steady_analysis swells to its loudest at 5.5 s and fades to the silence at 11 s.
    assert wrists[int(2.0 * FPS), LEFT, TURN] > 2.0  # palm up
    falling = wrists[int(8.0 * FPS), LEFT]
    assert falling[TURN] < 0.5 and falling[FLEXION] < -0.2  # palm down, the back of the hand lifted


def test_the_left_hand_closes_at_the_cut_off_and_points_for_a_cue(keypoints, analysis):
    fingers, _ = hand_poses(_raised(keypoints), analysis)
    assert fingers[int(11.0 * FPS), LEFT].min() > 0.6  # the sound stops at 11 s
    cued = replace(analysis, score=ScoreGuide(
        source="test", bar_numbers=(), rehearsal_marks=(), meters=(), tempo_changes=(), fermatas=(),
        cues=(Cue(time=4.0, section="horns", parts=("Horn",), angle=-30.0),), releases=(), dynamics=analysis.loudness,
        articulation=(), confidence=1.0, unseated_parts=()))
    fingers, _ = hand_poses(_raised(keypoints), cued)
    at = int(3.6 * FPS)
    assert fingers[at, LEFT, INDEX] < 0.15 and fingers[at, LEFT, RING] > 0.5


def test_hands_follow_the_arms_alone_when_the_music_is_unknown(keypoints, analysis):
    short = steady_analysis(seconds=6.0)  # another length: an imported motion
    np.testing.assert_array_equal(hand_poses(keypoints, short)[0], hand_poses(keypoints)[0])


def _solved(skeleton, keypoints, fingers=None, wrists=None):
    parts = _parts(skeleton)
    joints = to_armature_space(lift(Motion(keypoints), proportions(skeleton, parts)), skeleton, parts)
    rotations = solve(joints, skeleton, parts, fingers, wrists)
    return rotations, forward_kinematics(skeleton, rotations), parts


def test_finger_bones_curl_towards_the_palm_and_the_palm_turns_up(keypoints):
    skeleton = humanoid(roll_seed=3, fingers=True)
    n = 40
    still = np.tile(keypoints[100:101], (n, 1, 1))
    fingers = np.zeros((n, 2, 5), np.float32)
    fingers[n // 2:] = 1.0
    wrists = np.zeros((n, 2, 2), np.float32)
    wrists[n // 2:, :, TURN] = np.pi
    rotations, world, parts = _solved(skeleton, still, fingers, wrists)
    for side in "LR":
        hand = skeleton.index[f"hand.{side}"]
        palm = world[:, hand, :3, :3] @ palm_normal(skeleton, parts, side)
        assert palm[0, 2] < -0.7 and palm[-1, 2] > 0.7  # palm down, then palm up
        tip = skeleton.index[f"f_index.03.{side}"]
        reach = np.sum((world[:, tip, :3, 3] - world[:, hand, :3, 3]) * palm, axis=1)
        assert reach[-1] > reach[0] + 0.025  # a fist: the last bone is well on the palm side
        assert f"f_pinky.02.{side}" in rotations


def test_rigs_without_finger_bones_are_solved_as_before(keypoints):
    skeleton = humanoid(roll_seed=5)
    fingers, wrists = hand_poses(keypoints)
    with_hand_arrays, _, _ = _solved(skeleton, keypoints, fingers, wrists)
    without, _, _ = _solved(skeleton, keypoints)
    assert with_hand_arrays.keys() == without.keys()
    assert {"shoulder.L", "shoulder.R"} <= without.keys()  # the collarbones too, with no fingers to place
    for bone in without:
        np.testing.assert_allclose(with_hand_arrays[bone], without[bone])


def test_every_motion_reaching_a_rig_has_hands(keypoints):
    skeleton = humanoid(fingers=True)
    rotations = solve_for_rig(Motion(keypoints), skeleton, _parts(skeleton), smoothing=0.2).rotations
    assert "f_index.01.L" in rotations
    assert with_hands_and_breath(Motion(keypoints)).has_hands
    own = Motion(keypoints, fingers=np.zeros((len(keypoints), 2, 5)), wrists=np.zeros((len(keypoints), 2, 2)))
    assert with_hands_and_breath(own) is own
