"""Armatures: bringing in the bundled or a user's rig, reading a rig into a pure Skeleton, choosing its rig map."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from .. import resources
from ..core.retarget import Follow, RigMap, RigMapError, Skeleton, builtin_maps, detect_map
from . import rig_maps

BUNDLED_COLLECTION = "Conductor"
# The bundled rig's map; the bundled rig says so in its "gm_rig" property. Other armatures with the same (Rigify
# metarig) bone names get the Rigify metarig map instead.
BUNDLED_MAP = "bundled"
# Constraints that make a bone follow another, as the solver models them (see core.retarget.Follow).
FOLLOWING = {"COPY_ROTATION": True, "COPY_TRANSFORMS": False}  # type → rotation only


class RigFileError(ValueError):
    """A rig .blend that cannot be used."""


def _link_new_collection(scene, collection):
    scene.collection.children.link(collection)
    return collection


def _armature_in(objects) -> list:
    return [o for o in objects if o.type == "ARMATURE"]


def _load_bundled_collection():
    """The bundled rig's collection, appended into the file but not yet linked to any scene."""
    path = resources.bundled_rig_file()
    if not path.is_file():
        raise RigFileError(f"The bundled rig is missing ({path}); reinstall the add-on.")
    with bpy.data.libraries.load(str(path), link=False) as (source, loaded):
        if BUNDLED_COLLECTION not in source.collections:
            raise RigFileError(f"{path.name} has no '{BUNDLED_COLLECTION}' collection; reinstall the add-on.")
        loaded.collections = [BUNDLED_COLLECTION]
    return loaded.collections[0]


def append_bundled_rig(scene):
    """Append the bundled conductor (armature, mannequin, baton, camera, lights); return its armature object."""
    collection = _link_new_collection(scene, _load_bundled_collection())
    armatures = _armature_in(collection.all_objects)
    cameras = [o for o in collection.all_objects if o.type == "CAMERA"]
    if cameras and scene.camera is None:
        scene.camera = cameras[0]
    return armatures[0]


# Blender's startup scene, where the user left it as it was: the conductor appended at the origin would stand hidden
# inside the cube and the scene would be filmed by a camera never aimed at him.
STARTUP_CUBE = ("Cube", (0.0, 0.0, 0.0))
STARTUP_CAMERA = ("Camera", (7.3589, -6.9258, 4.9583))


def _as_in_startup(scene, name: str, location: tuple[float, float, float]):
    obj = scene.objects.get(name)
    if obj is None or max(abs(a - b) for a, b in zip(obj.location, location)) > 1e-3:
        return None
    return obj


def take_the_stage(scene, collection) -> list[str]:
    """After the bundled conductor's `collection` was appended and keyed: hide the startup cube he stands in and film
    with his camera instead of the startup camera, each only while it is as the startup file made it. Returns what
    was changed, to report."""
    changed = []
    cube = _as_in_startup(scene, *STARTUP_CUBE)
    if cube is not None and cube.type == "MESH" and not cube.hide_render:
        cube.hide_viewport = cube.hide_render = True
        changed.append(f"hid the startup '{cube.name}' the conductor stands in")
    cameras = [o for o in collection.all_objects if o.type == "CAMERA"]
    startup_camera = _as_in_startup(scene, *STARTUP_CAMERA)
    if cameras and startup_camera is not None and scene.camera == startup_camera:
        scene.camera = cameras[0]
        changed.append(f"made '{cameras[0].name}' the scene camera")
    return changed


def append_bundled_copy(scene, name: str, location: tuple[float, float, float]):
    """The bundled conductor once more, for a second performer: its collection and objects renamed after `name`
    ("Conductor_Body" → "<name>_Body"), its armature at `location`, and without the camera and lights, which the
    scene already has from the first copy. Returns the armature object."""
    collection = _load_bundled_collection()
    for obj in list(collection.all_objects):
        if obj.type in {"CAMERA", "LIGHT"}:
            data = obj.data
            bpy.data.objects.remove(obj)
            (bpy.data.cameras if isinstance(data, bpy.types.Camera) else bpy.data.lights).remove(data)
    collection.name = name
    for obj in collection.all_objects:
        obj.name = obj.name.split(".")[0].replace(BUNDLED_COLLECTION, name, 1)
    scene.collection.children.link(collection)
    armature = _armature_in(collection.all_objects)[0]
    armature.location = location
    return armature


def append_rig_file(scene, path: str | Path):
    """Append the one armature of a user's .blend, with the objects parented to it and any camera."""
    path = Path(path)
    if not path.is_file():
        raise RigFileError(f"Rig file not found: {path}.")
    try:
        with bpy.data.libraries.load(str(path), link=False) as (source, loaded):
            loaded.objects = list(source.objects)
    except OSError as exc:
        raise RigFileError(f"{path.name} is not a readable .blend file ({exc}).") from exc
    objects = [o for o in loaded.objects if o is not None]
    armatures = _armature_in(objects)
    if len(armatures) != 1:
        for obj in objects:
            bpy.data.objects.remove(obj)
        raise RigFileError(
            f"{path.name} contains {len(armatures)} armatures; save a file with exactly one conductor armature."
        )
    armature = armatures[0]

    def belongs(obj) -> bool:
        while obj is not None:
            if obj == armature:
                return True
            obj = obj.parent
        return False

    keep = [o for o in objects if belongs(o) or o.type == "CAMERA"]
    for obj in objects:
        if obj not in keep:
            bpy.data.objects.remove(obj)
    collection = _link_new_collection(scene, bpy.data.collections.new(path.stem))
    for obj in keep:
        collection.objects.link(obj)
        if obj.type == "CAMERA" and scene.camera is None:
            scene.camera = obj
    return armature


def _follows(armature, pose_bone, index: dict[str, int]) -> tuple[Follow, ...]:
    """The pose bone's Copy Rotation / Copy Transforms constraints on bones of its own armature, in stack order.

    Only what the solver can model is read: world-to-world or local-to-local, replacing, on all axes. Influence is
    read as it stands, so values driven by rig switches (Rigify's follow sliders) count as currently set.
    """
    follows = []
    for c in pose_bone.constraints:
        if c.type not in FOLLOWING or c.mute or c.influence <= 0.0 or c.target != armature or c.subtarget not in index:
            continue
        if c.mix_mode != "REPLACE" or c.owner_space != c.target_space or c.owner_space not in {"WORLD", "LOCAL"}:
            continue
        if c.type == "COPY_ROTATION" and (
            not (c.use_x and c.use_y and c.use_z) or c.invert_x or c.invert_y or c.invert_z
        ):
            continue
        follows.append(Follow(index[c.subtarget], float(c.influence), FOLLOWING[c.type], c.owner_space == "LOCAL"))
    return tuple(follows)


def world_scale(armature) -> float:
    """World units per unit of the armature's own space: its object's (uniform) scale."""
    return float(np.mean(np.abs(armature.matrix_world.to_scale())))


def snapshot(armature) -> Skeleton:
    """The armature's rest and current pose as plain arrays for the solver, in world units.

    Rigs imported from FBX often carry their size in the object's scale (0.01 for centimetre bones); lifting
    works in metres, so lengths are scaled by the object's scale. Rotations do not change.
    """
    bones = list(armature.data.bones)
    names = [b.name for b in bones]
    index = {name: i for i, name in enumerate(names)}
    scale = world_scale(armature)
    rest = np.array([np.array(b.matrix_local) for b in bones])
    basis = np.array([np.array(armature.pose.bones[b.name].matrix_basis) for b in bones])
    rest[:, :3, 3] *= scale
    basis[:, :3, 3] *= scale
    parents = [index[b.parent.name] if b.parent else -1 for b in bones]
    follows = {i: f for i, b in enumerate(bones) if (f := _follows(armature, armature.pose.bones[b.name], index))}
    return Skeleton(names=names, parents=parents, rest=rest, basis=basis, follows=follows)


def available_maps() -> list[RigMap]:
    """The built-in rig maps and the user's saved ones."""
    user = rig_maps.user_maps_dir()
    return builtin_maps(resources.rig_maps_dir()) + (builtin_maps(user) if user.is_dir() else [])


def closest_map(armature) -> RigMap:
    """The available map that fits the armature best: one naming all its needed bones if there is one."""
    bone_names = [b.name for b in armature.data.bones]
    tag = armature.get("gm_rig")
    # The map the rig was built for wins a tie; the bundled map is only for the bundled rig.
    maps = sorted(available_maps(), key=lambda m: (m.name != tag, m.name == BUNDLED_MAP))
    # Without a complete fit, names spelled exactly as a map spells them say more than ones matched loosely.
    return detect_map(bone_names, maps) or max(
        maps, key=lambda m: (m.exact_matches(bone_names), m.coverage(bone_names))
    )


def rig_map_for(armature, explicit: str | Path | None = None) -> RigMap:
    """The map given by path or name, else the one edited in the panel, else the available map that names all of
    this armature's needed bones. Raises RigMapError listing the missing bones when none fits."""
    if explicit:
        candidate = Path(explicit)
        if candidate.suffix == ".json":
            return RigMap.load(candidate)
        by_name = {m.name: m for m in available_maps()}
        if str(explicit) not in by_name:
            raise RigMapError(f"No rig map called {explicit!r}; available maps: {', '.join(by_name)}.")
        return by_name[str(explicit)]
    found = rig_maps.stored(armature) or closest_map(armature)
    found.resolve([b.name for b in armature.data.bones], armature=f"Armature '{armature.name}'")
    return found


def frame_camera(scene, armature):
    """A camera in front of a user's rig (facing −Y like Blender characters) framing its upper body."""
    corners = [armature.matrix_world @ b.head_local for b in armature.data.bones]
    lo = np.min(corners, axis=0)
    hi = np.max(corners, axis=0)
    height = float(hi[2] - lo[2]) or 1.8
    camera_data = bpy.data.cameras.new("Conductor Camera")
    camera_data.lens = 50.0
    camera = bpy.data.objects.new("Conductor Camera", camera_data)
    centre = (lo + hi) / 2
    camera.location = (float(centre[0]), float(lo[1]) - 2.6 * height, float(lo[2]) + 0.72 * height)
    camera.rotation_euler = (np.radians(88.0), 0.0, 0.0)
    armature.users_collection[0].objects.link(camera)
    scene.camera = camera
    return camera
