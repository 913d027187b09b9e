"""Beats the user corrects in Blender: Conduct to Markers and Tap Beats.

The beat markers Generate writes are the handle (see core.beat_markers for which markers count). Conduct to Markers
conducts again to them from the analysis Generate kept with the scene; Tap Beats records a key press per beat while
the music plays and writes the taps as beat markers.
"""

from __future__ import annotations

import time
from pathlib import Path

import bpy
import numpy as np

from ..cli import INPUT_ERRORS
from ..core.beat_markers import SNAP_WINDOW, snap_to_onsets
from ..core.motion import FPS
from ..weights import WeightsError
from . import rigs
from . import scene as scene_layer
from .operators import GM_OT_generate, result_line
from .preferences import checkpoint_for
from .properties import generator_options, key_tolerance_deg

TAP_KEY = "T"


def _music_file(scene) -> Path | None:
    """The music Generate used, else the one chosen in the panel."""
    _, audio = scene_layer.stored_analysis(scene)
    settings = scene.gm_conductor
    if audio is None and settings.audio_path:
        audio = Path(bpy.path.abspath(settings.audio_path))
    return audio


class GM_OT_conduct_to_markers(bpy.types.Operator):
    """Conduct again to the beat markers as they are now: move, add (M in the timeline) or delete them first. Bar N
    markers start bars, the others are beats. The music is not analysed again"""

    bl_idname = "gm.conduct_to_markers"
    bl_label = "Conduct to Markers"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return GM_OT_generate.running is None

    def execute(self, context):
        from .. import pipeline

        started = time.perf_counter()
        scene = context.scene
        settings = scene.gm_conductor
        record, _ = scene_layer.stored_analysis(scene)
        audio, armature = _music_file(scene), settings.armature
        if audio is None or armature is None:
            self.report({"ERROR"}, "Nothing to conduct yet: press Generate Conductor first (it marks the beats and "
                                   "keeps what Conduct to Markers needs).")
            return {"CANCELLED"}
        try:
            rig_map = rigs.rig_map_for(armature)
            beats = scene_layer.marker_beats(scene, record)
            performance = pipeline.perform_to_beats(
                beats, record, audio, settings.generator, seed=settings.seed,
                checkpoint=checkpoint_for(settings.generator, settings.checkpoint),
                options=generator_options(settings),
            )
            applied = scene_layer.apply_performance(scene, armature, performance, rig_map, settings.smoothing,
                                                    new_music=False, key_tolerance=key_tolerance_deg(settings))
            if record is None:  # a scene from before the analysis was kept: it was measured now, keep it
                scene_layer.store_analysis(scene, performance.analysis, audio)
        except INPUT_ERRORS + (WeightsError,) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        settings.last_result = result_line(applied, performance.analysis)
        self.report({"INFO"}, f"Conducted to {len(beats.beats)} beat markers: {settings.last_result} "
                              f"({time.perf_counter() - started:.2f} s)")
        return {"FINISHED"}


class GM_OT_tap_beats(bpy.types.Operator):
    """Play the music from the current frame and press T on every beat; Esc or right-click ends. The taps, moved
    onto the nearest onset, replace the beat markers where you tapped: then Conduct to Markers"""

    bl_idname = "gm.tap_beats"
    bl_label = "Tap Beats"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if bpy.app.background or context.window is None:
            cls.poll_message_set("Tap Beats needs Blender's window: it plays the music and listens to the keys.")
            return False
        return GM_OT_generate.running is None

    def invoke(self, context, event):
        self.taps: list[float] = []
        self.last_frame = context.scene.frame_current
        if not context.screen.is_animation_playing:
            bpy.ops.screen.animation_play()
        self.timer = context.window_manager.event_timer_add(0.05, window=context.window)
        context.window_manager.modal_handler_add(self)
        if context.workspace is not None:
            context.workspace.status_text_set(f"Tap Beats: press {TAP_KEY} on every beat; Esc or right-click ends")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        scene = context.scene
        if event.type == TAP_KEY:  # every T event is taken, so the key's own shortcut never fires meanwhile
            if event.value == "PRESS" and not event.is_repeat:
                self.taps.append(scene_layer.seconds_at(scene.frame_current, scene_layer.frame_rate(scene)))
            return {"RUNNING_MODAL"}
        if event.type in {"ESC", "RIGHTMOUSE"} and event.value == "PRESS":
            return self._finish(context)
        if event.type == "TIMER":
            # Playback stopped by the user, or wrapped round to the start: the tapping is over too.
            if not context.screen.is_animation_playing or scene.frame_current < self.last_frame:
                return self._finish(context)
            self.last_frame = scene.frame_current
        return {"PASS_THROUGH"}

    def _finish(self, context):
        context.window_manager.event_timer_remove(self.timer)
        if context.screen.is_animation_playing:
            bpy.ops.screen.animation_cancel(restore_frame=False)
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        try:
            written, snapped = write_tapped_beats(context.scene, np.asarray(self.taps))
        except INPUT_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        onto = "moved onto the music's onsets" if snapped else "not moved: the music could not be read"
        self.report({"INFO"}, f"{written} taps written as beat markers ({onto}): press Conduct to Markers.")
        return {"FINISHED"}


def write_tapped_beats(scene, taps: np.ndarray) -> tuple[int, bool]:
    """Snap the taps (seconds) to the onsets Generate kept, or else to the music's own, and write them as beat
    markers; returns (taps written, whether they were snapped). AnalysisError for fewer than two taps."""
    from ..core.analysis import compute_spectral
    from ..core.audio import AudioError, load_audio

    record, _ = scene_layer.stored_analysis(scene)
    envelope = (record["onset"], FPS) if record is not None else None
    music = _music_file(scene)
    if envelope is None and music is not None:
        try:
            spectral = compute_spectral(load_audio(music))
            envelope = spectral.onset, spectral.rate
        except AudioError:
            pass  # the taps are written where they were tapped, and the report says so
    if envelope is not None:
        taps = snap_to_onsets(taps, *envelope, SNAP_WINDOW)
    return scene_layer.write_taps(scene, taps), envelope is not None


CLASSES = (GM_OT_conduct_to_markers, GM_OT_tap_beats)
