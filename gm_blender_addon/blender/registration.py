"""Registering the add-on's Blender classes and settings."""

from __future__ import annotations

import bpy

from .operators import GM_OT_generate
from .panels import GM_PT_conductor
from .properties import GM_ConductorSettings

CLASSES = (GM_ConductorSettings, GM_OT_generate, GM_PT_conductor)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.gm_conductor = bpy.props.PointerProperty(type=GM_ConductorSettings)


def unregister() -> None:
    del bpy.types.Scene.gm_conductor
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
