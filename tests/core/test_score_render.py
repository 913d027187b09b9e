"""Score renderer: labels follow the score and the tempo map, beats are audible, and the
committed demo labels are what the renderer computes."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from gm_blender_addon.training import score_render

DEMO_DIR = Path(__file__).resolve().parents[2] / "gm_blender_addon" / "data" / "demo"


@pytest.fixture(scope="module")
def chorale():
    # BWV 66.6 opens with a one-beat pickup, which the labels must keep.
    return score_render.render_excerpt(
        "bach/bwv66.6", 0, seconds=6, tempo_bpm=90, ritardando=0.25, lead_in=0.5,
        seed=3, sample_rate=22050)


def _assert_downbeats_are_beats(beats, downbeats):
    gaps = np.min(np.abs(np.subtract.outer(downbeats, beats)), axis=1)
    assert np.all(gaps < 1e-9)


def test_chorale_labels_follow_bars_and_ritardando(chorale):
    beats, downbeats = chorale.beats, chorale.downbeats
    assert chorale.meter == "4/4" and chorale.beats_per_bar == 4
    assert chorale.bars[0] == 0
    assert np.all(np.diff(beats) > 0)
    _assert_downbeats_are_beats(beats, downbeats)
    assert beats[0] == pytest.approx(0.5)
    assert downbeats[0] == pytest.approx(beats[1])  # after the pickup beat
    assert np.all(np.diff(np.searchsorted(beats, downbeats)) == 4)

    steps = np.diff(beats)
    assert steps[:4] == pytest.approx(60 / 90, abs=1e-6)  # before the ritardando
    assert np.all(np.diff(steps[-3:]) > 0)  # the last bar slows down
    assert steps[-1] < 60 / (90 * 0.75)


def test_tempo_curve_sets_beat_spacing():
    perf = score_render.plan_excerpt(
        "bach/bwv66.6", 1, 3, tempo_bpm=120, tempo_curve=[(1, 1.0), (3, 1.0), (3, 0.5), (9, 0.5)],
        lead_in=0.0)
    steps = np.diff(perf.labels.beats)
    assert steps[:8] == pytest.approx(0.5, abs=1e-6)  # bars 1-2 at 120 BPM
    assert steps[8:] == pytest.approx(1.0, abs=1e-6)  # bar 3 at half speed
    assert perf.labels.downbeats == pytest.approx([0.0, 2.0, 4.0], abs=1e-6)


def test_compound_meter_counts_dotted_quarter_beats():
    perf = score_render.plan_excerpt(
        "johnson_j_r/lift_every_voice", 0, 5, tempo_bpm=80, ritardando=0.0, lead_in=1.0)
    labels = perf.labels
    assert labels.meter == "6/8" and labels.beats_per_bar == 2
    assert np.diff(labels.beats) == pytest.approx(0.75, abs=1e-6)
    # The pickup is one dotted-quarter beat, then a downbeat every second beat.
    assert labels.beats[0] == pytest.approx(1.0)
    assert labels.downbeats[0] == pytest.approx(1.75)
    assert np.diff(labels.downbeats) == pytest.approx(1.5, abs=1e-6)


def test_score_dynamics_follow_the_marks():
    labels = score_render.plan_excerpt(
        "weber/concertino_clarinet", 1, 6, tempo_bpm=60, ritardando=0.0, lead_in=0.0).labels
    level = np.interp(labels.downbeats, labels.loudness.times, labels.loudness.levels)
    assert level[0] == pytest.approx(0.85, abs=0.02)  # ff
    assert level[4] == pytest.approx(0.32, abs=0.02)  # subito p in bar 4


def _spectral_flux(mono, n_fft=1024, hop=256):
    frames = np.lib.stride_tricks.sliding_window_view(mono, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.maximum(np.diff(mag, axis=0), 0).sum(axis=1)
    times = (np.arange(len(flux)) + 1) * hop / 22050 + n_fft / 2 / 22050
    return times, flux


def test_chorale_audio_is_loud_and_attacks_on_the_beats(chorale):
    audio = chorale.audio
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] == 2
    assert np.max(np.abs(audio)) == pytest.approx(10 ** (-1 / 20), abs=1e-3)
    assert chorale.duration > chorale.beats[-1] + 0.5
    music = audio[int(chorale.beats[0] * 22050):int(chorale.beats[-1] * 22050)].mean(axis=1)
    assert 20 * np.log10(np.sqrt(np.mean(music**2))) > -30

    # Attacks cluster on the labelled beats rather than a sixteenth later.
    times, flux = _spectral_flux(audio.mean(axis=1))
    sixteenth = np.diff(chorale.beats).mean() / 4

    def peaks(shift):
        return np.array([flux[(times > b + shift - 0.03) & (times < b + shift + 0.08)].max()
                         for b in chorale.beats[:-1]])

    on_beat, off_beat = peaks(0.0), peaks(sixteenth)
    assert np.mean(on_beat > off_beat) >= 0.9
    assert np.median(on_beat) > 1.5 * np.median(off_beat)


def _assert_same(committed, expected, path="labels"):
    if isinstance(expected, dict):
        assert committed.keys() == expected.keys(), path
        for key in expected:
            _assert_same(committed[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(committed) == len(expected), path
        for i, (c, e) in enumerate(zip(committed, expected)):
            _assert_same(c, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert committed == pytest.approx(expected, abs=1e-5), path
    else:
        assert committed == expected, path


def test_committed_demo_matches_the_renderer():
    committed = json.loads((DEMO_DIR / "demo_labels.json").read_text())
    expected = json.loads(json.dumps(score_render.demo_labels()))
    _assert_same(committed, expected)

    assert 20 <= committed["duration"] <= 40
    assert committed["beats_per_bar"] == 2 and committed["meter"] == "6/8"
    _assert_downbeats_are_beats(np.array(committed["beats"]), np.array(committed["downbeats"]))
    ogg = DEMO_DIR / "demo.ogg"
    info = sf.info(ogg)
    assert info.duration == pytest.approx(committed["duration"], abs=0.05)
    assert info.samplerate == committed["sample_rate"]
    assert ogg.stat().st_size < 600_000


def test_cli_writes_wav_and_labels(tmp_path):
    out = tmp_path / "chorale.wav"
    score_render.main(["--work", "bach/bwv66.6", "--start-bar", "1", "--bars", "2",
                       "--seed", "5", "--out", str(out)])
    labels = json.loads(out.with_suffix(".json").read_text())
    audio, rate = sf.read(out)
    assert rate == labels["sample_rate"] == 22050
    assert len(audio) / rate == pytest.approx(labels["duration"], abs=1e-3)
    assert labels["bars"] == [1, 2] and len(labels["beats"]) == 8


@pytest.mark.parametrize("style", score_render.PERCUSSION_STYLES)
def test_percussion_plays_on_the_beat_grid(style):
    voicing = score_render.Voicing(percussion=style)
    perf = score_render.plan_excerpt("bach/bwv66.6", 1, 8, tempo_bpm=100, ritardando=0.0, seed=4,
                                     dynamics=[(1.0, 0.9), (9.0, 0.9)], voicing=voicing)
    drums = [c for c in perf.channels if c.drums]
    assert len(drums) == 1 and len(drums[0].notes)
    beats, onsets = perf.labels.beats, drums[0].notes[:, 0]
    sixteenth = np.diff(beats).mean() / 4
    # Every stroke lies on the grid of sixteenths, triplet eighths or thirty-seconds from a beat, give or take the
    # player's timing, and most beats have one.
    grid = np.concatenate([beats + k * sixteenth / 2 for k in range(8)] +
                          [beats + k * np.diff(beats).mean() / 3 for k in (1, 2)])
    assert np.all(np.min(np.abs(onsets[:, None] - grid[None]), axis=1) < 0.02)
    covered = np.min(np.abs(beats[:, None] - onsets[None]), axis=1) < 0.02
    assert covered.mean() >= (0.15 if style == "accents" else 0.9)


def test_a_section_of_players_stays_on_the_beat():
    voicing = score_render.Voicing(section_players=3, detune_cents=10.0, player_spread_s=0.015,
                                   soundfonts=("timgm6mb",))
    rendered_perf = score_render.plan_excerpt("bach/bwv66.6", 0, seconds=6, tempo_bpm=90, ritardando=0.25,
                                              lead_in=0.5, seed=3, voicing=voicing)
    strings = [c for c in rendered_perf.channels if c.program == score_render.STRINGS]
    assert strings and all(c.players == 3 for c in strings)
    audio = score_render.synthesize(rendered_perf, 22050)
    times, flux = _spectral_flux(audio.mean(axis=1))
    beats = rendered_perf.labels.beats
    sixteenth = np.diff(beats).mean() / 4

    def peaks(shift):
        return np.array([flux[(times > b + shift - 0.03) & (times < b + shift + 0.08)].max() for b in beats[:-1]])

    # Several players a few milliseconds apart soften each attack, but it still falls on the beat, not after it.
    on_beat, late = peaks(0.0), peaks(sixteenth)
    assert np.mean(on_beat > late) >= 0.75 and np.median(on_beat) > 1.25 * np.median(late)


def test_score_staccato_shortens_notes():
    # The quartet's opening bars mark staccato throughout.
    legato = score_render.plan_excerpt("beethoven/opus18no1/movement1", 1, 30, tempo_bpm=100, seed=7)
    marked = score_render.plan_excerpt("beethoven/opus18no1/movement1", 1, 30, tempo_bpm=100, seed=7,
                                       voicing=score_render.Voicing(score_articulation=True))

    def sounding(perf):
        return sum(float(np.sum(c.notes[:, 1] - c.notes[:, 0])) for c in perf.channels)

    assert np.array_equal(legato.labels.beats, marked.labels.beats)
    assert sounding(marked) < 0.95 * sounding(legato)
