"""The "Performer" sub-panel of the Conductor tab: capture from video, add beside the conductor, compare."""

from __future__ import annotations

import bpy

from .panels import ConductorTab


class GM_PT_capture(ConductorTab, bpy.types.Panel):
    bl_label = "Performer (Video Capture)"
    bl_idname = "GM_PT_capture"
    bl_parent_id = "GM_PT_conductor"

    def draw(self, context):
        settings = context.scene.gm_capture
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False

        column = layout.column()
        column.enabled = not (settings.running or settings.comparing)
        column.prop(settings, "video_path")
        column.prop(settings, "smoothing", slider=True)
        if settings.running:
            row = layout.row()
            row.progress(factor=settings.progress, text=settings.status or "Capturing")
            row.operator("gm.capture_cancel", text="", icon="CANCEL")
        else:
            layout.operator("gm.capture_video", icon="CAMERA_DATA")
            if settings.status and not settings.comparing:
                layout.label(text=settings.status, icon="INFO")

        layout.separator()
        layout.prop(settings, "keypoints_path")
        layout.prop(settings, "audio_source")
        layout.prop(settings, "video_plane")
        layout.operator("gm.add_performer", icon="ARMATURE_DATA")

        layout.separator()
        layout.prop(settings, "generated_keypoints")
        layout.prop(settings, "m2snet")
        layout.prop(settings, "output_dir")
        layout.prop(settings, "rig_motiongrams")
        if settings.rig_motiongrams:
            layout.prop(settings, "motiongram_seconds")
        if settings.comparing:
            row = layout.row()
            row.progress(factor=settings.progress, text=settings.status or "Comparing")
            row.operator("gm.compare_cancel", text="", icon="CANCEL")
        else:
            layout.operator("gm.compare_performer", icon="GRAPH")
        if settings.metrics:
            grid = layout.box().grid_flow(columns=2, even_columns=False, align=True)
            for line in settings.metrics.splitlines():
                name, _, value = line.partition("\t")
                grid.label(text=name)
                grid.label(text=value)


class GM_PT_capture_worker(ConductorTab, bpy.types.Panel):
    bl_label = "Capture Worker"
    bl_idname = "GM_PT_capture_worker"
    bl_parent_id = "GM_PT_capture"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(context.scene.gm_capture, "capture_python")
        layout.label(text="Empty: Blender's own, with the add-on's wheels.", icon="INFO")


CLASSES = (GM_PT_capture, GM_PT_capture_worker)
