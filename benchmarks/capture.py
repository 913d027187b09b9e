"""Figures for video capture: frames per second at 640x480 and accuracy on the rendered rig. Prints; asserts nothing.

    .venv/bin/python benchmarks/capture.py [--repeat N]

Speed: the rendered-rig fixture (640x480, 25 fps) played N times in a row, so that the tracker's one-off start-up
counts for little; decoding, pose estimation, hand landmarks and landmark copying are all inside the figure, as in a
real capture.
Accuracy: tracked pixels against the joints projected through the render camera
(tests/fixtures/build_capture_fixtures.py), as a fraction of the true shoulder width.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gm_blender_addon.core import capture  # noqa: E402
from gm_blender_addon.core.motion import HAND_SIDES, JOINT, resample  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
RIG_VIDEO = FIXTURES / "conductor_rig_25fps.mp4"


def repeated_video(times: int, folder: Path) -> Path:
    listing = folder / "list.txt"
    listing.write_text("".join(f"file '{RIG_VIDEO}'\n" for _ in range(times)))
    out = folder / "repeated.mp4"
    subprocess.run([capture._ffmpeg(), "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-an",
                    "-c", "copy", str(out)], check=True)
    return out


def speed(times: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        info = capture.probe_video(repeated_video(times, Path(folder)))
        started = time.perf_counter()
        landmarks = capture.detect(info)
        elapsed = time.perf_counter() - started
    print(f"Speed at {info.width}x{info.height} on {os.cpu_count()} CPU cores: {landmarks.n_frames} frames in "
          f"{elapsed:.1f} s = {landmarks.n_frames / elapsed:.1f} frames/s (target ≥ 15), "
          f"person found in {int(landmarks.detected.sum())} frames, hands in "
          + ", ".join(f"{count} ({side})" for side, count in zip(HAND_SIDES, landmarks.hands_seen.sum(axis=0))))


def accuracy() -> None:
    result = capture.capture(RIG_VIDEO, smoothing=0.5)
    motion = result.motion
    with np.load(FIXTURES / "conductor_rig_25fps_truth.npz") as truth:
        known = resample(truth["pixels"].astype(np.float64), float(truth["fps"]))
    transform = motion.meta["pixels_to_keypoints"]
    pixels = (motion.keypoints - np.asarray(transform["offset"])) / transform["scale"]
    width = np.linalg.norm(known[:, JOINT["left_shoulder"]] - known[:, JOINT["right_shoulder"]], axis=1)
    error = np.linalg.norm(pixels - known, axis=2) / width[:, None]
    print("Median error on the rendered rig, as a fraction of shoulder width (smoothing 0.5):")
    for joint in ("wrist", "elbow", "shoulder", "hip"):
        left, right = (float(np.median(error[:, JOINT[f"{side}_{joint}"]])) for side in ("left", "right"))
        print(f"  {joint:<9} left {left:.3f}   right {right:.3f}")
    print("  face      " + "  ".join(f"{n} {np.median(error[:, JOINT[n]]):.3f}" for n in ("nose", "left_eye", "right_eye")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4, help="how many times the 5 s fixture is played; default 4")
    args = parser.parse_args()
    speed(args.repeat)
    accuracy()


if __name__ == "__main__":
    main()
