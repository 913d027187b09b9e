"""Beat markers read back as beats and bars, taps snapped to onsets and put among the beats (no bpy)."""

import numpy as np
import pytest

from gm_blender_addon.core.analysis import AnalysisError, beat_positions
from gm_blender_addon.core.beat_markers import (beats_from_markers, is_beat_marker, marker_name, snap_to_onsets,
                                                with_taps)


def test_generated_names_and_the_names_blender_gives_new_markers_are_beats():
    assert [marker_name(*p) for p in [(0, 3), (1, 1), (1, 2), (12, 4)]] == ["0.3", "Bar 1", "1.2", "12.4"]
    assert all(is_beat_marker(n) for n in ["Bar 7", "3.2", "F_120", "F_07", ""])
    assert not any(is_beat_marker(n) for n in ["Chorus", "Bar", "bar 3", "F_", "Camera"])


def test_markers_give_the_beats_and_bars_they_mark():
    markers = [("Bar 1", 1.0), ("1.2", 1.5), ("F_61", 2.0), ("Chorus", 2.2), ("Bar 2", 2.5), ("2.2", 2.5),
               ("0.4", 0.5), ("2.3", 99.0)]
    given = beats_from_markers(markers, duration=10.0)
    # The user's own marker and the one past the music are not beats; two markers on one beat count once.
    assert given.beats == (0.5, 1.0, 1.5, 2.0, 2.5) and given.downbeats == (1.0, 2.5)


def test_fewer_than_two_beat_markers_say_what_to_do():
    with pytest.raises(AnalysisError, match="at least two.*Generate first"):
        beats_from_markers([("Bar 1", 1.0), ("Intro", 2.0)], duration=10.0)


def test_taps_snap_to_the_nearest_clear_onset_within_the_window():
    rate = 100.0
    onset = np.zeros(1000)
    onset[[100, 205, 297, 308, 500, 507]] = [1.0, 1.0, 0.2, 1.0, 1.0, 0.9]
    taps = np.array([1.04, 2.0, 3.0, 4.0, 5.04])
    snapped = snap_to_onsets(taps, onset, rate, window=0.1)
    # At 3.0 a ripple (2.97) is nearer than the onset (3.08) but too weak to take the tap; 4.0 has no onset near.
    np.testing.assert_allclose(snapped, [1.0, 2.05, 3.08, 4.0, 5.07])


def test_two_taps_on_one_onset_count_once():
    onset = np.zeros(300)
    onset[100] = 1.0
    np.testing.assert_allclose(snap_to_onsets(np.array([0.97, 1.03, 2.0]), onset, 100.0, 0.1), [1.0, 2.0])


def test_taps_replace_the_beats_where_they_were_tapped_and_carry_on_the_bars():
    beats = np.arange(0.5, 10.0, 0.5)
    downbeats = beats[1::4]  # a one-beat pickup, then bars of 4
    taps = np.array([3.1, 3.55, 4.1, 4.6, 5.05, 5.6])
    new_beats, new_downbeats = with_taps(beats, downbeats, 4, taps)
    np.testing.assert_allclose(new_beats, [0.5, 1.0, 1.5, 2.0, 2.5, *taps, 6.0, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5])
    # The last beat before the taps (2.5) is beat 4 of bar 1: the first tap is bar 2's downbeat.
    np.testing.assert_allclose(new_downbeats, [1.0, 3.1, 5.05, 7.0, 9.0])
    positions = beat_positions(new_beats, new_downbeats, 4)
    assert [marker_name(*p) for p in positions][:8] == ["0.4", "Bar 1", "1.2", "1.3", "1.4", "Bar 2", "2.2", "2.3"]


def test_taps_on_an_empty_timeline_start_a_bar_and_one_tap_is_not_enough():
    new_beats, new_downbeats = with_taps(np.zeros(0), np.zeros(0), 3, np.array([1.0, 1.5, 2.0, 2.5]))
    np.testing.assert_allclose(new_downbeats, [1.0, 2.5])
    with pytest.raises(AnalysisError, match="tap at least two"):
        with_taps(np.zeros(0), np.zeros(0), 3, np.array([1.0]))
