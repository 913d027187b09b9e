"""`python -m gm_blender_addon capture` and `compare` as a script would run them: outputs, messages, exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("imageio_ffmpeg")
ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


def run(*args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "gm_blender_addon", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """The rendered-rig video captured once with JSON progress, as the panel's worker runs it."""
    out = tmp_path_factory.mktemp("captured dir") / "rig take.npz"
    result = run("capture", FIXTURES / "conductor_rig_25fps.mp4", "--out", out, "--progress", "json")
    return out, result


def test_capture_writes_keypoints_and_audio_and_reports_json_progress(captured):
    out, result = captured
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert all("progress" in line for line in lines[:-1]) and lines[-1]["done"] == str(out)
    assert [line["progress"] for line in lines[:-1]] == sorted(line["progress"] for line in lines[:-1])
    assert "person found in 125 of 125 frames" in lines[-1]["summary"]
    with np.load(out) as data:
        assert data["keypoints"].shape == (149, 13, 2) and data["world"].shape == (149, 13, 3)
    assert out.with_suffix(".wav").is_file()


def test_capture_without_audio_track_says_so(tmp_path):
    out = tmp_path / "astro.npz"
    result = run("capture", FIXTURES / "astronaut_24fps.mp4", "--out", out, "--smoothing", "0.2")
    assert result.returncode == 0, result.stderr
    assert "no audio track" in result.stdout and "without a person, filled" in result.stdout
    assert "warning: no person in" in result.stderr
    assert out.is_file() and not out.with_suffix(".wav").exists()


def test_capture_of_a_corrupt_video_fails_with_exit_1(tmp_path):
    video = tmp_path / "broken.mov"
    video.write_bytes(b"\x00\x00\x00\x14ftypqt  " + b"\x01" * 4000)
    result = run("capture", video, "--out", tmp_path / "x.npz")
    assert result.returncode == 1
    assert "broken.mov: FAILED: Cannot decode" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.npz").exists()


def test_capture_arguments_are_checked(tmp_path):
    result = run("capture", FIXTURES / "astronaut_24fps.mp4", "--out", tmp_path / "x.npz", "--smoothing", "3")
    assert result.returncode == 2 and "--smoothing must be between 0 and 1" in result.stderr


def test_compare_writes_metrics_and_plots(captured, tmp_path):
    generated = tmp_path / "generated.npz"
    # The rig in the video performed the procedural conductor for the demo music with seed 1: regenerate it.
    from gm_blender_addon.pipeline import perform
    from gm_blender_addon.resources import demo_audio_file

    perform(demo_audio_file(), seed=1).motion.save(generated)
    out = tmp_path / "report"
    result = run("compare", generated, captured[0], "--audio", demo_audio_file(), "--out", out,
                 "--motiongram-seconds", "0.5")
    assert result.returncode == 0, result.stderr
    assert "Lag (captured − generated)  +0.00 s" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["MSE (aligned)"] < 0.01 and 60 < metrics["SDP (%)"] < 140
    for name in ("wrist_trajectories", "strength_vs_loudness", "power_spectrum", "beats", "motiongrams"):
        assert (out / f"{name}.png").stat().st_size > 5000
    assert (out / "motiongram_generated.mp4").is_file() and (out / "motiongram_captured.mp4").is_file()


def test_compare_with_a_missing_file_fails_with_exit_1(captured, tmp_path):
    result = run("compare", tmp_path / "nope.npz", captured[0], "--out", tmp_path, "--no-rig-renders")
    assert result.returncode == 1 and "Keypoint file not found" in result.stderr
