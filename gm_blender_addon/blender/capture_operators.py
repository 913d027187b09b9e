"""Operators and settings for capturing a performer from video, adding them beside the conductor, and comparing.

Capture is heavy (the pose networks on every frame), so with a UI it runs in a worker process: the add-on's own
command line (`python -m gm_blender_addon capture … --progress json`), started with Blender's Python, which is then
given the add-on's bundled wheels, or with the one the user names. The UI stays responsive, progress arrives as JSON
lines and Esc (or the Cancel button) ends the process. Headless, execute() runs the same capture in-process and
synchronously.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from .. import resources
from ..core.analysis import AnalysisError, MusicHints
from ..core.audio import AudioError
from ..core.capture import VIDEO_SUFFIXES, CaptureError, capture
from ..core.compare import CompareError, CompareOutputs, write_comparison
from ..core.motion import Motion, MotionFileError
from ..core.retarget import RigMapError
from ..generators.registry import GeneratorError
from .operators import redraw_sidebars
from .performer import PERFORMER, PerformerError
from .properties import key_tolerance_deg, music_hints
from .rigs import RigFileError
from .worker import Cancelled, Job

POLL_INTERVAL = 0.2  # seconds between the modal timer's looks at the worker
STDERR_LINES = 40  # how much of the worker's error output is kept for the message
CAPTURE_FOLDER = "gm_capture"
COMPARE_FOLDER = "//gm_compare"
# Failures of the user's input that become a one-line report rather than a traceback.
PERFORMER_ERRORS = (MotionFileError, RigFileError, RigMapError, PerformerError)
COMPARE_ERRORS = (CompareError, AudioError, AnalysisError, GeneratorError, OSError) + PERFORMER_ERRORS


class GM_CaptureSettings(bpy.types.PropertyGroup):
    video_path: bpy.props.StringProperty(
        name="Video", description=f"Video of a performer ({', '.join(VIDEO_SUFFIXES)})", subtype="FILE_PATH"
    )
    smoothing: bpy.props.FloatProperty(
        name="Jitter Filter", description="Strength of the speed-adaptive (One-Euro) filter on the tracked joints",
        default=0.5, min=0.0, max=1.0, subtype="FACTOR",
    )
    keypoints_path: bpy.props.StringProperty(
        name="Keypoints", description="The captured keypoints .npz (written by Capture, or choose an earlier one)",
        subtype="FILE_PATH",
    )
    audio_source: bpy.props.EnumProperty(
        name="Audio",
        items=(
            ("VIDEO", "Video's Audio", "Play the sound recorded with the video (the conductor's music is muted)"),
            ("MUSIC", "Loaded Music", "Keep the conductor's music"),
        ),
    )
    video_plane: bpy.props.BoolProperty(name="Video Plane", description="Show the video on a plane behind the performer")
    generated_keypoints: bpy.props.StringProperty(
        name="Conductor",
        description="The conductor's keypoints .npz; empty generates them again from the settings above",
        subtype="FILE_PATH",
    )
    m2snet: bpy.props.StringProperty(
        name="M2S-Net", description="Optional M2S-Net weights: they enable the SE and FGD metrics", subtype="FILE_PATH"
    )
    output_dir: bpy.props.StringProperty(
        name="Output Folder", description="Where metrics (JSON, CSV) and plots (PNG) go", default=COMPARE_FOLDER,
        subtype="DIR_PATH",
    )
    rig_motiongrams: bpy.props.BoolProperty(
        name="Rig Motiongrams", description="Also render motiongrams of both rigs (slow: about 0.1 s per frame per rig)"
    )
    motiongram_seconds: bpy.props.FloatProperty(name="Motiongram Length", default=10.0, min=1.0, subtype="TIME_ABSOLUTE")
    capture_python: bpy.props.StringProperty(
        name="Capture Python",
        description="Python that runs the capture worker, with numpy, onnxruntime and imageio-ffmpeg installed; "
        "empty uses Blender's own with the add-on's bundled wheels",
        subtype="FILE_PATH",
    )
    running: bpy.props.BoolProperty(options={"SKIP_SAVE"})  # a capture worker is running
    comparing: bpy.props.BoolProperty(options={"SKIP_SAVE"})  # a comparison is running
    progress: bpy.props.FloatProperty(options={"SKIP_SAVE"}, min=0.0, max=1.0)
    status: bpy.props.StringProperty(options={"SKIP_SAVE"})
    metrics: bpy.props.StringProperty(description="The last comparison, one 'name<TAB>value' per line")


def output_folder(path: str) -> Path:
    """An output folder the user typed: a blend-relative `//` path is beside the .blend when it is saved, else in the
    temporary folder; an unsaved file has no folder, and Blender would resolve `//` against its working folder."""
    if path.startswith("//") and not bpy.data.filepath:
        return Path(tempfile.gettempdir()) / path[2:]
    return Path(bpy.path.abspath(path))


def capture_outputs(video: Path) -> tuple[Path, Path]:
    """(keypoints .npz, audio .wav) for a video: beside the .blend when it is saved, else in the temporary folder."""
    folder = output_folder("//" + CAPTURE_FOLDER)
    return folder / f"{video.stem}.npz", folder / f"{video.stem}.wav"


class CaptureWorker:
    """The capture command line in a child process; its JSON progress lines are read by a thread into a queue."""

    def __init__(self, python: str, video: Path, out: Path, audio_out: Path, smoothing: float):
        package = resources.PACKAGE_DIR
        command = [python, "-m", package.name, "capture", str(video), "--out", str(out), "--audio-out", str(audio_out),
                   "--smoothing", f"{smoothing:.4f}", "--progress", "json"]
        # Blender's own Python finds the extension's wheels only where Blender itself put them on sys.path, so it is
        # handed that path; another Python brings its own packages (and may not load Blender's).
        paths = [str(package.parent), *(sys.path if python == sys.executable else []), os.environ.get("PYTHONPATH")]
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, paths)))
        self.outputs = (out, audio_out)
        self.started = time.time()
        self.messages: queue.Queue = queue.Queue()
        self.errors: list[str] = []
        self.process = subprocess.Popen(command, cwd=str(package.parent), env=environment, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            try:
                self.messages.put(json.loads(line))
            except ValueError:
                pass  # a library printing to stdout; only our JSON lines matter

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.errors = (self.errors + [line.rstrip()])[-STDERR_LINES:]

    def drain(self) -> list[dict]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def finished(self) -> bool:
        if self.process.poll() is None:
            return False
        for reader in self._readers:
            reader.join(timeout=2.0)
        return True

    def failure(self) -> str:
        """The worker's own one-line reason, else the tail of what it printed."""
        reasons = [line.split("FAILED: ", 1)[1] for line in self.errors if "FAILED: " in line]
        if reasons:
            return reasons[-1]
        return "\n".join(self.errors[-5:]) or f"the capture worker exited with code {self.process.returncode}"

    def cancel(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.discard_outputs()

    def discard_outputs(self) -> None:
        """Remove what this run wrote, so a cancelled or failed capture leaves no half-made files."""
        for path in self.outputs:
            if path.is_file() and path.stat().st_mtime >= self.started - 1.0:
                path.unlink()


_active: dict[str, CaptureWorker] = {}  # at most one capture per Blender session, under "worker"


class GM_OT_capture_video(bpy.types.Operator):
    """Track the performer in the video (in a separate process) and save their keypoints"""

    bl_idname = "gm.capture_video"
    bl_label = "Capture Performer"

    _timer = None
    _done: dict | None = None  # the worker's final JSON line

    def _paths(self, context):
        settings = context.scene.gm_capture
        if not settings.video_path:
            raise CaptureError("Choose a video of the performer first.")
        video = Path(bpy.path.abspath(settings.video_path))
        return settings, video, *capture_outputs(video)

    def execute(self, context):
        try:
            settings, video, out, audio_out = self._paths(context)
            wm = context.window_manager
            wm.progress_begin(0, 100)
            try:
                result = capture(video, settings.smoothing, audio_out,
                                 progress=lambda fraction, _message: wm.progress_update(int(100 * fraction)))
            finally:
                wm.progress_end()
            out.parent.mkdir(parents=True, exist_ok=True)
            result.motion.save(out)
        except (CaptureError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        settings.keypoints_path = str(out)
        settings.status = result.report.summary()
        for warning in result.report.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Captured {video.name}: {settings.status}")
        return {"FINISHED"}

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if "worker" in _active:
            self.report({"ERROR"}, "A capture is already running; cancel it first.")
            return {"CANCELLED"}
        try:
            settings, video, out, audio_out = self._paths(context)
            if not video.is_file():
                raise CaptureError(f"Video file not found: {video}.")
            out.parent.mkdir(parents=True, exist_ok=True)
            python = bpy.path.abspath(settings.capture_python) if settings.capture_python else sys.executable
            _active["worker"] = CaptureWorker(python, video, out, audio_out, settings.smoothing)
        except (CaptureError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        settings.running, settings.progress, settings.status = True, 0.0, "Starting the capture worker"
        self._timer = context.window_manager.event_timer_add(POLL_INTERVAL, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        settings = context.scene.gm_capture
        worker = _active["worker"]
        if event.type == "ESC" or not settings.running:
            return self._stop(context, worker, cancelled=True)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        finished = worker.finished()  # first, so that every line the worker printed is already queued
        for message in worker.drain():
            if "progress" in message:
                settings.progress, settings.status = message["progress"], message["message"]
            elif "done" in message:
                self._done = message
        redraw_sidebars(context)
        return self._stop(context, worker, cancelled=False) if finished else {"PASS_THROUGH"}

    def _stop(self, context, worker: CaptureWorker, cancelled: bool):
        context.window_manager.event_timer_remove(self._timer)
        del _active["worker"]
        settings = context.scene.gm_capture
        settings.running = False
        redraw_sidebars(context)
        if cancelled:
            worker.cancel()
            settings.status = "Capture cancelled"
            self.report({"WARNING"}, "Capture cancelled; nothing was saved.")
            return {"CANCELLED"}
        if worker.process.returncode != 0 or self._done is None:
            worker.discard_outputs()
            settings.status = f"Capture failed: {worker.failure()}"
            self.report({"ERROR"}, worker.failure())
            return {"CANCELLED"}
        settings.keypoints_path = self._done["done"]
        settings.progress, settings.status = 1.0, self._done["summary"]
        for warning in self._done.get("warnings", []):
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Captured: {self._done['summary']}")
        return {"FINISHED"}


class GM_OT_capture_cancel(bpy.types.Operator):
    """Stop the running capture; nothing it made is kept"""

    bl_idname = "gm.capture_cancel"
    bl_label = "Cancel Capture"

    def execute(self, context):
        # The modal operator sees `running` turn false on its next tick and ends the worker itself.
        context.scene.gm_capture.running = False
        return {"FINISHED"}


class GM_OT_add_performer(bpy.types.Operator):
    """Put the captured performer on a second rig beside the conductor, on the same timeline"""

    bl_idname = "gm.add_performer"
    bl_label = "Add Performer"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import performer

        settings = context.scene.gm_capture
        if not settings.keypoints_path:
            self.report({"ERROR"}, "Capture a video first, or choose captured keypoints (.npz).")
            return {"CANCELLED"}
        try:
            motion = Motion.load(bpy.path.abspath(settings.keypoints_path))
            added = performer.add_performer(
                context.scene, motion, conductor=context.scene.gm_conductor.armature, audio=settings.audio_source,
                video_plane=settings.video_plane, smoothing=context.scene.gm_conductor.smoothing,
                key_tolerance=key_tolerance_deg(context.scene.gm_conductor),
            )
        except PERFORMER_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        note = "" if added.audio != "none" else "; no audio (the video has none and no music is loaded)"
        self.report({"INFO"}, f"Added {added.armature_name}: {added.frames} frames with the {added.audio}'s audio{note}")
        return {"FINISHED"}


def show_images(context, paths: list[Path]) -> None:
    """Load the plots as images and show the first in an Image Editor (a new window when none is open)."""
    images = []
    for path in paths:
        image = bpy.data.images.load(str(path), check_existing=True)
        image.reload()
        images.append(image)
    if not images or bpy.app.background or context.window is None:
        return
    areas = [a for w in context.window_manager.windows for a in w.screen.areas if a.type == "IMAGE_EDITOR"]
    if not areas:
        bpy.ops.wm.window_new()
        area = context.window_manager.windows[-1].screen.areas[0]
        area.type = "IMAGE_EDITOR"
        areas = [area]
    areas[0].spaces.active.image = images[0]


@dataclass
class ComparisonJob:
    """A comparison's inputs, read from the scene on the main thread; run() touches no bpy, so it may run in a thread.

    Without `generated`, the conductor's motion is generated again from `music` with the panel's generator settings.
    """

    captured: Motion
    output_dir: Path
    generated: Motion | None = None
    music: Path | None = None
    generator: str = "procedural"
    seed: int = 0
    hints: MusicHints = MusicHints()
    checkpoint: str | None = None
    m2snet: str | None = None
    motiongram_seconds: float = 10.0
    rig_grams: list | None = None  # motiongrams of the rigs, rendered beforehand on the main thread

    def run(self, progress) -> CompareOutputs:
        from .. import pipeline
        from ..core.analysis import analyse
        from ..core.audio import load_audio

        if self.generated is not None:
            audio = self.music or (Path(self.captured.meta["audio"]) if self.captured.meta.get("audio") else None)
            generated, analysis = self.generated, analyse(load_audio(audio), hints=self.hints) if audio else None
        elif self.music is not None:
            progress(0.0, "Generating the conductor again")
            performance = pipeline.perform(self.music, self.generator, seed=self.seed, checkpoint=self.checkpoint,
                                           hints=self.hints)
            generated, analysis = performance.motion, performance.analysis
        else:
            raise CompareError("Load the conductor's music (or choose generated keypoints) to compare against.")
        rendered = None if self.rig_grams is None else (lambda _seconds, _folder: self.rig_grams)
        return write_comparison(
            generated, self.captured, self.output_dir, analysis, self.m2snet, self.captured.meta.get("video"),
            self.motiongram_seconds, rendered, progress=progress,
        )


class GM_OT_compare_performer(bpy.types.Operator):
    """Compare the conductor's generated motion with the captured performer: metrics and plots"""

    bl_idname = "gm.compare_performer"
    bl_label = "Compare"

    _timer = None
    _job: Job | None = None  # the comparison running in a thread (with a UI)

    def _inputs(self, context) -> ComparisonJob:
        """Read the inputs; render the rigs first when asked (bpy work, so on the main thread)."""
        from . import performer

        scene = context.scene
        settings, conductor = scene.gm_capture, scene.gm_conductor
        if not settings.keypoints_path:
            raise CompareError("Capture a video first, or choose captured keypoints (.npz).")
        job = ComparisonJob(
            captured=Motion.load(bpy.path.abspath(settings.keypoints_path)),
            output_dir=output_folder(settings.output_dir),
            generated=Motion.load(bpy.path.abspath(settings.generated_keypoints)) if settings.generated_keypoints else None,
            music=Path(bpy.path.abspath(conductor.audio_path)) if conductor.audio_path else None,
            generator=conductor.generator, seed=conductor.seed, hints=music_hints(conductor),
            checkpoint=bpy.path.abspath(conductor.checkpoint) if conductor.checkpoint else None,
            m2snet=bpy.path.abspath(settings.m2snet) if settings.m2snet else None,
            motiongram_seconds=settings.motiongram_seconds,
        )
        if settings.rig_motiongrams:
            rigs_to_render = [("generated", conductor.armature), ("captured", bpy.data.objects.get(PERFORMER))]
            if any(armature is None for _, armature in rigs_to_render):
                raise CompareError("Rendering the rigs needs both the conductor and an added performer.")
            job.output_dir.mkdir(parents=True, exist_ok=True)
            job.rig_grams = performer.scene_rig_motiongrams(scene, rigs_to_render, job.motiongram_seconds, job.output_dir)
        return job

    def _publish(self, context, result: CompareOutputs):
        settings = context.scene.gm_capture
        settings.metrics = "\n".join(f"{name}\t{value}" for name, value in result.comparison.rows())
        settings.status = f"Compared: {result.files[0].parent}"
        show_images(context, [p for p in result.files if p.suffix == ".png"])
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Comparison written to {result.files[0].parent}")
        return {"FINISHED"}

    def execute(self, context):
        wm = context.window_manager
        wm.progress_begin(0, 100)
        try:
            result = self._inputs(context).run(lambda fraction, _message: wm.progress_update(int(100 * fraction)))
        except COMPARE_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        return self._publish(context, result)

    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        settings = context.scene.gm_capture
        if settings.comparing:
            self.report({"ERROR"}, "A comparison is already running.")
            return {"CANCELLED"}
        try:
            inputs = self._inputs(context)
        except COMPARE_ERRORS as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._job = Job(inputs.run).start()
        settings.comparing, settings.progress, settings.status = True, 0.0, "Comparing"
        self._timer = context.window_manager.event_timer_add(POLL_INTERVAL, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        settings = context.scene.gm_capture
        if event.type == "ESC" or not settings.comparing:
            self._job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        settings.progress, settings.status = self._job.progress
        redraw_sidebars(context)
        if not self._job.done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        settings.comparing = False
        try:
            result = self._job.result()
        except Cancelled:
            settings.status = "Comparison cancelled"
            self.report({"WARNING"}, "Comparison cancelled.")
            return {"CANCELLED"}
        except COMPARE_ERRORS as exc:
            settings.status = "Comparison failed"
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return self._publish(context, result)


class GM_OT_compare_cancel(bpy.types.Operator):
    """Stop the running comparison"""

    bl_idname = "gm.compare_cancel"
    bl_label = "Cancel Comparison"

    def execute(self, context):
        context.scene.gm_capture.comparing = False
        return {"FINISHED"}


CLASSES = (
    GM_CaptureSettings, GM_OT_capture_video, GM_OT_capture_cancel, GM_OT_add_performer, GM_OT_compare_performer,
    GM_OT_compare_cancel,
)
