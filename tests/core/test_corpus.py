"""Corpus builder: licence tiers, splits by opus, sampled performances with fermatas and sections, augmentation,
and one excerpt built end to end with its labels and ConductorMotion100 export."""

import json

import numpy as np
import pytest

from gm_blender_addon.core.motion import FPS
from gm_blender_addon.training import corpus, score_render


@pytest.mark.parametrize("rights, tier", [
    ("", "unstated"),
    (None, "unstated"),
    ("Public Domain (Encoding by MSAC: CC0)", "stated"),
    ("Released to Public Domain in 1998", "stated"),
    ("© 2014, Creative Commons License (CC-BY)", "stated"),
    ("Copyright 2000, John Miller", None),
    ("2010 Michael Scott Cuthbert -- freely distributed under a CC-BY-SA 3.0 license", None),
    ("Copyright 1994, Center for Computer Assisted Research in the Humanities", None),
])
def test_rights_tiers(rights, tier):
    assert corpus.rights_tier(rights) == tier


def test_named_test_works_are_held_out_and_splits_are_stable():
    for group in corpus.TEST_GROUPS:
        assert corpus.split_of(group) == "test"
    assert corpus.split_of("beethoven/opus59no3") == "val"
    assert corpus.split_of("bach/bwv1.6") == corpus.split_of("bach/bwv1.6")
    shares = [corpus.split_of(f"group{i}") for i in range(2000)]
    assert 0.05 < shares.count("test") / 2000 < 0.11


def test_movements_of_one_opus_share_a_group():
    assert corpus._group_of("beethoven/opus18no1/movement3.mxl") == "beethoven/opus18no1"
    assert corpus._group_of("bach/bwv66.6.mxl") == "bach/bwv66.6"


def test_tempo_curve_has_sections_fermatas_and_stays_in_range():
    rng = np.random.default_rng(4)
    points, sections, info = corpus._tempo_curve(1, 40, [(10.5, 0.25)], rng)
    positions = [p for p, _ in points]
    assert positions == sorted(positions)
    multipliers = np.array([m for _, m in points])
    assert multipliers.min() > 0.15 and multipliers.max() < 1.6
    def multiplier(bar_position):
        return np.interp(bar_position, positions, multipliers)

    assert info["fermatas"] >= 1 and multiplier(10.6) < 0.65 * multiplier(10.3)
    assert all(1 < s < 40 for s in sections)


def test_augment_returns_mono_at_the_analysis_rate():
    rng = np.random.default_rng(0)
    stereo = (0.1 * rng.standard_normal((32000, 2))).astype(np.float32)
    mono, params = corpus.augment(stereo, 32000, rng)
    assert mono.ndim == 1 and mono.dtype == np.float32
    assert len(mono) == pytest.approx(22050, abs=2)
    assert np.max(np.abs(mono)) <= 1.0


def test_one_excerpt_end_to_end(tmp_path, monkeypatch):
    # A short CM100 window keeps the test fast; the layout is the same as for 60 s.
    monkeypatch.setattr(corpus, "CM100_SECONDS", 4)
    work = corpus.Work("bach/bwv66.6.mxl", "bach/bwv66.6", "chorale", "", "unstated")
    # The bank inside the pretty_midi wheel: the apt SoundFonts are the corpus recipe's, not the tests'.
    spec = corpus.sample_spec(work, index=0, seed=1, soundfonts=("timgm6mb",))
    split_dir = tmp_path / "test"
    split_dir.mkdir()
    record = corpus.build_excerpt(spec, split_dir, tmp_path / "cm100" / "test", 0, keep_audio=True)

    saved = json.loads((split_dir / "test00000.json").read_text())
    assert saved["meter"] == "4/4" and saved["beats_per_bar"] == 4 and saved["subdivision"] == 2
    assert saved["rights_tier"] == "unstated" and saved["group"] == "bach/bwv66.6"
    data = np.load(split_dir / "test00000.npz")
    beats, downbeats = data["beats"], data["downbeats"]
    assert np.all(np.diff(beats) > 0) and np.isin(downbeats, beats).all()
    assert 0 < beats[0] and beats[-1] < record["duration"]
    n_spectral = 1 + int(record["duration"] * 22050) // 512
    assert data["log_mel"].shape == (n_spectral, 64)
    assert len(data["held"]) == len(data["loudness"]) == int(np.ceil(record["duration"] * FPS))
    assert 0.0 <= data["loudness"].min() and data["loudness"].max() == pytest.approx(1.0)
    assert (split_dir / "test00000.flac").is_file()
    # BWV 66.6 ends on a fermata, which the performance holds.
    assert data["held"].any()

    mel = np.load(tmp_path / "cm100" / "test" / "0" / "mel.npy")
    motion = np.load(tmp_path / "cm100" / "test" / "0" / "motion.npy")
    assert mel.shape == (4 * 90, 128) and mel.dtype == np.float32
    assert motion.shape == (4 * 30, 13, 2) and motion.dtype == np.float32
    assert 0.0 <= mel.min() and mel.max() <= 1.0


@pytest.mark.parametrize("busyness, slow_beat, low, high, median", [
    (2.0, False, 55, 170, 105),  # eighth notes: the whole comfortable range, most near 105
    (6.0, False, 55, 100, 100),  # sixteenth-note triplets: at most 10 notes a second
    (0.5, False, 90, 170, 105),  # half notes: fast enough that the beat is heard
    (3.0, True, 40, 110, 70),    # 6/8 in running eighths
])
def test_listener_tempo_keeps_the_notated_beat_tappable(busyness, slow_beat, low, high, median):
    tempi = [corpus.listener_tempo(busyness, slow_beat, np.random.default_rng(i)) for i in range(300)]
    assert low <= min(tempi) and max(tempi) <= high
    assert np.median(tempi) == pytest.approx(median, rel=0.06)
    assert max(tempi) / min(tempi) > 1.4  # still a spread of tempi


def test_sampled_voicings_vary_soundfonts_sections_and_percussion():
    voicings = [corpus.sample_voicing(np.random.default_rng(i), tuple(corpus.SOUNDFONT_WEIGHTS)) for i in range(100)]
    assert {f for v in voicings for f in v.soundfonts} == set(corpus.SOUNDFONT_WEIGHTS)
    assert {v.section_players for v in voicings} == {1, 2, 3}
    assert {v.percussion for v in voicings} == {None, *score_render.PERCUSSION_STYLES}
    assert all(0.005 <= v.entrance_spread_s <= 0.02 for v in voicings)
