"""Registering the add-on's Blender classes and settings."""

from __future__ import annotations

import bpy

from . import (beat_operators, capture_operators, capture_panels, operators, panels, rig_maps, vocabulary_operators,
               vocabulary_panels)
from .preferences import GM_Preferences
from .properties import GM_ConductorSettings, GM_GeneratorOptions

CLASSES = (
    (GM_GeneratorOptions, GM_ConductorSettings, GM_Preferences)
    + rig_maps.CLASSES
    + operators.CLASSES
    + beat_operators.CLASSES
    + panels.CLASSES
    + capture_operators.CLASSES
    + capture_panels.CLASSES
    + vocabulary_operators.CLASSES
    + vocabulary_panels.CLASSES
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.gm_conductor = bpy.props.PointerProperty(type=GM_ConductorSettings)
    # The rig map travels with its armature (appended or linked rigs keep theirs) and is saved in the .blend.
    bpy.types.Object.gm_rig_map = bpy.props.PointerProperty(type=rig_maps.GM_RigMap)
    bpy.types.Scene.gm_capture = bpy.props.PointerProperty(type=capture_operators.GM_CaptureSettings)
    bpy.types.Scene.gm_vocabulary = bpy.props.PointerProperty(type=vocabulary_operators.GM_VocabularySettings)


def unregister() -> None:
    del bpy.types.Scene.gm_vocabulary
    del bpy.types.Scene.gm_capture
    del bpy.types.Object.gm_rig_map
    del bpy.types.Scene.gm_conductor
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
