"""Beats the user corrects in Blender: Conduct to Markers, a beats file in the panel, and tapped beats."""

import bpy
import numpy as np
import pytest
from scipy.signal import find_peaks

from gm_blender_addon.blender import compat, rigs
from gm_blender_addon.blender.beat_operators import write_tapped_beats
from gm_blender_addon.blender.scene import ANALYSIS
from gm_blender_addon.core.analysis import compute_spectral
from gm_blender_addon.core.audio import load_audio
from helpers import write_click_music


def _markers(scene):
    return sorted(((m.name, m.frame) for m in scene.timeline_markers), key=lambda nf: (nf[1], nf[0]))


def _beat_frames(scene):
    return [frame for name, frame in _markers(scene) if name != "Chorus"]


def _keys(armature):
    fcurve = compat.action_fcurves(armature.animation_data.action, compat.assigned_slot(armature))[0]
    co = np.empty(2 * len(fcurve.keyframe_points), np.float32)
    fcurve.keyframe_points.foreach_get("co", co)
    return co


def _state(scene):
    armature = scene.gm_conductor.armature
    return _markers(scene), sorted(a.name for a in bpy.data.actions), _keys(armature).tobytes()


def _ictus_frames(scene):
    """Frames where the rig's right wrist is lowest, as Blender evaluates the keys."""
    armature = scene.gm_conductor.armature
    wrist = armature.pose.bones[rigs.rig_map_for(armature).resolve([b.name for b in armature.data.bones])["hand.R"]]
    height = []
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        height.append((armature.matrix_world @ wrist.head).z)
    peaks, _ = find_peaks(-np.array(height), prominence=0.005)
    return scene.frame_start + peaks


def _assert_ictus_on(scene, frames):
    ictus = _ictus_frames(scene)
    misses = [f for f in frames if np.min(np.abs(ictus - f)) > 1]
    assert not misses, f"no ictus within a frame of markers at {misses}"


@pytest.fixture(scope="module")
def waltz(tmp_path_factory):
    return write_click_music(tmp_path_factory.mktemp("beats") / "waltz.wav", seconds=8.0, bpm=120.0)


@pytest.fixture
def generated(empty_scene, waltz):
    # The lift's smoothing moves the lowest point of a lopsided beat (a long one before a short one) by up to two
    # frames; without it the rig shows the conductor's own ictus, which is what these tests check.
    empty_scene.gm_conductor.smoothing = 0.0
    empty_scene.gm_conductor.audio_path = str(waltz)
    assert bpy.ops.gm.generate() == {"FINISHED"}
    return empty_scene


def test_conduct_to_markers_follows_moved_added_and_deleted_markers(generated):
    scene = generated
    markers = sorted(scene.timeline_markers, key=lambda m: m.frame)
    markers[4].frame += 5  # beat 2 of bar 2 comes late
    scene.timeline_markers.remove(markers[7])  # a beat deleted
    added = (markers[9].frame + markers[10].frame) // 2
    scene.timeline_markers.new(f"F_{added}", frame=added)  # one added in bar 4 (M in the timeline)
    scene.timeline_markers.new("Chorus", frame=60)  # the user's own marker: not a beat
    scene.frame_set(77)
    frames = _beat_frames(scene)
    assert bpy.ops.gm.conduct_to_markers() == {"FINISHED"}
    assert scene.frame_current == 77  # the playhead stays where the user left it
    assert _beat_frames(scene) == frames and ("Chorus", 60) in _markers(scene)
    _assert_ictus_on(scene, frames)
    names = [name for name, _ in _markers(scene) if name != "Chorus"]
    # Renamed to stay consistent: the deleted beat shortened bar 3, the added one lengthened bar 4.
    assert names[:12] == ["Bar 1", "1.2", "1.3", "Bar 2", "2.2", "2.3", "Bar 3", "3.2", "Bar 4", "4.2", "4.3", "4.4"]
    assert [a.name for a in bpy.data.actions] == ["GM Conductor"]


def test_the_kept_analysis_survives_save_and_reload(generated, tmp_path):
    path = tmp_path / "kept.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    assert scene[ANALYSIS]["version"] == 1 and len(scene[ANALYSIS]["onset"]) == 8 * 30
    scene.timeline_markers.remove(sorted(scene.timeline_markers, key=lambda m: m.frame)[2])
    assert bpy.ops.gm.conduct_to_markers() == {"FINISHED"}
    _assert_ictus_on(scene, _beat_frames(scene))


def test_a_scene_generated_before_the_analysis_was_kept_is_analysed_around_its_markers(generated):
    scene = generated
    del scene[ANALYSIS]
    scene.timeline_markers.remove(sorted(scene.timeline_markers, key=lambda m: m.frame)[5])
    assert bpy.ops.gm.conduct_to_markers() == {"FINISHED"}
    assert scene[ANALYSIS]["version"] == 1
    _assert_ictus_on(scene, _beat_frames(scene))


def test_conducting_to_too_few_markers_is_refused_and_nothing_changes(generated):
    scene = generated
    for marker in sorted(scene.timeline_markers, key=lambda m: m.frame)[1:]:
        scene.timeline_markers.remove(marker)
    before = _state(scene)
    with pytest.raises(RuntimeError, match="Only 1 beat marker.*at least two"):
        bpy.ops.gm.conduct_to_markers()
    assert _state(scene) == before


def test_conduct_to_markers_before_generating_says_what_to_do(empty_scene):
    with pytest.raises(RuntimeError, match="Generate Conductor first"):
        bpy.ops.gm.conduct_to_markers()


def test_a_beats_file_in_the_panel_is_conducted_as_given(empty_scene, waltz, tmp_path):
    beats = np.round(np.cumsum([0.4, 0.6, 0.5, 0.55, 0.45, 0.5, 0.6, 0.7, 0.5, 0.5, 0.45, 0.5]) * 30) / 30
    beats_file = tmp_path / "mine.txt"
    beats_file.write_text("".join(f"{t:.4f}\t{1 if i % 4 == 1 else 0}\n" for i, t in enumerate(beats)))
    settings = empty_scene.gm_conductor
    settings.audio_path, settings.beats_path, settings.tempo, settings.smoothing = str(waltz), str(beats_file), 80.0, 0
    assert bpy.ops.gm.generate() == {"FINISHED"}  # the tempo, greyed out in the panel, is not used
    frames = [1 + round(t * 30) for t in beats]
    assert _beat_frames(empty_scene) == frames
    assert [name for name, _ in _markers(empty_scene)][:6] == ["0.4", "Bar 1", "1.2", "1.3", "1.4", "Bar 2"]
    _assert_ictus_on(empty_scene, frames)


def test_a_malformed_beats_file_is_reported_and_nothing_changes(generated, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("time,bar\n0.5,1\n1.0,\n1.5;x\n")
    generated.gm_conductor.beats_path = str(bad)
    before = _state(generated)
    with pytest.raises(RuntimeError, match=r"bad\.csv:4: '1\.5;x' is not a time"):
        bpy.ops.gm.generate()
    assert _state(generated) == before


def test_taps_snap_to_the_music_and_replace_the_markers_where_tapped(generated, waltz):
    scene = generated
    clicks = np.arange(0.25, 7.8, 0.5)
    onset = compute_spectral(load_audio(waltz)).onset
    assert onset.max() > 0
    # Taps a little late and early on the clicks of bars 2 and 3, one of them doubled.
    taps = clicks[3:9] + np.array([0.05, -0.04, 0.06, 0.03, 0.0, -0.05])
    taps = np.sort(np.append(taps, taps[2] + 0.02))
    written, snapped = write_tapped_beats(scene, taps)
    assert snapped and written == 6
    frames = _beat_frames(scene)
    tapped = [1 + round(t * 30) for t in clicks[3:9]]
    assert all(min(abs(f - t) for f in frames) <= 1 for t in tapped)
    assert len(frames) == len(set(frames))
    assert bpy.ops.gm.conduct_to_markers() == {"FINISHED"}
    _assert_ictus_on(scene, _beat_frames(scene))


def test_tap_beats_needs_a_window():
    with pytest.raises(RuntimeError, match="needs Blender's window"):
        bpy.ops.gm.tap_beats("INVOKE_DEFAULT")


def test_tap_beats_takes_t_presses_while_playing_and_writes_them_when_ended(generated):
    """The modal operator's event handling, driven by stand-in events (the bpy module has no window to play in)."""
    from types import SimpleNamespace

    from gm_blender_addon.blender.beat_operators import GM_OT_tap_beats

    scene, reports = generated, []
    context = SimpleNamespace(scene=scene, window_manager=SimpleNamespace(event_timer_remove=lambda timer: None),
                              screen=SimpleNamespace(is_animation_playing=True), workspace=None)
    tapping = SimpleNamespace(taps=[], last_frame=scene.frame_current, timer=None,
                              report=lambda kind, message: reports.append(message))
    tapping._finish = lambda context: GM_OT_tap_beats._finish(tapping, context)

    def event(kind, value="PRESS", repeat=False):
        return GM_OT_tap_beats.modal(tapping, context, SimpleNamespace(type=kind, value=value, is_repeat=repeat))

    for frame in (99, 114, 129, 144):
        scene.frame_current = frame
        assert event("T") == {"RUNNING_MODAL"}
        assert event("T", repeat=True) == {"RUNNING_MODAL"}  # a held key taps once
        assert event("TIMER") == {"PASS_THROUGH"}
    assert event("SPACE") == {"PASS_THROUGH"}
    context.screen.is_animation_playing = False  # no playback to stop: the test cannot play
    assert event("ESC") == {"FINISHED"}
    assert tapping.taps == [(frame - 1) / 30 for frame in (99, 114, 129, 144)]
    assert "4 taps written as beat markers (moved onto the music's onsets)" in reports[-1]
    frames = _beat_frames(scene)
    assert all(min(abs(f - t) for f in frames) <= 1 for t in (99, 114, 129, 144))
