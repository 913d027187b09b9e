"""Video → the shared Motion type, with MediaPipe's pose tracker: the "capture a performer" path (no bpy).

The tracker (core/pose.py: MediaPipe's full pose model, converted to ONNX, on onnxruntime) runs frame by frame at
the video's own rate. Joints it cannot see well are filled by interpolation in
time and stay flagged by their visibility; jitter is then removed with a One-Euro filter (speed-adaptive: strong
when a joint is still, light when it moves fast); finally everything is resampled to 30 fps and put into the
ConductorMotion100 normalisation. The world landmarks and per-joint visibility travel along in the same .npz.

In every frame with a person, MediaPipe's hand landmark model (core/hand_pose.py) looks at each hand where the pose
puts it; the fingers' curls and the wrists' flexion and turn it shows go through the same filling, smoothing and
resampling, and become the Motion's fingers and wrists. A hand never seen gets the rule-based hands of core/hands.py,
which follow the arm.

Video is decoded, and its audio track copied out, by the ffmpeg binary that the imageio-ffmpeg wheel ships; with
onnxruntime and numpy that is all capture needs, so it runs in any Python the add-on's wheels are installed for
(Blender's own included), and this module and the worker process that runs it never need Blender.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .hand_pose import N_HAND_LANDMARKS, HandTracker, finger_curls, wrist_angles
from .hands import hand_poses
from .motion import (FPS, HAND_SIDES, HIP_MIDPOINT, JOINT, JOINT_NAMES, N_FINGERS, N_JOINTS, SHOULDER_WIDTH, Motion,
                     resample)
from .pose import PoseModelError, PoseTracker

Progress = Callable[[float, str], None]
Cancelled = Callable[[], bool]

# The tracker's 33 pose landmarks (MediaPipe's) that are the 13 COCO upper-body joints, in JOINT_NAMES order.
MEDIAPIPE_INDEX = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24)
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")
# Frames whose longer side exceeds this are shrunk (by ffmpeg, averaging pixels) before pose estimation. The tracker
# looks at a 256-pixel crop of the person anyway, so larger frames only cost decoding time.
MAX_SIDE = 1280
VISIBILITY_THRESHOLD = 0.5
# One-Euro settings at smoothing strength 0 → 1: the still-joint cutoff falls geometrically between these (Hz), and
# the cutoff rises by BETA Hz per shoulder width per second of speed, so fast beats are not flattened.
CUTOFF_LIGHT, CUTOFF_STRONG = 8.0, 0.4
BETA = 1.0
DERIVATIVE_CUTOFF = 1.0
PROGRESS_EVERY = 15  # frames


class CaptureError(ValueError):
    """A video that cannot be captured, with a message that names the problem and the fix."""


class CaptureCancelled(Exception):
    """The caller asked the capture to stop."""


@dataclass
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: float
    frame_count: int  # as the container states it; only used for progress

    @property
    def scale(self) -> float:
        """Factor applied to frames before pose estimation (1 when the frame is small enough)."""
        return min(1.0, MAX_SIDE / max(self.width, self.height))


@dataclass
class Landmarks:
    """Raw per-frame tracker output at the video's rate; rows of undetected frames are NaN / zero visibility."""

    pixels: np.ndarray  # (N, 13, 2) in the original frame's pixels
    world: np.ndarray  # (N, 13, 3) metres, origin between the hips, x right, y down, z away from the camera
    visibility: np.ndarray  # (N, 13)
    detected: np.ndarray  # (N,) bool
    hands: np.ndarray  # (N, 2, 21, 3) each hand's landmarks (HAND_SIDES order), metres in the world's axes; NaN: unseen

    @property
    def hands_seen(self) -> np.ndarray:
        """(N, 2) bool: where each hand was found."""
        return np.isfinite(self.hands[:, :, 0, 0])

    @property
    def n_frames(self) -> int:
        return len(self.detected)


@dataclass
class CaptureReport:
    source_frames: int
    undetected_frames: int
    filled_frames: dict[str, int]  # per joint, at 30 fps
    downscaled_to: tuple[int, int] | None
    throughput_fps: float
    audio: Path | None
    hands_seen: dict[str, int]  # source frames in which each hand was found
    warnings: list[str] = field(default_factory=list)

    @property
    def undetected_percent(self) -> float:
        return 100.0 * self.undetected_frames / max(1, self.source_frames)

    def summary(self) -> str:
        parts = [f"person found in {self.source_frames - self.undetected_frames} of {self.source_frames} frames"]
        if self.undetected_frames:
            parts.append(f"{self.undetected_frames} frames ({self.undetected_percent:.1f} %) without a person, filled")
        seen = ", ".join(f"{side} {100 * count / max(1, self.source_frames):.0f} %" for side, count in
                         self.hands_seen.items())
        parts.append(f"hands seen in frames: {seen}")
        if self.downscaled_to:
            parts.append(f"downscaled to {self.downscaled_to[0]}x{self.downscaled_to[1]}")
        parts.append(f"{self.throughput_fps:.1f} frames/s")
        parts.append(f"audio: {self.audio.name}" if self.audio else "no audio track")
        return "; ".join(parts)


@dataclass
class Capture:
    motion: Motion
    report: CaptureReport


# ---------------------------------------------------------------------------------------------------------------
# Reading the video
# ---------------------------------------------------------------------------------------------------------------


def probe_video(path: str | Path) -> VideoInfo:
    """Open the video and check it has decodable frames; raises CaptureError otherwise."""
    path = Path(path)
    if not path.exists():
        raise CaptureError(f"Video file not found: {path}. Check the path (quote it if it contains spaces).")
    if path.is_dir():
        raise CaptureError(f"{path} is a folder, not a video file.")
    if path.stat().st_size == 0:
        raise CaptureError(f"{path.name} is empty (0 bytes); export the video again.")
    frames = _imageio_ffmpeg().read_frames(str(path))
    try:
        meta = next(frames)
        next(frames)
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as exc:
        raise CaptureError(
            f"Cannot decode {path.name}: the file is corrupt, has no video frames or uses an unsupported codec. "
            f"Re-export it as H.264 video in one of {', '.join(VIDEO_SUFFIXES)}."
        ) from exc
    finally:
        frames.close()
    fps = float(meta.get("fps") or 0.0)
    if not np.isfinite(fps) or not 1.0 <= fps <= 1000.0:
        raise CaptureError(f"{path.name} states a frame rate of {fps}, which cannot be right; re-export the video.")
    width, height = meta["size"]
    count = round(float(meta.get("duration") or 0.0) * fps)
    return VideoInfo(path=path, width=width, height=height, fps=fps, frame_count=max(count, 1))


def read_frames(info: VideoInfo, scale: float | None = None, grey: bool = False):
    """Yield RGB (or grey) uint8 frames, shrunk by `scale` (default: info.scale), until the stream ends."""
    scale = info.scale if scale is None else scale
    size = (max(1, round(info.width * scale)), max(1, round(info.height * scale)))
    shrink = ["-vf", f"scale={size[0]}:{size[1]}:flags=area"] if scale != 1.0 else []
    frames = _imageio_ffmpeg().read_frames(str(info.path), pix_fmt="gray" if grey else "rgb24",
                                           bits_per_pixel=8 if grey else 24, output_params=shrink)
    try:
        width, height = next(frames)["size"]
        shape = (height, width) if grey else (height, width, 3)
        for raw in frames:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(shape)
    finally:
        frames.close()


def estimators(fps: float) -> tuple[PoseTracker, HandTracker]:
    """MediaPipe's full pose and hand landmark models on onnxruntime, from the add-on's own files (nothing is
    downloaded)."""
    try:
        return PoseTracker(fps), HandTracker()
    except PoseModelError as exc:
        raise CaptureError(str(exc)) from exc


def detect(info: VideoInfo, progress: Progress | None = None, cancelled: Cancelled | None = None) -> Landmarks:
    """Track the person, and their hands, in every frame. Raises CaptureCancelled when `cancelled()` turns true."""
    pixels, world, visibility, detected, hands = [], [], [], [], []
    tracker, hand_tracker = estimators(info.fps)
    unseen = np.full((N_HAND_LANDMARKS, 3), np.nan)
    to_original = 1.0 / info.scale
    for index, frame in enumerate(read_frames(info)):
        if cancelled is not None and cancelled():
            raise CaptureCancelled()
        pose = tracker(frame)
        if pose is None:
            pixels.append(np.full((N_JOINTS, 2), np.nan))
            world.append(np.full((N_JOINTS, 3), np.nan))
            visibility.append(np.zeros(N_JOINTS))
            detected.append(False)
            hands.append([unseen, unseen])
        else:
            pixels.append(pose.pixels[list(MEDIAPIPE_INDEX)] * to_original)
            world.append(pose.world[list(MEDIAPIPE_INDEX)])
            visibility.append(pose.visibility[list(MEDIAPIPE_INDEX)])
            detected.append(True)
            hands.append([unseen if hand is None else hand.world for hand in hand_tracker(frame, pose)])
        if progress is not None and index % PROGRESS_EVERY == 0:
            progress(min(index / info.frame_count, 1.0), f"Tracking the performer: frame {index + 1}")
    if not detected:
        raise CaptureError(f"{info.path.name} has no video frames that could be decoded.")
    return Landmarks(pixels=np.array(pixels), world=np.array(world), visibility=np.array(visibility),
                     detected=np.array(detected), hands=np.array(hands))


# ---------------------------------------------------------------------------------------------------------------
# Cleaning the landmarks
# ---------------------------------------------------------------------------------------------------------------


def fill_gaps(series: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace rows where `valid` (N,) is false by linear interpolation in time; ends hold the nearest valid row."""
    series = np.asarray(series, dtype=np.float64)
    if valid.all():
        return series.copy()
    if not valid.any():
        raise ValueError("no valid frame to interpolate from")
    frames = np.arange(len(series))
    flat = series.reshape(len(series), -1)
    out = np.empty_like(flat)
    for c in range(flat.shape[1]):
        out[:, c] = np.interp(frames, frames[valid], flat[valid, c])
    return out.reshape(series.shape)


def smoothing_parameters(strength: float) -> tuple[float, float]:
    """(still-joint cutoff in Hz, speed coefficient) of the One-Euro filter for a strength in [0, 1]."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"smoothing strength must be between 0 and 1, got {strength}")
    return CUTOFF_LIGHT * (CUTOFF_STRONG / CUTOFF_LIGHT) ** strength, BETA


def _alpha(cutoff, rate: float):
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau * rate)


def _one_euro_pass(x: np.ndarray, rate: float, min_cutoff: float, beta: float) -> np.ndarray:
    out = np.empty_like(x)
    out[0] = x[0]
    derivative = np.zeros(x.shape[1:])
    a_derivative = _alpha(DERIVATIVE_CUTOFF, rate)
    for t in range(1, len(x)):
        derivative = a_derivative * (x[t] - out[t - 1]) * rate + (1.0 - a_derivative) * derivative
        a = _alpha(min_cutoff + beta * np.abs(derivative), rate)
        out[t] = a * x[t] + (1.0 - a) * out[t - 1]
    return out


def one_euro(series: np.ndarray, rate: float, strength: float, unit: float = 1.0) -> np.ndarray:
    """One-Euro filter (Casiez et al. 2012) along axis 0 of (N, ...) data sampled at `rate` Hz.

    Speeds are measured in `unit`s per second (the shoulder width), so one strength means the same on pixels and
    on metres. The clip is known in full, so the filter runs forwards and then backwards: no lag.
    """
    series = np.asarray(series, dtype=np.float64)
    if strength == 0.0 or len(series) < 2:
        smoothing_parameters(strength)  # still reject an out-of-range strength
        return series.copy()
    min_cutoff, beta = smoothing_parameters(strength)
    flat = series.reshape(len(series), -1) / unit
    forward = _one_euro_pass(flat, rate, min_cutoff, beta)
    both = _one_euro_pass(forward[::-1], rate, min_cutoff, beta)[::-1]
    return (both * unit).reshape(series.shape)


def shoulder_width(points: np.ndarray) -> float:
    """Median distance between the shoulders over the clip, in the points' own unit."""
    width = np.linalg.norm(points[:, JOINT["left_shoulder"]] - points[:, JOINT["right_shoulder"]], axis=-1)
    return float(np.nanmedian(width))


def normalisation(pixels: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale, offset) with keypoints = pixels · scale + offset: ConductorMotion100's normalisation (as in
    motion.normalise), kept as a transform so that captured keypoints can be laid back over the video."""
    width = np.mean(pixels[:, JOINT["left_shoulder"], 0] - pixels[:, JOINT["right_shoulder"], 0])
    if not np.isfinite(width) or abs(width) < 1e-6:
        raise CaptureError("The performer's shoulders coincide on average: the person is side-on to the camera.")
    scale = SHOULDER_WIDTH / width
    hips = 0.5 * (pixels[:, JOINT["left_hip"]] + pixels[:, JOINT["right_hip"]])
    return float(scale), np.asarray(HIP_MIDPOINT) - hips.mean(axis=0) * scale


def _resample_flags(flags: np.ndarray, src_fps: float) -> np.ndarray:
    """A 30 fps frame is flagged when either source frame it lies between is flagged."""
    n_dst = len(resample(np.zeros(len(flags)), src_fps))
    t = np.arange(n_dst) * src_fps / FPS
    lower = np.minimum(np.floor(t).astype(int), len(flags) - 1)
    upper = np.minimum(np.ceil(t).astype(int), len(flags) - 1)
    return flags[lower] | flags[upper]


def clean(landmarks: Landmarks, fps: float, strength: float, threshold: float = VISIBILITY_THRESHOLD):
    """Fill, smooth and resample raw landmarks → (pixels, world, visibility, filled) at 30 fps, plus warnings."""
    warnings = []
    valid = landmarks.detected[:, None] & (landmarks.visibility >= threshold)
    pixels = np.empty_like(landmarks.pixels)
    world = np.empty_like(landmarks.world)
    for j, name in enumerate(JOINT_NAMES):
        usable = valid[:, j]
        if not usable.any():
            # The tracker still estimates joints it cannot see (hips below the frame edge, say): keep its guesses
            # rather than invent positions, and say so.
            usable = landmarks.detected
            warnings.append(
                f"{name.replace('_', ' ')} was never clearly visible: its positions are the tracker's estimates"
            )
        pixels[:, j] = fill_gaps(landmarks.pixels[:, j], usable)
        world[:, j] = fill_gaps(landmarks.world[:, j], usable)
    pixels = one_euro(pixels, fps, strength, shoulder_width(pixels))
    world = one_euro(world, fps, strength, shoulder_width(world))
    filled = _resample_flags(~valid, fps)
    visibility = np.where(filled, 0.0, resample(landmarks.visibility, fps))
    return resample(pixels, fps), resample(world, fps), visibility, filled, warnings


def _turn_continuous(turn: np.ndarray) -> np.ndarray:
    """Wrist turns (N,) without jumps of a full turn between frames, the whole series moved by whole turns so that
    its median lies in -π/2 … 3π/2, around thumb-up (the range hand_pose.wrist_angles gives single frames in)."""
    turn = np.unwrap(turn)
    return turn - 2 * np.pi * np.floor((np.median(turn) + np.pi / 2) / (2 * np.pi))


def hand_motion(landmarks: Landmarks, fps: float, strength: float, keypoints: np.ndarray):
    """(fingers (T, 2, 5), wrists (T, 2, 2), warnings) at 30 fps from the raw hand landmarks: the curls and wrist
    angles of the frames where a hand was seen, filled between them, smoothed and resampled like the joints. A hand
    never seen gets the rule-based hands for the motion's `keypoints` (T, 13, 2), which follow the arm."""
    seen = landmarks.hands_seen
    n = len(keypoints)
    fingers, wrists = np.empty((n, len(HAND_SIDES), N_FINGERS)), np.empty((n, len(HAND_SIDES), 2))
    warnings = []
    for h, side in enumerate(HAND_SIDES):
        frames = seen[:, h]
        if not frames.any():
            fingers[:, h], wrists[:, h] = (values[:, h] for values in hand_poses(keypoints))
            warnings.append(f"the {side} hand was never seen clearly: its fingers and wrist follow the arm")
            continue
        hand, body = landmarks.hands[frames, h], landmarks.world[frames]
        angles = wrist_angles(hand, body, side)
        angles[:, 1] = _turn_continuous(angles[:, 1])
        both = np.concatenate([finger_curls(hand, side), angles], axis=1)
        series = np.full((landmarks.n_frames, both.shape[1]), np.nan)
        series[frames] = both
        # Curls and angles are of one size (a full curl, a radian), so speeds in them are measured alike.
        series = resample(one_euro(fill_gaps(series, frames), fps, strength), fps)
        fingers[:, h], wrists[:, h] = np.clip(series[:, :N_FINGERS], 0.0, 1.0), series[:, N_FINGERS:]
    return fingers, wrists, warnings


# ---------------------------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------------------------


def _imageio_ffmpeg():
    """The imageio_ffmpeg module, once its ffmpeg binary is known to run."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise CaptureError(
            "imageio-ffmpeg is not installed for this Python; install it with `pip install imageio-ffmpeg`, or "
            "capture with the Python the add-on's wheels are for."
        ) from exc
    # Blender unpacks an extension's wheels without their file modes, so the bundled ffmpeg arrives not executable.
    for binary in (Path(imageio_ffmpeg.__file__).parent / "binaries").glob("ffmpeg-*"):
        if not os.access(binary, os.X_OK):
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise CaptureError(
            f"No ffmpeg to read the video with ({exc}); reinstall the add-on, or install ffmpeg."
        ) from exc
    return imageio_ffmpeg


def _ffmpeg() -> str:
    return _imageio_ffmpeg().get_ffmpeg_exe()


def has_audio(video: str | Path) -> bool:
    result = subprocess.run([_ffmpeg(), "-hide_banner", "-i", str(video)], capture_output=True, text=True)
    return re.search(r"Stream #\S+.*: Audio:", result.stderr) is not None


def extract_audio(video: str | Path, out: str | Path) -> Path | None:
    """Copy the first audio track to a 16-bit WAV at its own rate; None when the video has none."""
    if not has_audio(video):
        return None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [_ffmpeg(), "-hide_banner", "-v", "error", "-y", "-i", str(video), "-map", "0:a:0", "-vn",
               "-c:a", "pcm_s16le", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not out.is_file():
        out.unlink(missing_ok=True)
        raise CaptureError(f"The audio track of {Path(video).name} could not be decoded: {result.stderr.strip()[-300:]}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# The whole capture
# ---------------------------------------------------------------------------------------------------------------


def capture(
    video: str | Path,
    smoothing: float = 0.5,
    audio_out: str | Path | None = None,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
) -> Capture:
    """Track the performer in `video` → Motion at 30 fps (CM100) with world landmarks, visibility, fingers and wrists.

    `audio_out`: where to write the video's audio track as WAV (skipped when None or when there is none).
    Raises CaptureError for unusable input and CaptureCancelled when `cancelled()` turns true.
    """
    smoothing_parameters(smoothing)
    info = probe_video(video)
    started = time.perf_counter()
    landmarks = detect(info, progress=(lambda f, m: progress(0.9 * f, m)) if progress else None, cancelled=cancelled)
    throughput = landmarks.n_frames / max(time.perf_counter() - started, 1e-9)
    undetected = int(np.sum(~landmarks.detected))
    if undetected == landmarks.n_frames:
        raise CaptureError(
            f"No person was found in {info.path.name}: 0 of {landmarks.n_frames} frames (0 %) show someone the tracker "
            "can track. Film the performer from the front with the upper body in view."
        )
    if progress:
        progress(0.92, "Filling gaps and smoothing")
    pixels, world, visibility, filled, warnings = clean(landmarks, info.fps, smoothing)
    scale, offset = normalisation(pixels)
    keypoints = pixels * scale + offset
    fingers, wrists, hand_warnings = hand_motion(landmarks, info.fps, smoothing, keypoints)
    warnings += hand_warnings

    audio = None
    if audio_out is not None:
        if progress:
            progress(0.96, "Extracting the audio track")
        try:
            audio = extract_audio(info.path, audio_out)
        except CaptureError as exc:
            warnings.append(str(exc))
    if undetected:
        warnings.insert(
            0, f"no person in {undetected} of {landmarks.n_frames} frames ({100 * undetected / landmarks.n_frames:.1f} %); "
            "those frames are interpolated and flagged with visibility 0",
        )
    downscaled = None
    if info.scale < 1.0:
        downscaled = (round(info.width * info.scale), round(info.height * info.scale))
    report = CaptureReport(
        source_frames=landmarks.n_frames,
        undetected_frames=undetected,
        filled_frames={name: int(filled[:, j].sum()) for j, name in enumerate(JOINT_NAMES)},
        downscaled_to=downscaled,
        throughput_fps=throughput,
        audio=audio,
        hands_seen={side: int(count) for side, count in zip(HAND_SIDES, landmarks.hands_seen.sum(axis=0))},
        warnings=warnings,
    )
    meta = {
        "source": "capture",
        "video": str(info.path.resolve()),
        "video_size": [info.width, info.height],
        "video_fps": info.fps,
        "video_frames": landmarks.n_frames,
        "undetected_frames": undetected,
        "filled_frames": report.filled_frames,
        "hands_seen": report.hands_seen,
        "visibility_threshold": VISIBILITY_THRESHOLD,
        "smoothing": smoothing,
        "pixels_to_keypoints": {"scale": scale, "offset": [float(v) for v in offset]},
        "audio": str(audio.resolve()) if audio else None,
        "warnings": warnings,
        "estimator": "MediaPipe pose_landmark_full and hand_landmark_full on onnxruntime",
    }
    motion = Motion(keypoints=keypoints, meta=meta, world=world, visibility=visibility, fingers=fingers, wrists=wrists)
    if progress:
        progress(1.0, "Done")
    return Capture(motion=motion, report=report)
