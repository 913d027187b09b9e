"""The gesture vocabulary in Blender: kept with the scene, filled from frame ranges of any keyed armature's motion,
trained in a worker thread (Esc cancels), and used to explain and search the motions on the timeline and to draw its
map. Everything it computes comes from core.gesture_vocabulary; these operators read the scene, call it and report.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import bpy
import numpy as np
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..core.gesture_encoder import TrainingSettings
from ..core.gesture_vocabulary import (Vocabulary, VocabularyError, add_entry, explain, load_vocabulary,
                                       map_points, save_vocabulary, search, train_vocabulary, vocabulary_arrays,
                                       vocabulary_from_arrays)
from ..core.motion import Motion
from ..core.plots import gesture_map
from ..core.text_embedding import TextModelError, text_encoder
from ..resources import starter_vocabulary_file
from .capture_operators import show_images
from .operators import POLL_INTERVAL, Progress, redraw_sidebars
from .preferences import text_model_dir
from .scene import frame_of, frame_rate, seconds_at, stored_motion
from .worker import Cancelled, Job

# The scene's custom property holding the vocabulary (core.gesture_vocabulary.vocabulary_arrays, each array flat with
# its shape beside it), so that it is saved with the .blend.
VOCABULARY = "gm_gesture_vocabulary"
EXPLAIN_PREFIX = "≈ "
MATCH_PREFIX = "Match: "
MAP_IMAGE = "GM Vocabulary Map"
SEARCH_RESULTS = 5
VOCABULARY_ERRORS = (VocabularyError, TextModelError)


class GM_VocabularySettings(bpy.types.PropertyGroup):
    description: bpy.props.StringProperty(
        name="Description", description="What the gesture looks like, in words (\"left hand points left\")")
    meaning: bpy.props.StringProperty(
        name="Meaning", description="What the gesture asks of the orchestra (\"the trombones come in\")")
    query: bpy.props.StringProperty(
        name="Find", description="A description of the gesture to find in the motion (\"cut-off\")")
    steps: bpy.props.IntProperty(
        name="Steps", description="Training steps: more learns a larger vocabulary better, and takes longer",
        default=TrainingSettings().steps, min=10, soft_max=5000)


def scene_vocabulary(scene) -> Vocabulary:
    """The scene's vocabulary (an empty one where it has none yet)."""
    group = scene.get(VOCABULARY)
    if group is None:
        return Vocabulary()
    arrays = {name: np.asarray(item["values"]).reshape(tuple(item["shape"]))
              for name, item in group["arrays"].items()}
    return vocabulary_from_arrays({**arrays, "record_json": np.array(str(group["record_json"]))},
                                  f"the vocabulary of scene '{scene.name}'")


def vocabulary_summary(scene) -> tuple[list[tuple[str, str]], float | None]:
    """((description, meaning) of each gesture, seconds its training took or None when untrained) of the scene's
    vocabulary, read from its record alone: cheap enough for the panel to draw."""
    group = scene.get(VOCABULARY)
    if group is None:
        return [], None
    record = json.loads(str(group["record_json"]))
    model = record.get("model")
    return [(e["description"], e["meaning"]) for e in record["entries"]], model["seconds"] if model else None


def keep_vocabulary(scene, vocabulary: Vocabulary) -> None:
    arrays = vocabulary_arrays(vocabulary)
    record = str(arrays.pop("record_json"))
    # Custom properties hold flat arrays (float32 stays float32), so each keeps its shape beside it.
    scene[VOCABULARY] = {
        "record_json": record,
        "arrays": {name: {"shape": list(value.shape), "values": np.ascontiguousarray(value, np.float32).ravel()}
                   for name, value in arrays.items()},
    }


def _motion_of(context) -> tuple[object, Motion] | None:
    """(the armature, its keypoints) of the active object, when Generate or Add Performer keyed it."""
    obj = context.active_object
    motion = stored_motion(obj) if obj is not None and obj.type == "ARMATURE" else None
    return (obj, motion) if motion is not None else None


def _embed(texts: list[str]) -> np.ndarray:
    return text_encoder(text_model_dir())(texts)


def _replace_markers(scene, prefix: str, named: list[tuple[str, float]]) -> None:
    for marker in [m for m in scene.timeline_markers if m.name.startswith(prefix)]:
        scene.timeline_markers.remove(marker)
    fps = frame_rate(scene)
    for name, seconds in named:
        scene.timeline_markers.new(f"{prefix}{name}", frame=frame_of(seconds, fps))


class _NeedsMotion:
    @classmethod
    def poll(cls, context):
        if _motion_of(context) is None:
            cls.poll_message_set("Select an armature that Generate or Add Performer keyed")
            return False
        return True


class GM_OT_vocabulary_add(_NeedsMotion, bpy.types.Operator):
    """Add the gesture in the timeline's preview range of the active armature's motion to the vocabulary, with its
    description and meaning"""

    bl_idname = "gm.vocabulary_add"
    bl_label = "Add Gesture"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        scene = context.scene
        armature, motion = _motion_of(context)
        if not scene.use_preview_range:
            self.report({"ERROR"}, "Mark the gesture's frames as the timeline's preview range (View ▸ Set Preview "
                                   "Range, or P and drag), then add it.")
            return {"CANCELLED"}
        settings = scene.gm_vocabulary
        vocabulary = scene_vocabulary(scene)
        try:
            # The preview range in the motion's own frames (the scene may run at another rate), its end included.
            fps = frame_rate(scene)
            start = round(seconds_at(scene.frame_preview_start, fps) * motion.fps)
            end = round(seconds_at(scene.frame_preview_end + 1, fps) * motion.fps)
            entry = add_entry(vocabulary, motion, start, end, settings.description, settings.meaning, _embed,
                              source=armature.name)
        except VOCABULARY_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        keep_vocabulary(scene, vocabulary)
        self.report({"INFO"}, f"Added \"{entry.description}\" → \"{entry.meaning}\" ({len(vocabulary.entries)} "
                              "gestures; train again to use it).")
        return {"FINISHED"}


class GM_OT_vocabulary_remove(bpy.types.Operator):
    """Remove this gesture (every performance of it) from the vocabulary"""

    bl_idname = "gm.vocabulary_remove"
    bl_label = "Remove Gesture"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    description: bpy.props.StringProperty()
    meaning: bpy.props.StringProperty()

    def execute(self, context):
        vocabulary = scene_vocabulary(context.scene)
        kept = [e for e in vocabulary.entries if (e.description, e.meaning) != (self.description, self.meaning)]
        if len(kept) == len(vocabulary.entries):
            return {"CANCELLED"}
        vocabulary.entries = kept
        vocabulary.model = None  # trained with the gesture still in: train again
        keep_vocabulary(context.scene, vocabulary)
        return {"FINISHED"}


class GM_OT_vocabulary_train(bpy.types.Operator):
    """Train the vocabulary's joint embedding of gestures, descriptions and meanings"""

    bl_idname = "gm.vocabulary_train"
    bl_label = "Train Vocabulary"
    bl_options = {"REGISTER", "UNDO"}

    running: Job | None = None

    @classmethod
    def poll(cls, context):
        return cls.running is None

    def execute(self, context):
        vocabulary = scene_vocabulary(context.scene)
        progress = Progress(context)
        try:
            train_vocabulary(vocabulary, self._settings(context), progress=progress)
        except VocabularyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            progress.end()
        return self._keep(context, vocabulary)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        vocabulary = scene_vocabulary(context.scene)
        self.entries = len(vocabulary.entries)
        self.progress = Progress(context, hint=" — Esc to cancel")
        settings = self._settings(context)

        def trained(progress) -> Vocabulary:
            train_vocabulary(vocabulary, settings, progress=progress)
            return vocabulary

        self.job = GM_OT_vocabulary_train.running = Job(trained).start()
        self.timer = context.window_manager.event_timer_add(POLL_INTERVAL, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    @staticmethod
    def _settings(context) -> TrainingSettings:
        return replace(TrainingSettings(), steps=context.scene.gm_vocabulary.steps)

    def _stop_waiting(self, context) -> None:
        context.window_manager.event_timer_remove(self.timer)
        self.progress.end()
        GM_OT_vocabulary_train.running = None
        redraw_sidebars(context)

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self.job.cancel()
            self._stop_waiting(context)
            self.report({"INFO"}, "Training cancelled; the vocabulary is as it was.")
            return {"CANCELLED"}
        if event.type != "TIMER" or not self.job.done:
            if event.type == "TIMER":
                self.progress(*self.job.progress)
            return {"PASS_THROUGH"}
        self._stop_waiting(context)
        try:
            vocabulary = self.job.result()
        except Cancelled:
            return {"CANCELLED"}
        except VocabularyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if len(scene_vocabulary(context.scene).entries) != self.entries:
            self.report({"WARNING"}, "Gestures were added or removed while training: nothing was kept; train again.")
            return {"CANCELLED"}
        return self._keep(context, vocabulary)

    def cancel(self, context):
        self.job.cancel()
        self._stop_waiting(context)

    def _keep(self, context, vocabulary: Vocabulary) -> set[str]:
        keep_vocabulary(context.scene, vocabulary)
        model = vocabulary.model
        self.report({"INFO"}, f"Trained on {len(vocabulary.entries)} gestures in {model.seconds:.0f} s (final loss "
                              f"{model.final_loss:.3f}).")
        return {"FINISHED"}


class GM_OT_vocabulary_explain(_NeedsMotion, bpy.types.Operator):
    """Mark the active armature's motion with the musical meanings its gestures are nearest to"""

    bl_idname = "gm.vocabulary_explain"
    bl_label = "Explain Motion"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        _, motion = _motion_of(context)
        try:
            explained = explain(scene_vocabulary(context.scene), motion)
        except VocabularyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        # A marker where the nearest meaning changes, not at every window: the timeline stays readable.
        named, previous = [], None
        for item in explained:
            meaning, similarity = item.meanings[0]
            if meaning != previous:
                named.append((f"{meaning} ({similarity:.2f})", item.time))
                previous = meaning
        _replace_markers(context.scene, EXPLAIN_PREFIX, named)
        self.report({"INFO"}, f"{len(named)} explanation markers.")
        return {"FINISHED"}


class GM_OT_vocabulary_search(_NeedsMotion, bpy.types.Operator):
    """Find the moments of the active armature's motion that best match the description typed, mark them and jump
    to the best"""

    bl_idname = "gm.vocabulary_search"
    bl_label = "Find Gesture"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        scene = context.scene
        _, motion = _motion_of(context)
        vocabulary = scene_vocabulary(scene)
        query = scene.gm_vocabulary.query
        try:
            # A description the vocabulary holds needs no text model; another is embedded by it.
            found = search(vocabulary, motion, query, top=SEARCH_RESULTS, embed=_embed)
        except VOCABULARY_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _replace_markers(scene, MATCH_PREFIX, [(f"{' '.join(query.split())} ({score:.2f})", time)
                                               for time, score in found])
        scene.frame_set(frame_of(found[0][0], frame_rate(scene)))
        self.report({"INFO"}, f"Best match at {found[0][0]:.1f} s (similarity {found[0][1]:.2f}); "
                              f"{len(found)} marked.")
        return {"FINISHED"}


class GM_OT_vocabulary_map(bpy.types.Operator):
    """Draw the vocabulary's joint embedding in two dimensions, each gesture, description and meaning a connected
    triangle, and show it in the Image Editor"""

    bl_idname = "gm.vocabulary_map"
    bl_label = "Map Vocabulary"

    def execute(self, context):
        path = Path(bpy.app.tempdir or bpy.path.abspath("//")) / "gesture_vocabulary_map.png"
        try:
            gesture_map(map_points(scene_vocabulary(context.scene)), path)
        except VocabularyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        show_images(context, [path])
        bpy.data.images[path.name].name = MAP_IMAGE
        self.report({"INFO"}, f"The vocabulary's map is the image '{MAP_IMAGE}'.")
        return {"FINISHED"}


class GM_OT_vocabulary_export(ExportHelper, bpy.types.Operator):
    """Save the scene's gesture vocabulary as a file (for the command line or another .blend)"""

    bl_idname = "gm.vocabulary_export"
    bl_label = "Export Vocabulary"
    filename_ext = ".npz"
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})

    def execute(self, context):
        try:
            save_vocabulary(scene_vocabulary(context.scene), self.filepath)
        except (VocabularyError, OSError) as exc:
            self.report({"ERROR"}, f"Could not write {self.filepath}: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved the vocabulary to {self.filepath}.")
        return {"FINISHED"}


class GM_OT_vocabulary_import(ImportHelper, bpy.types.Operator):
    """Replace the scene's gesture vocabulary with one from a file"""

    bl_idname = "gm.vocabulary_import"
    bl_label = "Import Vocabulary"
    bl_options = {"REGISTER", "UNDO"}
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})

    def execute(self, context):
        try:
            vocabulary = load_vocabulary(self.filepath)
        except VocabularyError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        keep_vocabulary(context.scene, vocabulary)
        state = "trained" if vocabulary.model is not None else "untrained"
        self.report({"INFO"}, f"Imported {len(vocabulary.entries)} gestures ({state}).")
        return {"FINISHED"}


class GM_OT_vocabulary_starter(bpy.types.Operator):
    """Replace the scene's gesture vocabulary with the trained one that comes with the add-on: eleven conducting
    gestures (cues, dynamics, cut-off, fermata, tempo changes), ready to explain and search without a text model"""

    bl_idname = "gm.vocabulary_starter"
    bl_label = "Load Starter Vocabulary"
    bl_options = {"REGISTER", "UNDO"}

    def invoke(self, context, event):
        if vocabulary_summary(context.scene)[0]:
            return context.window_manager.invoke_confirm(self, event)
        return self.execute(context)

    def execute(self, context):
        try:
            vocabulary = load_vocabulary(starter_vocabulary_file())
        except VocabularyError as exc:
            self.report({"ERROR"}, f"{exc} Reinstall the add-on.")
            return {"CANCELLED"}
        keep_vocabulary(context.scene, vocabulary)
        self.report({"INFO"}, f"Loaded the starter vocabulary: {len(vocabulary.meanings)} gestures, trained.")
        return {"FINISHED"}


CLASSES = (GM_VocabularySettings, GM_OT_vocabulary_add, GM_OT_vocabulary_remove, GM_OT_vocabulary_train,
           GM_OT_vocabulary_explain, GM_OT_vocabulary_search, GM_OT_vocabulary_map, GM_OT_vocabulary_export,
           GM_OT_vocabulary_import, GM_OT_vocabulary_starter)
