"""The extension as users get it: build the Linux zip for this Python, install it into a throw-away Blender user
profile with Blender's own extension install operator, enable it, conduct the demo through the installed operators,
then capture a performer from video, add them and compare.

The Blender process sees only bpy and numpy (what Blender ships), so everything else must come from the zip's
wheels. Building needs the wheels: downloaded once into .wheels/ (CI can reach PyPI); the test skips when they
cannot be fetched.
"""

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from helpers import build_linux_zip

bpy = pytest.importorskip("bpy")
zstandard = pytest.importorskip("zstandard")  # comes with bpy

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="installs the linux-x64 zip")
ROOT = Path(__file__).resolve().parents[2]
MODULE = "bl_ext.user_default.gesture_maestro"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

# Runs in a fresh `python -S`: no site-packages but a folder holding only bpy and numpy.
INSTALL_AND_CONDUCT = """
import json, sys
from pathlib import Path
zip_path, blender_like, video, compare_dir = sys.argv[1:5]
sys.path.append(blender_like)
import bpy
for name in ("librosa", "torch"):
    try:
        __import__(name)
        raise SystemExit(f"{name} is importable before the install: the test would prove nothing")
    except ImportError:
        pass
import time
started = time.perf_counter()
result = {"install": sorted(bpy.ops.extensions.package_install_files(
    filepath=zip_path, repo="user_default", enable_on_install=True))}
result["install_seconds"] = time.perf_counter() - started
module = sys.modules[%(module)r]
installed = Path(module.__file__).parent
addon = bpy.context.preferences.addons.get(%(module)r)
result["enabled"] = addon is not None
addon.preferences.default_smoothing = 0.35
scene = bpy.context.scene
result["smoothing_from_preferences"] = scene.gm_conductor.smoothing
scene.gm_conductor.audio_path = str(installed / "data" / "demo" / "demo.ogg")
started = time.perf_counter()
result["generate"] = sorted(bpy.ops.gm.generate())
result["generate_seconds"] = time.perf_counter() - started
armature = scene.gm_conductor.armature
result["rig_map"] = armature.gm_rig_map.name
compat = sys.modules[%(module)r + ".blender.compat"]
fcurves = compat.action_fcurves(armature.animation_data.action, compat.assigned_slot(armature))
result["keyed_bones"] = len({fc.data_path.rsplit(".", 1)[0] for fc in fcurves})
result["last_result"] = scene.gm_conductor.last_result
# The learned generators run on the shipped ONNX weights with onnxruntime: there is no torch in this process.
for generator in ("m2sgan", "diffusion"):
    scene.gm_conductor.generator = generator
    scene.gm_conductor.options.diffusion_steps = 3
    result[generator] = sorted(bpy.ops.gm.generate())
    result[generator + "_result"] = scene.gm_conductor.last_result
# Capture (the pose tracker on onnxruntime, video through the bundled ffmpeg), the performer, and the comparison
# with its plots (the bundled matplotlib), as the capture panel runs them headless.
capture = scene.gm_capture
capture.video_path, capture.output_dir = video, compare_dir
for step, operator in (("capture", bpy.ops.gm.capture_video), ("add_performer", bpy.ops.gm.add_performer),
                       ("compare", bpy.ops.gm.compare_performer)):
    result[step] = sorted(operator())
result["capture_status"] = capture.status
result["metrics"] = capture.metrics.splitlines()
result["torch_loaded"] = "torch" in sys.modules
import librosa, matplotlib, imageio_ffmpeg
result["libraries"] = [m.__file__ for m in (librosa, matplotlib, imageio_ffmpeg)]
result["installed"] = str(installed)
print("RESULT " + json.dumps(result))
""" % {"module": MODULE}


@pytest.fixture(scope="module")
def linux_zip(tmp_path_factory):
    return build_linux_zip(tmp_path_factory.mktemp("dist"), PYTHON)


def _blender_like(folder: Path) -> Path:
    """A folder with only what Blender's own Python has that the add-on relies on: bpy and numpy."""
    folder.mkdir()
    # Once imported, bpy's __file__ is its scripts' bpy package, so the wheel's folder comes from its metadata.
    wheel_bpy = Path(importlib.metadata.distribution("bpy").locate_file("bpy"))
    for package in (wheel_bpy, Path(numpy.__file__).parent):
        (folder / package.name).symlink_to(package)
        libs = package.parent / f"{package.name}.libs"  # the shared libraries of manylinux wheels
        if libs.is_dir():
            (folder / libs.name).symlink_to(libs)
    return folder


def test_zip_installs_offline_and_conducts_the_demo(linux_zip, tmp_path):
    profile = tmp_path / "profile"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BLENDER"))}
    env["BLENDER_USER_RESOURCES"] = str(profile)
    run = subprocess.run(
        [sys.executable, "-S", "-c", INSTALL_AND_CONDUCT, str(linux_zip), str(_blender_like(tmp_path / "blender")),
         str(ROOT / "tests" / "fixtures" / "astronaut_24fps.mp4"), str(tmp_path / "compare")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"install {result['install_seconds']:.1f} s, generate {result['generate_seconds']:.1f} s")
    assert result["install"] == ["FINISHED"] and result["enabled"]
    assert result["smoothing_from_preferences"] == pytest.approx(0.35)
    assert result["generate"] == ["FINISHED"]
    assert result["rig_map"] == "bundled" and result["keyed_bones"] == 49  # the body, 6 leg bones, 30 finger bones and the hips (moved)
    assert "bars of" in result["last_result"]
    # The add-on and its libraries came from the installed extension, not from this checkout or its venv.
    assert Path(result["installed"]).is_relative_to(profile)
    assert all(Path(library).is_relative_to(profile) for library in result["libraries"]), result["libraries"]
    for generator in ("m2sgan", "diffusion"):
        assert result[generator] == ["FINISHED"], result[generator + "_result"]
    for step in ("capture", "add_performer", "compare"):
        assert result[step] == ["FINISHED"], (step, result["capture_status"])
    assert any(line.startswith("MSE (aligned)") for line in result["metrics"])
    plots = {p.name for p in (tmp_path / "compare").glob("*.png")}
    assert {"wrist_trajectories.png", "beats.png", "motiongrams.png"} <= plots, plots
    assert not result["torch_loaded"]


def test_the_bundled_rig_opens_in_blender_4_2():
    # Blender 5.0 saves a new header ("BLENDER17-01v0500") that 4.2 cannot read; build the rig with 4.2.
    with open(ROOT / "rigs" / "conductor_rig.blend", "rb") as handle:
        head = handle.read(4)
        handle.seek(0)
        if head == b"\x28\xb5\x2f\xfd":  # zstd, as saved with compression
            head = zstandard.ZstdDecompressor().stream_reader(handle).read(12)
        else:
            head = handle.read(12)
    match = re.fullmatch(rb"BLENDER[-_][vV](\d{3})", head)
    assert match and int(match.group(1)) <= 402, head
