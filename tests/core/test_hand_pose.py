"""The hands in capture: MediaPipe's hand landmark model as shipped in ONNX against TFLite's own outputs, and the curls
and wrist angles read from 21 landmarks, on synthetic hands built with the conventions of core/retarget.py."""

from pathlib import Path

import numpy as np
import pytest

from gm_blender_addon.core import hand_pose as hp
from gm_blender_addon.core import retarget
from gm_blender_addon.core.capture import Landmarks, hand_motion
from gm_blender_addon.core.hands import hand_poses
from gm_blender_addon.core.motion import FINGER_NAMES, HAND_SIDES, JOINT, N_JOINTS
from gm_blender_addon.core.pose import PoseModelError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# The pose's world axes: x to the camera's right, y down, z away from the camera. The performer faces the camera, so
# their left is +x and their front -z.
LEFT, UP, FRONT = np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 0, -1.0])
KNUCKLES = {"index": (0.09, 0.025), "middle": (0.095, 0.0), "ring": (0.09, -0.02), "little": (0.08, -0.04)}
FINGER_BONES = (0.045, 0.027, 0.022)


def synthetic_hand(along, palm, side: str, curls=(0.0,) * 5) -> np.ndarray:
    """(21, 3) landmarks of a hand pointing `along` with its palm facing `palm`, each finger bent towards the palm as
    the rig bends it for `curls` (FINGER_BEND's share per joint); the thumb lies towards the body's middle."""
    along, palm = np.asarray(along, float), np.asarray(palm, float)
    # For the right hand, turning `along` a quarter about this axis brings it onto the palm, and it points towards the
    # thumb; the left hand is the mirror image.
    towards_thumb = np.cross(along, palm) * (1 if side == "right" else -1)
    points = np.zeros((21, 3))
    for f, name in enumerate(FINGER_NAMES):
        joints = hp.FINGER_LANDMARKS[name]
        if name == "thumb":
            base, direction = 0.025 * along + 0.025 * towards_thumb, (along + towards_thumb) / np.sqrt(2)
            points[joints[0]] = base
            points[joints[1]] = position = base + 0.04 * direction
            bends, lengths = retarget.FINGER_BEND[name][1:], (0.035, 0.03)
        else:
            out, sideways = KNUCKLES[name]
            points[joints[0]] = position = out * along + sideways * towards_thumb
            direction, bends, lengths = along, retarget.FINGER_BEND[name], FINGER_BONES
        angle = 0.0
        start = len(joints) - len(bends)
        for j, (bend, length) in enumerate(zip(bends, lengths)):
            angle += np.radians(bend) * curls[f]
            position = position + length * (np.cos(angle) * direction + np.sin(angle) * palm)
            points[joints[start + j]] = position
    return points - points.mean(axis=0)


def body(forearm) -> np.ndarray:
    """13 joints (world axes, metres) of a performer facing the camera with both forearms along `forearm`, mirrored
    for the left one."""
    joints = np.zeros((N_JOINTS, 3))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        joints[JOINT[f"{side}_shoulder"]] = sign * 0.18 * LEFT + 0.45 * UP
        joints[JOINT[f"{side}_hip"]] = sign * 0.1 * LEFT
        joints[JOINT[f"{side}_elbow"]] = sign * 0.22 * LEFT + 0.2 * UP
        mirrored = np.asarray(forearm, float) * np.array([sign * -1.0, 1.0, 1.0])
        joints[JOINT[f"{side}_wrist"]] = joints[JOINT[f"{side}_elbow"]] + 0.25 * mirrored
    return joints


@pytest.mark.parametrize("side", HAND_SIDES)
def test_a_flat_hand_is_straight_and_a_fist_fully_curled(side):
    flat = hp.finger_curls(synthetic_hand(FRONT, -UP, side), side)
    fist = hp.finger_curls(synthetic_hand(FRONT, -UP, side, curls=(1.0,) * 5), side)
    half = hp.finger_curls(synthetic_hand(FRONT, -UP, side, curls=(0.3, 0.5, 0.6, 0.7, 0.2)), side)
    np.testing.assert_allclose(flat, 0.0, atol=1e-6)
    np.testing.assert_allclose(fist, 1.0, atol=1e-6)
    np.testing.assert_allclose(half, (0.3, 0.5, 0.6, 0.7, 0.2), atol=1e-6)


def test_spreading_the_fingers_is_no_curl():
    hand = synthetic_hand(FRONT, -UP, "right")
    knuckle = hand[hp.FINGER_LANDMARKS["index"][0]]
    # The index finger swung 25 degrees sideways in the palm's plane, about its knuckle.
    c, s = np.cos(np.radians(25)), np.sin(np.radians(25))
    swing = np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])  # about y, the palm's normal here
    for j in hp.FINGER_LANDMARKS["index"][1:]:
        hand[j] = knuckle + swing @ (hand[j] - knuckle)
    assert hp.finger_curls(hand, "right")[1] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("side", HAND_SIDES)
@pytest.mark.parametrize(("palm", "turn"), [(-UP, 0.0), (UP, np.pi), ("medial", np.pi / 2)])
def test_the_turn_reads_palm_down_thumb_up_and_palm_up(side, palm, turn):
    """A forearm pointing to the front with the hand in line: palm down 0, palm towards the body's middle (thumb up)
    π/2, palm up π, for either hand."""
    medial = LEFT if side == "right" else -LEFT
    palm = medial if isinstance(palm, str) else palm
    flexion, measured = hp.wrist_angles(synthetic_hand(FRONT, palm, side), body(FRONT), side)
    assert flexion == pytest.approx(0.0, abs=1e-9)
    assert measured == pytest.approx(turn, abs=1e-9)


def test_a_hand_cocked_back_has_negative_flexion():
    """Palm raised towards the orchestra, fingers up (hands.HOLD): flexion -1.1, palm still down in the turn."""
    along = np.cos(1.1) * FRONT + np.sin(1.1) * UP
    palm = np.cos(1.1) * -UP + np.sin(1.1) * FRONT
    flexion, turn = hp.wrist_angles(synthetic_hand(along, palm, "right"), body(FRONT), "right")
    assert flexion == pytest.approx(-1.1, abs=1e-9)
    assert turn == pytest.approx(0.0, abs=1e-9)


def test_the_angles_undo_what_the_solve_does_with_them():
    """Hands posed by retarget._hand_frames from (flexion, turn), on forearms pointing all about, read back the same."""
    rng = np.random.default_rng(3)
    forearms = rng.normal(size=(40, 3)) + 0.5 * FRONT
    wrists = np.column_stack([rng.uniform(-1.2, 1.2, 40), rng.uniform(-0.4, 3.4, 40)])
    bodies = np.array([body(f) for f in forearms])
    for h, side in enumerate(HAND_SIDES):
        elbow, wrist = bodies[:, JOINT[f"{side}_elbow"]], bodies[:, JOINT[f"{side}_wrist"]]
        forearm = (wrist - elbow) / np.linalg.norm(wrist - elbow, axis=1, keepdims=True)
        aim = forearm + retarget.WRIST_FORWARD * FRONT
        aim /= np.linalg.norm(aim, axis=1, keepdims=True)
        medial = np.broadcast_to(LEFT if side == "right" else -LEFT, aim.shape)
        pointing, palm = retarget._hand_frames(aim, np.broadcast_to(-UP, aim.shape), medial, wrists)
        hands = np.array([synthetic_hand(p, q, side) for p, q in zip(pointing, palm)])
        np.testing.assert_allclose(hp.wrist_angles(hands, bodies, side), wrists, atol=1e-9)


def landmarks(n: int, hands: np.ndarray) -> Landmarks:
    still = np.broadcast_to(body(FRONT), (n, N_JOINTS, 3))
    return Landmarks(pixels=np.zeros((n, N_JOINTS, 2)), world=still.copy(), visibility=np.ones((n, N_JOINTS)),
                     detected=np.ones(n, bool), hands=hands)


def test_unseen_frames_are_filled_and_a_hand_never_seen_follows_the_arm():
    n = 30
    hands = np.full((n, 2, 21, 3), np.nan)
    right = HAND_SIDES.index("right")
    fist, flat = synthetic_hand(FRONT, -UP, "right", (1.0,) * 5), synthetic_hand(FRONT, -UP, "right")
    hands[:10, right], hands[21:, right] = flat, fist
    keypoints = np.tile(np.linspace(0.3, 0.7, 26).reshape(13, 2), (n, 1, 1))
    fingers, wrists, warnings = hand_motion(landmarks(n, hands), 30.0, 0.0, keypoints)
    np.testing.assert_allclose(fingers[:10, right], 0.0, atol=1e-6)
    np.testing.assert_allclose(fingers[21:, right], 1.0, atol=1e-6)
    np.testing.assert_allclose(fingers[15, right], 0.5, atol=1e-6)  # halfway through the gap
    np.testing.assert_allclose(wrists[:, right], 0.0, atol=1e-9)
    left = HAND_SIDES.index("left")
    rule_fingers, rule_wrists = hand_poses(keypoints)
    np.testing.assert_allclose(fingers[:, left], rule_fingers[:, left], atol=1e-6)
    np.testing.assert_allclose(wrists[:, left], rule_wrists[:, left], atol=1e-6)
    assert warnings == ["the left hand was never seen clearly: its fingers and wrist follow the arm"]


def test_a_turn_past_palm_outwards_does_not_jump_a_whole_turn():
    """Turning on from palm down past palm outwards (-π/2) goes on below -π/2, not round to 3π/2."""
    n = 20
    turns = np.linspace(-1.0, -2.0, n)
    medial = LEFT
    hands = np.full((n, 2, 21, 3), np.nan)
    right = HAND_SIDES.index("right")
    for i, turn in enumerate(turns):
        hands[i, right] = synthetic_hand(FRONT, np.cos(turn) * -UP + np.sin(turn) * medial, "right")
    _, wrists, _ = hand_motion(landmarks(n, hands), 30.0, 0.0, np.full((n, 13, 2), 0.5))
    np.testing.assert_allclose(wrists[:, right, 1], turns, atol=1e-9)


def test_the_square_covers_the_hand_and_points_its_fingers_up():
    """The pose's wrist below its index and little-finger points: the square is upright, centred on the knuckles."""
    wrist, index, little = np.array([100.0, 200.0]), np.array([90.0, 160.0]), np.array([120.0, 160.0])
    square = hp.hand_square(wrist, index, little)
    assert square.angle == pytest.approx(0.0)
    assert (square.x, square.y) == pytest.approx((100.0, 200.0 - hp.SQUARE_CENTRE * 40.0))
    assert square.size == pytest.approx(hp.SQUARE_SIDE * 40.0)
    # Turned a quarter to the right (fingers pointing right on screen), the square turns with it.
    turned = hp.hand_square(wrist, wrist + [40.0, 10.0], wrist + [40.0, -20.0])
    assert turned.angle == pytest.approx(np.pi / 2)


def test_the_onnx_hand_model_gives_what_tflite_gives():
    """Against MediaPipe's TFLite model run by TFLite's interpreter on a rig hand from the capture fixture
    (tests/fixtures/build_hand_reference.py), to 1e-5 of each output's range (measured: 1e-6 and below)."""
    pytest.importorskip("onnxruntime")
    with np.load(FIXTURES / "hand_landmark_reference.npz") as reference:
        reference = dict(reference)
    tracker = hp.HandTracker()
    outputs = tracker.session.run(None, {tracker.input_name: reference["image"][None] / np.float32(255)})
    for name, output in zip(("landmarks", "presence", "handedness", "world"), outputs):
        expected = reference[name]
        span = float(np.ptp(expected)) if expected.size > 1 else 1.0  # presence and handedness: 0 … 1
        assert np.abs(output[0] - expected).max() <= 1e-5 * span, name
    assert outputs[1][0, 0] >= hp.MIN_PRESENCE  # the crop shows a hand


def test_a_missing_hand_model_is_named(tmp_path):
    pytest.importorskip("onnxruntime")
    with pytest.raises(PoseModelError, match="hand_landmark_full.onnx is missing; reinstall the add-on"):
        hp.HandTracker(models=tmp_path)


def pose_with_hands(visibility: float = 1.0, scale: float = 1.0) -> hp.Pose:
    """A pose with both wrists at (100, 200) pixels and the knuckles 40 pixels above, times `scale`."""
    pixels = np.zeros((33, 2))
    for side in HAND_SIDES:
        wrist, little, index = hp.POSE_HAND[side]
        pixels[wrist], pixels[little], pixels[index] = (100.0, 200.0), (120.0, 160.0), (90.0, 160.0)
    return hp.Pose(pixels=pixels * scale, world=np.zeros((33, 3)), visibility=np.full(33, visibility))


def hand_found(shift: float) -> hp.Hand:
    """A hand whose wrist the network put `shift` pixels right of the pose's wrist, its palm 40 pixels long."""
    pixels = np.zeros((21, 2))
    pixels[hp.WRIST], pixels[hp.MIDDLE_KNUCKLE] = (100.0 + shift, 200.0), (100.0 + shift, 160.0)
    return hp.Hand(pixels=pixels, world=np.zeros((21, 3)), presence=1.0)


def test_a_hand_missed_again_and_again_is_looked_for_less_often(monkeypatch):
    """After MISSES_BEFORE_RETRYING misses in a row, one look every RETRY_EVERY frames until the hand is found again;
    hidden wrists and hands too small to show fingers are not read at all."""
    pytest.importorskip("onnxruntime")
    tracker = hp.HandTracker()
    looks, found_from = [], [np.inf]
    monkeypatch.setattr(tracker, "read", lambda frame, square: looks.append(frame) or (
        hand_found(0.0) if frame >= found_from[0] else None))
    pose = pose_with_hands()
    missing = hp.MISSES_BEFORE_RETRYING + 3 * hp.RETRY_EVERY
    for frame in range(missing):
        tracker(frame, pose)
    expected = list(range(hp.MISSES_BEFORE_RETRYING)) + list(range(hp.MISSES_BEFORE_RETRYING, missing, hp.RETRY_EVERY))
    assert looks[::2] == expected  # each frame looked at is looked at for both hands
    found_from[0] = missing  # the next look finds the hand, and from then on every frame is looked at
    for frame in range(missing, missing + 3 * hp.RETRY_EVERY):
        tracker(frame, pose)
    assert looks[2 * len(expected)::2] == list(range(missing, missing + 3 * hp.RETRY_EVERY))
    looks.clear()
    tracker(100, pose_with_hands(visibility=0.0)), tracker(101, pose_with_hands(scale=0.1))
    assert looks == []


def test_a_hand_found_away_from_the_arm_is_dropped(monkeypatch):
    """When the hands come together, one square may show the other hand: found with its wrist more than a palm's
    length from the pose's wrist, it is not taken for this one."""
    pytest.importorskip("onnxruntime")
    tracker = hp.HandTracker()
    for shift, kept in ((10.0, True), (35.0, True), (45.0, False)):
        monkeypatch.setattr(tracker, "read", lambda frame, square, shift=shift: hand_found(shift))
        assert [hand is not None for hand in tracker(None, pose_with_hands())] == [kept, kept]
