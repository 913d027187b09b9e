"""MediaPipe's hand landmark model on onnxruntime, with each hand found from the body's pose, and what the landmarks say
about the hand: its five fingers' curls and its wrist's flexion and turn, as in Motion.fingers and Motion.wrists
(no bpy).

The network is MediaPipe's own, converted once to ONNX (training/convert_pose_models.py; Apache-2.0, see data/pose/).
MediaPipe finds hands with a palm detector; here, as in MediaPipe's Holistic graph, the body's pose already says where
each hand is: its wrist, index and little-finger landmarks place a square over the hand, turned so that the fingers
point up in it, and the landmark network reads that square at 224x224. It gives 21 landmarks (the wrist, then four
per finger from the thumb to the little finger, each from its base joint out to the tip), the hand's presence, which
hand it looks like (not read here: on hands that show no separate fingers it flips from frame to frame), and the same
21 landmarks in metres around the hand's centre, which are what the angles below are measured on.

The angles are the inverse of what core/retarget.py does with them, so that a rig shows the hand as filmed: a finger's
curl is its measured bend over the bend the rig gives a full curl (FINGER_BEND), and the wrist's (flexion, turn) are
read against the same forearm direction, bent towards the chest's front by WRIST_FORWARD, that the solve turns and
flexes the hand from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import rotations as rot
from .motion import FINGER_NAMES, HAND_SIDES, JOINT
from .pose import Pose, Square, crop, model_session, upright_angle
from .retarget import FINGER_BEND, WRIST_FORWARD

HAND_SIZE = 224
N_HAND_LANDMARKS = 21
MODEL_FILE = "hand_landmark_full.onnx"
MIN_PRESENCE = 0.5  # below this the square shows no hand
# MediaPipe's pose landmarks of each hand, in HAND_SIDES order: the wrist, the little finger's and the index finger's
# (the pose model puts these two near the knuckles).
POSE_HAND = {"left": (15, 17, 19), "right": (16, 18, 20)}
# The square over a hand, from the wrist w and the middle knuckle m, estimated a third of the way from the pose's
# index point towards its little-finger point (where the middle finger's knuckle lies): its centre at
# w + SQUARE_CENTRE (m - w) and its side SQUARE_SIDE |m - w|. The wrist-to-knuckle length is about half the hand's, so
# the centre sits near the knuckles and the side is about twice the hand's length: fingers held straight reach to
# within a quarter of the square's edge, however the wrist bends, with margin for the pose's error in placing the
# points. The hand fills the square about as it fills the squares MediaPipe's hand tracking places (twice the extent
# of the wrist, the knuckles and the joints after them, a tenth of that towards the fingers): on the capture
# fixture's rig, those are 1.14 (quartiles 1.07, 1.19) times smaller, their centres 5 % of the side away.
SQUARE_CENTRE = 1.0
SQUARE_SIDE = 4.0
# The wrist's pose visibility below which the hand is not looked for (it is hidden or outside the frame).
MIN_WRIST_VISIBILITY = 0.5
# Squares smaller than this (pixels) are not read: a hand under 16 pixels long shows no fingers to measure.
MIN_SQUARE_SIDE = 32.0
# A hand found with its wrist further than this many of its own wrist-to-middle-knuckle lengths from the pose's wrist is
# some other hand (the other one, when the hands come together) and is dropped. On the capture fixture's rig, the
# hand's wrist lies within 0.16 of that length of the pose's in half the frames, within 0.25 in 95 %.
MAX_WRIST_OFFSET = 1.0
# A hand missed this many times in a row is looked for only every RETRY_EVERY frames until it is found again (a hand
# the network cannot make out, gloved or half outside the picture, costs the model's time in every frame otherwise).
MISSES_BEFORE_RETRYING = 8
RETRY_EVERY = 4
# Hand landmarks: the wrist, and each finger's four (base joint … tip) in FINGER_NAMES order.
WRIST = 0
FINGER_LANDMARKS = {name: tuple(range(1 + 4 * f, 5 + 4 * f)) for f, name in enumerate(FINGER_NAMES)}
INDEX_KNUCKLE, MIDDLE_KNUCKLE, LITTLE_KNUCKLE = 5, 9, 17


@dataclass
class Hand:
    """One hand in one frame."""

    pixels: np.ndarray  # (21, 2) frame pixels
    world: np.ndarray  # (21, 3) metres around the hand's centre, in the pose's axes: x right, y down, z away
    presence: float


def hand_square(wrist: np.ndarray, index: np.ndarray, little: np.ndarray) -> Square:
    """The square over a hand from the pose's wrist, index and little-finger points (frame pixels)."""
    knuckles = (2 * index + little) / 3
    centre = wrist + SQUARE_CENTRE * (knuckles - wrist)
    side = SQUARE_SIDE * float(np.hypot(*(knuckles - wrist)))
    return Square(float(centre[0]), float(centre[1]), side, upright_angle(wrist, knuckles))


def wrist_agrees(hand: Hand, wrist: np.ndarray) -> bool:
    """Whether the hand found lies at the end of the pose's arm: its wrist near the pose's `wrist` (frame pixels)."""
    palm_length = np.hypot(*(hand.pixels[MIDDLE_KNUCKLE] - hand.pixels[WRIST]))
    return bool(np.hypot(*(hand.pixels[WRIST] - wrist)) <= MAX_WRIST_OFFSET * palm_length)


class HandTracker:
    """Call with an RGB frame (H, W, 3) and the Pose found in it; returns a Hand or None for each of HAND_SIDES."""

    def __init__(self, models: Path | None = None, threads: int | None = None):
        self.session = model_session(MODEL_FILE, models, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.misses = {side: 0 for side in HAND_SIDES}  # frames in a row in which the hand was not found

    def read(self, frame: np.ndarray, square: Square) -> Hand | None:
        """The hand in `square`, or None when the network sees none there."""
        image = crop(frame, square, HAND_SIZE, edge="edge") / 255
        landmarks, presence, _, world = self.session.run(None, {self.input_name: image[None]})
        if presence[0, 0] < MIN_PRESENCE:
            return None
        values = landmarks[0].reshape(N_HAND_LANDMARKS, 3).astype(np.float64)
        x, y = square.to_frame(values[:, 0] / HAND_SIZE, values[:, 1] / HAND_SIZE)
        # The metric landmarks are upright in the square: turned back by its angle about the camera axis, as the
        # pose's are, they share the pose's axes (x right, y down, z away; only their origin differs, which angles do
        # not see). On the capture fixture's rig, the turned wrist-to-middle-knuckle direction across the picture
        # agrees with the one the pixel landmarks show within 2-3 degrees (median).
        c, s = math.cos(square.angle), math.sin(square.angle)
        metres = world[0].reshape(N_HAND_LANDMARKS, 3).astype(np.float64)
        metres[:, 0], metres[:, 1] = c * metres[:, 0] - s * metres[:, 1], s * metres[:, 0] + c * metres[:, 1]
        return Hand(pixels=np.stack([x, y], axis=1), world=metres, presence=float(presence[0, 0]))

    def __call__(self, frame: np.ndarray, pose: Pose) -> list[Hand | None]:
        hands = []
        for side in HAND_SIDES:
            wrist, little, index = POSE_HAND[side]
            square = hand_square(pose.pixels[wrist], pose.pixels[index], pose.pixels[little])
            misses = self.misses[side]
            retrying = misses >= MISSES_BEFORE_RETRYING and (misses - MISSES_BEFORE_RETRYING) % RETRY_EVERY != 0
            if pose.visibility[wrist] < MIN_WRIST_VISIBILITY or square.size < MIN_SQUARE_SIDE or retrying:
                hand = None
            else:
                hand = self.read(frame, square)
            if hand is not None and not wrist_agrees(hand, pose.pixels[wrist]):
                hand = None
            self.misses[side] = 0 if hand is not None else misses + 1
            hands.append(hand)
        return hands


# ---------------------------------------------------------------------------------------------------------------
# What the landmarks say
# ---------------------------------------------------------------------------------------------------------------


def palm_axes(world: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(where the hand points, where its palm faces), unit (..., 3) each, from (..., 21, 3) landmarks of the hand on
    `side`: it points from the wrist to the middle knuckle, and its palm faces away from the back of the hand, across
    the plane of the wrist and the index and little knuckles."""
    wrist = world[..., WRIST, :]
    along = rot.normalise(world[..., MIDDLE_KNUCKLE, :] - wrist)
    to_index, to_little = world[..., INDEX_KNUCKLE, :] - wrist, world[..., LITTLE_KNUCKLE, :] - wrist
    # The two hands are mirror images, and a mirror image turns a cross product over.
    palm = np.cross(to_index, to_little) if side == "right" else np.cross(to_little, to_index)
    palm = rot.normalise(palm - np.sum(palm * along, -1, keepdims=True) * along)
    return along, palm


def _bend(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The angle (...) that turns a into b about `axis`, all (..., 3), measured across the axis."""
    a = a - np.sum(a * axis, -1, keepdims=True) * axis
    b = b - np.sum(b * axis, -1, keepdims=True) * axis
    return np.arctan2(np.sum(np.cross(a, b) * axis, -1), np.sum(a * b, -1))


def finger_curls(world: np.ndarray, side: str) -> np.ndarray:
    """(..., 5) curls, 0 straight … 1 a fist, in FINGER_NAMES order, from (..., 21, 3) landmarks of the hand on `side`.

    A finger's curl is the bend of its three joints towards the palm, summed, over the bend that the rig gives a full
    curl, so that the rig's finger bends as far as the filmed one. The fingers bend about the palm's across axis, and
    only that bend counts (spreading the fingers apart is no curl). The thumb bends across the palm, about an axis that
    turns with it, so its two outer joints count by their whole bend, over the rig's bend of its two outer bones.
    """
    along, palm = palm_axes(world, side)
    across = np.cross(along, palm)  # turning `along` about it by a quarter turn brings it onto `palm`
    curls = []
    for name in FINGER_NAMES:
        points = world[..., (WRIST,) + FINGER_LANDMARKS[name], :]
        bones = np.diff(points, axis=-2)  # wrist to base joint, then the three bones out to the tip
        if name == "thumb":
            cosines = np.sum(rot.normalise(bones[..., 1:3, :]) * rot.normalise(bones[..., 2:4, :]), -1)
            bend = np.sum(np.arccos(np.clip(cosines, -1.0, 1.0)), -1)
            full = sum(FINGER_BEND[name][1:])
        else:
            bend = sum(_bend(bones[..., j, :], bones[..., j + 1, :], across) for j in range(3))
            full = sum(FINGER_BEND[name])
        curls.append(np.clip(bend / np.radians(full), 0.0, 1.0))
    return np.stack(curls, axis=-1)


def body_axes(body: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the performer's left, up, forward), unit (..., 3) each, from the 13 body joints (..., 13, 3) in the pose's
    world axes: left along the shoulders, up from the hips' to the shoulders' midpoint, forward out of the chest."""
    left = rot.normalise(body[..., JOINT["left_shoulder"], :] - body[..., JOINT["right_shoulder"], :])
    rise = 0.5 * (body[..., JOINT["left_shoulder"], :] + body[..., JOINT["right_shoulder"], :]
                  - body[..., JOINT["left_hip"], :] - body[..., JOINT["right_hip"], :])
    up = rot.normalise(rise - np.sum(rise * left, -1, keepdims=True) * left)
    return left, up, np.cross(left, up)


def wrist_angles(world: np.ndarray, body: np.ndarray, side: str) -> np.ndarray:
    """(..., 2) (flexion, turn) in radians, as in Motion.wrists, of the hand on `side` from its landmarks
    (..., 21, 3) and the 13 body joints (..., 13, 3), both in the pose's world axes.

    core/retarget.py's solve aims the hand along the forearm bent a little towards the chest's front, turns the palm
    about that aim from facing down (0) through facing the body's middle (π/2) to facing up (π), then bends the hand
    towards the palm by the flexion. This undoes that: the turn is where the palm would face were the wrist straight,
    the flexion how far the hand points from the aim towards that side. Turns lie in -π/2 … 3π/2, around thumb-up.
    """
    left, up, forward = body_axes(body)
    forearm = rot.normalise(body[..., JOINT[f"{side}_wrist"], :] - body[..., JOINT[f"{side}_elbow"], :])
    aim = rot.normalise(forearm + WRIST_FORWARD * forward)
    medial = left if side == "right" else -left
    facing_down = rot.normalise(-up + np.sum(up * aim, -1, keepdims=True) * aim)
    facing_medial = rot.normalise(np.cross(aim, facing_down))
    facing_medial *= np.sign(np.sum(facing_medial * medial, -1, keepdims=True) + 1e-12)
    along, palm = palm_axes(world, side)
    # Flexing turns the hand about its across axis, which the straight wrist's palm direction is square to, as it is
    # to the aim.
    straight_palm = rot.normalise(np.cross(np.cross(along, palm), aim))
    turn = np.arctan2(np.sum(straight_palm * facing_medial, -1), np.sum(straight_palm * facing_down, -1))
    turn = np.where(turn < -np.pi / 2, turn + 2 * np.pi, turn)
    flexion = np.arctan2(np.sum(along * straight_palm, -1), np.sum(along * aim, -1))
    return np.stack([flexion, turn], axis=-1)
