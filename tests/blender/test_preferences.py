"""Preferences: new scenes take their generator and smoothing from them, and checkpoints are looked up there."""

import json

import bpy
import pytest

from gm_blender_addon.blender import preferences
from gm_blender_addon.core.audio import file_sha256
from gm_blender_addon.weights import WeightsError


@pytest.fixture
def prefs():
    """The add-on's preferences, as if it were enabled (addon_utils does the same before registering)."""
    addons = bpy.context.preferences.addons
    entry = addons.new()
    entry.module = preferences.ADDON_PACKAGE
    yield entry.preferences
    addons.remove(entry)


def test_without_preferences_scenes_use_the_built_in_defaults(empty_scene):
    settings = empty_scene.gm_conductor
    assert settings.generator == "procedural"
    assert settings.smoothing == pytest.approx(preferences.DEFAULT_SMOOTHING)
    assert preferences.checkpoint_for("m2sgan") is None


def test_scenes_follow_the_preferences_until_they_choose(empty_scene, prefs):
    settings = empty_scene.gm_conductor
    prefs.default_smoothing = 0.6
    prefs.default_generator = "m2sgan"
    assert (settings.generator, settings.smoothing) == ("m2sgan", pytest.approx(0.6))
    settings.generator, settings.smoothing = "procedural", 0.1
    prefs.default_generator, prefs.default_smoothing = "diffusion", 0.9
    assert (settings.generator, settings.smoothing) == ("procedural", pytest.approx(0.1))


def test_checkpoints_come_from_the_panel_then_the_official_paths_then_the_weights_folder(prefs, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    trained = weights / "diffusion.onnx.zip"
    trained.write_bytes(b"weights")
    manifest = {"diffusion": {"file": "diffusion.pt", "sha256": "not used inside Blender",
                              "onnx": {"file": trained.name, "sha256": file_sha256(trained)}}}
    (weights / "manifest.json").write_text(
        json.dumps({"format": "gesture-maestro-weights", "version": 1, "models": manifest})
    )
    prefs.weights_dir = str(weights)
    prefs.m2sgan_checkpoint = str(tmp_path / "M2SGAN_official_pretrained.pt")
    assert preferences.checkpoint_for("m2sgan", str(tmp_path / "mine.pt")) == tmp_path / "mine.pt"
    assert preferences.checkpoint_for("m2sgan") == tmp_path / "M2SGAN_official_pretrained.pt"
    assert preferences.checkpoint_for("diffusion") == trained
    assert preferences.checkpoint_for("procedural") is None
    trained.write_bytes(b"damaged")
    with pytest.raises(WeightsError):
        preferences.checkpoint_for("diffusion")


def test_generate_reports_a_damaged_weights_folder(empty_scene, prefs, tmp_path, music_file):
    (tmp_path / "manifest.json").write_text("{not json")
    prefs.weights_dir = str(tmp_path)
    settings = empty_scene.gm_conductor
    settings.audio_path, settings.generator = str(music_file), "m2sgan"
    with pytest.raises(RuntimeError, match="manifest.json cannot be read"):
        bpy.ops.gm.generate()
