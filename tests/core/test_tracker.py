"""The trained tracker: numpy inference equals the torch network it was exported from, the decoders keep a steady
but flexible beat and find the bar, "auto" falls back to librosa without weights, and the CLI writes the analysis."""

import json

import numpy as np
import pytest
import soundfile

from gm_blender_addon import cli
from gm_blender_addon.core import analysis as analysis_module
from gm_blender_addon.core import tracker as tr
from gm_blender_addon.training.tracker_train import f_measure, f_measure_any_level
from helpers import click_music

FPS = analysis_module.ANALYSIS_RATE


def beat_activation(beats, seconds, rng, noise=0.05, peak=0.85):
    t = np.arange(int(seconds * FPS)) / FPS
    peaks = np.exp(-0.5 * ((t[:, None] - np.asarray(beats)[None, :]) / 0.025) ** 2).max(axis=1)
    return np.clip(peak * peaks + noise * rng.random(len(t)), 0, 1)


def test_numpy_network_matches_the_torch_network_it_was_exported_from(tmp_path):
    torch = pytest.importorskip("torch")
    from gm_blender_addon.training import tracker_train

    model = tracker_train.build_model(channels=8, dilations=(1, 4, 16)).eval()
    path = tmp_path / "tiny.npz"
    tracker_train.export(model, path, dilations=(1, 4, 16))
    x = np.random.default_rng(0).random((tr.N_INPUT, 300)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x[None]))[0].numpy()
    np.testing.assert_allclose(tr.TCN.load(path).logits(x), expected, atol=1e-4)


def test_percussion_augmentation_strikes_on_the_beats_loudest_on_downbeats():
    from gm_blender_addon.training.tracker_train import add_percussion

    quiet = np.full((tr.N_BANDS, 400), -60.0, np.float32)
    quiet[:, 5] = 0.0  # the excerpt's own loudest moment
    beats, downbeats = np.arange(20.0, 400.0, 20.0), np.arange(20.0, 400.0, 80.0)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        mixed = add_percussion(quiet, beats, downbeats, rng)
        assert mixed.shape == quiet.shape and mixed.max() == pytest.approx(0.0) and mixed.min() >= -80.0
        level = mixed.mean(axis=0)
        on, between = level[beats.astype(int)], level[(beats - 10).astype(int)]
        assert (on > between + 10.0).all()
        assert level[downbeats.astype(int)].mean() >= level[beats.astype(int)].mean() - 1e-6


def _tiny_corpus(root, rng):
    for split, n in (("train", 2), ("val", 1)):
        (root / split).mkdir(parents=True)
        for k in range(n):
            beats = np.arange(0.5, 20.0, 0.5)
            np.savez(root / split / f"{split}{k}.npz", log_mel=(-80 * rng.random((900, tr.N_BANDS))).astype(np.float16),
                     beats=beats, downbeats=beats[::4])
            (root / split / f"{split}{k}.json").write_text(json.dumps({"subdivision": 2, "beats_per_bar": 4}))


def test_fine_tuning_starts_from_the_given_weights(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from gm_blender_addon.training import tracker_train

    _tiny_corpus(tmp_path / "corpus", np.random.default_rng(0))
    start = tmp_path / "start.npz"
    model = tracker_train.build_model()
    for parameter in model.parameters():
        parameter.data.normal_(0.0, 0.05)
    tracker_train.export(model, start)
    monkeypatch.setattr(tracker_train, "EVAL_EVERY", 1)
    result = tracker_train.train([tmp_path / "corpus"], tmp_path / "tuned.npz", minutes=0.01, log=lambda _: None,
                                 init=start, learning_rate=0.0)
    assert result["steps"] >= 1
    with np.load(start) as before, np.load(tmp_path / "tuned.npz") as after:
        for name in before.files:
            np.testing.assert_allclose(after[name], before[name])


def test_a_file_without_the_network_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(tr.TrackerWeightsError):
        tr.TCN.load(path)


@pytest.mark.parametrize("ibis", [
    np.full(100, 0.5),                        # 120 BPM
    np.full(60, 0.95),                        # 63 BPM: no double tempo
    np.linspace(0.42, 0.85, 90),              # a long ritardando
    np.r_[np.full(30, 0.5), np.full(30, 0.7)],  # a new section at a new tempo
])
def test_beat_decoder_follows_steady_and_changing_tempi(ibis):
    beats = 1.0 + np.cumsum(ibis)
    beats = beats[beats < 50]
    act = beat_activation(beats, 52, np.random.default_rng(1))
    found = tr.decode_beats(act, FPS) / FPS
    assert f_measure(found, beats) >= 0.97


def _beats_with_weaker_peaks_between() -> np.ndarray:
    """Beats at 60 BPM (peaks 0.6) with a weaker peak (0.4) halfway between them, as the network gives for running
    eighth notes."""
    rng = np.random.default_rng(3)
    beats = np.arange(1.0, 40.0, 1.0)
    return np.maximum(beat_activation(beats, 41, rng, peak=0.6), beat_activation(beats + 0.5, 41, rng, peak=0.4))


def _tempo_head_around(bpm: float) -> np.ndarray:
    """A tempo-head distribution over `periods(FPS)` sure of `bpm`."""
    taus = tr.periods(FPS)
    bump = np.exp(-0.5 * (np.log(taus / (60.0 * FPS / bpm)) / 0.05) ** 2)
    return bump / bump.sum()


def _bpm(beat_frames: np.ndarray) -> float:
    return 60.0 * FPS / float(np.median(np.diff(beat_frames)))


@pytest.mark.parametrize("favourite_bpm", [60.0, 120.0])
def test_beat_decoder_lets_the_tempo_head_settle_a_weak_activation_between_the_beats(favourite_bpm):
    """With beats and weaker peaks between them, the tempo head's favourite decides between 60 and 120 BPM."""
    other_bpm = 120.0 if favourite_bpm == 60.0 else 60.0
    head = 0.8 * _tempo_head_around(favourite_bpm) + 0.2 * _tempo_head_around(other_bpm)
    assert _bpm(tr.decode_beats(_beats_with_weaker_peaks_between(), FPS, head)) == pytest.approx(favourite_bpm,
                                                                                                 rel=0.03)


@pytest.mark.parametrize("told_bpm, head_bpm", [(60.0, 120.0), (120.0, 60.0)])
def test_a_given_tempo_overrules_the_tempo_head(told_bpm, head_bpm):
    """The set-up above with the tempo head sure of the other level: the tempo the user gives wins."""
    act, head = _beats_with_weaker_peaks_between(), _tempo_head_around(head_bpm)
    assert _bpm(tr.decode_beats(act, FPS, head)) == pytest.approx(head_bpm, rel=0.03)
    assert _bpm(tr.decode_beats(act, FPS, head, tempo_bpm=told_bpm)) == pytest.approx(told_bpm, rel=0.03)


def test_a_given_tempo_still_follows_a_ritardando():
    """Told the opening tempo, the decoder follows a slowing by a quarter instead of holding to the tempo given."""
    beats = 1.0 + np.cumsum(np.linspace(0.5, 0.67, 80))
    act = beat_activation(beats, beats[-1] + 2, np.random.default_rng(4))
    found = tr.decode_beats(act, FPS, tempo_bpm=120.0) / FPS
    assert f_measure(found, beats) >= 0.97


def test_beat_decoder_bridges_a_missing_beat_and_ignores_the_silence_around_the_music():
    beats = np.arange(3.0, 30.0, 0.6)
    act = beat_activation(np.delete(beats, [10, 11]), 34, np.random.default_rng(2), noise=0.0)
    found = tr.decode_beats(act, FPS) / FPS
    assert f_measure(found, beats) >= 0.95
    assert found.min() > 2.8 and found.max() < 30.2


def test_beats_stop_where_the_sound_dies_away_but_go_on_through_a_held_chord():
    """Weak peaks on the pulse before the music and after its last strong beat: those in the quiet lead-in and in the
    reverb after the sound has fallen are dropped, those while a held chord still sounds are kept."""
    rng = np.random.default_rng(4)
    strong, weak = np.arange(3.0, 20.0, 0.5), np.r_[np.arange(1.5, 3.0, 0.5), np.arange(20.0, 24.0, 0.5)]
    beat = np.maximum(beat_activation(strong, 26, rng, noise=0.02),
                      beat_activation(weak, 26, rng, peak=0.25, noise=0.0))
    t = np.arange(len(beat)) / FPS
    level_db = np.where((t > 2.75) & (t < 21.25), -6.0, -30.0)  # the chord rings until 21.25 s
    logits = np.zeros((len(tr.HEADS) + len(tr.periods(FPS)), len(beat)), np.float32)
    logits[0] = np.log(beat + 1e-6) - np.log(1 - beat + 1e-6)
    logits[1:3] = -4.0
    everything = tr.decode(logits, FPS).frames / FPS
    assert everything.min() < 2.1 and everything.max() > 23.4  # what the pulse alone gives
    found = tr.decode(logits, FPS, level_db=level_db).frames / FPS
    assert f_measure(found, np.r_[strong, 20.0, 20.5, 21.0]) >= 0.97
    assert found.min() > 2.9 and 20.9 < found.max() < 21.1


def test_sub_frame_refinement_stays_within_half_a_frame_of_the_window_peak():
    """The window (frames 3-7 around frame 5) peaks at its edge while the activation still rises beyond it: the
    parabola through frames 6-8 has its vertex frames away, but the beat may only move half a frame past frame 7."""
    act = np.array([0.0, 0.0, 0.0, 0.1, 0.2, 0.1, 0.0, 0.5, 0.9, 1.0, 1.0, 1.0])
    assert 7.0 <= tr._refine(act, np.array([5.0]))[0] <= 7.5


@pytest.mark.parametrize("per_bar, phase", [(2, 1), (3, 0), (4, 2)])
def test_bar_decoder_finds_meter_and_phase(per_bar, phase):
    rng = np.random.default_rng(per_bar)
    frames = np.round(np.arange(1.0, 40.0, 0.5) * FPS)
    down = np.full(int(41 * FPS), 0.05)
    truth = np.arange(len(frames))[phase::per_bar]
    down[frames[truth].astype(int)] = 0.8
    down += 0.15 * rng.random(len(down))
    starts, found = tr.decode_bars(frames, np.clip(down, 0, 1))
    assert found == per_bar
    np.testing.assert_array_equal(starts, truth)


def test_bar_decoder_places_the_bar_where_the_accents_are_when_the_network_hears_half_bars():
    """Downbeat activation nearly as strong on beat 3 as on beat 1 (the network's 4/4 ↔ 2/4 confusion), and the
    harmony changing on beat 1 and held through beat 3: the accents settle the meter and the phase."""
    rng = np.random.default_rng(0)
    frames = np.round(np.arange(1.0, 40.0, 0.5) * FPS)
    down = np.full(int(41 * FPS), 0.1)
    index = np.arange(len(frames))
    position = (index - 1) % 4  # bars of 4 whose first downbeat is beat index 1
    down[frames[position == 0].astype(int)] = 0.6
    down[frames[position == 2].astype(int)] = 0.45
    accents = np.array([1.5, -0.25, -1.0, -0.25])[position] + 0.2 * rng.standard_normal(len(frames))
    assert tr.decode_bars(frames, down)[1] == 2
    starts, found = tr.decode_bars(frames, down, accents)
    assert found == 4
    np.testing.assert_array_equal(starts, index[1::4])


def test_a_given_meter_leaves_the_bar_decoder_only_the_bar_lines_to_find():
    """The half-bar confusion above, without accents, read as 2 beats to the bar; told it is 4, the decoder puts the
    bar lines on the stronger of the two half-bar candidates."""
    frames = np.round(np.arange(1.0, 40.0, 0.5) * FPS)
    down = np.full(int(41 * FPS), 0.1)
    index = np.arange(len(frames))
    position = (index - 1) % 4
    down[frames[position == 0].astype(int)] = 0.6
    down[frames[position == 2].astype(int)] = 0.45
    assert tr.decode_bars(frames, down)[1] == 2
    starts, found = tr.decode_bars(frames, down, meters=(4,))
    assert found == 4
    np.testing.assert_array_equal(starts, index[1::4])


def _march_for(tracker: str, folder):
    """16 s of a 4/4 click track at 120 BPM, loaded as the add-on loads audio; skips the trained tracker when its
    weights are not installed."""
    if tracker == "tcn" and tr.shipped_weights() is None:
        pytest.skip("no tracker weights installed")
    from gm_blender_addon.core.audio import load_audio

    soundfile.write(str(folder / "march.wav"), click_music(16.0, 120.0, 4), 22050)
    return load_audio(folder / "march.wav")


@pytest.mark.parametrize("tracker", ["tcn", "librosa"])
@pytest.mark.parametrize("meter, per_bar, subdivision", [("2/4", 2, 2), ("6/8", 2, 3), ("2/2", 2, 2)])
def test_a_given_meter_replaces_the_detected_one(tmp_path, tracker, meter, per_bar, subdivision):
    """A 4/4 click track told it is in 2: bars of two beats whose lines include every real bar line."""
    audio = _march_for(tracker, tmp_path)
    detected = analysis_module.analyse(audio, tracker=tracker)
    told = analysis_module.analyse(audio, tracker=tracker, hints=analysis_module.MusicHints(meter=meter))
    assert detected.beats_per_bar == 4
    assert (told.beats_per_bar, told.subdivision) == (per_bar, subdivision)
    np.testing.assert_array_equal(told.beats, detected.beats)
    assert np.diff(np.searchsorted(told.beats, told.downbeats)).tolist() == [2] * (len(told.downbeats) - 1)
    assert f_measure(told.downbeats, detected.downbeats) > 0.6  # recall 1 of the real bar lines, precision 1/2


@pytest.mark.parametrize("tracker", ["tcn", "librosa"])
def test_a_given_tempo_halves_a_beat_tracked_at_double_speed(tmp_path, tracker):
    """Clicks at 120 BPM told 60: every other click is a beat."""
    audio = _march_for(tracker, tmp_path)
    detected = analysis_module.analyse(audio, tracker=tracker)
    told = analysis_module.analyse(audio, tracker=tracker, hints=analysis_module.MusicHints(tempo_bpm=60.0))
    assert detected.tempo_bpm == pytest.approx(120.0, rel=0.03)
    assert told.tempo_bpm == pytest.approx(60.0, rel=0.03)
    assert f_measure(told.beats, detected.beats[::2]) > 0.95 or f_measure(told.beats, detected.beats[1::2]) > 0.95


@pytest.mark.parametrize("bpm", [20.0, 400.0])
def test_a_tempo_out_of_range_is_refused_before_any_audio_is_read(bpm):
    with pytest.raises(analysis_module.AnalysisError, match=rf"{bpm:g} BPM.*40 to 220 BPM"):
        analysis_module.MusicHints(tempo_bpm=bpm)


def test_an_unsupported_meter_is_refused_with_the_choices():
    with pytest.raises(analysis_module.AnalysisError, match=r"5/4.*2/4, 3/4, 4/4, 6/8, 9/8, 12/8"):
        analysis_module.parse_meter("5/4")


def test_bar_decoder_reads_compound_two_bar_phrases_as_6_8_not_12_8():
    """A 6/8 whose every other bar line is a little weaker (2-bar phrases): 12/8 in a simple reading, 6/8 once the
    beats are known to be compound."""
    frames = np.round(np.arange(1.0, 40.0, 0.6) * FPS)
    down = np.full(int(41 * FPS), 0.1)
    position = np.arange(len(frames)) % 4
    down[frames[position == 0].astype(int)] = 0.6
    down[frames[position == 2].astype(int)] = 0.3
    assert tr.decode_bars(frames, down)[1] == 4
    starts, found = tr.decode_bars(frames, down, compound=True)
    assert found == 2
    np.testing.assert_array_equal(starts, np.arange(len(frames))[::2])


def test_auto_picks_the_trained_tracker_only_when_installed_and_approved(monkeypatch, tmp_path):
    monkeypatch.setattr(analysis_module, "shipped_weights", lambda: tmp_path / "tracker.npz")
    monkeypatch.setattr(analysis_module, "approved_as_default", lambda: True)
    assert analysis_module.resolve_tracker("auto") == "tcn"
    monkeypatch.setattr(analysis_module, "approved_as_default", lambda: False)
    assert analysis_module.resolve_tracker("auto") == "librosa"
    monkeypatch.setattr(analysis_module, "approved_as_default", lambda: True)
    monkeypatch.setattr(analysis_module, "shipped_weights", lambda: None)
    assert analysis_module.resolve_tracker("auto") == "librosa"
    assert analysis_module.resolve_tracker("tcn") == "tcn"


def test_without_weights_the_trained_tracker_is_refused(monkeypatch):
    monkeypatch.setattr(tr, "shipped_weights", lambda: None)
    with pytest.raises(tr.TrackerWeightsError):
        tr.TCNTracker()
    assert "tcn" in analysis_module.TRACKERS and "librosa" in analysis_module.TRACKERS


def test_shipped_weights_are_listed_small_the_default_and_read_the_demo():
    path = tr.shipped_weights()
    if path is None:
        pytest.skip("no tracker weights installed")
    assert path.stat().st_size < 2_000_000
    assert tr.approved_as_default() and analysis_module.resolve_tracker("auto") == "tcn"
    from gm_blender_addon.core.audio import load_audio
    from gm_blender_addon.resources import demo_audio_file

    labels = json.loads(demo_audio_file().with_name("demo_labels.json").read_text())
    result = analysis_module.analyse(load_audio(demo_audio_file()), tracker="tcn")
    assert result.tracker == "tcn"
    # The demo's work is held out of training; the previous weights alone read it as 12/8, and 6/8 only with the
    # beat accents in the bar decoder.
    assert result.meter == labels["meter"] == "6/8"
    assert f_measure(result.beats, labels["beats"]) >= 0.9
    assert f_measure(result.downbeats, labels["downbeats"]) >= 0.8


def test_analyze_command_writes_beats_downbeats_meter_and_tempo(tmp_path):
    audio = tmp_path / "march.wav"
    soundfile.write(str(audio), click_music(12.0, 120.0, 4), 22050)
    out = tmp_path / "out" / "march.json"
    assert cli.main(["analyze", str(audio), "--json", str(out), "--tracker", "librosa"]) == 0
    result = json.loads(out.read_text())
    assert {"beats", "downbeats", "beats_per_bar", "tempo"} <= set(result)
    assert result["beats_per_bar"] == 4 and result["tempo"] == pytest.approx(120, rel=0.04)
    assert set(result["downbeats"]) <= set(result["beats"])


def test_analyze_command_takes_a_given_meter_and_tempo(tmp_path, capsys):
    audio = tmp_path / "march.wav"
    soundfile.write(str(audio), click_music(12.0, 120.0, 4), 22050)
    assert cli.main(["analyze", str(audio), "--tracker", "librosa", "--meter", "2/2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["beats_per_bar"] == 2 and result["meter"] == "2/4"
    assert cli.main(["analyze", str(audio), "--tracker", "librosa", "--tempo", "60"]) == 0
    assert json.loads(capsys.readouterr().out)["tempo"] == pytest.approx(60.0, rel=0.03)
    for bad, named in ((["--meter", "5/4"], "5/4"), (["--tempo", "20"], "20 BPM"), (["--tempo", "fast"], "fast")):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["analyze", str(audio), *bad])
        assert exit_info.value.code == 2 and named in capsys.readouterr().err


def test_analyze_command_reports_bad_input_and_bad_tracker(tmp_path, capsys):
    assert cli.main(["analyze", str(tmp_path / "missing.wav")]) == 1
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["analyze", str(tmp_path / "missing.wav"), "--tracker", "nope"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("tapped, level", [
    (np.arange(1.0, 30.0, 0.5), "reference"),
    (np.arange(1.0, 29.75, 0.25), "double"),
    (np.arange(1.0, 30.0, 1.0), "half_odd"),
    (np.arange(1.5, 30.0, 1.0), "half_even"),
    (np.arange(1.25, 29.75, 0.5), "off_beat"),
])
def test_beats_at_another_metrical_level_score_fully_at_that_level_and_poorly_at_the_reference(tapped, level):
    reference = np.arange(1.0, 30.0, 0.5)
    assert f_measure_any_level(tapped + 0.03, reference) == (pytest.approx(1.0), level)
    at_reference = f_measure(tapped, reference)
    assert at_reference == pytest.approx(1.0) if level == "reference" else at_reference < 0.7
