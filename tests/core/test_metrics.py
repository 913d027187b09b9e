"""Metrics: parity with the official RDE/SCE values, and synthetic sanity checks that need no reference files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gm_blender_addon.core import metrics

REPO_ROOT = Path(__file__).resolve().parents[2]
PARITY = REPO_ROOT.parent / "shared" / "reference" / "virtualconductor" / "parity"


def _wave_motion(frames: int = 900, period: float = 15.0, phase: float = 0.0, seed: int = 0) -> np.ndarray:
    """A still conductor whose wrists swing up and down; speed minima every `period` frames."""
    rng = np.random.default_rng(seed)
    base = 0.3 + 0.4 * rng.random((13, 2))
    motion = np.repeat(base[None], frames, axis=0)
    t = np.arange(frames)
    # Backward differences of cos(π(t + phase + ½)/P) vanish exactly at t = kP − phase: strict speed minima there.
    swing = 0.05 * np.cos(np.pi * (t + phase + 0.5) / period)
    motion[:, 9, 1] += swing
    motion[:, 10, 1] += swing
    return motion


# ---------------------------------------------------------------------------------------------------------------
# Official values
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def official():
    if not PARITY.exists():
        pytest.skip(f"reference files not available: {PARITY}")
    values = json.loads((PARITY / "metrics_official.json").read_text())
    return {
        "RDE": values["RDE"],
        "SCE": values["SCE"],
        "real": np.load(PARITY / "motion_official.npy"),
        "fake": np.load(PARITY / "motion_perturbed.npy"),
    }


def test_rde_matches_official(official):
    value = metrics.rde(official["real"], official["fake"])
    print(f"RDE ours {value:.9g} official {official['RDE']:.9g} |Δ| {abs(value - official['RDE']):.3g}")
    assert value == pytest.approx(official["RDE"], abs=1e-3)


def test_sce_matches_official(official):
    value = metrics.sce(official["real"], official["fake"])
    print(f"SCE ours {value:.9g} official {official['SCE']:.9g} |Δ| {abs(value - official['SCE']):.3g}")
    assert value == pytest.approx(official["SCE"], abs=1e-3)


def test_batched_inputs_match_single(official):
    real, fake = official["real"], official["fake"]
    assert metrics.rde(np.stack([real, real]), [fake, fake]) == pytest.approx(metrics.rde(real, fake))
    assert metrics.sdp(real, fake) == pytest.approx(60.0, rel=1e-4)  # the perturbation scales motion by 0.6


# ---------------------------------------------------------------------------------------------------------------
# Synthetic sanity checks
# ---------------------------------------------------------------------------------------------------------------


def test_identical_motions_score_zero():
    motion = _wave_motion(seed=1) + 0.01 * np.random.default_rng(2).standard_normal((900, 13, 2))
    assert metrics.mse(motion, motion) == 0.0
    assert metrics.rde(motion, motion) == 0.0
    assert metrics.sce(motion, motion) == 0.0
    assert metrics.sdp(motion, motion) == pytest.approx(100.0)
    assert metrics.sync_error(motion, motion, features=lambda m: m.reshape(len(m), -1).T) == 0.0


def test_different_motions_score_positive():
    real = _wave_motion(period=15)
    fake = _wave_motion(period=40)
    assert metrics.mse(real, fake) > 0
    assert metrics.rde(real, fake) > 0
    assert metrics.sce(real, fake) > 0
    still = np.repeat(real[:1], len(real), axis=0)
    assert metrics.sdp(real, still) == pytest.approx(0.0, abs=1e-6)
    assert metrics.mse(real, real + 0.1) == pytest.approx(0.01)


def test_input_validation():
    with pytest.raises(ValueError, match="256 frames"):
        metrics.rde(_wave_motion(frames=200), _wave_motion(frames=200))
    with pytest.raises(ValueError, match="pairwise"):
        metrics.mse([_wave_motion()], [_wave_motion(), _wave_motion()])
    with pytest.raises(ValueError, match=r"\(T, 13, 2\)"):
        metrics.mse(np.zeros((10, 17, 2)), np.zeros((10, 17, 2)))


def test_w_distance():
    assert metrics.w_distance([1.0, 2.0], [0.5, 0.5]) == pytest.approx(1.0)
    assert metrics.w_distance(np.ones((3, 1)), np.ones((3, 1))) == 0.0


def test_fgd_identical_is_zero_and_shift_adds_squared_distance():
    rng = np.random.default_rng(0)
    real = [rng.standard_normal((64, 30)) for _ in range(6)]  # 384 observations of a 30-d vector
    assert metrics.fgd(real, real) == pytest.approx(0.0, abs=1e-6)
    # Equal covariances: FGD = ‖μ₁ − μ₂‖² = 30 · 0.5².
    shifted = [f + 0.5 for f in real]
    assert metrics.fgd(real, shifted) == pytest.approx(30 * 0.25, rel=1e-6)
    other = [rng.standard_normal((64, 30)) * 2.0 for _ in range(6)]
    assert metrics.fgd(real, other) > 1.0
    assert metrics.fgd(real, real, per_window=True) == pytest.approx(0.0, abs=1e-6)
    assert metrics.feature_distance(real, real) == 0.0
    assert metrics.feature_distance(real, shifted) == pytest.approx(30 * 0.5)


def test_diversity():
    rng = np.random.default_rng(0)
    same = [np.ones((64, 20))] * 5
    assert metrics.diversity(same, seed=0) == 0.0
    varied = [rng.standard_normal((64, 20)) for _ in range(5)]
    assert metrics.diversity(varied, seed=0) > 0.0
    assert metrics.diversity(varied, seed=1) == metrics.diversity(varied, seed=1)


def test_motion_beats_are_speed_minima():
    motion = _wave_motion(period=15)
    beats = metrics.motion_beat_frames(motion)
    assert np.array_equal(beats, np.arange(15, 900 - 10, 15))


def test_beat_consistency_on_and_off_the_beat():
    motion = _wave_motion(period=20)  # speed minima every 20 frames (90 BPM)
    beat_frames = np.arange(20, 880, 20)
    on_beat = metrics.beat_consistency(motion, beat_frames / 30.0)
    assert on_beat == pytest.approx(1.0)
    assert metrics.beat_consistency(motion, beat_frames, unit="frames") == pytest.approx(on_beat)
    slightly_late = metrics.beat_consistency(motion, (beat_frames + 3) / 30.0)
    off_beat = metrics.beat_consistency(motion, (beat_frames + 10) / 30.0)
    assert off_beat < 0.01 < slightly_late < on_beat
    assert slightly_late == pytest.approx(np.exp(-0.5))  # 3 frames = one σ
    assert np.isnan(metrics.beat_consistency(motion, []))
    still = np.repeat(motion[:1], 900, axis=0)
    assert metrics.beat_consistency(still, beat_frames / 30.0) == 0.0  # no motion beats at all


def test_beat_consistency_from_mel_and_official_rate_mix_up():
    # A 120 BPM click track as a mel image: onsets every 45 mel frames = every 15 motion frames.
    mel = np.full((2700, 128), 0.1)
    for start in range(45, 2700, 45):
        mel[start : start + 4] = 0.9
    beats = metrics.music_beat_frames_90hz(mel)
    assert np.all(np.abs(np.diff(beats) - 45) <= 1)
    assert np.allclose(metrics.music_beat_times(mel), beats / 90)

    motion = _wave_motion(period=15, phase=-(beats[0] % 45) / 3.0)  # speed minima at the tracked beats
    fixed = metrics.beat_consistency_from_mel(motion, mel)
    official = metrics.beat_consistency_official(motion, mel)
    assert fixed > 0.95
    # The official variant reads 90 Hz beat indices as 30 fps frames: beats land at 3× their time, and only the
    # first third of the motion is even covered.
    assert official < 0.5


def test_motion_features_fn_with_an_untrained_encoder():
    torch = pytest.importorskip("torch")
    from gm_blender_addon.generators.nets import MotionEncoder

    torch.manual_seed(0)
    features = metrics.motion_features_fn(MotionEncoder())
    motion = _wave_motion(frames=120)
    f = features(motion)
    assert f.shape == (64, 120)
    assert metrics.sync_error(motion, motion, features) == 0.0
    assert metrics.sync_error(motion, motion + 0.05, features) > 0.0
