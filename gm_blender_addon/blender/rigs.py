"""Armatures: bringing in the bundled or a user's rig, reading a rig into a pure Skeleton, choosing its rig map."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from .. import resources
from ..core.retarget import RigMap, RigMapError, Skeleton, builtin_maps, detect_map

BUNDLED_COLLECTION = "Conductor"


class RigFileError(ValueError):
    """A rig .blend that cannot be used."""


def _link_new_collection(scene, collection):
    scene.collection.children.link(collection)
    return collection


def _armature_in(objects) -> list:
    return [o for o in objects if o.type == "ARMATURE"]


def append_bundled_rig(scene):
    """Append the bundled conductor (armature, mannequin, baton, camera, lights); return its armature object."""
    path = resources.bundled_rig_file()
    if not path.is_file():
        raise RigFileError(f"The bundled rig is missing ({path}); reinstall the add-on.")
    with bpy.data.libraries.load(str(path), link=False) as (source, loaded):
        if BUNDLED_COLLECTION not in source.collections:
            raise RigFileError(f"{path.name} has no '{BUNDLED_COLLECTION}' collection; reinstall the add-on.")
        loaded.collections = [BUNDLED_COLLECTION]
    collection = _link_new_collection(scene, loaded.collections[0])
    armatures = _armature_in(collection.all_objects)
    cameras = [o for o in collection.all_objects if o.type == "CAMERA"]
    if cameras and scene.camera is None:
        scene.camera = cameras[0]
    return armatures[0]


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


def snapshot(armature) -> Skeleton:
    """The armature's rest and current pose as plain arrays for the solver."""
    bones = list(armature.data.bones)
    names = [b.name for b in bones]
    index = {name: i for i, name in enumerate(names)}
    rest = np.array([np.array(b.matrix_local) for b in bones])
    basis = np.array([np.array(armature.pose.bones[b.name].matrix_basis) for b in bones])
    parents = [index[b.parent.name] if b.parent else -1 for b in bones]
    return Skeleton(names=names, parents=parents, rest=rest, basis=basis)


def rig_map_for(armature, explicit: str | Path | None = None) -> RigMap:
    """The map given by path or name, else the built-in map that names all of this armature's needed bones."""
    maps = builtin_maps(resources.rig_maps_dir())
    bone_names = [b.name for b in armature.data.bones]
    if explicit:
        candidate = Path(explicit)
        if candidate.suffix == ".json":
            return RigMap.load(candidate)
        by_name = {m.name: m for m in maps}
        if str(explicit) not in by_name:
            raise RigMapError(f"No rig map called {explicit!r}; built-in maps: {', '.join(by_name)}.")
        return by_name[str(explicit)]
    found = detect_map(bone_names, maps)
    if found is None:
        best = max(maps, key=lambda m: m.coverage(bone_names))
        best.resolve(bone_names, armature=f"Armature '{armature.name}'")  # raises, listing the missing bones
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
