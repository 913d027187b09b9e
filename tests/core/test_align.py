"""Aligning a score to a recording of it (core.align), on recordings rendered from scores (core.score_synth)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gm_blender_addon.core.align import AlignmentError, align_score
from gm_blender_addon.core.audio import SAMPLE_RATE, Audio
from gm_blender_addon.core.score_synth import performance_seconds, render_score
from helpers import chorale_score


def _recording(score, silence_s: float = 0.0) -> tuple[Audio, object]:
    samples, alignment = render_score(score)
    samples = np.concatenate([np.zeros(int(silence_s * SAMPLE_RATE), np.float32), samples])
    return Audio(samples, SAMPLE_RATE, Path("played.wav"), ""), alignment


def test_beats_are_found_through_a_tempo_change_after_a_silent_start():
    score = chorale_score(bars=12, bpm=120.0)
    # Played slower than marked, then faster from bar 7, after 2.5 s of silence.
    played = replace(score, tempo_marks=((0.0, 96.0), (24.0, 150.0)))
    audio, _ = _recording(played, silence_s=2.5)
    truth = 2.5 + performance_seconds(played, score.beat_times()[0])
    result = align_score(score, audio)
    error = np.abs(result.beats - truth)
    assert np.median(error) < 0.03 and np.percentile(error, 95) < 0.08
    assert result.confidence > 0.5 and result.transposition == 0
    np.testing.assert_allclose(result.downbeats, truth[::4], atol=0.08)
    assert result.bar_numbers == [str(b) for b in range(1, 13)]


def test_a_transposed_performance_is_followed():
    score = chorale_score(bars=8)
    transposed = replace(score, notes=score.notes.copy())
    transposed.notes["pitch"] += 2
    audio, alignment = _recording(transposed)
    result = align_score(score, audio)
    assert result.transposition == 2
    assert np.median(np.abs(result.beats - alignment.beats)) < 0.03


def test_a_score_of_other_music_is_refused_with_a_message():
    audio, _ = _recording(chorale_score(bars=10, seed=1))
    with pytest.raises(AlignmentError, match="chorale.musicxml does not match played.wav"):
        align_score(chorale_score(bars=10, seed=2), audio)
