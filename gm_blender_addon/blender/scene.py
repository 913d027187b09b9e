"""Putting a performance into a scene: keys on the armature, the music in the sequencer, beat markers, timing, and
the analysis kept for conducting again to the markers.

Everything that can fail (rig map, solve, building the action) happens before the scene is touched; what follows
only assigns finished data, so a failure leaves the user's scene as it was.

The music starts at frame 1: a time t (seconds) is frame 1 + t × the scene's frame rate, which Generate sets to 30.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import bpy
import numpy as np

from ..core.analysis import (RECORD_VERSION, GivenBeats, MusicAnalysis, analysis_record, beat_positions,
                             typical_bar_length)
from ..core.beat_markers import (CUE_PREFIX, RELEASE_PREFIX, beats_from_markers, is_beat_marker, marked_beats,
                                 marker_name, with_taps)
from ..core.motion import FPS, N_JOINTS, Motion
from ..core.retarget import RigMap, RigMapError
from ..pipeline import Performance, solve_for_rig
from . import compat, keyframes, rigs

AUDIO_STRIP = "GM Music"
GENERATED = "gm_generated"
FIRST_FRAME = 1
# The scene's custom property where Generate keeps the analysis (a record: see core.analysis.analysis_record).
ANALYSIS = "gm_analysis"
# The armature's custom property where the keypoints it was keyed from are kept (see store_motion).
MOTION = "gm_motion"
# With sparse keys the generated action plays from this NLA track, under the animator's own keys.
NLA_TRACK = "GM Conductor"


@dataclass
class Applied:
    armature_name: str
    action_name: str
    frames: int
    bars: int
    keyed_bones: int
    keys: int


def frame_rate(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def frame_of(seconds: float, fps: float) -> int:
    return FIRST_FRAME + int(round(seconds * fps))


def seconds_at(frame: float, fps: float) -> float:
    return (frame - FIRST_FRAME) / fps


def configure_timeline(scene, duration: float) -> None:
    if (scene.render.fps, scene.render.fps_base) != (FPS, 1.0):  # each assignment re-times the strips (40 ms)
        scene.render.fps = FPS
        scene.render.fps_base = 1.0
    scene.frame_start = FIRST_FRAME
    scene.frame_end = FIRST_FRAME + max(1, math.ceil(duration * FPS)) - 1
    scene.sync_mode = "AUDIO_SYNC"


def replace_sound_strip(scene, audio_path: Path):
    for strip in [s for s in compat.strips(scene) if s.name == AUDIO_STRIP]:
        compat.remove_strip(scene, strip)
    if not compat.has_audio():
        return None
    used = {s.channel for s in compat.strips(scene)}
    channel = next(c for c in range(1, 129) if c not in used)
    strip = compat.new_sound_strip(scene, AUDIO_STRIP, str(audio_path.resolve()), channel, FIRST_FRAME)
    strip.show_waveform = True
    return strip


def _beat_markers(scene) -> list:
    """The scene's beat markers (see core.beat_markers) in time order; markers bound to a camera never are."""
    return sorted((m for m in scene.timeline_markers if m.camera is None and is_beat_marker(m.name)),
                  key=lambda m: m.frame)


def _music_length(scene, record: dict | None) -> float:
    """Seconds of music: the kept analysis's, else the scene's frame range (Generate fits it to the music)."""
    if record is not None:
        return record["duration"]
    return seconds_at(scene.frame_end + 1, frame_rate(scene))


def _marker_times(scene) -> list[tuple[str, float]]:
    fps = frame_rate(scene)
    return [(m.name, seconds_at(m.frame, fps)) for m in _beat_markers(scene)]


def marker_beats(scene, record: dict | None) -> GivenBeats:
    """The beats and bars of the scene's beat markers; AnalysisError when there are fewer than two."""
    return beats_from_markers(_marker_times(scene), _music_length(scene, record))


def write_beat_markers(scene, beats: np.ndarray, downbeats: np.ndarray, beats_per_bar: int,
                       bar_labels: Sequence[str] | None = None) -> None:
    """Make the beat markers exactly these beats, named `Bar N` and `N.k` (N from `bar_labels`, one per downbeat,
    where a score numbers the bars); markers are reused in time order (so most of a selection survives), extra ones
    removed and missing ones added."""
    markers = _beat_markers(scene)
    for marker in markers[len(beats):]:
        scene.timeline_markers.remove(marker)
    fps = frame_rate(scene)
    for i, (seconds, position) in enumerate(zip(beats, beat_positions(beats, downbeats, beats_per_bar))):
        name = marker_name(*position, bar_labels)
        if i < len(markers):
            markers[i].name, markers[i].frame = name, frame_of(seconds, fps)
        else:
            scene.timeline_markers.new(name, frame=frame_of(seconds, fps))


def write_section_markers(scene, cues, releases) -> None:
    """`Cue: <section>` markers at the score's entrances and `Cut-off: <section>` at the ends of the phrases it
    releases (core.score_guide.Cue), replacing earlier ones."""
    for marker in [m for m in scene.timeline_markers if m.name.startswith((CUE_PREFIX, RELEASE_PREFIX))]:
        scene.timeline_markers.remove(marker)
    fps = frame_rate(scene)
    for prefix, events in ((CUE_PREFIX, cues), (RELEASE_PREFIX, releases)):
        for event in events:
            scene.timeline_markers.new(f"{prefix}{event.section}", frame=frame_of(event.time, fps))


def write_taps(scene, taps: np.ndarray) -> int:
    """Put tapped beats (seconds, already snapped) among the beat markers, replacing those where they were tapped;
    the taps continue the bars before them. Returns the number of taps written; AnalysisError for fewer than two."""
    record, _ = stored_analysis(scene)
    beats, downbeats = marked_beats(_marker_times(scene), _music_length(scene, record))
    per_bar = typical_bar_length(beats, downbeats) or (record["beats_per_bar"] if record else 4)
    beats, downbeats = with_taps(beats, downbeats, per_bar, taps)
    write_beat_markers(scene, beats, downbeats, per_bar)
    return len(taps)


def store_motion(armature, motion: Motion) -> None:
    """Keep the keypoints the armature was keyed from with it, so that the gesture vocabulary can take clips of them
    and explain them (about 100 bytes a frame, saved with the .blend)."""
    armature[MOTION] = {"keypoints": np.ascontiguousarray(motion.keypoints, dtype=np.float32).ravel(),
                        "fps": float(motion.fps)}


def stored_motion(armature) -> Motion | None:
    """The keypoints `armature` was last keyed from by Generate, Conduct to Markers or Add Performer, or None."""
    group = armature.get(MOTION) if armature is not None else None
    if group is None:
        return None
    keypoints = np.asarray(group["keypoints"], dtype=np.float32)
    return Motion(keypoints.reshape(-1, N_JOINTS, 2), fps=float(group["fps"]))


def store_analysis(scene, analysis: MusicAnalysis, audio_path: Path) -> None:
    record = analysis_record(analysis)
    record["audio"] = str(audio_path)
    scene[ANALYSIS] = record


def stored_analysis(scene) -> tuple[dict | None, Path | None]:
    """(the analysis record Generate kept, the music's file), or (None, None) for a scene generated before the
    record existed, or whose record is of another version."""
    group = scene.get(ANALYSIS)
    if group is None or group.get("version") != RECORD_VERSION:
        return None, None
    record = {key: group[key] for key in group.keys()}
    return record, Path(record.pop("audio"))


def apply_performance(scene, armature, performance: Performance, rig_map: RigMap, smoothing: float,
                      new_music: bool = True, key_tolerance: float | None = None) -> Applied:
    """Key `armature` with the performance and set the scene up around it; replaces an earlier generated result.

    With `new_music` (Generate) the music's strip is put in the sequencer, the playhead at its start and the analysis
    kept with the scene; conducting again to the beat markers leaves all three as they are. Either way the beat
    markers are rewritten from the analysis.

    Without `key_tolerance` every frame is keyed and the action is the armature's active one. With it (degrees) the
    keys are sparse Bézier keys within that angle of the solved rotation (core.keys) and the action plays from the
    NLA track NLA_TRACK, so that what the animator keys goes on a layer above it and survives generating again.
    """
    skeleton = rigs.snapshot(armature)
    parts = rig_map.resolve(skeleton.names, armature=f"Armature '{armature.name}'")
    switches = rig_map.resolve_properties(skeleton.names)
    for bone, values in switches.items():
        absent = [p for p in values if p not in armature.pose.bones[bone]]
        if absent:
            raise RigMapError(
                f"Bone {bone} of armature '{armature.name}' has no {', '.join(absent)} property, which the "
                f"'{rig_map.name}' rig map switches: choose the rig map that matches this armature."
            )
    pose = solve_for_rig(performance.motion, skeleton, parts, smoothing)
    store_motion(armature, performance.motion)
    name = f"GM {armature.name}"
    action, slot = keyframes.build_action(armature, name, pose.rotations, FIRST_FRAME, key_tolerance, pose.locations,
                                          pose.planted)
    action[GENERATED] = True
    key_switches(armature, action, slot, switches)

    if key_tolerance is None:
        _make_active(armature, action, slot)
    else:
        play_from_track(armature, action, slot)
    action.name = name

    analysis = performance.analysis
    configure_timeline(scene, analysis.duration)
    if new_music:
        replace_sound_strip(scene, performance.audio.path)
        scene.frame_set(FIRST_FRAME)
        store_analysis(scene, analysis, performance.audio.path)
    guide = analysis.score
    write_beat_markers(scene, analysis.beats, analysis.downbeats, analysis.beats_per_bar,
                       guide.bar_numbers if guide is not None else None)
    write_section_markers(scene, guide.cues if guide is not None else (), guide.releases if guide is not None else ())
    return Applied(
        armature_name=armature.name,
        action_name=action.name,
        frames=performance.motion.n_frames,
        bars=len(analysis.downbeats),
        keyed_bones=len(pose.rotations),
        keys=keyframes.key_count(action, slot),
    )


def _release(action) -> None:
    """An action the armature no longer plays: a generated one goes once nothing uses it, the user's own stays in
    the file rather than vanishing on save."""
    if action is None:
        return
    if not action.get(GENERATED):
        action.use_fake_user = True
    elif action.users == 0:
        bpy.data.actions.remove(action)


def _make_active(armature, action, slot) -> None:
    animation = armature.animation_data or armature.animation_data_create()
    track = animation.nla_tracks.get(NLA_TRACK)
    replaced = [strip.action for strip in track.strips] if track is not None else []
    if track is not None:  # from sparse keys generated before: the new action replaces what played there
        animation.nla_tracks.remove(track)
        animation.action_blend_type = "REPLACE"
    previous = animation.action
    compat.assign_action(armature, action, slot)
    for old in [previous, *replaced]:
        _release(old)


def play_from_track(armature, action, slot) -> None:
    """Play `action` from the NLA track NLA_TRACK, replacing what played there, with the armature blending in Combine
    so that keys an animator adds go on a layer above it."""
    animation = armature.animation_data or armature.animation_data_create()
    track = animation.nla_tracks.get(NLA_TRACK)
    previous = animation.action
    # Above an existing track the active action is the animator's layer and stays; a generated action keyed
    # directly, or an animation the rig had before the track existed, gives way to the track.
    if previous is not None and (previous.get(GENERATED) or track is None):
        animation.action = None
        _release(previous)
    if track is None:
        track = animation.nla_tracks.new()
        track.name = NLA_TRACK
        # The animator's keys then add to the generated motion (quaternions multiply) rather than replace it.
        animation.action_blend_type = "COMBINE"
    replaced = [strip.action for strip in track.strips]
    for strip in list(track.strips):
        track.strips.remove(strip)
    compat.new_nla_strip(track, NLA_TRACK, FIRST_FRAME, action, slot)
    for old in replaced:
        _release(old)


def key_switches(armature, action, slot, switches: dict[str, dict[str, float]]) -> None:
    """One constant key per rig switch (e.g. Rigify's IK/FK), so the switch holds while this action plays and the
    rig is as it was with any other action."""
    for bone, values in switches.items():
        pose_bone = armature.pose.bones[bone]
        for name, value in values.items():
            path = f'{pose_bone.path_from_id()}["{bpy.utils.escape_identifier(name)}"]'
            fcurve = compat.new_fcurve(action, slot, path, 0, bone)
            keyframes.fill_fcurve(fcurve, np.array([FIRST_FRAME], np.float32), np.array([value], np.float32))


def configure_look(scene, resolution=(640, 360)) -> None:
    """Workbench with material colours at 640×360: what a new generated file renders with."""
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100


def configure_video_output(scene, path: Path, seconds: float | None) -> None:
    """MP4 (H.264 + AAC of the sequencer's sound) to `path`, optionally only the first `seconds`."""
    render = scene.render
    settings = render.image_settings
    if hasattr(settings, "media_type"):  # 5.0 groups file formats by media type
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    render.ffmpeg.format = "MPEG4"
    render.ffmpeg.codec = "H264"
    render.ffmpeg.constant_rate_factor = "MEDIUM"
    render.ffmpeg.audio_codec = "AAC"
    render.ffmpeg.audio_channels = "STEREO"
    render.filepath = str(path)
    render.use_file_extension = False
    if seconds is not None:
        scene.frame_end = min(scene.frame_end, FIRST_FRAME + max(1, int(round(seconds * FPS))) - 1)
