"""The Conductor tab in the 3D viewport's sidebar."""

from __future__ import annotations

import bpy

from ..generators import registry


class GM_PT_conductor(bpy.types.Panel):
    bl_label = "Gesture Maestro"
    bl_idname = "GM_PT_conductor"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Conductor"

    def draw(self, context):
        settings = context.scene.gm_conductor
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(settings, "audio_path")
        layout.prop(settings, "generator")
        if settings.generator and registry.get(settings.generator).needs_checkpoint:
            layout.prop(settings, "checkpoint")
        layout.prop(settings, "seed")
        layout.prop(settings, "smoothing", slider=True)
        layout.prop(settings, "armature")
        layout.prop(settings, "rig_map")
        layout.operator("gm.generate", icon="PLAY")
        if settings.last_result:
            layout.label(text=settings.last_result, icon="INFO")
