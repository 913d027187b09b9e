"""Writing solved bone rotations as keyframes, in bulk, in each bone's own rotation mode.

`keyframe_points.add` + `foreach_set` is linear in the number of keys and over 100× faster than `keyframe_insert`.
Dense keys (one per frame, but for frames that lie on the line between their neighbours, as through a held pose)
are LINEAR: Bézier handles would only add overshoot between samples a frame apart.
Sparse keys (core.keys.reduce_bones) are Bézier with handles along the solved curve's slope, so that the curve
Blender plays is the one the reduction measured: ALIGNED, so that dragging one handle turns the other, except at the
corners of the motion (the ictus), which get FREE (broken) handles as an animator keys a bounce.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core import keys
from . import compat, rigs

_KEYFRAME = bpy.types.Keyframe.bl_rna.properties
LINEAR = _KEYFRAME["interpolation"].enum_items["LINEAR"].value
BEZIER = _KEYFRAME["interpolation"].enum_items["BEZIER"].value
ALIGNED = _KEYFRAME["handle_left_type"].enum_items["ALIGNED"].value
FREE = _KEYFRAME["handle_left_type"].enum_items["FREE"].value


def fill_fcurve(fcurve, frames: np.ndarray, values: np.ndarray) -> None:
    count = len(frames)
    fcurve.keyframe_points.add(count)
    co = np.empty(2 * count, dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    fcurve.keyframe_points.foreach_set("co", co)
    fcurve.keyframe_points.foreach_set("interpolation", np.full(count, LINEAR, dtype=np.int32))
    fcurve.update()


def fill_bezier_fcurve(fcurve, frames: np.ndarray, values: np.ndarray, left: np.ndarray, right: np.ndarray,
                       broken: np.ndarray) -> None:
    """Keys at `frames` with handles `left` and `right` ((K, 2) frame, value), FREE where `broken`, else ALIGNED."""
    count = len(frames)
    points = fcurve.keyframe_points
    points.add(count)
    handle_types = np.where(broken, FREE, ALIGNED).astype(np.int32)
    points.foreach_set("co", np.column_stack([frames, values]).astype(np.float32).ravel())
    points.foreach_set("interpolation", np.full(count, BEZIER, dtype=np.int32))
    points.foreach_set("handle_left_type", handle_types)
    points.foreach_set("handle_right_type", handle_types)
    points.foreach_set("handle_left", left.astype(np.float32).ravel())
    points.foreach_set("handle_right", right.astype(np.float32).ravel())
    fcurve.update()


def _key_channels(fcurves, values: np.ndarray, reduced: keys.ReducedCurves | None, frame_start: int) -> None:
    """Key (T, C) solved `values` on one F-curve per channel: linearly on every frame where they turn, or, when they
    were `reduced`, on its Bézier keys."""
    if reduced is None:
        turning = keys.turning_frames(values)
        for c, fcurve in enumerate(fcurves):
            fill_fcurve(fcurve, frame_start + turning.astype(np.float32), values[turning, c].astype(np.float32))
        return
    shift = np.array([frame_start, 0.0])  # key and handle positions are frame offsets into the solved samples
    left, right = reduced.handles()
    for c, fcurve in enumerate(fcurves):
        fill_bezier_fcurve(fcurve, frame_start + reduced.frames, reduced.values[:, c], left[:, c] + shift,
                           right[:, c] + shift, reduced.corners)


def build_action(armature, name: str, rotations: dict[str, np.ndarray], frame_start: int = 1,
                 tolerance_deg: float | None = None, locations: dict[str, np.ndarray] | None = None,
                 planted: frozenset[str] = frozenset()):
    """A new, unassigned action keying each bone's rotation in the bone's own rotation mode, and the `locations`
    (T, 3; world units, as rigs.snapshot measures the rig) given by bone (the hips, on a rig whose legs are solved);
    nothing in the scene changes yet. With `tolerance_deg`, sparse Bézier keys within that angle of the solved
    rotation at every frame (locations within core.keys.LOCATION_PER_DEGREE metres per degree); without, a key on
    every frame where the bone turns or moves (see core.keys.turning_frames). The `planted` bones (the legs under a
    planted foot) are reduced to a share of the tolerance (core.keys.PLANTED_SHARE), so the foot does not slide.

    Returns (action, slot). If anything fails the half-built action is removed before the error propagates.
    """
    action, slot = compat.new_action(name)
    try:
        groups: dict[tuple[str, bool], list[str]] = {}
        for bone in rotations:
            groups.setdefault((armature.pose.bones[bone].rotation_mode, bone in planted), []).append(bone)
        for (mode, under_foot), bones in groups.items():
            values = np.stack([keys.channels(rotations[bone], mode) for bone in bones])
            reduced = [None] * len(bones)
            if tolerance_deg is not None:
                reduced = keys.reduce_bones(values, mode, tolerance_deg * (keys.PLANTED_SHARE if under_foot else 1.0))
            for b, bone in enumerate(bones):
                data_path = armature.pose.bones[bone].path_from_id(keys.DATA_PATHS[mode])
                fcurves = [compat.new_fcurve(action, slot, data_path, c, bone) for c in range(values.shape[2])]
                _key_channels(fcurves, values[b], reduced[b], frame_start)
        for bone, location in (locations or {}).items():
            scale = rigs.world_scale(armature)
            location = location / scale  # in the armature's own units, as the bone's location is
            reduced = None
            if tolerance_deg is not None:
                reduced = keys.reduce_locations(location[None], keys.LOCATION_PER_DEGREE * tolerance_deg / scale)[0]
            data_path = armature.pose.bones[bone].path_from_id("location")
            _key_channels([compat.new_fcurve(action, slot, data_path, c, bone) for c in range(3)], location, reduced,
                          frame_start)
    except Exception:
        bpy.data.actions.remove(action)
        raise
    return action, slot


def key_count(action, slot) -> int:
    return sum(len(fcurve.keyframe_points) for fcurve in compat.action_fcurves(action, slot))
