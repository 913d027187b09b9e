"""Reading data in the ConductorMotion100 layout, cutting it into windows, and M2S-Net's sync pairs.

Layout: ``<root>/{train,val,test}/<k>/{mel.npy, motion.npy}`` with mel (3L, 128) at 90 Hz (the official-compatible
mel, core/audio.official_mel) and motion (L, 13, 2) at 30 fps in ConductorMotion100 coordinates; optionally
``beats.npy`` and ``downbeats.npy`` (seconds from the clip's start), which generators trained with the beats as input
need (the project's corpus writes them; ConductorMotion100 has none). ConductorMotion100
clips are 60 s; any length of at least one window works here. Arrays are memory-mapped, so a split of any size
opens instantly and only the windows in use are read.

numpy only; the trainers turn batches into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
MEL_FPS, MOTION_FPS = 90, 30
MEL_PER_FRAME = MEL_FPS // MOTION_FPS
# mel and motion lengths may disagree by rounding (floor(duration·90) vs a 30 fps frame count); more is an error.
LENGTH_SLACK = 3
NEGATIVE_MODES = ("easy", "hard", "super-hard")
# Super-hard negatives: the same music against its own motion shifted by this many seconds. The official code drew
# [0, 4.5) s, so some "negatives" were the positive itself (shift 0); its comment intended 0.5-5 s.
SUPER_HARD_SHIFT = (0.5, 5.0)


class DatasetError(ValueError):
    """A data folder that is not in the ConductorMotion100 layout, with what is wrong and where."""


@dataclass
class Clip:
    """One ``<split>/<k>`` folder: memory-mapped mel (3L', 128) and motion (L', 13, 2); `n_frames` usable frames."""

    folder: Path
    mel: np.ndarray
    motion: np.ndarray
    n_frames: int
    beats: np.ndarray | None = None
    downbeats: np.ndarray | None = None

    @property
    def seconds(self) -> float:
        return self.n_frames / MOTION_FPS


def _sort_key(path: Path):
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # numpy raises several types for a damaged file
        raise DatasetError(f"{path} is not a readable .npy array ({exc})") from exc


def read_clip(folder: Path) -> Clip:
    mel_path, motion_path = folder / "mel.npy", folder / "motion.npy"
    for path in (mel_path, motion_path):
        if not path.is_file():
            raise DatasetError(f"{folder} has no {path.name}: every clip folder needs mel.npy and motion.npy")
    mel, motion = _load_array(mel_path), _load_array(motion_path)
    if mel.ndim != 2 or mel.shape[1] != 128:
        raise DatasetError(f"{mel_path} has shape {mel.shape}; expected (frames at 90 Hz, 128)")
    if motion.ndim != 3 or motion.shape[1:] != (13, 2):
        raise DatasetError(f"{motion_path} has shape {motion.shape}; expected (frames at 30 fps, 13, 2)")
    n_frames = min(mel.shape[0] // MEL_PER_FRAME, motion.shape[0])
    if abs(mel.shape[0] - MEL_PER_FRAME * motion.shape[0]) > MEL_PER_FRAME * LENGTH_SLACK:
        raise DatasetError(
            f"{folder}: mel has {mel.shape[0]} frames but motion {motion.shape[0]}; the mel (90 Hz) must be 3x "
            f"the motion (30 fps) for the same duration"
        )
    beats = downbeats = None
    if (folder / "beats.npy").is_file():
        beats = np.asarray(_load_array(folder / "beats.npy"), dtype=np.float64).reshape(-1)
        downbeats = (np.asarray(_load_array(folder / "downbeats.npy"), dtype=np.float64).reshape(-1)
                     if (folder / "downbeats.npy").is_file() else np.zeros(0))
    return Clip(folder, mel, motion, n_frames, beats, downbeats)


def read_split(root: str | Path, split: str, limit_hours: float | None = None) -> list[Clip]:
    """All clips of one split, in folder-number order; `limit_hours` stops after that much data."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(
            f"{folder} does not exist: expected the ConductorMotion100 layout <root>/{{train,val,test}}/<k>/"
            f"{{mel.npy,motion.npy}} under {root}"
        )
    clips, seconds = [], 0.0
    for sub in sorted((p for p in folder.iterdir() if p.is_dir()), key=_sort_key):
        clip = read_clip(sub)
        clips.append(clip)
        seconds += clip.seconds
        if limit_hours is not None and seconds >= 3600 * limit_hours:
            break
    if not clips:
        raise DatasetError(f"{folder} holds no clip folders")
    return clips


class WindowDataset:
    """Fixed-length windows of whole seconds from a list of clips.

    Each clip gives floor(seconds / window) non-overlapping windows (as VirtualConductor's loader). With
    `random_start`, a window is instead re-drawn at a random whole-second start inside the same clip each time it
    is read, which multiplies the distinct windows a small data set offers.
    """

    def __init__(self, clips: list[Clip], window_seconds: int, random_start: bool = False):
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.clips = clips
        self.window_seconds = int(window_seconds)
        self.frames = MOTION_FPS * self.window_seconds
        self.random_start = random_start
        self.index = [
            (c, w * self.frames) for c, clip in enumerate(clips) for w in range(clip.n_frames // self.frames)
        ]
        if not self.index:
            longest = max(clip.seconds for clip in clips)
            raise DatasetError(
                f"no clip is as long as one {self.window_seconds} s window (longest {longest:.1f} s); use a shorter "
                f"window"
            )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def hours(self) -> float:
        return sum(clip.seconds for clip in self.clips) / 3600

    def locate(self, i: int, rng: np.random.Generator | None = None) -> tuple[int, int]:
        """(clip index, first motion frame) of window i; re-drawn from `rng` when random_start is on."""
        c, start = self.index[i]
        if self.random_start and rng is not None:
            start = MOTION_FPS * int(rng.integers(0, (self.clips[c].n_frames - self.frames) // MOTION_FPS + 1))
        return c, start

    def cut(self, c: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        """(mel (3F, 128), motion (F, 13, 2)) float32 of clip c from motion frame `start` (F = window frames)."""
        clip = self.clips[c]
        mel = clip.mel[MEL_PER_FRAME * start : MEL_PER_FRAME * (start + self.frames)]
        motion = clip.motion[start : start + self.frames]
        return np.array(mel, dtype=np.float32), np.array(motion, dtype=np.float32)  # copies: the files are read-only

    def window(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.cut(*self.locate(i, rng))

    def batches(self, batch_size: int, rng: np.random.Generator, shuffle: bool = True, drop_last: bool = True):
        """Yield (places, mel (B, 3F, 128), motion (B, F, 13, 2)); places are the (clip, start) of each window.

        The order and the window starts come from `rng`, so a seeded rng gives the same batches every time.
        """
        order = rng.permutation(len(self)) if shuffle else np.arange(len(self))
        stop = len(order) - (len(order) % batch_size if drop_last and len(order) >= batch_size else 0)
        for first in range(0, stop, batch_size):
            places = [self.locate(int(i), rng) for i in order[first : first + batch_size]]
            pairs = [self.cut(c, start) for c, start in places]
            yield places, np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def motion_statistics(self, max_clips: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std), each (13, 2), of every keypoint coordinate over all frames of (up to `max_clips` evenly
        spread) clips: where output layers start, and how the diffusion model standardises motion."""
        step = max(1, len(self.clips) // max_clips)
        frames = np.concatenate([np.asarray(clip.motion[: clip.n_frames], dtype=np.float64)
                                 for clip in self.clips[::step]])
        return frames.mean(axis=0).astype(np.float32), frames.std(axis=0).astype(np.float32)


@dataclass
class SyncPairs:
    """Two music/motion segments per sample: (mel_a, motion_a) and (mel_b, motion_b) are in sync, the crossed
    pairs (mel_a, motion_b) and (mel_b, motion_a) are not."""

    mel_a: np.ndarray
    motion_a: np.ndarray
    mel_b: np.ndarray
    motion_b: np.ndarray


def _segment(mel: np.ndarray, motion: np.ndarray, starts: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    # Cut on the motion frame grid and take exactly 3x on the mel grid: the official pair sampler rounded the two
    # separately and could misalign them by two mel frames.
    mels = np.stack([m[MEL_PER_FRAME * s : MEL_PER_FRAME * (s + frames)] for m, s in zip(mel, starts)])
    motions = np.stack([m[s : s + frames] for m, s in zip(motion, starts)])
    return mels, motions


def sync_pairs(
    mel: np.ndarray, motion: np.ndarray, mode: str, clip_seconds: float, rng: np.random.Generator
) -> SyncPairs:
    """Positive and negative music-motion pairs from a batch of windows, for training M2S-Net.

    mel (B, 3F, 128) and motion (B, F, 13, 2) are windows of S = F/30 seconds; each segment lasts `clip_seconds`
    (c). Offsets are drawn per sample (the official code drew one per batch):
      - easy: the same segment of two different windows (window i against window i+1 of the batch). The official
        code paired i with B-1-i, which pairs the middle window with itself when B is odd;
      - hard: two non-overlapping segments of the same window, a at [0, S-2c), b at least c later;
      - super-hard: the same window with its motion shifted by 0.5-5 s against the music.
    """
    if mode not in NEGATIVE_MODES:
        raise ValueError(f"unknown negative mode {mode!r}; expected one of {', '.join(NEGATIVE_MODES)}")
    batch, window = motion.shape[:2]
    frames = int(round(clip_seconds * MOTION_FPS))
    if mode == "easy":
        if batch < 2:
            raise ValueError("easy negatives pair different windows: the batch needs at least 2")
        starts = np.full(batch, rng.integers(0, window - frames + 1))
        mel_a, motion_a = _segment(mel, motion, starts, frames)
        order = np.roll(np.arange(batch), -1)
        return SyncPairs(mel_a, motion_a, mel_a[order], motion_a[order])
    if mode == "hard":
        if window < 2 * frames + 1:
            raise ValueError(f"hard negatives need windows longer than 2 x {clip_seconds} s")
        first = rng.integers(0, window - 2 * frames + 1, batch)
        second = first + frames + (rng.random(batch) * (window - frames - (first + frames) + 1)).astype(int)
    else:
        low, high = (int(round(s * MOTION_FPS)) for s in SUPER_HARD_SHIFT)
        if window < frames + high:
            raise ValueError(f"super-hard negatives need windows of at least {clip_seconds + SUPER_HARD_SHIFT[1]} s")
        first = rng.integers(0, window - frames - high + 1, batch)
        second = first + rng.integers(low, high, batch)
    mel_a, motion_a = _segment(mel, motion, first, frames)
    mel_b, motion_b = _segment(mel, motion, second, frames)
    return SyncPairs(mel_a, motion_a, mel_b, motion_b)
