"""Operators: each calls the pure pipeline, then the scene layer, and reports.

Generate runs the pipeline in a worker thread when there is a UI (invoke → modal), with progress in the status bar
and Esc to cancel; the keys are written on the main thread when it is done. Headless, and from scripts, execute()
runs the same steps synchronously. Either way the scene changes only at the end, as one undo step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..cli import INPUT_ERRORS
from ..core.analysis import MusicHints
from ..core.retarget import RigMap
from ..core.score import Score, load_score
from ..core.stage import SeatingPlan
from ..weights import WeightsError
from . import rig_maps, rigs, stage
from .preferences import checkpoint_for
from .properties import generator_options, key_tolerance_deg, music_hints
from .rigs import RigFileError
from .worker import Cancelled, Job

POLL_INTERVAL = 0.1  # seconds between the modal timer's looks at the worker
PIPELINE_SHARE = 0.85  # of the progress bar; keying the rig takes the rest


@dataclass(frozen=True)
class GenerateRequest:
    """What Generate was asked, read from the scene on the main thread: plain data the worker may use."""

    audio: Path | None  # None: the score is rendered to `rendered_audio` and conducted
    generator: str
    seed: int
    checkpoint: Path | None
    options: dict
    smoothing: float
    key_tolerance: float | None = None  # degrees; None keys every frame
    hints: MusicHints = MusicHints()
    score: Score | None = None
    score_file: Path | None = None
    plan: SeatingPlan | None = None  # the scene's orchestra, which the cues turn to

    @property
    def rendered_audio(self) -> Path:
        """Where a score without a recording is rendered: beside the score, so the sound strip outlives the
        session."""
        return self.score_file.with_name(f"{self.score_file.stem} (rendered).wav")

    def perform(self, progress):
        from .. import pipeline

        def scaled(fraction: float, message: str) -> None:
            progress(PIPELINE_SHARE * fraction, message)

        if self.audio is None:
            return pipeline.perform_score(self.score, self.rendered_audio, self.generator, seed=self.seed,
                                          checkpoint=self.checkpoint, options=self.options, progress=scaled,
                                          plan=self.plan)
        return pipeline.perform(self.audio, self.generator, seed=self.seed, checkpoint=self.checkpoint,
                                options=self.options, hints=self.hints, progress=scaled, score=self.score,
                                plan=self.plan)


class Progress:
    """Progress shown in the status bar (with the percentage) and on the cursor."""

    def __init__(self, context, hint: str = ""):
        self.window_manager = context.window_manager
        self.workspace = context.workspace
        self.hint = hint
        self.window_manager.progress_begin(0, 100)

    def __call__(self, fraction: float, message: str) -> None:
        self.window_manager.progress_update(int(100 * fraction))
        if self.workspace is not None:
            self.workspace.status_text_set(f"Gesture Maestro: {message} ({100 * fraction:.0f}%){self.hint}")

    def end(self) -> None:
        self.window_manager.progress_end()
        if self.workspace is not None:
            self.workspace.status_text_set(None)


def _remove_collection(collection) -> None:
    for obj in list(collection.all_objects):
        bpy.data.objects.remove(obj)
    bpy.data.collections.remove(collection)


def result_line(applied, analysis) -> str:
    """What the panel shows of the last result."""
    line = (f"{applied.bars} bars of {analysis.meter} at {analysis.tempo_bpm:.0f} BPM on {applied.armature_name}, "
            f"{applied.keys:,} keys")
    if analysis.score is not None:
        cues, releases = len(analysis.score.cues), len(analysis.score.releases)
        line += f", {cues} cue{'s' * (cues != 1)}"
        line += f" and {releases} cut-off{'s' * (releases != 1)}" if releases else ""
        line += " from the score"
    return line


def target_armature(context):
    """The armature the panel works on: the one chosen in the panel, else the active object if it is one."""
    chosen = context.scene.gm_conductor.armature
    if chosen is not None:
        return chosen
    active = context.active_object
    return active if active is not None and active.type == "ARMATURE" else None


def redraw_sidebars(context) -> None:
    """Redraw every 3D viewport (the Conductor panel lives in their sidebars) in every window."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def request_fingerprint(settings) -> tuple:
    """What the panel asks a generation for, as typed: compared when a running generation ends, because an undo
    (or an edit) while it ran may have changed what it was started with."""
    return (settings.audio_path, settings.generator, settings.seed, settings.checkpoint, settings.smoothing,
            settings.sparse_keys, settings.key_tolerance, settings.meter, settings.tempo, settings.beats_path,
            settings.score_path, tuple(sorted(generator_options(settings).items())))


class GM_OT_generate(bpy.types.Operator):
    """Analyse the music and animate the conductor to it"""

    bl_idname = "gm.generate"
    bl_label = "Generate Conductor"
    bl_options = {"REGISTER", "UNDO"}

    # One generation at a time: the job of the modal operator that is running, if any.
    running: Job | None = None

    @classmethod
    def poll(cls, context):
        return cls.running is None

    def _request(self, context) -> GenerateRequest | None:
        """The request, or None after reporting why it cannot run. A chosen rig that does not fit is refused now
        rather than after the music has been analysed."""
        settings = context.scene.gm_conductor
        if not settings.audio_path and not settings.score_path:
            self.report({"ERROR"}, "Choose an audio file first (or a score, to conduct it without a recording).")
            return None
        try:
            if settings.armature is not None:
                rigs.rig_map_for(settings.armature)
            checkpoint = checkpoint_for(settings.generator, settings.checkpoint)
            score_file = Path(bpy.path.abspath(settings.score_path)) if settings.score_path else None
            score = load_score(score_file) if score_file is not None else None
            hints = music_hints(settings) if score is None else MusicHints()
        except INPUT_ERRORS + (WeightsError,) as exc:
            self.report({"ERROR"}, str(exc))
            return None
        return GenerateRequest(
            audio=Path(bpy.path.abspath(settings.audio_path)) if settings.audio_path else None,
            generator=settings.generator,
            seed=settings.seed,
            checkpoint=checkpoint,
            options=generator_options(settings),
            smoothing=settings.smoothing,
            key_tolerance=key_tolerance_deg(settings),
            hints=hints,
            score=score,
            score_file=score_file,
            plan=stage.scene_plan(context.scene, settings.armature) if score is not None else None,
        )

    def execute(self, context):
        request = self._request(context)
        if request is None:
            return {"CANCELLED"}
        progress = Progress(context)
        try:
            performance = request.perform(progress)
            progress(PIPELINE_SHARE, "Keying the rig")
            return self._apply(context, request, performance)
        except INPUT_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            progress.end()

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        request = self._request(context)
        if request is None:
            return {"CANCELLED"}
        self.request = request
        self.fingerprint = request_fingerprint(context.scene.gm_conductor)
        self.progress = Progress(context, hint=" — Esc to cancel")
        self.job = GM_OT_generate.running = Job(request.perform).start()
        self.timer = context.window_manager.event_timer_add(POLL_INTERVAL, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _stop_waiting(self, context) -> None:
        context.window_manager.event_timer_remove(self.timer)
        self.progress.end()
        GM_OT_generate.running = None
        redraw_sidebars(context)  # else the panel shows the progress line until the pointer passes over it

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self.job.cancel()
            self._stop_waiting(context)
            self.report({"INFO"}, "Generation cancelled.")
            return {"CANCELLED"}
        if event.type != "TIMER" or not self.job.done:
            if event.type == "TIMER":
                self.progress(*self.job.progress)
                redraw_sidebars(context)  # the panel shows the step too
            return {"PASS_THROUGH"}
        self._stop_waiting(context)
        if request_fingerprint(context.scene.gm_conductor) != self.fingerprint:
            self.report({"WARNING"}, "The Conductor settings changed while generating (an undo?): nothing was "
                                     "applied; press Generate again.")
            return {"CANCELLED"}
        try:
            performance = self.job.result()
            return self._apply(context, self.request, performance)
        except Cancelled:
            return {"CANCELLED"}
        except INPUT_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}

    def cancel(self, context):
        # Blender ends modal operators this way when the file is closed or the window goes.
        self.job.cancel()
        self._stop_waiting(context)

    def _apply(self, context, request: GenerateRequest, performance) -> set[str]:
        """Key the rig (appending the bundled one if none is chosen) on the main thread."""
        from . import scene

        settings = context.scene.gm_conductor
        armature = settings.armature
        appended = None
        try:
            if armature is None:
                armature = rigs.append_bundled_rig(context.scene)
                appended = armature.users_collection[0]
            rig_map = rigs.rig_map_for(armature)
            applied = scene.apply_performance(context.scene, armature, performance, rig_map, request.smoothing,
                                              key_tolerance=request.key_tolerance)
        except INPUT_ERRORS + (RigFileError,) as exc:
            if appended is not None:
                _remove_collection(appended)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if rig_maps.stored(armature) is None:
            rig_maps.store(armature, rig_map)  # shown in the panel from now on, to edit if needed
        staged = rigs.take_the_stage(context.scene, appended) if appended is not None else []
        if appended is not None and stage.add_stage(context.scene, armature):
            staged.append("built the stage (podium, music stand, the orchestra's sections)")
        settings.armature = armature
        settings.last_result = result_line(applied, performance.analysis)
        self.report({"INFO"}, f"Conducted {performance.audio.name}: {settings.last_result}"
                    + "".join(f"; {change}" for change in staged))
        for warning in performance.warnings:
            self.report({"WARNING"}, warning)
        return {"FINISHED"}


def _report_fit(operator, armature, rig_map: RigMap) -> None:
    missing = rig_map.missing([b.name for b in armature.data.bones])
    if missing:
        operator.report(
            {"WARNING"},
            f"Rig map '{rig_map.name}' is the closest, but {armature.name} has no {', '.join(missing)}: "
            "choose its bones in the Rig Map panel.",
        )
    else:
        operator.report({"INFO"}, f"Rig map '{rig_map.name}' fits {armature.name}.")


class _RigMapOperator:
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return target_armature(context) is not None


class GM_OT_rig_map_detect(_RigMapOperator, bpy.types.Operator):
    """Choose the rig map that fits this armature's bone names; list the bones it still needs"""

    bl_idname = "gm.rig_map_detect"
    bl_label = "Detect Rig Map"

    def execute(self, context):
        armature = target_armature(context)
        rig_map = rigs.closest_map(armature)
        rig_maps.store(armature, rig_map)
        _report_fit(self, armature, rig_map)
        return {"FINISHED"}


# Every list of items handed to Blender, kept: Blender holds pointers to their strings, not the strings.
_map_items: list[list[tuple[str, str, str]]] = []


def _available_map_items(_self, _context):
    items = [(m.name, m.name, m.description) for m in rigs.available_maps()]
    if not _map_items or _map_items[-1] != items:
        _map_items.append(items)
    return _map_items[-1]


class GM_OT_rig_map_apply(_RigMapOperator, bpy.types.Operator):
    """Use a built-in or saved rig map for this armature"""

    bl_idname = "gm.rig_map_apply"
    bl_label = "Use Rig Map"

    map: bpy.props.EnumProperty(name="Rig Map", items=_available_map_items)

    def execute(self, context):
        armature = target_armature(context)
        rig_map = {m.name: m for m in rigs.available_maps()}[self.map]
        rig_maps.store(armature, rig_map)
        _report_fit(self, armature, rig_map)
        return {"FINISHED"}


class GM_OT_rig_map_load(_RigMapOperator, ImportHelper, bpy.types.Operator):
    """Load a rig map (.json) for this armature"""

    bl_idname = "gm.rig_map_load"
    bl_label = "Load Rig Map"

    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        folder = rig_maps.user_maps_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.filepath = str(folder) + "/"
        return super().invoke(context, event)

    def execute(self, context):
        armature = target_armature(context)
        try:
            rig_map = RigMap.load(self.filepath)
        except INPUT_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        rig_maps.store(armature, rig_map)
        _report_fit(self, armature, rig_map)
        return {"FINISHED"}


class GM_OT_rig_map_save(_RigMapOperator, ExportHelper, bpy.types.Operator):
    """Save this armature's rig map (.json) to use again on other rigs; saved maps are offered and detected like the
    built-in ones"""

    bl_idname = "gm.rig_map_save"
    bl_label = "Save Rig Map"
    bl_options = {"REGISTER"}

    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    @classmethod
    def poll(cls, context):
        armature = target_armature(context)
        return armature is not None and rig_maps.stored(armature) is not None

    def invoke(self, context, event):
        folder = rig_maps.user_maps_dir()
        folder.mkdir(parents=True, exist_ok=True)
        self.filepath = str(folder / f"{bpy.path.clean_name(target_armature(context).gm_rig_map.name or 'rig')}.json")
        return super().invoke(context, event)

    def execute(self, context):
        rig_map = rig_maps.stored(target_armature(context))
        path = Path(self.filepath)
        if not rig_map.name:
            rig_map.name = path.stem
        try:
            rig_map.save(path)
        except OSError as exc:
            self.report({"ERROR"}, f"Cannot save {path}: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved rig map '{rig_map.name}' to {path}")
        return {"FINISHED"}


CLASSES = (GM_OT_generate, GM_OT_rig_map_detect, GM_OT_rig_map_apply, GM_OT_rig_map_load, GM_OT_rig_map_save)
