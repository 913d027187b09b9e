"""Operators: each execute() calls the pure pipeline, then the scene layer, and reports."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..cli import INPUT_ERRORS
from .rigs import RigFileError


class _Progress:
    """Pipeline progress shown in the status bar and on the cursor."""

    def __init__(self, context):
        self.window_manager = context.window_manager
        self.workspace = context.workspace
        self.window_manager.progress_begin(0, 100)

    def __call__(self, fraction: float, message: str) -> None:
        self.window_manager.progress_update(int(100 * fraction))
        if self.workspace is not None:
            self.workspace.status_text_set(f"Gesture Maestro: {message}")

    def end(self) -> None:
        self.window_manager.progress_end()
        if self.workspace is not None:
            self.workspace.status_text_set(None)


def _remove_collection(collection) -> None:
    for obj in list(collection.all_objects):
        bpy.data.objects.remove(obj)
    bpy.data.collections.remove(collection)


class GM_OT_generate(bpy.types.Operator):
    """Analyse the music and animate the conductor to it"""

    bl_idname = "gm.generate"
    bl_label = "Generate Conductor"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from .. import pipeline
        from . import rigs, scene

        settings = context.scene.gm_conductor
        if not settings.audio_path:
            self.report({"ERROR"}, "Choose an audio file first.")
            return {"CANCELLED"}
        progress = _Progress(context)
        appended = None
        try:
            performance = pipeline.perform(
                Path(bpy.path.abspath(settings.audio_path)),
                settings.generator,
                seed=settings.seed,
                checkpoint=bpy.path.abspath(settings.checkpoint) if settings.checkpoint else None,
                progress=lambda fraction, message: progress(0.85 * fraction, message),
            )
            progress(0.9, "Keying the rig")
            armature = settings.armature
            if armature is None:
                armature = rigs.append_bundled_rig(context.scene)
                appended = armature.users_collection[0]
            applied = scene.apply_performance(
                context.scene, armature, performance, rigs.rig_map_for(armature, settings.rig_map or None), settings.smoothing
            )
        except INPUT_ERRORS + (RigFileError,) as exc:
            if appended is not None:
                _remove_collection(appended)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            progress.end()
        settings.armature = armature
        analysis = performance.analysis
        settings.last_result = (
            f"{applied.bars} bars of {analysis.meter} at {analysis.tempo_bpm:.0f} BPM on {applied.armature_name}"
        )
        self.report({"INFO"}, f"Conducted {performance.audio.name}: {settings.last_result}")
        return {"FINISHED"}
