import numpy as np
import pytest

from gm_blender_addon.core.metrics import ictus_times, power_law
from gm_blender_addon.core.motion import FPS, JOINT, gaussian_smooth
from gm_blender_addon.generators import registry
from gm_blender_addon.generators.procedural import RIGHT_REST, conduct
from helpers import steady_analysis
from test_analysis import f_measure


@pytest.mark.parametrize("per_bar", [2, 3, 4])
def test_right_hand_strikes_every_beat(per_bar):
    analysis = steady_analysis(beats_per_bar=per_bar)
    keypoints = conduct(analysis, seed=0)
    assert f_measure(ictus_times(keypoints), analysis.beats) >= 0.95


def test_downbeat_is_the_lowest_beat_of_the_bar():
    analysis = steady_analysis(seconds=30.0, beats_per_bar=4)
    y = conduct(analysis, seed=0)[:, JOINT["right_wrist"], 1]
    frames = np.round(analysis.beats * FPS).astype(int)
    bars = frames[: len(frames) // 4 * 4].reshape(-1, 4)
    assert np.mean(np.argmax(y[bars], axis=1) == 0) >= 0.9


def test_output_is_conductormotion100_normalised():
    keypoints = conduct(steady_analysis(), seed=1)
    assert keypoints.shape == (steady_analysis().n_frames, 13, 2) and keypoints.dtype == np.float32
    width = keypoints[:, JOINT["left_shoulder"], 0] - keypoints[:, JOINT["right_shoulder"], 0]
    hips = (keypoints[:, JOINT["left_hip"]] + keypoints[:, JOINT["right_hip"]]) / 2
    assert width.mean() == pytest.approx(0.2, abs=1e-4)
    np.testing.assert_allclose(hips.mean(axis=0), [0.5, 0.75], atol=1e-3)
    assert (keypoints[:, JOINT["nose"], 1] < keypoints[:, JOINT["left_shoulder"], 1]).all()


def test_seeds_vary_the_performance_but_not_its_timing():
    analysis = steady_analysis()
    a, b = conduct(analysis, seed=1), conduct(analysis, seed=2)
    assert np.abs(a - b).mean() > 0.1 * a.std(axis=0).mean()
    assert f_measure(ictus_times(b), analysis.beats) >= 0.95
    np.testing.assert_array_equal(a, conduct(analysis, seed=1))


def test_wrist_speed_follows_loudness():
    analysis = steady_analysis(seconds=30.0)
    keypoints = conduct(analysis, seed=0)
    speed = np.linalg.norm(np.diff(keypoints[:, JOINT["right_wrist"]], axis=0), axis=1)
    contour = gaussian_smooth(speed, 1.0 * FPS)
    sounding = ~analysis.silent[1:]
    r = np.corrcoef(contour[sounding], analysis.loudness[1:][sounding])[0, 1]
    assert r >= 0.5


def test_hands_come_to_rest_after_the_final_cut_off():
    analysis = steady_analysis(seconds=16.0, tail=4.0)
    keypoints = conduct(analysis, seed=0)
    np.testing.assert_allclose(keypoints[-1, JOINT["right_wrist"]], RIGHT_REST[:2], atol=0.02)
    still = np.abs(np.diff(keypoints[-10:], axis=0)).max()
    assert still < 1e-3


def test_registry_lists_procedural_and_fills_metadata(music_file):
    from gm_blender_addon.core.analysis import analyse
    from gm_blender_addon.core.audio import load_audio

    assert "procedural" in registry.names()
    audio = load_audio(music_file)
    motion = registry.generate("procedural", registry.Request(audio=audio, analysis=analyse(audio), seed=5))
    assert motion.meta["generator"] == "procedural" and motion.meta["seed"] == 5
    assert motion.meta["audio_file"] == "waltz.wav" and len(motion.meta["audio_sha256"]) == 64
    with pytest.raises(registry.GeneratorError, match="Unknown generator"):
        registry.get("nope")


def test_a_bar_of_another_length_keeps_every_downbeat_the_lowest_beat():
    """Bars as given (a bar of 3 beats among bars of 4): the pattern restarts on each bar line, not by counting."""
    analysis = steady_analysis(seconds=30.0, beats_per_bar=4)
    bar_lines = [0, 4, 8, 11, 15, 19, 23, 27, 31, 35, 39, 43]
    analysis.downbeats = analysis.beats[bar_lines]
    y = conduct(analysis, seed=0)[:, JOINT["right_wrist"], 1]
    frames = np.round(analysis.beats * FPS).astype(int)
    lowest = [np.argmax(y[frames[a:b]]) == 0 for a, b in zip(bar_lines[:-1], bar_lines[1:])]
    assert np.mean(lowest) >= 0.9 and all(lowest[3:6])


@pytest.mark.parametrize("bpm,taps", [(40, 1), (120, 0)])
def test_slow_beats_are_subdivided_with_smaller_taps(bpm, taps):
    analysis = steady_analysis(seconds=20.0, bpm=bpm)
    y = conduct(analysis, seed=0)[:, JOINT["right_wrist"], 1]
    lowest = [k for k in range(1, len(y) - 1) if y[k] > y[k - 1] and y[k] >= y[k + 1]]
    for before, after in zip(analysis.beats[1:-2], analysis.beats[2:-1]):
        between = [k for k in lowest if before + 0.15 < k / FPS < after - 0.15]
        assert len(between) == taps
        beat_depth = min(y[int(round(before * FPS))], y[int(round(after * FPS))])
        assert all(y[k] < beat_depth for k in between)  # image y grows downwards: the beats fall deepest


def test_the_raised_left_hand_moves_like_a_human_hand():
    """Lifting through the crescendo and pressing through the diminuendo, the left hand loops at an even pace instead
    of gliding in straight lines: its path follows the two-thirds power law (β near 1/3, a good fit)."""
    analysis = steady_analysis(seconds=30.0, bpm=90.0)
    keypoints = conduct(analysis, seed=0)
    beta, r2 = power_law(keypoints[:, JOINT["left_wrist"]])
    assert 0.25 <= beta <= 0.4 and r2 >= 0.5
