"""Comparing a generated and a captured motion: alignment, the shared metrics, the tables and the plots."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from gm_blender_addon.core import compare as cmp
from gm_blender_addon.core import metrics
from gm_blender_addon.core.motion import Motion
from gm_blender_addon.core.motiongram import motiongram, video_motiongram
from gm_blender_addon.generators.procedural import conduct
from helpers import steady_analysis

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def analysis():
    return steady_analysis(seconds=12.0)


@pytest.fixture(scope="module")
def generated(analysis):
    return Motion(conduct(analysis, seed=1))


def shifted(motion: Motion, lag: int, noise: float = 0.0) -> Motion:
    """The same performance starting `lag` frames later (lag > 0), as a camera started early would record it."""
    keypoints = np.concatenate([np.repeat(motion.keypoints[:1], lag, axis=0), motion.keypoints[:-lag]])
    keypoints = keypoints + noise * np.random.default_rng(0).standard_normal(keypoints.shape)
    return Motion(keypoints.astype(np.float32))


def test_the_best_lag_recovers_a_known_shift(generated):
    captured = shifted(generated, 12, noise=0.002)
    lag, error = cmp.best_lag(generated.keypoints, captured.keypoints, max_lag=60)
    assert lag == 12
    assert error == pytest.approx(0.002**2, rel=0.1)


def test_identical_motions_score_perfectly(generated, analysis):
    result = cmp.compare(generated, generated, analysis.beats)
    assert result.lag_frames == 0 and result.frames == generated.n_frames
    assert result.values["MSE (aligned)"] == 0.0
    assert result.values["RDE"] == 0.0 and result.values["SCE"] == 0.0
    assert result.values["SDP (%)"] == pytest.approx(100.0)
    assert result.values["BC generated"] == result.values["BC captured"] > 0.5
    assert result.notes == {"SE": "needs M2S-Net weights", "FGD": "needs M2S-Net weights"}


def test_metrics_are_taken_over_the_aligned_overlap(generated, analysis):
    captured = shifted(generated, 20)
    result = cmp.compare(generated, captured, analysis.beats)
    assert result.lag_frames == 20 and result.frames == generated.n_frames - 20
    part = generated.keypoints[: result.frames]
    assert result.values["SDP (%)"] == pytest.approx(metrics.sdp(captured.keypoints[20:], part))


def test_short_overlaps_and_missing_music_are_explained():
    rng = np.random.default_rng(3)
    short = Motion((0.5 + 0.01 * rng.standard_normal((90, 13, 2))).astype(np.float32))
    result = cmp.compare(short, short)
    assert "RDE" not in result.values and result.notes["RDE"] == "needs 8.5 s of overlap"
    assert result.notes["BC"] == "no music given"
    assert ("RDE", "— (needs 8.5 s of overlap)") in result.rows()


def test_a_motion_shorter_than_a_second_cannot_be_compared(generated):
    with pytest.raises(cmp.CompareError, match="at least 1 s; got 360 and 10 frames"):
        cmp.compare(generated, Motion(generated.keypoints[:10]))


def test_json_and_csv_hold_the_same_numbers(generated, analysis, tmp_path):
    result = cmp.compare(generated, shifted(generated, 5, 0.001), analysis.beats)
    data = json.loads(result.to_json(tmp_path / "m.json").read_text())
    rows = list(csv.DictReader(open(result.to_csv(tmp_path / "m.csv"), encoding="utf-8")))
    by_name = {row["metric"]: row for row in rows}
    assert data["lag_frames"] == 5
    for name, value in result.values.items():
        assert data["metrics"][name] == value
        assert float(by_name[name]["value"]) == value
    assert by_name["SE"]["note"] == data["missing"]["SE"] == "needs M2S-Net weights"


def test_se_and_fgd_with_the_official_m2snet(generated, analysis, shared_reference):
    result = cmp.compare(generated, shifted(generated, 3, 0.003), analysis.beats,
                         m2snet=shared_reference / "M2SNet_official_pretrained.pt")
    assert result.values["SE"] > 0 and np.isfinite(result.values["FGD"])
    same = cmp.compare(generated, generated, m2snet=shared_reference / "M2SNet_official_pretrained.pt")
    assert same.values["SE"] == 0.0 and same.values["SE"] < result.values["SE"]


def test_motiongram_shows_where_and_when_something_moved():
    frames = np.zeros((10, 40, 30), np.uint8)
    for k in range(5, 10):
        frames[k, 10 + k : 14 + k, :] = 255  # a bar moving down in the second half
    gram = motiongram(frames)
    assert gram.shape == (40, 9)
    assert np.all(gram[:, :4] == 0)  # still frames: nothing
    assert gram[:, 5:].sum() > 0 and gram[:12, 5:].sum() == 0 and gram[25:, :].sum() == 0


def test_writing_a_comparison_gives_metrics_and_every_plot(generated, analysis, tmp_path):
    captured = shifted(generated, 8, 0.002)
    calls = []

    def rig_motiongrams(seconds, folder):
        calls.append((seconds, folder))
        return [("generated (render)", np.random.default_rng(0).random((20, 30)), 30.0)]

    out = cmp.write_comparison(generated, captured, tmp_path / "out", analysis, video=FIXTURES / "astronaut_24fps.mp4",
                               motiongram_seconds=1.5, rig_motiongrams=rig_motiongrams)
    names = sorted(p.name for p in out.files)
    assert names == ["beats.png", "metrics.csv", "metrics.json", "motiongrams.png", "power_spectrum.png",
                     "strength_vs_loudness.png", "wrist_trajectories.png"]
    assert all(p.stat().st_size > 5000 for p in out.files if p.suffix == ".png")
    assert calls == [(1.5, tmp_path / "out")] and out.warnings == []


def test_source_video_motiongram_covers_the_asked_seconds():
    pytest.importorskip("imageio_ffmpeg")
    gram, fps = video_motiongram(FIXTURES / "astronaut_24fps.mp4", seconds=1.0, height=96)
    assert fps == 24.0 and gram.shape == (96, 24)


def test_missing_video_and_music_are_warnings_not_failures(generated, tmp_path):
    out = cmp.write_comparison(generated, generated, tmp_path, video=tmp_path / "gone.mp4")
    assert any("gone.mp4 not found" in w for w in out.warnings)
    assert any("no music given" in w for w in out.warnings)
    assert not (tmp_path / "motiongrams.png").exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"]["MSE (aligned)"] == 0.0


def test_a_wrong_weights_file_is_named_in_the_error(generated, tmp_path):
    pytest.importorskip("torch")
    bad = tmp_path / "not_m2snet.pt"
    bad.write_bytes(b"no weights here")
    with pytest.raises(cmp.CompareError, match="M2S-Net weights not_m2snet.pt"):
        cmp.compare(generated, generated, m2snet=bad)
