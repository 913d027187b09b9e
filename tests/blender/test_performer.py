"""The captured performer in Blender: a second rig beside the conductor, its audio and video, the operators and the
capture worker; and that a failure leaves the scene as it was."""

from pathlib import Path

import bpy
import numpy as np
import pytest

from gm_blender_addon.blender import compat, performer, rigs
from gm_blender_addon.blender import scene as scene_layer
from gm_blender_addon.blender.capture_operators import COMPARE_FOLDER, CaptureWorker, capture_outputs
from gm_blender_addon.blender.scene import AUDIO_STRIP, stored_motion
from gm_blender_addon.core.lift import lift
from gm_blender_addon.core.motion import JOINT, Motion
from gm_blender_addon.core.retarget import RigMapError, proportions
from gm_blender_addon.generators.procedural import conduct
from gm_blender_addon.pipeline import solve_for_rig
from helpers import blender_has_audio, steady_analysis, write_click_music

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
needs_audio = pytest.mark.skipif(not blender_has_audio(), reason="this Blender is built without audio: no sound strip")


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> Motion:
    """A performance shaped like a capture (world landmarks, visibility, the video and its audio), made up."""
    folder = tmp_path_factory.mktemp("capture")
    keypoints = conduct(steady_analysis(seconds=6.0), seed=5)
    world = np.zeros(keypoints.shape[:2] + (3,), np.float32)
    world[..., :2] = (keypoints - keypoints.mean(axis=(0, 1))) * 1.7
    world[:, [JOINT["left_wrist"], JOINT["right_wrist"]], 2] = -0.3  # hands towards the camera
    audio = write_click_music(folder / "take.wav", seconds=6.0, bpm=120.0, beats_per_bar=4)
    meta = {"source": "capture", "video": str(FIXTURES / "conductor_rig_25fps.mp4"), "video_size": [640, 480],
            "video_fps": 25.0, "video_frames": 125, "audio": str(audio)}
    return Motion(keypoints, meta=meta, world=world, visibility=np.ones(keypoints.shape[:2], np.float32))


@pytest.fixture
def conducted(empty_scene, music_file):
    """A conductor standing with its music loaded, as Generate leaves it (its keys do not matter here)."""
    empty_scene.gm_conductor.armature = rigs.append_bundled_rig(empty_scene)
    empty_scene.gm_conductor.audio_path = str(music_file)
    scene_layer.configure_timeline(empty_scene, 14.0)
    scene_layer.replace_sound_strip(empty_scene, music_file)
    return empty_scene


def scene_state(scene):
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "collections": sorted(c.name for c in bpy.data.collections),
        "actions": sorted(a.name for a in bpy.data.actions),
        "materials": sorted(m.name for m in bpy.data.materials if m.users),
        "images": sorted(i.name for i in bpy.data.images),
        "strips": sorted((s.name, s.mute) for s in compat.strips(scene)),
        "camera": scene.camera.name if scene.camera else None,
        "range": (scene.frame_start, scene.frame_end),
    }


@needs_audio
def test_the_performer_stands_beside_the_conductor_with_the_videos_audio(conducted, captured):
    scene = conducted
    conductor = scene.gm_conductor.armature
    added = performer.add_performer(scene, captured, conductor=conductor, audio="VIDEO", video_plane=True)
    rig = bpy.data.objects[added.armature_name]
    assert added.armature_name == "Performer" and added.audio == "video" and added.video_plane
    assert {o.name for o in bpy.data.collections["Performer"].all_objects} == {
        "Performer", "Performer_Body", "Performer_Baton", "GM Performer Video"}
    # One stage: no second camera or lights came with the copy.
    assert sorted(o.name for o in bpy.data.objects if o.type == "LIGHT") == ["Conductor_Fill", "Conductor_Key", "Conductor_Rim"]
    assert rig.location.x == pytest.approx(conductor.location.x + performer.GAP)
    assert scene.camera.name == performer.SIDE_CAMERA
    assert rig.animation_data.action.name == "GM Performer" and conductor.animation_data is None
    np.testing.assert_array_equal(stored_motion(rig).keypoints, captured.keypoints)
    strips = {s.name: s for s in compat.strips(scene)}
    assert strips[AUDIO_STRIP].mute and not strips[performer.PERFORMER_AUDIO].mute
    assert scene.frame_end >= 6.0 * 30


def test_the_performers_wrists_reach_the_depth_aware_lift(conducted, captured):
    scene = conducted
    added = performer.add_performer(scene, captured, conductor=scene.gm_conductor.armature)
    rig = bpy.data.objects[added.armature_name]
    skeleton = rigs.snapshot(rig)
    parts = rigs.rig_map_for(rig).resolve(skeleton.names)
    joints = lift(captured, proportions(skeleton, parts), depth=-captured.world[..., 2])
    for frame in (1, 40, 151):
        scene.frame_set(frame)
        shoulder = np.array(rig.pose.bones["upper_arm.R"].head)
        wrist = np.array(rig.pose.bones["hand.R"].head)
        target = joints[frame - 1, JOINT["right_wrist"]] - joints[frame - 1, JOINT["right_shoulder"]]
        assert np.linalg.norm((wrist - shoulder) - target) < 1e-4


def test_adding_again_replaces_the_performer_without_leftovers(conducted, captured):
    scene = conducted
    performer.add_performer(scene, captured, conductor=scene.gm_conductor.armature, video_plane=True)
    first = scene_state(scene)
    performer.add_performer(scene, captured, conductor=scene.gm_conductor.armature, video_plane=True)
    assert scene_state(scene) == first
    assert not [name for name in first["objects"] + first["actions"] if ".00" in name]


@needs_audio
def test_choosing_the_music_keeps_it_playing(conducted, captured):
    scene = conducted
    added = performer.add_performer(scene, captured, conductor=scene.gm_conductor.armature, audio="MUSIC")
    assert added.audio == "music"
    assert [(s.name, s.mute) for s in compat.strips(scene)] == [(AUDIO_STRIP, False)]


def test_a_25_fps_video_is_paced_to_the_30_fps_timeline(conducted, captured):
    scene = conducted
    performer.add_performer(scene, captured, conductor=scene.gm_conductor.armature, video_plane=True)
    material = bpy.data.objects[performer.VIDEO_PLANE].active_material
    texture = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE")
    assert texture.image.source == "MOVIE" and texture.image_user.frame_duration == 125
    (curve,) = compat.action_fcurves(material.node_tree.animation_data.action, compat.assigned_slot(material.node_tree))
    # Scene frame 121 (4 s at 30 fps, counting from 1) must show movie frame 101 (4 s at 25 fps): offset 101 − 121.
    assert curve.evaluate(121) == pytest.approx(101 - 121, abs=0.5)


def test_a_failure_leaves_the_scene_as_it_was(conducted, captured, monkeypatch):
    scene = conducted
    performer.add_performer(scene, captured, conductor=scene.gm_conductor.armature, video_plane=True)
    before = scene_state(scene)

    def refuse(*_args, **_kwargs):
        raise RigMapError("no map fits")

    monkeypatch.setattr(performer, "solve_for_rig", refuse)
    with pytest.raises(RigMapError):
        performer.add_performer(scene, captured, conductor=scene.gm_conductor.armature, video_plane=True)
    assert scene_state(scene) == before


def test_the_add_performer_operator_reports_bad_keypoints(conducted, tmp_path):
    scene = conducted
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    scene.gm_capture.keypoints_path = str(bad)
    before = scene_state(scene)
    with pytest.raises(RuntimeError, match="bad.npz is not a readable"):
        bpy.ops.gm.add_performer()
    assert scene_state(scene) == before


def test_each_rig_is_rendered_alone_for_its_motiongram(conducted, captured, tmp_path):
    from gm_blender_addon.blender.keyframes import build_action

    scene = conducted
    conductor = scene.gm_conductor.armature
    skeleton = rigs.snapshot(conductor)
    rotations = solve_for_rig(captured, skeleton, rigs.rig_map_for(conductor).resolve(skeleton.names), 0.0).rotations
    for bone in rotations:
        conductor.pose.bones[bone].rotation_mode = "QUATERNION"
    compat.assign_action(conductor, *build_action(conductor, "GM Conductor", rotations))
    added = performer.add_performer(scene, captured, conductor=conductor)
    render = scene.render
    before = (render.filepath, render.resolution_x, render.engine, scene.frame_end, scene.camera.name)
    rig_list = [("generated", scene.gm_conductor.armature), ("captured", bpy.data.objects[added.armature_name])]
    grams = performer.scene_rig_motiongrams(scene, rig_list, 0.3, tmp_path)
    assert [label for label, _, _ in grams] == ["generated (render)", "captured (render)"]
    assert all(image.shape == (120, 8) and fps == 30.0 and image.max() > 0 for _, image, fps in grams)
    assert (render.filepath, render.resolution_x, render.engine, scene.frame_end, scene.camera.name) == before
    assert "GM Motiongram Camera" not in bpy.data.objects


def test_capture_add_and_compare_through_the_operators(conducted, tmp_path, monkeypatch):
    import tempfile

    pytest.importorskip("imageio_ffmpeg")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # an unsaved file captures into the temporary folder
    scene = conducted
    settings = scene.gm_capture
    settings.video_path = str(FIXTURES / "astronaut_24fps.mp4")
    assert bpy.ops.gm.capture_video() == {"FINISHED"}  # headless: synchronous, in-process
    assert Path(settings.keypoints_path) == capture_outputs(FIXTURES / "astronaut_24fps.mp4")[0]
    assert Path(settings.keypoints_path).parent == tmp_path / "gm_capture"
    assert "without a person" in settings.status
    settings.audio_source = "VIDEO"
    assert bpy.ops.gm.add_performer() == {"FINISHED"}
    assert "Performer" in bpy.data.objects
    settings.property_unset("output_dir")  # the default //gm_compare: unsaved, the temporary folder, not Blender's own
    assert settings.output_dir == COMPARE_FOLDER
    settings.rig_motiongrams, settings.motiongram_seconds = True, 1.0
    assert bpy.ops.gm.compare_performer() == {"FINISHED"}
    rows = dict(line.split("\t") for line in settings.metrics.splitlines())
    assert "MSE (aligned)" in rows and rows["SE"] == "— (needs M2S-Net weights)"
    assert {"beats.png", "motiongrams.png", "wrist_trajectories.png"} <= {i.name for i in bpy.data.images}
    assert (tmp_path / "gm_compare" / "metrics.csv").is_file()
    assert (tmp_path / "gm_compare" / "motiongram_captured.mp4").is_file()
    assert settings.status == f"Compared: {tmp_path / 'gm_compare'}"


def test_the_capture_worker_reports_progress_and_its_result(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import sys
    import time

    out, audio = tmp_path / "astro.npz", tmp_path / "astro.wav"
    worker = CaptureWorker(sys.executable, FIXTURES / "astronaut_24fps.mp4", out, audio, 0.5)
    messages = []
    deadline = time.time() + 120
    while not worker.finished():
        assert time.time() < deadline
        messages += worker.drain()
        time.sleep(0.1)
    messages += worker.drain()
    assert worker.process.returncode == 0, worker.failure()
    assert any("progress" in m for m in messages) and messages[-1]["done"] == str(out)
    assert out.is_file() and not audio.exists()


def test_a_cancelled_or_failed_worker_leaves_no_files(tmp_path):
    import sys

    out, audio = tmp_path / "rig.npz", tmp_path / "rig.wav"
    worker = CaptureWorker(sys.executable, FIXTURES / "conductor_rig_25fps.mp4", out, audio, 0.5)
    worker.cancel()
    assert worker.process.returncode != 0 and not out.exists() and not audio.exists()

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    worker = CaptureWorker(sys.executable, broken, out, audio, 0.5)
    while not worker.finished():
        pass
    assert worker.process.returncode == 1 and "Cannot decode broken.mp4" in worker.failure()


def test_a_comparison_runs_off_the_main_thread_and_can_be_cancelled(captured, tmp_path):
    from gm_blender_addon.blender.capture_operators import ComparisonJob
    from gm_blender_addon.blender.worker import Cancelled, Job

    generated = Motion(conduct(steady_analysis(seconds=6.0), seed=1))
    job = Job(ComparisonJob(captured=captured, output_dir=tmp_path, generated=generated).run).start()
    assert job.wait(timeout=120)
    result = job.result()
    assert result.comparison.frames == captured.n_frames and (tmp_path / "beats.png").is_file()

    job = Job(ComparisonJob(captured=captured, output_dir=tmp_path / "stopped", generated=generated).run)
    job.cancel()
    job.start().wait(timeout=120)
    with pytest.raises(Cancelled):
        job.result()
    assert not (tmp_path / "stopped" / "metrics.json").exists()


def test_with_sparse_keys_the_performer_plays_from_an_nla_track_within_the_tolerance(conducted, captured):
    from gm_blender_addon.core import keys

    scene = conducted
    conductor = scene.gm_conductor.armature
    dense = bpy.data.objects[performer.add_performer(scene, captured, conductor=conductor).armature_name]
    played = []
    for frame in range(1, captured.n_frames + 1):
        scene.frame_set(frame)
        played.append([np.array(b.matrix_basis.to_quaternion()) for b in dense.pose.bones])
    sparse = bpy.data.objects[performer.add_performer(scene, captured, conductor=conductor,
                                                      key_tolerance=0.5).armature_name]
    animation = sparse.animation_data
    assert animation.action is None and animation.action_blend_type == "COMBINE"
    (strip,) = animation.nla_tracks[scene_layer.NLA_TRACK].strips
    assert strip.action.name == "GM Performer"
    for frame in range(1, captured.n_frames + 1):
        scene.frame_set(frame)
        now = [np.array(b.matrix_basis.to_quaternion()) for b in sparse.pose.bones]
        assert keys.angle_between_deg(np.array(now), np.array(played[frame - 1])).max() <= 0.51
