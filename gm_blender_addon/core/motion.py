"""The one motion format every generator and the capture path produce.

Keypoints follow ConductorMotion100: the first 13 COCO keypoints, image-style (x right, y down), normalised so that
the clip-mean shoulder width is 0.2 and the clip-mean hip midpoint sits at (0.5, 0.75), sampled at 30 fps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FPS = 30

JOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
)
JOINT = {name: i for i, name in enumerate(JOINT_NAMES)}
N_JOINTS = len(JOINT_NAMES)

SHOULDER_WIDTH = 0.2
HIP_MIDPOINT = (0.5, 0.75)

# The hands, in the order of the arrays `fingers` and `wrists`: the performer's left, then right.
HAND_SIDES = ("left", "right")
FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")
N_FINGERS = len(FINGER_NAMES)


# Optional per-frame arrays of a Motion beside its keypoints, with their shape after the frame axis.
EXTRAS = {
    "world": (N_JOINTS, 3),
    "visibility": (N_JOINTS,),
    "fingers": (len(HAND_SIDES), N_FINGERS),
    "wrists": (len(HAND_SIDES), 2),
    "breath": (),
}


class MotionFileError(ValueError):
    """A keypoint file that is missing, unreadable or not in the Gesture Maestro layout."""


@dataclass
class Motion:
    """Keypoints (T, 13, 2) float32 at `fps`, plus free-form metadata and optional extras.

    `world` (T, 13, 3) and `visibility` (T, 13) are only present for captured motion.
    `fingers` (T, 2, 5): how far each finger of each hand (HAND_SIDES × FINGER_NAMES) is curled, 0 straight to 1 a
    fist. `wrists` (T, 2, 2): each wrist's (flexion, turn) in radians: flexion bends the hand towards the palm
    (negative lifts the back of the hand), turn rolls the forearm from palm down (0) through thumb up (π/2) to palm
    up (π). Both come together; the baton, held in the right hand, follows from them.
    `breath` (T,): how full the conductor's breath is, 0 at rest to 1 at the top of an inhalation (the chest lifts
    and the shoulders rise).
    """

    keypoints: np.ndarray
    fps: float = FPS
    meta: dict = field(default_factory=dict)
    world: np.ndarray | None = None
    visibility: np.ndarray | None = None
    fingers: np.ndarray | None = None
    wrists: np.ndarray | None = None
    breath: np.ndarray | None = None

    def __post_init__(self):
        kp = np.asarray(self.keypoints, dtype=np.float32)
        if kp.ndim != 3 or kp.shape[1:] != (N_JOINTS, 2):
            raise ValueError(f"keypoints must have shape (T, {N_JOINTS}, 2), got {kp.shape}")
        if not np.all(np.isfinite(kp)):
            raise ValueError("keypoints contain NaN or infinite values")
        self.keypoints = np.ascontiguousarray(kp)
        for name, tail in EXTRAS.items():
            extra = getattr(self, name)
            if extra is None:
                continue
            if np.shape(extra) != (len(kp),) + tail:
                raise ValueError(f"{name} must have shape {(len(kp),) + tail}, got {np.shape(extra)}")
            if not np.all(np.isfinite(extra)):
                raise ValueError(f"{name} contains NaN or infinite values")
            setattr(self, name, np.ascontiguousarray(extra, dtype=np.float32))
        if (self.fingers is None) != (self.wrists is None):
            raise ValueError("fingers and wrists come together: give both or neither")

    @property
    def has_hands(self) -> bool:
        return self.fingers is not None

    @property
    def n_frames(self) -> int:
        return self.keypoints.shape[0]

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    @property
    def depth(self) -> np.ndarray | None:
        """Each joint's distance towards the camera (T, 13) in metres, from the world landmarks, when captured.

        MediaPipe's world z grows away from the camera, hence the sign.
        """
        return None if self.world is None else -np.asarray(self.world, dtype=np.float64)[..., 2]

    def joint(self, name: str) -> np.ndarray:
        return self.keypoints[:, JOINT[name]]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = {
            "keypoints": self.keypoints,
            "fps": np.float32(self.fps),
            "joint_names": np.array(JOINT_NAMES),
            "meta_json": np.array(json.dumps(self.meta, sort_keys=True)),
        }
        for name in EXTRAS:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        # np.savez appends ".npz" to names without it; write through a handle so the user's name is kept as given.
        with open(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Motion":
        path = Path(path)
        if not path.is_file():
            raise MotionFileError(f"Keypoint file not found: {path}")
        try:
            data = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises several types for a non-npz file
            raise MotionFileError(f"{path.name} is not a readable .npz keypoint file ({exc})") from exc
        with data:
            if "keypoints" not in data:
                raise MotionFileError(f"{path.name} has no 'keypoints' array: not a Gesture Maestro keypoint file")
            names = tuple(str(n) for n in data["joint_names"]) if "joint_names" in data else JOINT_NAMES
            if names != JOINT_NAMES:
                raise MotionFileError(f"{path.name} uses joints {names}, expected the 13 COCO upper-body joints")
            meta = json.loads(str(data["meta_json"])) if "meta_json" in data else {}
            try:
                return cls(
                    keypoints=data["keypoints"],
                    fps=float(data["fps"]) if "fps" in data else FPS,
                    meta=meta,
                    **{name: data[name] if name in data else None for name in EXTRAS},
                )
            except ValueError as exc:
                raise MotionFileError(f"{path.name}: {exc}") from exc


def normalise(keypoints: np.ndarray, frame_width: float) -> np.ndarray:
    """Pixel keypoints (T, 13, 2) → the ConductorMotion100 normalisation (both axes divided by the frame width)."""
    kp = np.asarray(keypoints, dtype=np.float64) / float(frame_width)
    width = np.mean(kp[:, JOINT["left_shoulder"], 0] - kp[:, JOINT["right_shoulder"], 0])
    if not np.isfinite(width) or abs(width) < 1e-9:
        raise ValueError("shoulders coincide on average: cannot normalise this clip")
    kp *= SHOULDER_WIDTH / width
    hips = 0.5 * (kp[:, JOINT["left_hip"]] + kp[:, JOINT["right_hip"]])
    kp += np.asarray(HIP_MIDPOINT) - hips.mean(axis=0)
    return kp.astype(np.float32)


def gaussian_smooth(series: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing along axis 0; edges are reflected so the ends do not sag towards zero."""
    if sigma_frames <= 0:
        return np.array(series, copy=True)
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(series, dtype=np.float64), sigma_frames, axis=0, mode="nearest").astype(
        np.asarray(series).dtype
    )


def resample(keypoints: np.ndarray, src_fps: float, dst_fps: float = FPS) -> np.ndarray:
    """Linear resampling in time of (T, ...) arrays; frame k of the result is at time k / dst_fps."""
    keypoints = np.asarray(keypoints)
    n_src = keypoints.shape[0]
    if n_src == 0 or src_fps == dst_fps:
        return keypoints.copy()
    n_dst = max(1, int(np.floor((n_src - 1) / src_fps * dst_fps)) + 1)
    t_src = np.arange(n_src) / src_fps
    t_dst = np.arange(n_dst) / dst_fps
    flat = keypoints.reshape(n_src, -1)
    out = np.empty((n_dst, flat.shape[1]), dtype=np.float64)
    for c in range(flat.shape[1]):
        out[:, c] = np.interp(t_dst, t_src, flat[:, c])
    return out.reshape((n_dst,) + keypoints.shape[1:]).astype(keypoints.dtype)
