"""The panel's settings, stored per scene."""

from __future__ import annotations

import bpy

from ..generators import registry

_generator_items: list[tuple[str, str, str]] = []


def generator_items(_self, _context):
    # Blender keeps only pointers to these strings: the list must outlive the call. Generators that need no weights
    # come first, so a new scene defaults to one that works out of the box.
    if not _generator_items:
        specs = sorted((registry.get(n) for n in registry.names()), key=lambda s: (s.needs_checkpoint, s.name))
        _generator_items.extend((s.name, s.label, s.description) for s in specs)
    return _generator_items


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


class GM_ConductorSettings(bpy.types.PropertyGroup):
    audio_path: bpy.props.StringProperty(
        name="Audio", description="Music to conduct (wav, flac, ogg, mp3)", subtype="FILE_PATH"
    )
    generator: bpy.props.EnumProperty(name="Generator", items=generator_items)
    checkpoint: bpy.props.StringProperty(
        name="Checkpoint", description="Weights file for generators that need one", subtype="FILE_PATH"
    )
    seed: bpy.props.IntProperty(name="Seed", description="Different seeds give different performances", min=0)
    smoothing: bpy.props.FloatProperty(
        name="Smoothing", description="How much to smooth the motion before keying", default=0.2, min=0.0, max=1.0,
        subtype="FACTOR",
    )
    armature: bpy.props.PointerProperty(
        name="Armature", description="Rig to animate; empty adds the bundled conductor", type=bpy.types.Object,
        poll=_is_armature,
    )
    rig_map: bpy.props.StringProperty(
        name="Rig Map", description="Rig map name or .json file; empty detects it from the bone names"
    )
    last_result: bpy.props.StringProperty(name="Last Result", options={"SKIP_SAVE"})
