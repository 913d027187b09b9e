"""Putting a performance into a scene: keys on the armature, the music in the sequencer, bar markers, timing.

Everything that can fail (rig map, solve, building the action) happens before the scene is touched; what follows
only assigns finished data, so a failure leaves the user's scene as it was.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..core.motion import FPS
from ..core.retarget import RigMap, RigMapError
from ..pipeline import Performance, solve_for_rig
from . import compat, keyframes, rigs

AUDIO_STRIP = "GM Music"
# Generated markers: "Bar N" on downbeats, "N.k" on the other beats (beat k of bar N).
MARKER = re.compile(r"^(Bar \d+|\d+\.\d+)$")
GENERATED = "gm_generated"
FIRST_FRAME = 1


@dataclass
class Applied:
    armature_name: str
    action_name: str
    frames: int
    bars: int
    keyed_bones: int


def frame_of(seconds: float) -> int:
    return FIRST_FRAME + int(round(seconds * FPS))


def configure_timeline(scene, duration: float) -> None:
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


def replace_beat_markers(scene, analysis) -> int:
    """Mark every beat on the timeline, replacing earlier generated markers; returns the number of bars."""
    for marker in [m for m in scene.timeline_markers if MARKER.match(m.name)]:
        scene.timeline_markers.remove(marker)
    for seconds, (bar, beat) in zip(analysis.beats, analysis.beat_positions()):
        scene.timeline_markers.new(f"Bar {bar}" if beat == 1 and bar else f"{bar}.{beat}", frame=frame_of(seconds))
    return len(analysis.downbeats)


def apply_performance(scene, armature, performance: Performance, rig_map: RigMap, smoothing: float) -> Applied:
    """Key `armature` with the performance and set the scene up around it; replaces an earlier generated result."""
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
    rotations, _ = solve_for_rig(performance.motion, skeleton, parts, smoothing)
    name = f"GM {armature.name}"
    action, slot = keyframes.build_rotation_action(armature, name, rotations, FIRST_FRAME)
    action[GENERATED] = True
    key_switches(armature, action, slot, switches)

    previous = armature.animation_data.action if armature.animation_data else None
    for bone in rotations:
        armature.pose.bones[bone].rotation_mode = "QUATERNION"
    compat.assign_action(armature, action, slot)
    if previous is not None:
        if previous.get(GENERATED) and previous.users == 0:
            bpy.data.actions.remove(previous)
        elif not previous.get(GENERATED):
            # The user's own animation stays in the file rather than vanishing on save.
            previous.use_fake_user = True
    action.name = name

    configure_timeline(scene, performance.audio.duration)
    replace_sound_strip(scene, performance.audio.path)
    bars = replace_beat_markers(scene, performance.analysis)
    scene.frame_set(FIRST_FRAME)
    return Applied(
        armature_name=armature.name,
        action_name=action.name,
        frames=performance.motion.n_frames,
        bars=bars,
        keyed_bones=len(rotations),
    )


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
