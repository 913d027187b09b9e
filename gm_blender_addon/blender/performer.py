"""The captured performer in the scene: a second bundled rig beside the conductor, keyed from captured motion, on
the same timeline, with the video's audio and optionally the video itself on a plane behind it; and renders of the
rigs for motiongrams.

As in scene.py, everything that can fail happens before the user's scene is changed: the new rig is appended under
a temporary name, solved and keyed, and only then does it replace an earlier performer.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from ..core.motion import FPS, Motion
from ..core.motiongram import video_motiongram
from ..pipeline import solve_for_rig
from . import compat, keyframes, rigs
from .scene import AUDIO_STRIP, FIRST_FRAME, GENERATED, configure_timeline, play_from_track, store_motion

PERFORMER = "Performer"
INCOMING = "GM_Incoming_Performer"  # the new performer's name until it has been solved and keyed
ACTION = "GM Performer"
PERFORMER_AUDIO = "GM Performer Audio"
VIDEO_PLANE = "GM Performer Video"
SIDE_CAMERA = "GM Side by Side Camera"
GAP = 1.3  # metres between the conductor and the performer, along +X (the conductor's left, the picture's right)
PLANE_HEIGHT = 2.2  # metres: a little taller than the rig, like a screen behind it
PLANE_DEPTH = 0.9  # how far behind the performer the plane stands
# Cameras here copy the bundled one's lens, height and aim point (rigs/build_conductor_rig.py); the side-by-side
# camera backs off until both rigs fit.
CAMERA_LENS, CAMERA_HEIGHT, CAMERA_AIM_HEIGHT, CAMERA_DISTANCE = 60.0, 1.35, 1.50, 4.5
SIDE_CAMERA_DISTANCE = 6.5
MOTIONGRAM_SIZE = (160, 120)
SUIT_COLOUR = (0.02, 0.035, 0.10, 1.0)  # navy, so the performer is told from the conductor at a glance


class PerformerError(ValueError):
    """Captured motion that cannot be put into the scene as asked."""


@dataclass
class AddedPerformer:
    armature_name: str
    frames: int
    audio: str  # "video", "music" or "none"
    video_plane: bool


def _rename(collection, old: str, new: str) -> None:
    """Objects "<old>…" → "<new>…"; the appended copies of the bundled materials become "<new>_…" too."""
    collection.name = collection.name.replace(old, new, 1)
    for obj in collection.all_objects:
        obj.name = obj.name.replace(old, new, 1)
        for slot in obj.material_slots:
            if slot.material is not None and slot.material.name.startswith(rigs.BUNDLED_COLLECTION):
                slot.material.name = slot.material.name.split(".")[0].replace(rigs.BUNDLED_COLLECTION, new, 1)


def _remove_collection(collection) -> None:
    """Remove the collection with its objects and the meshes, armatures and materials only they used."""
    materials = {slot.material for obj in collection.all_objects for slot in obj.material_slots if slot.material}
    for obj in list(collection.all_objects):
        data = obj.data
        bpy.data.objects.remove(obj)
        if isinstance(data, bpy.types.Mesh) and data.users == 0:
            bpy.data.meshes.remove(data)
        elif isinstance(data, bpy.types.Armature) and data.users == 0:
            bpy.data.armatures.remove(data)
    bpy.data.collections.remove(collection)
    for material in materials:
        if material.users == 0:
            bpy.data.materials.remove(material)


def _strip(scene, name: str):
    return next((s for s in compat.strips(scene) if s.name == name), None)


def _video_planes(collection) -> list:
    return [o for o in collection.all_objects if o.name.startswith(VIDEO_PLANE)]


def _remove_video_planes(collection) -> None:
    """Remove the video planes with their mesh, material, pacing action and movie (when nothing else uses them)."""
    for plane in _video_planes(collection):
        mesh, material = plane.data, plane.active_material
        bpy.data.objects.remove(plane)
        bpy.data.meshes.remove(mesh)
        if material is None or material.users:
            continue
        animation = material.node_tree.animation_data
        action = animation.action if animation else None
        images = [n.image for n in material.node_tree.nodes if n.type == "TEX_IMAGE" and n.image is not None]
        bpy.data.materials.remove(material)
        if action is not None and action.users == 0:
            bpy.data.actions.remove(action)
        for image in images:
            if image.users == 0:
                bpy.data.images.remove(image)


def remove_performer(scene) -> None:
    """Take an earlier performer out: its rig, action, audio strip and video plane."""
    collection = bpy.data.collections.get(PERFORMER)
    if collection is not None:
        _remove_video_planes(collection)
        for obj in [o for o in collection.all_objects if o.type == "ARMATURE"]:
            action = obj.animation_data.action if obj.animation_data else None
            if action is not None and action.get(GENERATED):
                obj.animation_data.action = None
                if action.users == 0:
                    bpy.data.actions.remove(action)
        _remove_collection(collection)
    strip = _strip(scene, PERFORMER_AUDIO)
    if strip is not None:
        compat.remove_strip(scene, strip)


def _audio_file(motion: Motion) -> Path | None:
    audio = motion.meta.get("audio")
    return Path(audio) if audio and Path(audio).is_file() else None


def _tilt(distance: float) -> float:
    """X rotation of a camera at CAMERA_HEIGHT looking at CAMERA_AIM_HEIGHT `distance` ahead (90° is level)."""
    return float(np.pi / 2 + np.arctan2(CAMERA_AIM_HEIGHT - CAMERA_HEIGHT, distance))


def _side_camera(scene, left_x: float, right_x: float):
    camera = bpy.data.objects.get(SIDE_CAMERA)
    if camera is None:
        camera = bpy.data.objects.new(SIDE_CAMERA, bpy.data.cameras.new(SIDE_CAMERA))
        scene.collection.objects.link(camera)
    camera.data.lens = CAMERA_LENS
    camera.data.sensor_fit = "HORIZONTAL"
    camera.location = (0.5 * (left_x + right_x), -SIDE_CAMERA_DISTANCE, CAMERA_HEIGHT)
    camera.rotation_euler = (_tilt(SIDE_CAMERA_DISTANCE), 0.0, 0.0)
    scene.camera = camera
    return camera


def _video_material(video: Path, fps: float, frames: int):
    """An emissive material showing the video, paced to the scene's 30 fps whatever the video's own rate."""
    image = bpy.data.images.load(str(video), check_existing=True)
    image.source = "MOVIE"
    material = bpy.data.materials.new(VIDEO_PLANE)
    if material.node_tree is None:  # before 5.0 new materials start without nodes
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    user = texture.image_user
    user.frame_start = FIRST_FRAME
    user.frame_duration = frames
    user.use_auto_refresh = True
    if abs(fps - FPS) > 1e-3:
        # An image user shows one movie frame per scene frame; a linear offset keeps a 25 fps video in real time.
        last = FIRST_FRAME + int(np.ceil(frames / fps * FPS))
        for frame in (FIRST_FRAME, last):
            user.frame_offset = int(round((frame - FIRST_FRAME) * (fps / FPS - 1.0)))
            user.keyframe_insert("frame_offset", frame=frame)
        pacing = material.node_tree.animation_data.action
        for fcurve in compat.action_fcurves(pacing, compat.assigned_slot(material.node_tree)):
            for key in fcurve.keyframe_points:
                key.interpolation = "LINEAR"
    return material


def _video_plane(collection, motion: Motion, location) -> bool:
    video = motion.meta.get("video")
    if not video or not Path(video).is_file():
        return False
    width, height = motion.meta.get("video_size", (16, 9))
    material = _video_material(Path(video), float(motion.meta.get("video_fps", FPS)), int(motion.meta.get("video_frames", 1)))
    half_w, half_h = 0.5 * PLANE_HEIGHT * width / height, 0.5 * PLANE_HEIGHT
    mesh = bpy.data.meshes.new(VIDEO_PLANE)
    # In the XZ plane facing −Y (towards the camera), bottom edge on the floor.
    mesh.from_pydata([(-half_w, 0, 0), (half_w, 0, 0), (half_w, 0, 2 * half_h), (-half_w, 0, 2 * half_h)], [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", [0, 0, 1, 0, 1, 1, 0, 1])
    mesh.materials.append(material)
    plane = bpy.data.objects.new(VIDEO_PLANE, mesh)
    plane.location = location
    collection.objects.link(plane)
    return True


def add_performer(scene, motion: Motion, conductor=None, audio: str = "VIDEO", video_plane: bool = False,
                  smoothing: float = 0.0, key_tolerance: float | None = None) -> AddedPerformer:
    """Put `motion` on a second bundled rig beside `conductor` (or where a conductor would stand), replacing an
    earlier performer. audio: "VIDEO" plays the video's own sound (muting the conductor's music) when it has any;
    "MUSIC" keeps the conductor's music. With `key_tolerance` (degrees) the keys are sparse and play from an NLA track,
    as the conductor's do (scene.apply_performance). Raises RigFileError, RigMapError or PerformerError."""
    if audio not in ("VIDEO", "MUSIC"):
        raise PerformerError(f"audio must be 'VIDEO' or 'MUSIC', got {audio!r}")
    base_x = conductor.matrix_world.translation.x if conductor is not None else 0.0
    location = (base_x + GAP, 0.0, 0.0)
    armature = rigs.append_bundled_copy(scene, INCOMING, location)
    collection = armature.users_collection[0]
    action = None
    try:
        skeleton = rigs.snapshot(armature)
        parts = rigs.rig_map_for(armature).resolve(skeleton.names, armature=f"Armature '{armature.name}'")
        pose = solve_for_rig(motion, skeleton, parts, smoothing)
        action, slot = keyframes.build_action(armature, ACTION, pose.rotations, FIRST_FRAME, key_tolerance,
                                              pose.locations, pose.planted)
        action[GENERATED] = True
        has_plane = video_plane and _video_plane(collection, motion, (location[0], PLANE_DEPTH, 0.0))
    except Exception:
        _remove_video_planes(collection)
        _remove_collection(collection)
        if action is not None:
            bpy.data.actions.remove(action)
        raise

    remove_performer(scene)
    _rename(collection, INCOMING, PERFORMER)
    suit = bpy.data.materials.get(f"{PERFORMER}_Suit")
    if suit is not None:
        suit.diffuse_color = SUIT_COLOUR
    for plane in _video_planes(collection):
        # "GM Performer Video" is free only now that the old performer is gone.
        plane.name = plane.data.name = plane.active_material.name = VIDEO_PLANE
        animation = plane.active_material.node_tree.animation_data
        if animation is not None and animation.action is not None:
            animation.action.name = f"{VIDEO_PLANE} pacing"
    if key_tolerance is None:
        compat.assign_action(armature, action, slot)
    else:
        play_from_track(armature, action, slot)
    action.name = ACTION
    store_motion(armature, motion)

    music = _strip(scene, AUDIO_STRIP)
    sound = _audio_file(motion) if audio == "VIDEO" and compat.has_audio() else None
    if sound is not None:
        used = {s.channel for s in compat.strips(scene)}
        channel = next(c for c in range(1, 129) if c not in used)
        compat.new_sound_strip(scene, PERFORMER_AUDIO, str(sound.resolve()), channel, FIRST_FRAME).show_waveform = True
    if music is not None:
        music.mute = sound is not None
    duration = max(motion.duration, (scene.frame_end - FIRST_FRAME + 1) / FPS if conductor is not None else 0.0)
    configure_timeline(scene, duration)
    if conductor is not None:
        _side_camera(scene, base_x, location[0])
    scene.frame_set(FIRST_FRAME)
    return AddedPerformer(
        armature_name=armature.name,
        frames=motion.n_frames,
        audio="video" if sound is not None else ("music" if music is not None else "none"),
        video_plane=bool(has_plane),
    )


# ---------------------------------------------------------------------------------------------------------------
# Motiongrams of the rigs
# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _render_state(scene, others):
    """Restore what rendering a rig changes: output settings, frame range, camera and other objects' visibility."""
    render = scene.render
    saved = {
        "engine": render.engine, "filepath": render.filepath, "resolution": (render.resolution_x, render.resolution_y),
        "percentage": render.resolution_percentage, "file_format": render.image_settings.file_format,
        "media_type": getattr(render.image_settings, "media_type", None), "container": render.ffmpeg.format,
        "codec": render.ffmpeg.codec, "audio_codec": render.ffmpeg.audio_codec, "extension": render.use_file_extension,
        "range": (scene.frame_start, scene.frame_end), "camera": scene.camera, "frame": scene.frame_current,
        "color_type": scene.display.shading.color_type, "light": scene.display.shading.light,
    }
    hidden = {obj.name: obj.hide_render for obj in others}
    try:
        yield
    finally:
        render.engine = saved["engine"]
        render.filepath = saved["filepath"]
        render.resolution_x, render.resolution_y = saved["resolution"]
        render.resolution_percentage = saved["percentage"]
        if saved["media_type"] is not None:
            render.image_settings.media_type = saved["media_type"]
        render.image_settings.file_format = saved["file_format"]
        if saved["file_format"] == "FFMPEG":
            render.ffmpeg.format, render.ffmpeg.codec = saved["container"], saved["codec"]
            render.ffmpeg.audio_codec = saved["audio_codec"]
        render.use_file_extension = saved["extension"]
        scene.frame_start, scene.frame_end = saved["range"]
        scene.camera = saved["camera"]
        scene.display.shading.color_type = saved["color_type"]
        scene.display.shading.light = saved["light"]
        for name, hide in hidden.items():
            obj = bpy.data.objects.get(name)
            if obj is not None:
                obj.hide_render = hide
        scene.frame_set(saved["frame"])


def scene_rig_motiongrams(scene, armatures: list[tuple[str, object]], seconds: float, folder: Path):
    """Render each (label, armature) alone, framed by a camera in front of it, and return its motiongram."""
    camera = bpy.data.objects.new("GM Motiongram Camera", bpy.data.cameras.new("GM Motiongram Camera"))
    scene.collection.objects.link(camera)
    grams = []
    try:
        for label, armature in armatures:
            rig_objects = {armature, *armature.children_recursive}
            others = [o for o in scene.objects if o not in rig_objects and o.type in {"MESH", "ARMATURE", "CURVE"}]
            x = armature.matrix_world.translation.x
            camera.data.lens, camera.data.sensor_fit = CAMERA_LENS, "HORIZONTAL"
            camera.location = (x, -CAMERA_DISTANCE, CAMERA_HEIGHT)
            camera.rotation_euler = (_tilt(CAMERA_DISTANCE), 0.0, 0.0)
            video = Path(folder) / f"motiongram_{label.replace(' ', '_')}.mp4"
            with _render_state(scene, others):
                for obj in others:
                    obj.hide_render = True
                scene.camera = camera
                render = scene.render
                render.engine = "BLENDER_WORKBENCH"
                scene.display.shading.light = "STUDIO"
                scene.display.shading.color_type = "MATERIAL"
                render.resolution_x, render.resolution_y = MOTIONGRAM_SIZE
                render.resolution_percentage = 100
                if hasattr(render.image_settings, "media_type"):
                    render.image_settings.media_type = "VIDEO"
                render.image_settings.file_format = "FFMPEG"
                render.ffmpeg.format, render.ffmpeg.codec, render.ffmpeg.audio_codec = "MPEG4", "H264", "NONE"
                render.filepath, render.use_file_extension = str(video), False
                scene.frame_start = FIRST_FRAME
                scene.frame_end = FIRST_FRAME + max(2, int(round(seconds * FPS))) - 1
                bpy.ops.render.render(animation=True)
            image, fps = video_motiongram(video)
            grams.append((f"{label} (render)", image, fps))
    finally:
        data = camera.data
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(data)
    return grams


def render_rig_motiongrams(generated: Motion, captured: Motion, seconds: float, folder: Path):
    """Headless: a fresh scene with the conductor keyed from `generated` and the performer from `captured`, each
    rendered alone for `seconds` into `folder` → their motiongrams. Replaces the current file's contents (the
    CLI's own scene)."""
    from .. import register, unregister

    # Rig maps are kept in the add-on's properties on the armature: register it, as Blender would have, and
    # unregister it again (bpy 4.5 hangs at exit with an add-on left registered).
    registered_here = not hasattr(bpy.types.Scene, "gm_conductor")
    if registered_here:
        register()
    try:
        bpy.ops.wm.read_homefile(use_factory_startup=True, use_empty=True)  # keeps the preferences (see cli.py)
        scene = bpy.context.scene
        conductor = rigs.append_bundled_rig(scene)
        skeleton = rigs.snapshot(conductor)
        parts = rigs.rig_map_for(conductor).resolve(skeleton.names)
        pose = solve_for_rig(generated, skeleton, parts, smoothing=0.0)
        action, slot = keyframes.build_action(conductor, "GM Conductor", pose.rotations, FIRST_FRAME,
                                              locations=pose.locations)
        compat.assign_action(conductor, action, slot)
        configure_timeline(scene, max(generated.duration, captured.duration))
        performer = add_performer(scene, captured, conductor=conductor, audio="MUSIC")
        performer_rig = bpy.data.objects[performer.armature_name]
        return scene_rig_motiongrams(scene, [("generated", conductor), ("captured", performer_rig)], seconds, folder)
    finally:
        if registered_here:
            unregister()
