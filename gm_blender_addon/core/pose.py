"""MediaPipe's pose tracker (BlazePose, full model) on onnxruntime, without MediaPipe or OpenCV (no bpy).

The two networks are MediaPipe's own, converted once to ONNX (training/convert_pose_models.py; Apache-2.0, see
data/pose/). Around them, this module does what MediaPipe's pose graph does on the CPU:

1. Find the person: the detector looks at the whole frame, letterboxed to 224x224. Its 2254 anchors each give a box
   and four keypoints; the best-scoring detection is averaged with those that overlap it (weighted suppression).
2. The region of interest: a square centred on the hip keypoint, turned so that the hips-to-head line points up,
   2.5 times the hips-to-head distance wide.
3. The landmark network reads that square at 256x256 and gives 39 landmarks (33 body points and two that place the
   next frame's square), each with visibility and presence, the person's presence, a heatmap that refines the
   landmarks, and the landmarks in metres around the hips. Everything is turned back into the frame.
4. Tracking: the next frame's square comes from this frame's two placing landmarks, smoothed over time so that the
   square keeps still while the person does, and the detector runs again only when the person is lost (presence
   below one half).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DETECTOR_SIZE = 224
LANDMARK_SIZE = 256
HEATMAP_SIZE = 64
N_LANDMARKS = 39  # 33 body landmarks, then the hip centre and the scale point that place the next square
BODY_LANDMARKS = 33
# The detector's anchors: one feature map per stride, two anchors per cell (stride 32 is used three times over).
ANCHOR_STRIDES = (8, 16, 32, 32, 32)
ANCHORS_PER_LAYER = 2
MIN_DETECTION_SCORE = 0.5
SUPPRESSION_OVERLAP = 0.3  # intersection over union that merges two detections
MIN_PRESENCE = 0.5  # below this the person is lost and the detector runs on the next frame
ROI_SCALE = 1.25  # the square around the person, beyond twice the hips-to-head distance
HEATMAP_KERNEL = 7
MIN_HEATMAP_CONFIDENCE = 0.5
# One-Euro filter of the placing landmarks (Hz; speeds in their own spreads per second): heavy while still, light in
# quick moves. MediaPipe's graph states a speed coefficient of 1, but the squares that MediaPipe 0.10.21 itself places
# (its pose_rect_from_landmarks stream, on both test videos) are matched within 0.5-1.6 % of their size with 2.5, and
# are 6-8 % away with 1.
PLACING_MIN_CUTOFF, PLACING_BETA, PLACING_DERIVATIVE_CUTOFF = 0.01, 2.5, 1.0
MODEL_FILES = {"detector": "pose_detection.onnx", "landmarks": "pose_landmark_full.onnx"}


class PoseModelError(RuntimeError):
    """The pose models are missing or cannot be loaded."""


@dataclass(frozen=True)
class Square:
    """A square region of the frame in pixels, turned by `angle` (radians, clockwise on screen)."""

    x: float
    y: float
    size: float
    angle: float

    def to_frame(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions (u, v) in the square (0 to 1 across it) → frame pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        du, dv = (u - 0.5) * self.size, (v - 0.5) * self.size
        return self.x + c * du - s * dv, self.y + s * du + c * dv


@dataclass
class Pose:
    """One frame's 33 body landmarks."""

    pixels: np.ndarray  # (33, 2) frame pixels
    world: np.ndarray  # (33, 3) metres around the hips: x right, y down, z away from the camera
    visibility: np.ndarray  # (33,)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def anchor_centres() -> np.ndarray:
    """(2254, 2) anchor centres in the detector's input (0 to 1), in the order of its outputs."""
    centres = []
    layer = 0
    while layer < len(ANCHOR_STRIDES):
        stride = ANCHOR_STRIDES[layer]
        repeats = 0
        while layer < len(ANCHOR_STRIDES) and ANCHOR_STRIDES[layer] == stride:
            repeats += 1
            layer += 1
        cells = math.ceil(DETECTOR_SIZE / stride)
        grid = (np.arange(cells) + 0.5) / cells
        y, x = np.meshgrid(grid, grid, indexing="ij")
        per_cell = np.stack([x.ravel(), y.ravel()], axis=1)
        centres.append(np.repeat(per_cell, repeats * ANCHORS_PER_LAYER, axis=0))
    return np.concatenate(centres)


def crop(frame: np.ndarray, square: Square, size: int, edge: str) -> np.ndarray:
    """The square resampled to size x size (bilinear, float32, same channels), outside the frame either the nearest
    edge pixel (edge="edge") or black (edge="black")."""
    height, width = frame.shape[:2]
    centres = np.arange(size, dtype=np.float32) / size
    x, y = square.to_frame(centres[None, :], centres[:, None])
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0 = np.clip(x0, -1, width).astype(np.intp)
    y0 = np.clip(y0, -1, height).astype(np.intp)
    pixels = frame.reshape(height * width, -1)

    def at(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        # One flat gather (much quicker than indexing rows and columns): outside the frame the index clamps onto
        # its edge, which black then masks. Widened to float32 here, the blending below runs on one type, faster.
        values = np.take(pixels, np.clip(rows, 0, height - 1) * width + np.clip(cols, 0, width - 1), axis=0)
        values = values.astype(np.float32)
        if edge == "edge":
            return values
        return values * ((rows >= 0) & (rows < height) & (cols >= 0) & (cols < width))[..., None]

    top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
    bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def upright_angle(origin: np.ndarray, towards: np.ndarray) -> float:
    """The angle of a Square (in -π … π) whose way up, from the bottom edge to the top, points from `origin` to
    `towards` (frame pixels)."""
    dx, dy = towards - origin
    angle = math.pi / 2 - math.atan2(-dy, dx)
    return (angle + math.pi) % (2 * math.pi) - math.pi


def square_from_points(centre: np.ndarray, toward_head: np.ndarray) -> Square:
    """The region of interest around a person from two points in frame pixels: the hip centre and a point that
    sets both the scale and the way up (the detector's keypoints 0 and 1, or landmarks 33 and 34)."""
    size = 2 * float(np.hypot(*(toward_head - centre))) * ROI_SCALE
    return Square(float(centre[0]), float(centre[1]), size, upright_angle(centre, toward_head))


def _overlap(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x0, y0, x1, y1) box with many."""
    x0, y0 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x1, y1 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def model_session(name: str, folder: Path | None = None, threads: int | None = None):
    """An onnxruntime session on the CPU for the model file `name` in `folder` (default: the add-on's data/pose)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise PoseModelError("onnxruntime is not installed for this Python (pip install onnxruntime)") from exc
    from ..resources import pose_models_dir

    path = (folder or pose_models_dir()) / name
    if not path.is_file():
        raise PoseModelError(f"The tracking model {path} is missing; reinstall the add-on.")
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class PlacingFilter:
    """A streaming One-Euro filter (Casiez et al. 2012) on the two placing landmarks, with speeds measured in the
    points' own spread (the mean of their bounding box's sides), so that it acts alike at any size on screen."""

    def __init__(self, rate: float):
        self.rate = rate
        self.raw = self.smoothed = self.speed = None

    def _alpha(self, cutoff):
        return 1.0 / (1.0 + self.rate / (2 * np.pi * cutoff))

    def __call__(self, points: np.ndarray) -> np.ndarray:
        if self.raw is None:
            self.raw, self.smoothed, self.speed = points, points, np.zeros_like(points)
            return points
        spread = max(float(np.mean(np.ptp(points, axis=0))), 1e-6)
        speed = (points - self.raw) / spread * self.rate
        self.speed = self.speed + self._alpha(PLACING_DERIVATIVE_CUTOFF) * (speed - self.speed)
        alpha = self._alpha(PLACING_MIN_CUTOFF + PLACING_BETA * np.abs(self.speed))
        self.raw, self.smoothed = points, self.smoothed + alpha * (points - self.smoothed)
        return self.smoothed


class PoseTracker:
    """Call with RGB frames (H, W, 3) of one video in order, at `fps`; returns a Pose, or None where no person is
    found."""

    def __init__(self, fps: float, models: Path | None = None, threads: int | None = None):
        self.fps = fps
        self.detector, self.landmarks = (model_session(MODEL_FILES[role], models, threads)
                                         for role in ("detector", "landmarks"))
        self.anchors = anchor_centres()
        self.square: Square | None = None  # where to look in the next frame; None: run the detector
        self.placing = PlacingFilter(fps)

    def detect(self, frame: np.ndarray) -> Square | None:
        """The region of interest of the best-scoring person in the whole frame, or None."""
        height, width = frame.shape[:2]
        whole = Square(width / 2, height / 2, float(max(width, height)), 0.0)
        image = crop(frame, whole, DETECTOR_SIZE, edge="black") * (2 / 255) - 1
        raw, scores = self.detector.run(None, {self.detector.get_inputs()[0].name: image[None]})
        scores = _sigmoid(np.clip(scores[0, :, 0], -100, 100))
        candidates = np.flatnonzero(scores >= MIN_DETECTION_SCORE)
        if candidates.size == 0:
            return None
        raw = raw[0, candidates] / DETECTOR_SIZE
        scores = scores[candidates]
        centres = raw[:, 0:2] + self.anchors[candidates]
        boxes = np.concatenate([centres - raw[:, 2:4] / 2, centres + raw[:, 2:4] / 2], axis=1)
        keypoints = raw[:, 4:12].reshape(-1, 4, 2) + self.anchors[candidates, None, :]
        best = int(np.argmax(scores))
        group = _overlap(boxes[best], boxes) > SUPPRESSION_OVERLAP
        weights = scores[group] / scores[group].sum()
        points = np.einsum("n,nkc->kc", weights, keypoints[group])
        # From the letterboxed square back to frame pixels.
        x, y = whole.to_frame(points[:, 0], points[:, 1])
        frame_points = np.stack([x, y], axis=1)
        return square_from_points(frame_points[0], frame_points[1])

    def _refine(self, landmarks: np.ndarray, heatmap: np.ndarray) -> None:
        """Move each landmark (crop pixels, in place) to the confidence-weighted centre of the heatmap near it, where
        the heatmap is confident enough."""
        confidence = _sigmoid(heatmap)
        half = HEATMAP_KERNEL // 2
        cells = HEATMAP_SIZE / LANDMARK_SIZE
        for j in range(N_LANDMARKS):
            col, row = int(landmarks[j, 0] * cells), int(landmarks[j, 1] * cells)
            rows = slice(max(row - half, 0), min(row + half + 1, HEATMAP_SIZE))
            cols = slice(max(col - half, 0), min(col + half + 1, HEATMAP_SIZE))
            window = confidence[rows, cols, j]
            if window.size == 0 or window.max() < MIN_HEATMAP_CONFIDENCE:
                continue
            r, c = np.mgrid[rows, cols]
            total = window.sum()
            landmarks[j, 0] = (c * window).sum() / total / cells
            landmarks[j, 1] = (r * window).sum() / total / cells

    def __call__(self, frame: np.ndarray) -> Pose | None:
        if self.square is None:
            self.placing = PlacingFilter(self.fps)
            self.square = self.detect(frame)
            if self.square is None:
                return None
        square = self.square
        image = crop(frame, square, LANDMARK_SIZE, edge="edge") / 255
        raw, presence, heatmap, world = self.landmarks.run(None, {self.landmarks.get_inputs()[0].name: image[None]})
        if presence[0, 0] < MIN_PRESENCE:
            self.square = None
            return None
        values = raw[0].reshape(N_LANDMARKS, 5).astype(np.float64)
        self._refine(values, heatmap[0])
        x, y = square.to_frame(values[:, 0] / LANDMARK_SIZE, values[:, 1] / LANDMARK_SIZE)
        pixels = np.stack([x, y], axis=1)
        placing = self.placing(pixels[BODY_LANDMARKS:BODY_LANDMARKS + 2])
        self.square = square_from_points(placing[0], placing[1])
        # The metric landmarks are in the square's frame: turned back by its angle about the camera axis.
        c, s = math.cos(square.angle), math.sin(square.angle)
        metres = world[0].reshape(N_LANDMARKS, 3)[:BODY_LANDMARKS].astype(np.float64)
        metres[:, 0], metres[:, 1] = c * metres[:, 0] - s * metres[:, 1], s * metres[:, 0] + c * metres[:, 1]
        return Pose(pixels=pixels[:BODY_LANDMARKS], world=metres, visibility=_sigmoid(values[:BODY_LANDMARKS, 3]))
