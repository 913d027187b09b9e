"""The panel's Generate operator on the bpy module: what lands in the scene, and what must not on failure."""

import math

import bpy
import numpy as np
import pytest

from gm_blender_addon.blender import compat, rigs
from gm_blender_addon.blender.scene import AUDIO_STRIP, stored_motion
from gm_blender_addon.core.motion import JOINT
from gm_blender_addon.pipeline import perform, solve_for_rig
from helpers import blender_has_audio


def _generate(scene, audio, **settings):
    props = scene.gm_conductor
    props.audio_path = str(audio)
    for key, value in settings.items():
        setattr(props, key, value)
    return bpy.ops.gm.generate()


def _scene_state(scene):
    return {
        "actions": sorted(a.name for a in bpy.data.actions),
        "objects": sorted(o.name for o in bpy.data.objects),
        "strips": sorted(s.name for s in compat.strips(scene)),
        "markers": sorted((m.name, m.frame) for m in scene.timeline_markers),
        "fps": scene.render.fps,
        "range": (scene.frame_start, scene.frame_end),
    }


@pytest.mark.skipif(not blender_has_audio(), reason="this Blender is built without audio: no sound strip")
def test_generate_sets_up_the_scene_around_the_music(empty_scene, music_file):
    assert _generate(empty_scene, music_file) == {"FINISHED"}
    scene = empty_scene
    assert scene.render.fps == 30 and scene.render.fps_base == 1.0
    assert (scene.frame_start, scene.frame_end) == (1, math.ceil(14.0 * 30))
    assert scene.sync_mode == "AUDIO_SYNC"
    (strip,) = [s for s in compat.strips(scene) if s.name == AUDIO_STRIP]
    first, length = compat.strip_span(strip)
    assert first == 1 and length == pytest.approx(14.0 * 30, abs=2)
    markers = sorted(scene.timeline_markers, key=lambda m: (m.frame, m.name))
    analysis = perform(music_file).analysis
    bars = [m for m in markers if m.name.startswith("Bar ")]
    assert [m.name for m in bars] == [f"Bar {n}" for n in range(1, len(analysis.downbeats) + 1)]
    assert [m.frame for m in bars] == [1 + round(t * 30) for t in analysis.downbeats]
    # Every beat is marked: the others as bar.beat (3/4 here).
    assert sorted(m.frame for m in markers) == sorted(1 + round(t * 30) for t in analysis.beats)
    first_bar = bars[0].frame
    following = [m.name for m in markers if m.frame > first_bar][:3]
    assert following == ["1.2", "1.3", "Bar 2"]
    armature = scene.gm_conductor.armature
    assert armature.type == "ARMATURE" and scene.camera is not None
    # The keypoints it was keyed from stay with it (for the gesture vocabulary).
    np.testing.assert_array_equal(stored_motion(armature).keypoints, perform(music_file).motion.keypoints)
    animation = armature.animation_data
    assert animation.action.name == "GM Conductor"
    if compat.LAYERED_ACTIONS:
        assert animation.action_slot is not None
    assert f"{len(analysis.downbeats)} bars of 3/4" in scene.gm_conductor.last_result


def test_in_the_startup_scene_the_conductor_is_seen_through_his_camera(music_file):
    bpy.ops.wm.read_factory_settings(use_empty=False)
    scene = bpy.context.scene
    assert _generate(scene, music_file) == {"FINISHED"}
    cube = scene.objects["Cube"]
    assert cube.hide_viewport and cube.hide_render  # he stands at the origin, inside it
    assert scene.camera.name in scene.gm_conductor.armature.users_collection[0].all_objects


def test_a_moved_cube_and_camera_are_left_alone(music_file):
    bpy.ops.wm.read_factory_settings(use_empty=False)
    scene = bpy.context.scene
    scene.objects["Cube"].location.x = 4.0
    scene.objects["Camera"].location.z = 9.0
    assert _generate(scene, music_file) == {"FINISHED"}
    assert not scene.objects["Cube"].hide_render and scene.camera.name == "Camera"


def test_evaluated_wrists_reach_the_lifted_targets(empty_scene, music_file):
    scene = empty_scene
    armature = rigs.append_bundled_rig(scene)
    skeleton = rigs.snapshot(armature)
    parts = rigs.rig_map_for(armature).resolve(skeleton.names)
    performance = perform(music_file, seed=2)
    joints = solve_for_rig(performance.motion, skeleton, parts, smoothing=0.2).joints
    assert _generate(scene, music_file, seed=2, armature=armature) == {"FINISHED"}

    errors = []
    for frame in range(1, performance.motion.n_frames, 37):
        scene.frame_set(frame)
        pose = armature.pose.bones
        for side, key in (("L", "left"), ("R", "right")):
            shoulder = np.array(pose[parts[f"upper_arm.{side}"]].head)
            wrist = np.array(pose[parts[f"hand.{side}"]].head)
            target = joints[frame - 1, JOINT[f"{key}_wrist"]] - joints[frame - 1, JOINT[f"{key}_shoulder"]]
            errors.append(np.linalg.norm((wrist - shoulder) - target))
    assert max(errors) < 1e-4


def test_a_meter_chosen_in_the_panel_replaces_the_detected_one(empty_scene, music_file):
    """The music is in 3/4; told 6/8, the conductor beats two to the bar and the markers follow."""
    assert _generate(empty_scene, music_file, meter="6/8") == {"FINISHED"}
    assert "bars of 6/8" in empty_scene.gm_conductor.last_result
    markers = sorted(empty_scene.timeline_markers, key=lambda m: m.frame)
    after_first_bar = [m.name for m in markers if m.frame > next(m for m in markers if m.name == "Bar 1").frame]
    assert after_first_bar[:3] == ["1.2", "Bar 2", "2.2"]


def test_a_tempo_typed_in_the_panel_holds_the_beat_there(empty_scene, music_file):
    """The waltz clicks at 120 BPM; told 60, the conductor beats on every other click."""
    assert _generate(empty_scene, music_file, tempo=60.0) == {"FINISHED"}
    assert "at 60 BPM" in empty_scene.gm_conductor.last_result


def test_a_tempo_out_of_range_is_refused_and_nothing_changes(empty_scene, music_file):
    before = _scene_state(empty_scene)
    with pytest.raises(RuntimeError, match="20 BPM cannot be conducted"):
        _generate(empty_scene, music_file, tempo=20.0)
    assert _scene_state(empty_scene) == before


def test_generate_again_replaces_instead_of_piling_up(empty_scene, music_file):
    assert _generate(empty_scene, music_file) == {"FINISHED"}
    first = _scene_state(empty_scene)
    assert _generate(empty_scene, music_file, seed=9) == {"FINISHED"}
    second = _scene_state(empty_scene)
    assert second == first
    assert [a.name for a in bpy.data.actions] == ["GM Conductor"]


def test_the_users_own_action_is_kept(empty_scene, music_file):
    armature = rigs.append_bundled_rig(empty_scene)
    own = bpy.data.actions.new("My take")
    armature.animation_data_create().action = own
    assert _generate(empty_scene, music_file, armature=armature) == {"FINISHED"}
    assert own.use_fake_user and "My take" in bpy.data.actions


def test_rig_missing_bones_is_refused_and_nothing_changes(empty_scene, music_file):
    data = bpy.data.armatures.new("Stub")
    armature = bpy.data.objects.new("Stub", data)
    empty_scene.collection.objects.link(armature)
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    for name in ("spine", "upper_arm.L"):
        bone = data.edit_bones.new(name)
        bone.tail = (0, 0, 1)
    bpy.ops.object.mode_set(mode="OBJECT")
    before = _scene_state(empty_scene)
    with pytest.raises(RuntimeError, match=r"missing bones .*forearm\.L"):
        _generate(empty_scene, music_file, armature=armature)
    assert _scene_state(empty_scene) == before


@pytest.mark.parametrize("content", [b"", b"garbage" * 100])
def test_bad_audio_is_refused_and_nothing_changes(empty_scene, tmp_path, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    before = _scene_state(empty_scene)
    with pytest.raises(RuntimeError, match="bad.wav"):
        _generate(empty_scene, bad)
    assert _scene_state(empty_scene) == before


def test_bulk_keys_match_keyframe_insert(empty_scene):
    from gm_blender_addon.blender.keyframes import build_action

    armature = rigs.append_bundled_rig(empty_scene)
    rng = np.random.default_rng(0)
    q = rng.normal(size=(20, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    action, slot = build_action(armature, "bulk", {"hand.R": q})
    compat.assign_action(armature, action, slot)
    armature.pose.bones["hand.R"].rotation_mode = "QUATERNION"
    for frame in (1, 7, 20):
        empty_scene.frame_set(frame)
        # The same rotation; keys may take the other sign so that neighbouring ones interpolate the short way.
        keyed = np.array(armature.pose.bones["hand.R"].rotation_quaternion)
        np.testing.assert_allclose(keyed * np.sign(keyed @ q[frame - 1]), q[frame - 1], atol=1e-6)


def test_a_score_without_a_recording_is_rendered_conducted_and_cued(empty_scene, tmp_path):
    from helpers import write_musicxml

    score = write_musicxml(tmp_path / "horn call.musicxml", resting={"Horn in F": 5})
    props = empty_scene.gm_conductor
    props.score_path = str(score)
    assert bpy.ops.gm.generate() == {"FINISHED"}
    names = {m.name for m in empty_scene.timeline_markers}
    assert {"Bar 1", "Bar 5", "Bar 8", "Cue: Horns"} <= names
    assert (tmp_path / "horn call (rendered).wav").is_file()
    assert props.last_result.endswith("1 cue from the score")


def test_section_markers_name_the_cues_and_cut_offs_and_replace_earlier_ones(empty_scene):
    from gm_blender_addon.blender.scene import write_section_markers
    from gm_blender_addon.core.score_guide import Cue

    empty_scene.timeline_markers.new("My note", frame=3)
    write_section_markers(empty_scene, [Cue(1.0, "Horns", ("Horn in F",), -30.0)],
                          [Cue(2.0, "Cellos", ("Cello",), 40.0)])
    write_section_markers(empty_scene, [Cue(1.5, "Horns", ("Horn in F",), -30.0)],
                          [Cue(2.5, "Cellos", ("Cello",), 40.0)])
    fps = empty_scene.render.fps / empty_scene.render.fps_base
    assert sorted((m.name, m.frame) for m in empty_scene.timeline_markers) == sorted(
        [("My note", 3), ("Cue: Horns", 1 + round(1.5 * fps)), ("Cut-off: Cellos", 1 + round(2.5 * fps))])


def test_a_score_that_cannot_be_read_is_refused_and_nothing_changes(empty_scene, music_file, tmp_path):
    bad = tmp_path / "broken.musicxml"
    bad.write_text("<score-partwise><part-list>")
    before = _scene_state(empty_scene)
    with pytest.raises(RuntimeError, match="broken.musicxml"):
        _generate(empty_scene, music_file, score_path=str(bad))
    assert _scene_state(empty_scene) == before


@pytest.mark.parametrize("sparse", [False, True])
def test_the_conductor_shifts_its_weight_with_the_feet_planted(empty_scene, music_file, sparse):
    """The bundled rig's hips are keyed moving (weight shifts, the knees' give) and, as Blender plays the keys, the
    feet stay where they stand."""
    scene = empty_scene
    armature = rigs.append_bundled_rig(scene)
    assert _generate(scene, music_file, armature=armature, sparse_keys=sparse) == {"FINISHED"}
    bones = armature.pose.bones
    hips, feet = [], {side: [] for side in "LR"}
    for frame in range(1, scene.frame_end, 7):
        scene.frame_set(frame)
        hips.append(np.array(bones["spine"].head))
        for side in "LR":
            foot = bones[f"foot.{side}"]
            feet[side].append(np.concatenate([foot.head, foot.tail]))
    hips = np.array(hips)
    assert np.ptp(hips[:, 0]) > 0.005 and np.ptp(hips[:, 2]) > 0.003
    for side in "LR":
        assert np.ptp(np.array(feet[side]), axis=0).max() < 2e-3  # planted: heel and toe within 2 mm
