"""The Conductor tab in the 3D viewport's sidebar: generating, and the rig map of the armature being animated."""

from __future__ import annotations

import bpy

from ..core.retarget import FINGER_BONE_PARTS, REQUIRED
from ..generators import registry
from . import rig_maps
from .operators import GM_OT_generate, target_armature
from .properties import option_key


class ConductorTab:
    """Where the add-on's panels live: the Conductor tab of the 3D viewport's sidebar."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Conductor"


class GM_PT_conductor(ConductorTab, bpy.types.Panel):
    bl_label = "Gesture Maestro"
    bl_idname = "GM_PT_conductor"

    def draw(self, context):
        settings = context.scene.gm_conductor
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(settings, "audio_path")
        layout.prop(settings, "score_path")
        layout.prop(settings, "generator")
        spec = registry.get(settings.generator)
        if spec.needs_checkpoint:
            layout.prop(settings, "checkpoint")
        for option in spec.options:
            layout.prop(settings.options, option_key(spec.name, option))
        hints = layout.column()
        hints.active = not settings.score_path  # the score gives the meter and the beats
        hints.prop(settings, "meter")
        tempo = hints.row()
        tempo.active = not settings.beats_path  # the beats file's beats are conducted as they are
        tempo.prop(settings, "tempo")
        hints.prop(settings, "beats_path")
        layout.prop(settings, "seed")
        layout.prop(settings, "smoothing", slider=True)
        layout.prop(settings, "sparse_keys")
        if settings.sparse_keys:
            layout.prop(settings, "key_tolerance")
        layout.prop(settings, "armature")
        if GM_OT_generate.running is None:
            layout.operator("gm.generate", icon="PLAY")
            column = layout.column(align=True)  # side by side, the sidebar's default width cut "Conduct to Ma…"
            column.operator("gm.conduct_to_markers", icon="MARKER_HLT")
            column.operator("gm.tap_beats", icon="REC")
        else:
            fraction, message = GM_OT_generate.running.progress
            layout.label(text=f"{message} ({100 * fraction:.0f}%), Esc to cancel", icon="SORTTIME")
        if settings.last_result:
            layout.label(text=settings.last_result, icon="INFO")


class GM_PT_rig_map(ConductorTab, bpy.types.Panel):
    bl_label = "Rig Map"
    bl_idname = "GM_PT_rig_map"
    bl_parent_id = "GM_PT_conductor"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        armature = target_armature(context)
        if armature is None:
            layout.label(text="No armature: Generate adds the bundled conductor.", icon="INFO")
            return
        row = layout.row(align=True)
        row.label(text=armature.name, icon="ARMATURE_DATA")
        row.operator("gm.rig_map_detect", text="", icon="VIEWZOOM")
        row.operator_menu_enum("gm.rig_map_apply", "map", text="", icon="PRESET")
        row.operator("gm.rig_map_load", text="", icon="FILEBROWSER")
        row.operator("gm.rig_map_save", text="", icon="FILE_TICK")
        rig_map = rig_maps.stored(armature)
        if rig_map is None:
            layout.label(text="Detected from the bone names when generating.")
            return
        settings = armature.gm_rig_map
        layout.prop(settings, "name")
        bone_names = [b.name for b in armature.data.bones]
        missing = set(rig_map.missing(bone_names)) | {p for p in REQUIRED if p not in rig_map.bones}
        if missing:
            layout.label(text=f"Missing: {', '.join(sorted(missing))}", icon="ERROR")
        fingers = [entry for entry in settings.bones if entry.part in FINGER_BONE_PARTS]
        _part_rows(layout, [entry for entry in settings.bones if entry.part not in FINGER_BONE_PARTS], armature,
                   missing)
        # Thirty finger bones would bury the body's parts: they fold away under one line.
        mapped = sum(bool(entry.bone) for entry in fingers)
        layout.prop(settings, "show_fingers", text=f"Fingers ({mapped} of {len(fingers)} mapped)",
                    icon="DOWNARROW_HLT" if settings.show_fingers else "RIGHTARROW", emboss=False)
        if settings.show_fingers:
            _part_rows(layout, fingers, armature, missing)
        if settings.switches:
            layout.label(text="Switches held while the action plays:")
            for switch in settings.switches:
                row = layout.row(align=True)
                row.alert = switch.bone in missing
                row.prop_search(switch, "bone", armature.data, "bones", text="")
                row.prop(switch, "property", text="")
                row.prop(switch, "value", text="")


def _part_rows(layout, entries, armature, missing: set[str]) -> None:
    column = layout.column(align=True)
    for entry in entries:
        # The part's name on its own label, wide enough for "upper_arm.L" (as the search field's own text it was
        # cut to "upper_ar…"), the rest for the bone's name.
        row = column.split(factor=0.42, align=True)
        row.alert = entry.bone in missing or entry.part in missing
        row.label(text=entry.part)
        row.prop_search(entry, "bone", armature.data, "bones", text="")


CLASSES = (GM_PT_conductor, GM_PT_rig_map)
