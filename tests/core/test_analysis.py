import numpy as np
import pytest
import soundfile

from gm_blender_addon.core.analysis import TRACKERS, analyse
from gm_blender_addon.core.audio import load_audio
from helpers import click_music


def f_measure(estimated, reference, tolerance=0.07):
    estimated, reference = np.asarray(estimated), np.asarray(reference)
    if len(estimated) == 0 or len(reference) == 0:
        return 0.0
    hits = sum(np.min(np.abs(estimated - r)) <= tolerance for r in reference)
    precision, recall = hits / len(estimated), hits / len(reference)
    return 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("bpm, per_bar", [(120.0, 3), (100.0, 4), (132.0, 2)])
def test_beats_meter_and_downbeats_of_a_clear_pulse(tmp_path, bpm, per_bar):
    path = tmp_path / "pulse.wav"
    soundfile.write(str(path), click_music(16.0, bpm, per_bar), 22050)
    analysis = analyse(load_audio(path))
    truth = np.arange(0.25, 15.8, 60.0 / bpm)
    assert f_measure(analysis.beats, truth) >= 0.9
    assert analysis.tempo_bpm == pytest.approx(bpm, rel=0.04)
    assert analysis.beats_per_bar == per_bar
    assert f_measure(analysis.downbeats, truth[::per_bar]) >= 0.8


def test_frames_are_30_fps_and_loudness_follows_the_crescendo(music_file):
    analysis = analyse(load_audio(music_file))
    assert analysis.n_frames == int(np.ceil(14.0 * 30))
    for series in (analysis.loudness, analysis.tempo, analysis.silent, analysis.held, analysis.onset):
        assert len(series) == analysis.n_frames
    assert 0.0 <= analysis.loudness.min() and analysis.loudness.max() <= 1.0
    early, late = analysis.loudness[30:120].mean(), analysis.loudness[-150:-30].mean()
    assert late > early + 0.2


def test_the_first_analysis_of_a_process_says_it_may_take_a_while(music_file, monkeypatch):
    from gm_blender_addon.core import analysis

    monkeypatch.setattr(analysis, "_kernels_loaded", False)
    first, later = [], []
    analyse(load_audio(music_file), progress=lambda fraction, message: first.append(message))
    analyse(load_audio(music_file), progress=lambda fraction, message: later.append(message))
    assert first[0] == analysis.FIRST_ANALYSIS_MESSAGE and "up to a minute" in first[0]
    assert later[0] == "Analysing the spectrum"


def test_silence_in_the_middle_stops_the_beat_and_ends_sound(tmp_path):
    music = click_music(8.0, 120.0, 4, crescendo=False)
    gap = np.zeros(int(3.0 * 22050), np.float32)
    path = tmp_path / "gap.wav"
    soundfile.write(str(path), np.concatenate([music, gap, music, gap[:22050]]), 22050)
    analysis = analyse(load_audio(path))
    inside = (analysis.beats > 8.4) & (analysis.beats < 10.8)
    assert not inside.any()
    assert analysis.silent[int(9.5 * 30)] and not analysis.silent[int(4 * 30)]
    assert analysis.sound_end == pytest.approx(19.0, abs=0.4)


def test_unknown_tracker_is_refused(music_file):
    with pytest.raises(ValueError, match="unknown beat tracker"):
        analyse(load_audio(music_file), tracker="nope")
    assert "librosa" in TRACKERS


def test_the_demo_is_read_as_6_8_on_its_true_beats():
    import json

    from gm_blender_addon.resources import demo_audio_file

    labels = json.loads(demo_audio_file().with_name("demo_labels.json").read_text())
    analysis = analyse(load_audio(demo_audio_file()))
    assert analysis.meter == labels["meter"] == "6/8"
    assert f_measure(analysis.beats, labels["beats"]) >= 0.9
    assert f_measure(analysis.downbeats, labels["downbeats"]) >= 0.8


def test_beat_positions_number_bars_and_a_pickup():
    from helpers import steady_analysis

    analysis = steady_analysis(seconds=6.0, bpm=120.0, beats_per_bar=3)
    analysis.beats = np.arange(0.5, 5.0, 0.5)
    analysis.downbeats = analysis.beats[2::3]  # two pickup beats, then bars of three
    assert analysis.beat_positions() == [(0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (3, 1)]
