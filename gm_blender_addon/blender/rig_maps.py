"""The rig map of an armature, kept on the armature object so that the panel can show and edit it and it is saved
with the .blend; converting it to and from the pure `RigMap`; the folder of the user's saved maps."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..core.retarget import OPTIONAL, REQUIRED, RigMap
from .preferences import ADDON_PACKAGE


class GM_RigMapBone(bpy.types.PropertyGroup):
    part: bpy.props.StringProperty(name="Part", description="What the bone plays in the conductor's body")
    bone: bpy.props.StringProperty(name="Bone", description="The armature's bone that plays this part")


class GM_RigMapSwitch(bpy.types.PropertyGroup):
    bone: bpy.props.StringProperty(name="Bone", description="Bone holding the switch property")
    property: bpy.props.StringProperty(name="Property", description="Custom property keyed while the action plays")
    value: bpy.props.FloatProperty(name="Value")


class GM_RigMap(bpy.types.PropertyGroup):
    name: bpy.props.StringProperty(name="Rig Map", description="Name the map is saved under")
    description: bpy.props.StringProperty(name="Description")
    bones: bpy.props.CollectionProperty(type=GM_RigMapBone)
    switches: bpy.props.CollectionProperty(type=GM_RigMapSwitch)
    show_fingers: bpy.props.BoolProperty(name="Fingers", description="Show the finger bones' parts of the map")


CLASSES = (GM_RigMapBone, GM_RigMapSwitch, GM_RigMap)


def store(armature, rig_map: RigMap) -> None:
    """Put `rig_map` on the armature, listing every part (unmapped optional ones empty) so all can be edited."""
    settings = armature.gm_rig_map
    settings.name = rig_map.name
    settings.description = rig_map.description
    settings.bones.clear()
    for part in REQUIRED + OPTIONAL:
        entry = settings.bones.add()
        entry.part = part
        entry.bone = rig_map.bones.get(part, "")
    settings.switches.clear()
    for bone, values in rig_map.properties.items():
        for name, value in values.items():
            switch = settings.switches.add()
            switch.bone, switch.property, switch.value = bone, name, value


def stored(armature) -> RigMap | None:
    """The map kept on the armature, or None when it has none yet."""
    # The command line uses the Blender layer without registering the add-on: then no armature carries a map.
    settings = getattr(armature, "gm_rig_map", None)
    if settings is None or not settings.bones:
        return None
    properties: dict[str, dict[str, float]] = {}
    for switch in settings.switches:
        properties.setdefault(switch.bone, {})[switch.property] = switch.value
    return RigMap(
        name=settings.name,
        description=settings.description,
        bones={entry.part: entry.bone for entry in settings.bones if entry.bone},
        properties=properties,
    )


def user_maps_dir() -> Path:
    """Where saved maps go and are found again (by detection and the map menu)."""
    if ADDON_PACKAGE.startswith("bl_ext."):
        return Path(bpy.utils.extension_path_user(ADDON_PACKAGE, path="rig_maps"))
    # Registered from a checkout (development, tests) the add-on is not an extension and has no folder of its own.
    return Path(bpy.utils.user_resource("CONFIG", path="gesture_maestro/rig_maps"))
