"""The panel's worker: the pipeline runs in another thread, the modal operator polls it, shows progress, cancels on
Esc, and writes the keys on the main thread at the end.

Background Blender has no event loop, so Blender never calls invoke() or modal() here (bpy.ops runs execute()).
The modal steps are driven by hand instead: the operator's own methods, on a stand-in instance, with the events the
window manager would send.
"""

import threading
from types import SimpleNamespace

import bpy
import pytest

from gm_blender_addon.blender import compat, operators
from gm_blender_addon.blender.operators import GM_OT_generate, GenerateRequest, Progress
from gm_blender_addon.blender.worker import Cancelled, Job


def test_a_job_runs_in_another_thread_and_reports_progress():
    seen = {}

    def work(progress):
        seen["thread"] = threading.current_thread()
        progress(0.5, "Halfway")
        return 42

    job = Job(work).start()
    assert job.wait(10) and job.done
    assert seen["thread"] is not threading.main_thread()
    assert job.progress == (0.5, "Halfway")
    assert job.result() == 42


def test_a_cancelled_job_stops_at_its_next_progress_report():
    release = threading.Event()
    reached = []

    def work(progress):
        release.wait(10)
        progress(0.1, "Still going")
        reached.append("after")

    job = Job(work).start()
    job.cancel()
    release.set()
    assert job.wait(10)
    with pytest.raises(Cancelled):
        job.result()
    assert reached == []


def test_errors_in_the_work_reach_the_main_thread():
    def work(progress):
        raise ValueError("bad input")

    job = Job(work).start()
    job.wait(10)
    with pytest.raises(ValueError, match="bad input"):
        job.result()


class _ModalOperator:
    """An instance the operator's modal methods can run on (bpy operators cannot be created from Python)."""

    modal = GM_OT_generate.modal
    _stop_waiting = GM_OT_generate._stop_waiting
    _apply = GM_OT_generate._apply

    def __init__(self, context, request):
        self.reports = []
        self.request = request
        self.progress = Progress(context, hint=" — Esc to cancel")
        self.fingerprint = operators.request_fingerprint(context.scene.gm_conductor)
        self.job = GM_OT_generate.running = Job(request.perform).start()
        self.timer = context.window_manager.event_timer_add(operators.POLL_INTERVAL, window=context.window)

    def report(self, level, message):
        self.reports.append((level, message))


def _request(music, smoothing=0.2):
    return GenerateRequest(audio=music, generator="procedural", seed=1, checkpoint=None, options={},
                           smoothing=smoothing)


TIMER = SimpleNamespace(type="TIMER", value="NOTHING")
ESC = SimpleNamespace(type="ESC", value="PRESS")


def test_modal_polls_until_done_then_keys_the_rig_on_the_main_thread(empty_scene, music_file):
    empty_scene.gm_conductor.audio_path = str(music_file)
    operator = _ModalOperator(bpy.context, _request(music_file))
    assert not GM_OT_generate.poll(bpy.context)  # one generation at a time
    results = []
    while not results or results[-1] == {"PASS_THROUGH"}:
        operator.job.wait(operators.POLL_INTERVAL)
        results.append(operator.modal(bpy.context, TIMER))
    assert results[-1] == {"FINISHED"}
    assert GM_OT_generate.running is None and GM_OT_generate.poll(bpy.context)
    armature = empty_scene.gm_conductor.armature
    assert armature is not None and compat.action_fcurves(armature.animation_data.action, compat.assigned_slot(armature))
    assert [level for level, _ in operator.reports] == [{"INFO"}]


def test_esc_cancels_at_once_and_leaves_the_scene_alone(empty_scene, music_file):
    before = (len(bpy.data.objects), len(bpy.data.actions))
    operator = _ModalOperator(bpy.context, _request(music_file))
    assert operator.modal(bpy.context, ESC) == {"CANCELLED"}
    assert GM_OT_generate.running is None
    operator.job.wait(60)  # the thread winds down at its next progress report; its result is dropped
    with pytest.raises(Cancelled):
        operator.job.result()
    assert (len(bpy.data.objects), len(bpy.data.actions)) == before
    assert operator.reports == [({"INFO"}, "Generation cancelled.")]


def test_settings_undone_while_generating_are_not_overwritten_by_its_result(empty_scene, music_file, tmp_path):
    settings = empty_scene.gm_conductor
    settings.audio_path = str(music_file)
    operator = _ModalOperator(bpy.context, _request(music_file))
    settings.audio_path = str(tmp_path / "the file before.wav")  # what Ctrl+Z during the generation does
    operator.job.wait(120)
    assert operator.modal(bpy.context, TIMER) == {"CANCELLED"}
    assert GM_OT_generate.running is None and settings.armature is None and len(bpy.data.objects) == 0
    assert operator.reports[0][0] == {"WARNING"} and "Generate again" in operator.reports[0][1]


def test_bad_audio_found_by_the_worker_is_reported(empty_scene, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage" * 100)
    operator = _ModalOperator(bpy.context, _request(bad))
    operator.job.wait(60)
    assert operator.modal(bpy.context, TIMER) == {"CANCELLED"}
    assert operator.reports[0][0] == {"ERROR"} and "bad.wav" in operator.reports[0][1]
    assert len(bpy.data.objects) == 0
