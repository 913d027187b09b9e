"""2D keypoints → 3D joints in the target rig's armature space, using the rig's own bone lengths.

Weak perspective: one scale for the whole clip, taken from the shoulder width, which a conductor keeps roughly
parallel to the image plane. Each arm segment's depth follows from its known length (Taylor 2000); the sign is
resolved by the conducting prior that elbows and hands stay in front of the body, which also keeps depth continuous
in time because the root √(L² − d²) passes smoothly through zero. Captured motion carries a measured depth per joint
(MediaPipe's world landmarks); when it is given, it chooses the sign instead wherever it clearly says "behind".

Armature space follows Blender's convention for a character facing the camera: +X is the character's left
(image right), −Y points towards the camera, +Z is up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion import JOINT, Motion, gaussian_smooth

# Face points ahead of the ear line, in metres (adult head); used to give the face its depth.
FACE_DEPTH = {"nose": 0.10, "left_eye": 0.08, "right_eye": 0.08, "left_ear": 0.0, "right_ear": 0.0}
# How far the nose sits below the ear line with the head level, in metres; pitch is measured from here.
NOSE_DROP = 0.01
MAX_SMOOTHING_SIGMA = 5.0  # frames, at smoothing strength 1
# The hips travel at most this far (in shoulder widths) sideways from where the performer stands and down from the
# highest they stand: further is walking, which a conductor planted on the podium does not do.
MAX_HIP_TRAVEL = 0.2
# A measured depth flips a segment behind its parent only when it puts the child this far behind (fraction of the
# bone's length): closer to the parent's depth plane the measurement's noise is larger than the difference.
BEHIND_TOLERANCE = 0.15


@dataclass
class Proportions:
    """What lifting needs to know about the target rig, in metres and armature space."""

    shoulder_width: float
    upper_arm: tuple[float, float]  # (left, right)
    forearm: tuple[float, float]
    hip_centre: np.ndarray  # (3,)


def smoothing_sigma(strength: float) -> float:
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"smoothing strength must be between 0 and 1, got {strength}")
    return MAX_SMOOTHING_SIGMA * strength


def image_scale(keypoints: np.ndarray, shoulder_width: float) -> float:
    """Keypoint units per metre. The median is robust to frames where the performer turns."""
    width = np.linalg.norm(keypoints[:, JOINT["left_shoulder"]] - keypoints[:, JOINT["right_shoulder"]], axis=1)
    return float(np.median(width)) / shoulder_width


def _segment(
    parent2d: np.ndarray, child2d: np.ndarray, length: float, scale: float, measured: np.ndarray | None = None
) -> np.ndarray:
    """Offset (T, 3) in metres from parent to child, of exactly `length`, with depth towards the camera.

    `measured` (T,): the child's measured depth towards the camera minus the parent's, in metres, if known.
    """
    planar = (child2d - parent2d) / scale
    d = np.linalg.norm(planar, axis=1, keepdims=True)
    # Foreshortening beyond the bone length is noise: keep the direction, drop the depth.
    planar = planar * np.minimum(1.0, length / np.maximum(d, 1e-9))
    depth = np.sqrt(np.maximum(length**2 - np.sum(planar**2, axis=1), 0.0))
    if measured is not None:
        depth = np.where(measured < -BEHIND_TOLERANCE * length, -depth, depth)
    # image (x right, y down) + depth towards camera → armature (+X left-of-character, −Y to camera, +Z up)
    return np.stack([planar[:, 0], -depth, -planar[:, 1]], axis=1)


def lift(motion: Motion, proportions: Proportions, smoothing: float = 0.0, depth: np.ndarray | None = None) -> np.ndarray:
    """Joints (T, 13, 3) in armature space: the hip midpoint of every frame sits on the rig's hip centre.

    `depth` (T, 13), optional: each joint's measured distance towards the camera in metres from any origin, such as
    −z of MediaPipe's world landmarks (`Motion.world`). It only decides whether an elbow or wrist is in front of or
    behind its parent; the amount of depth always comes from the rig's bone lengths.
    """
    kp = gaussian_smooth(motion.keypoints.astype(np.float64), smoothing_sigma(smoothing))
    toward_camera = None
    if depth is not None:
        toward_camera = gaussian_smooth(np.asarray(depth, dtype=np.float64), smoothing_sigma(smoothing))
        if toward_camera.shape != kp.shape[:2]:
            raise ValueError(f"depth must have shape {kp.shape[:2]}, got {toward_camera.shape}")

    def measured(parent: str, child: str) -> np.ndarray | None:
        if toward_camera is None:
            return None
        return toward_camera[:, JOINT[child]] - toward_camera[:, JOINT[parent]]

    scale = image_scale(kp, proportions.shoulder_width)
    hips = 0.5 * (kp[:, JOINT["left_hip"]] + kp[:, JOINT["right_hip"]])

    def planar_point(name: str, depth: float = 0.0) -> np.ndarray:
        rel = (kp[:, JOINT[name]] - hips) / scale
        return proportions.hip_centre + np.stack([rel[:, 0], np.full(len(rel), -depth), -rel[:, 1]], axis=1)

    joints = np.zeros(kp.shape[:2] + (3,))
    for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"):
        joints[:, JOINT[name]] = planar_point(name)
    for name, depth in FACE_DEPTH.items():
        joints[:, JOINT[name]] = planar_point(name, depth)
    for side, index in (("left", 0), ("right", 1)):
        shoulder = joints[:, JOINT[f"{side}_shoulder"]]
        elbow = shoulder + _segment(
            kp[:, JOINT[f"{side}_shoulder"]], kp[:, JOINT[f"{side}_elbow"]], proportions.upper_arm[index], scale,
            measured(f"{side}_shoulder", f"{side}_elbow"),
        )
        wrist = elbow + _segment(
            kp[:, JOINT[f"{side}_elbow"]], kp[:, JOINT[f"{side}_wrist"]], proportions.forearm[index], scale,
            measured(f"{side}_elbow", f"{side}_wrist"),
        )
        joints[:, JOINT[f"{side}_elbow"]] = elbow
        joints[:, JOINT[f"{side}_wrist"]] = wrist
    return joints


def hip_travel(motion: Motion, proportions: Proportions, smoothing: float = 0.0) -> np.ndarray:
    """(T, 3) how far the hip midpoint moves, in the rig's units and the upright frame (+X the character's left, +Z
    up): sideways from where it stands on average and down from the highest it stands, as a weight shift or a give
    of the knees moves it; never in depth, which the keypoints cannot tell. `lift` leaves this out, placing the hips
    on the rig's hip centre in every frame."""
    kp = gaussian_smooth(motion.keypoints.astype(np.float64), smoothing_sigma(smoothing))
    hips = 0.5 * (kp[:, JOINT["left_hip"]] + kp[:, JOINT["right_hip"]]) / image_scale(kp, proportions.shoulder_width)
    limit = MAX_HIP_TRAVEL * proportions.shoulder_width
    travel = np.zeros((len(kp), 3))
    travel[:, 0] = np.clip(hips[:, 0] - np.median(hips[:, 0]), -limit, limit)
    # Image y grows downwards. The highest stance is taken below the very top, which one noisy frame could set.
    travel[:, 2] = np.clip(np.percentile(hips[:, 1], 2) - hips[:, 1], -limit, 0.0)
    return travel
