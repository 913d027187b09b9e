"""Beat-lock: the time-warp that moves a generated motion's ictus onto the music's beats (core/beatlock.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import PchipInterpolator

from gm_blender_addon.core.beatlock import MAX_OFFSET, WARP_RATE_BOUNDS, beat_lock, match_beats
from gm_blender_addon.core.metrics import ictus_frames
from gm_blender_addon.core.motion import FPS, JOINT


def wrist_motion(ictus: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, 13, 2): a still body whose right wrist falls to its lowest point at each of `ictus` (seconds) and
    rises between them, with a smooth phase; its elbow follows it."""
    t = np.arange(n_frames) / FPS
    phase = PchipInterpolator(ictus, np.arange(len(ictus)), extrapolate=True)(t)
    keypoints = np.tile(np.linspace(0.3, 0.7, 26).reshape(13, 2), (n_frames, 1, 1))
    keypoints[:, JOINT["right_wrist"], 1] = 0.5 + 0.05 * np.cos(2 * np.pi * phase)
    keypoints[:, JOINT["right_elbow"], 1] = 0.45 + 0.02 * np.cos(2 * np.pi * phase)
    return keypoints.astype(np.float32)


def jittered(period: float, start: float, seconds: float, jitter: float, seed: int) -> np.ndarray:
    times = np.arange(start, seconds, period)
    return times + np.random.default_rng(seed).uniform(-jitter, jitter, len(times))


def assert_smooth_and_monotonic(warp: np.ndarray) -> None:
    rate = np.diff(warp)
    assert WARP_RATE_BOUNDS[0] <= rate.min() and rate.max() <= WARP_RATE_BOUNDS[1]
    # The speed never jumps: going from the slowest rate allowed to the fastest takes at least 10 frames.
    assert np.abs(np.diff(rate)).max() <= 0.07


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_motion_with_its_own_jittered_tempo_strikes_on_the_beats(seed):
    seconds = 20.0
    n = int(seconds * FPS)
    beats = np.arange(0.8, seconds - 0.5, 0.5)  # 120 BPM
    motion = wrist_motion(jittered(0.51, 0.65, seconds + 1.0, 0.04, seed), n)  # 118 BPM, ±40 ms
    locked = beat_lock(motion, beats)
    assert locked.keypoints.shape == motion.shape
    assert_smooth_and_monotonic(locked.warp)
    frames, _ = ictus_frames(locked.keypoints)
    misses = np.abs(beats[:, None] * FPS - frames[None, :]).min(axis=1)
    assert np.mean(misses <= 1.0) >= 0.9  # within one frame
    report = locked.report()
    assert report["locked"] == round(report["locked_share"] * len(beats)) and report["locked_share"] >= 0.9
    assert report["speed_change_max"] <= WARP_RATE_BOUNDS[1] - 1


def test_a_motion_already_on_the_beats_is_left_as_it_is():
    n = 600
    beats = np.arange(15, n - 15, 15) / FPS  # ictus exactly on frames, so nothing needs to move
    motion = wrist_motion(beats, n)
    locked = beat_lock(motion, beats)
    assert locked.locked == len(beats)
    np.testing.assert_allclose(locked.warp, np.arange(n), atol=1e-3)
    np.testing.assert_allclose(locked.keypoints, motion, atol=1e-5)


def test_extra_ictus_stay_and_beats_without_one_get_none():
    """A motion beating twice per beat keeps every stroke (one on each beat, one between); where the motion has no
    ictus near a beat, none is made."""
    seconds = 20.0
    n = int(seconds * FPS)
    beats = np.arange(1.0, seconds - 1.0, 0.8)
    motion = wrist_motion(np.arange(0.1, seconds + 1.0, 0.4) + 0.1, n)
    locked = beat_lock(motion, beats)
    assert len(ictus_frames(locked.keypoints)[0]) == len(ictus_frames(motion)[0])
    assert locked.locked >= 0.9 * len(beats)
    slow = wrist_motion(np.arange(0.5, seconds + 1.0, 1.0), n)
    far = beat_lock(slow, np.arange(1.0, seconds - 1.0, 1.0))  # every beat half way between two ictus
    assert far.locked == 0 and np.array_equal(far.keypoints, slow)


def test_where_there_are_no_beats_the_motion_runs_in_real_time():
    seconds = 30.0
    n = int(seconds * FPS)
    beats = np.arange(0.5, 10.0, 0.5)  # then 20 s of silence
    motion = wrist_motion(jittered(0.5, 0.6, seconds + 1.0, 0.05, 3), n)
    locked = beat_lock(motion, beats)
    assert locked.locked >= 0.9 * len(beats)
    late = slice(int(18 * FPS), n)
    assert np.abs(np.diff(locked.warp[late]) - 1).max() < 0.01
    assert np.abs(locked.warp[late] - np.arange(n)[late]).max() < 0.1 * MAX_OFFSET * FPS


@pytest.mark.parametrize("n_frames", [1, 2, 5, 40])
@pytest.mark.parametrize("beats", [[], [0.1], [0.1, 0.6, 1.1]])
def test_short_clips_no_beats_and_no_ictus_do_not_fail(n_frames, beats):
    motion = wrist_motion(np.arange(0.2, 3.0, 0.5), n_frames)
    still = np.repeat(motion[:1], n_frames, axis=0)
    for keypoints in (motion, still):
        locked = beat_lock(keypoints, np.array(beats))
        assert locked.keypoints.shape == keypoints.shape and np.isfinite(locked.keypoints).all()
        assert len(locked.warp) == n_frames and np.all(np.diff(locked.warp) > 0)
        assert locked.report()["locked"] <= len(beats)
    assert beat_lock(still, np.array(beats)).locked == 0


def test_matching_is_monotonic_and_keeps_within_the_offset():
    beats = np.arange(30.0, 900.0, 15.0)
    ictus = np.sort(beats + np.random.default_rng(0).uniform(-1.5, 1.5, len(beats)))
    pairs = match_beats(ictus, beats, 930)
    assert len(pairs) >= 0.95 * len(beats)
    assert np.all(np.diff(pairs, axis=0) > 0)
    assert np.abs(ictus[pairs[:, 0]] - beats[pairs[:, 1]]).max() <= MAX_OFFSET * FPS
    assert not len(match_beats(ictus[::2] + 15.0, beats[::2], 930))  # every ictus 0.5 s from a beat
    assert not len(match_beats(np.zeros(0), beats, 930))
