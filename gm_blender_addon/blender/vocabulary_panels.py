"""The "Gesture Vocabulary" sub-panel of the Conductor tab: gestures taken from the timeline, training, and what the
vocabulary says of the active armature's motion."""

from __future__ import annotations

from collections import Counter

import bpy

from .panels import ConductorTab
from .vocabulary_operators import GM_OT_vocabulary_train, vocabulary_summary


class GM_PT_vocabulary(ConductorTab, bpy.types.Panel):
    bl_label = "Gesture Vocabulary"
    bl_idname = "GM_PT_vocabulary"
    bl_parent_id = "GM_PT_conductor"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        settings = context.scene.gm_vocabulary
        entries, trained_seconds = vocabulary_summary(context.scene)
        layout = self.layout

        column = layout.column(align=True)
        # One row per gesture, however many performances of it the vocabulary holds.
        for (description, meaning), count in Counter(entries).items():
            row = column.row(align=True)
            row.label(text=f"{description} → {meaning}" + (f" (×{count})" if count > 1 else ""))
            remove = row.operator("gm.vocabulary_remove", text="", icon="X", emboss=False)
            remove.description, remove.meaning = description, meaning
        if not entries:
            layout.label(text="No gestures yet: mark one with the preview range,", icon="INFO")
            layout.operator("gm.vocabulary_starter", text="or Load the Starter Vocabulary", icon="PRESET")

        column = layout.column()
        column.use_property_split = True
        column.prop(settings, "description")
        column.prop(settings, "meaning")
        column.operator("gm.vocabulary_add", icon="ADD")

        row = layout.row(align=True)
        row.prop(settings, "steps")
        row.operator("gm.vocabulary_train", icon="PLAY")
        if GM_OT_vocabulary_train.running is None:
            layout.label(text="Untrained" if trained_seconds is None else f"Trained in {trained_seconds:.0f} s")

        layout.separator()
        layout.operator("gm.vocabulary_explain", icon="MARKER_HLT")
        row = layout.row(align=True)
        row.prop(settings, "query", text="")
        row.operator("gm.vocabulary_search", text="Find", icon="VIEWZOOM")
        row = layout.row(align=True)
        row.operator("gm.vocabulary_map", icon="IMAGE_DATA")
        row.operator("gm.vocabulary_starter", text="", icon="PRESET")
        row.operator("gm.vocabulary_import", text="", icon="IMPORT")
        row.operator("gm.vocabulary_export", text="", icon="EXPORT")


CLASSES = (GM_PT_vocabulary,)
