"""The learned generators without PyTorch, as inside Blender: the shipped ONNX weights run, and a PyTorch file is
refused with the command that converts it."""

from pathlib import Path

import pytest

from gm_blender_addon import weights
from helpers import run_without_torch

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter where importing torch fails, as in Blender's Python (helpers.run_without_torch).
SCRIPT = """
from pathlib import Path
from helpers import click_music, steady_analysis
from gm_blender_addon.core.audio import Audio
from gm_blender_addon.generators import registry

audio = Audio(click_music(8.0, 120.0, 4), 22050, Path("clicks.wav"), "0" * 64)
result = {}
for name, options in (("m2sgan", {}), ("diffusion", {"steps": 3})):
    motion = registry.generate(name, registry.Request(audio=audio, analysis=steady_analysis(8.0), options=options))
    result[name] = [list(motion.keypoints.shape), motion.meta["checkpoint"]]
try:
    registry.generate("m2sgan", registry.Request(audio=audio, analysis=steady_analysis(8.0),
                                                 checkpoint=Path(%(pt)r)))
except registry.GeneratorError as exc:
    result["pytorch_file"] = str(exc)
result["torch_loaded"] = "torch" in sys.modules
print("RESULT " + json.dumps(result))
"""


def test_generators_run_their_onnx_weights_without_torch():
    if weights.default_checkpoint("diffusion", onnx=True) is None:
        pytest.skip("no project-trained ONNX weights in weights/")
    result = run_without_torch(SCRIPT % {"pt": str(ROOT / "weights" / "m2sgan.pt")})
    assert result["m2sgan"] == [[240, 13, 2], "m2sgan.onnx.zip"]
    assert result["diffusion"] == [[240, 13, 2], "diffusion.onnx.zip"]
    assert "PyTorch is not installed" in result["pytorch_file"]
    assert "onnx_export m2sgan m2sgan.pt m2sgan.onnx.zip" in result["pytorch_file"]
    assert not result["torch_loaded"]
