"""The few Blender API differences between 4.2 LTS and 5.3 that the add-on touches, as plain functions.

4.4 introduced layered actions (slots, layers, strips, channelbags) and 5.0 removed the legacy `Action.fcurves`;
4.4 also renamed the sequencer's `sequences` to `strips` and 5.0 removed the old name. 5.3 names a strip's span
`left_handle` and `duration`, and marks `frame_final_start` and `frame_final_duration` for removal in 6.0.
"""

from __future__ import annotations

import bpy

LAYERED_ACTIONS = bpy.app.version >= (4, 4, 0)
SLOT_NAME = "Gesture Maestro"


def new_action(name: str, id_type: str = "OBJECT"):
    """A fresh action and, on layered-action versions, its one slot (else None)."""
    action = bpy.data.actions.new(name)
    if not LAYERED_ACTIONS:
        action.id_root = id_type
        return action, None
    # One stable slot name keeps every generated action interchangeable on the same armature.
    slot = action.slots.new(id_type=id_type, name=SLOT_NAME)
    layer = action.layers.new("Layer")
    layer.strips.new(type="KEYFRAME")
    return action, slot


def _channelbag(action, slot):
    return action.layers[0].strips[0].channelbag(slot, ensure=True)


def new_fcurve(action, slot, data_path: str, index: int, group: str):
    if not LAYERED_ACTIONS:
        return action.fcurves.new(data_path, index=index, action_group=group)
    bag = _channelbag(action, slot)
    fcurve = bag.fcurves.new(data_path, index=index)
    fcurve.group = bag.groups.get(group) or bag.groups.new(group)
    return fcurve


def action_fcurves(action, slot):
    if not LAYERED_ACTIONS:
        return list(action.fcurves)
    return list(_channelbag(action, slot).fcurves) if action.layers else []


def assign_action(obj, action, slot) -> None:
    animation = obj.animation_data or obj.animation_data_create()
    animation.action = action
    if LAYERED_ACTIONS:
        # Without an explicit slot a layered action may animate nothing (automatic assignment is not guaranteed).
        animation.action_slot = slot


def new_nla_strip(track, name: str, start: int, action, slot):
    strip = track.strips.new(name, start, action)
    if LAYERED_ACTIONS:
        strip.action_slot = slot
    return strip


def assigned_slot(obj):
    animation = obj.animation_data
    return animation.action_slot if (LAYERED_ACTIONS and animation is not None) else None


def strips(scene):
    editor = scene.sequence_editor
    if editor is None:
        return []
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def has_audio() -> bool:
    """False for Blender builds without audio (such as the bpy 4.2 wheel), which cannot hold sound strips."""
    return bool(bpy.app.build_options.audaspace)


def new_sound_strip(scene, name: str, filepath: str, channel: int, frame_start: int):
    editor = scene.sequence_editor or scene.sequence_editor_create()
    collection = editor.strips if hasattr(editor, "strips") else editor.sequences
    return collection.new_sound(name, filepath, channel, frame_start)


def remove_strip(scene, strip) -> None:
    editor = scene.sequence_editor
    collection = editor.strips if hasattr(editor, "strips") else editor.sequences
    collection.remove(strip)


def strip_span(strip) -> tuple[int, int]:
    """(first frame, length in frames) of a strip as the sequencer shows it, handles applied."""
    if hasattr(strip, "left_handle"):
        return strip.left_handle, strip.duration
    return strip.frame_final_start, strip.frame_final_duration
