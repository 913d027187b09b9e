"""Beats the user gives replace the tracked ones: through the analysis, the kept record and the conductor."""

import numpy as np
import pytest

from gm_blender_addon.core.analysis import (GIVEN_TRACKER, AnalysisError, GivenBeats, MusicHints, analyse,
                                            analysis_from_record, analysis_record)
from gm_blender_addon.core.audio import load_audio
from gm_blender_addon.core.beats_file import read_beats
from gm_blender_addon.core.motion import FPS
from gm_blender_addon.pipeline import perform
from test_procedural import ictus_times

# Rubato beats over the 14 s waltz of clicks, in bars of 3 after a one-beat pickup: nothing a tracker would find.
RUBATO = np.cumsum([0.4, 0.5, 0.55, 0.6, 0.62, 0.58, 0.5, 0.45, 0.42, 0.45, 0.5, 0.6, 0.7, 0.66, 0.55, 0.5, 0.48,
                    0.5, 0.52, 0.6])


@pytest.fixture(scope="module")
def waltz(music_file):
    return load_audio(music_file)


def test_given_beats_and_their_bars_replace_the_tracked_ones(waltz):
    given = GivenBeats(tuple(RUBATO), tuple(RUBATO[1:7:3]), source="rubato.txt")
    analysis = analyse(waltz, hints=MusicHints(beats=given))
    np.testing.assert_array_equal(analysis.beats, RUBATO)
    # The bars marked (two), then counted on in bars of their length (3).
    np.testing.assert_array_equal(analysis.downbeats, RUBATO[1::3])
    assert analysis.beats_per_bar == 3 and analysis.tracker == GIVEN_TRACKER
    assert analysis.tempo_bpm == pytest.approx(60 / np.median(np.diff(RUBATO)))


def test_unmarked_given_beats_are_grouped_by_the_music_or_the_meter_given(waltz):
    clicks = tuple(np.arange(0.25, 13.8, 0.5))
    found = analyse(waltz, hints=MusicHints(beats=GivenBeats(clicks)))
    assert found.meter == "3/4" and np.isclose(found.downbeats[0], 0.25)
    told = analyse(waltz, hints=MusicHints(meter="6/8", beats=GivenBeats(clicks)))
    assert told.meter == "6/8" and len(told.downbeats) in (len(clicks) // 2, len(clicks) // 2 + 1)


def test_beats_after_the_music_ends_are_refused(waltz):
    with pytest.raises(AnalysisError, match="after waltz.wav ends in late.txt"):
        analyse(waltz, hints=MusicHints(beats=GivenBeats((1.0, 2.0, 15.0), source="late.txt")))


def test_a_tempo_with_given_beats_or_a_meter_against_their_bars_is_refused_before_any_work():
    marked = GivenBeats((0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5), (0.5, 2.0, 3.5), source="bars.csv")
    with pytest.raises(AnalysisError, match="give the beats or the tempo"):
        MusicHints(tempo_bpm=100.0, beats=marked)
    with pytest.raises(AnalysisError, match="bars in bars.csv have 3 beats but the meter given, 4/4, has 4"):
        MusicHints(meter="4/4", beats=marked)
    assert MusicHints(meter="3/4", beats=marked).beat_grouping == (3, 2)


def test_the_kept_record_gives_the_same_analysis_on_the_same_beats(waltz):
    analysis = analyse(waltz)
    record = analysis_record(analysis)
    again = analysis_from_record(record, GivenBeats(tuple(analysis.beats), tuple(analysis.downbeats)))
    for name in ("beats", "downbeats", "tempo", "loudness", "level_db", "silent", "held", "onset"):
        np.testing.assert_allclose(getattr(again, name), getattr(analysis, name), err_msg=name)
    assert (again.beats_per_bar, again.subdivision, again.duration) == (3, 2, analysis.duration)
    unmarked = analysis_from_record(record, GivenBeats(tuple(analysis.beats)))
    np.testing.assert_array_equal(unmarked.downbeats, analysis.beats[::3])


def test_conducting_to_an_imported_file_strikes_every_beat_within_a_frame(music_file, tmp_path):
    beats_file = tmp_path / "rubato.csv"
    marks = ["", "1", "", "", "2"] + [""] * (len(RUBATO) - 5)
    beats_file.write_text("seconds,bar\n" + "".join(f"{t:.3f},{m}\n" for t, m in zip(RUBATO, marks)))
    given = read_beats(beats_file)
    performance = perform(music_file, hints=MusicHints(beats=given))
    ictus = ictus_times(performance.motion.keypoints)
    misses = [t for t in given.beats if np.min(np.abs(ictus - t)) > 1.0 / FPS + 1e-6]
    assert not misses, f"no ictus within a frame of {misses}"
    assert len(ictus) == len(given.beats)
