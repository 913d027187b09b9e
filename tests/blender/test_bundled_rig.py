"""Checks on rigs/conductor_rig.blend, the conductor rig the add-on appends into scenes."""

import json
import runpy
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402  (needs bpy loaded first)
from mathutils import Vector  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BLEND = REPO / "rigs" / "conductor_rig.blend"
RIG_MAP = REPO / "rigs" / "maps" / "bundled.json"
BUILD_SCRIPT = REPO / "rigs" / "build_conductor_rig.py"

# Hands may reach this high and this far out while conducting; the camera must still see them.
REACH_HEIGHT = 2.1
REACH_SIDE = 0.8


@pytest.fixture(scope="module")
def scene():
    bpy.ops.wm.open_mainfile(filepath=str(BLEND))
    yield bpy.context.scene
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture(scope="module")
def armature(scene):
    return bpy.data.objects["Conductor"]


def bone_world(armature, name: str, end: str = "tail") -> Vector:
    bone = armature.data.bones[name]
    return armature.matrix_world @ (bone.tail_local if end == "tail" else bone.head_local)


def test_collection_holds_every_kind_of_object(scene):
    collection = bpy.data.collections["Conductor"]
    kinds = {obj.name: obj.type for obj in collection.objects}
    assert kinds["Conductor"] == "ARMATURE"
    assert kinds["Conductor_Body"] == "MESH"
    assert kinds["Conductor_Baton"] == "MESH"
    assert kinds["Conductor_Camera"] == "CAMERA"
    assert "LIGHT" in kinds.values()


def test_rig_map_bones_exist(armature):
    rig_map = json.loads(RIG_MAP.read_text())
    assert rig_map["name"] == "bundled"
    missing = [bone for bone in rig_map["bones"].values() if bone not in armature.data.bones]
    assert missing == []


def test_rest_pose_follows_blender_conventions(armature):
    # The character faces -Y, so the left hand sits at +X and the toes point to -Y.
    assert bone_world(armature, "hand.L").x > 0.3
    assert bone_world(armature, "hand.R").x < -0.3
    assert bone_world(armature, "toe.L").y < bone_world(armature, "foot.L", "head").y
    assert bone_world(armature, "spine.006").z == pytest.approx(1.75, abs=0.05)
    assert all(pose_bone.rotation_mode == "QUATERNION" for pose_bone in armature.pose.bones)


def test_baton_is_held_in_right_hand(armature):
    baton = bpy.data.objects["Conductor_Baton"]
    assert baton.parent == armature
    assert baton.parent_type == "BONE"
    assert baton.parent_bone == "hand.R"
    grip = baton.matrix_world.translation
    assert (grip - bone_world(armature, "hand.R", "head")).length < 0.1


def test_every_body_vertex_follows_a_bone(armature):
    body = bpy.data.objects["Conductor_Body"]
    assert body.parent == armature
    assert any(mod.type == "ARMATURE" and mod.object == armature for mod in body.modifiers)
    bone_groups = {group.index for group in body.vertex_groups if group.name in armature.data.bones}
    unskinned = [
        vertex.index
        for vertex in body.data.vertices
        if not any(g.group in bone_groups and g.weight > 0.0 for g in vertex.groups)
    ]
    assert unskinned == []


def in_frame(scene, camera, point) -> bool:
    x, y, depth = world_to_camera_view(scene, camera, point)
    return 0.0 < x < 1.0 and 0.0 < y < 1.0 and depth > 0.0


def test_camera_sees_the_conductor(scene, armature):
    camera = bpy.data.objects["Conductor_Camera"]
    assert scene.camera == camera
    for bone in ("spine.006", "hand.L", "hand.R"):
        assert in_frame(scene, camera, bone_world(armature, bone)), bone
    for side in (-1.0, 1.0):
        assert in_frame(scene, camera, Vector((side * REACH_SIDE, 0.0, REACH_HEIGHT)))


def test_blend_was_built_by_current_script(armature):
    # A run name other than __main__ loads the script's constants without rebuilding.
    build_script = runpy.run_path(str(BUILD_SCRIPT), run_name="build_conductor_rig")
    assert armature["gm_rig"] == "bundled"
    assert armature["gm_rig_version"] == build_script["RIG_VERSION"]
