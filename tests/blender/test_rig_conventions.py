"""Any rig: armatures of each naming convention, built here in different rest poses and orientations, are detected,
keyed through their own controls, and their wrists reach the lifted targets.

Mixamo is built as an FBX import leaves it (Y-up armature space under a 90° object rotation, centimetre bones at
0.01 scale, T-pose, a `mixamorig7:` namespace); UE5 Manny in an A-pose facing +Y with twist bones; both with random
bone rolls. Rigify's metarig and generated rig are made by Rigify itself, so the generated rig's constraints (FK
controls driving ORG and DEF bones through mechanism bones) are the real ones.
"""

import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Matrix

from gm_blender_addon.blender import compat, rig_maps, rigs
from gm_blender_addon.core.motion import JOINT
from gm_blender_addon.pipeline import perform, solve_for_rig

SEED = 4

MIXAMO = {
    "hips": "Hips", "spine": "Spine", "spine_mid": "Spine1", "chest": "Spine2", "neck": "Neck", "head": "Head",
    "shoulder": "{Side}Shoulder", "upper_arm": "{Side}Arm", "forearm": "{Side}ForeArm", "hand": "{Side}Hand",
    "thigh": "{Side}UpLeg", "shin": "{Side}Leg", "foot": "{Side}Foot",
}
UE5 = {
    "hips": "pelvis", "spine": "spine_01", "spine_mid": "spine_03", "chest": "spine_05", "neck": "neck_01",
    "head": "head", "shoulder": "clavicle_{s}", "upper_arm": "upperarm_{s}", "forearm": "lowerarm_{s}",
    "hand": "hand_{s}", "twist": "upperarm_twist_01_{s}", "thigh": "thigh_{s}", "shin": "calf_{s}", "foot": "foot_{s}",
}


def _body(names: dict[str, str], arm_angle_deg: float) -> list[tuple[str, str | None, tuple, tuple]]:
    """(bone, parent, head, tail) of a body facing −Y with Z up, arms `arm_angle_deg` below horizontal."""
    a = np.radians(arm_angle_deg)
    bones = [
        (names["hips"], None, (0, 0, 0.95), (0, 0, 1.05)),
        (names["spine"], names["hips"], (0, 0, 1.05), (0, 0.01, 1.17)),
        (names["spine_mid"], names["spine"], (0, 0.01, 1.17), (0, 0.02, 1.29)),
        (names["chest"], names["spine_mid"], (0, 0.02, 1.29), (0, 0.02, 1.45)),
        (names["neck"], names["chest"], (0, 0.02, 1.45), (0, 0.0, 1.55)),
        (names["head"], names["neck"], (0, 0.0, 1.55), (0, -0.01, 1.77)),
    ]
    for side, sx in (("L", 1.0), ("R", -1.0)):
        fill = {"Side": "Left" if side == "L" else "Right", "s": side.lower()}
        name = lambda part: names[part].format(**fill)  # noqa: E731
        shoulder = np.array([sx * 0.19, 0.0, 1.42])
        elbow = shoulder + 0.28 * np.array([sx * np.cos(a), -0.02, -np.sin(a)])
        wrist = elbow + 0.26 * np.array([sx * np.cos(a + 0.2), -0.25, -np.sin(a + 0.2)])
        tip = wrist + 0.09 * (wrist - elbow) / np.linalg.norm(wrist - elbow)
        bones += [
            (name("shoulder"), names["chest"], (sx * 0.02, -0.02, 1.43), tuple(shoulder)),
            (name("upper_arm"), name("shoulder"), tuple(shoulder), tuple(elbow)),
            (name("forearm"), name("upper_arm"), tuple(elbow), tuple(wrist)),
            (name("hand"), name("forearm"), tuple(wrist), tuple(tip)),
        ]
        if "twist" in names:
            bones.append((name("twist"), name("upper_arm"), tuple(shoulder), tuple((shoulder + elbow) / 2)))
        hip, knee, ankle, toe = (sx * 0.1, 0.01, 0.93), (sx * 0.1, -0.01, 0.51), (sx * 0.1, 0.02, 0.09), (sx * 0.1, -0.1, 0.02)
        bones += [(name("thigh"), names["hips"], hip, knee), (name("shin"), name("thigh"), knee, ankle),
                  (name("foot"), name("shin"), ankle, toe)]
    return bones


def build_armature(scene, name, bones, world: Matrix, prefix="", roll_seed=0):
    """An armature whose bones sit where `bones` says in world space (upright, metres), whatever its object
    transform `world` (rotation and uniform scale) does to its armature space."""
    data = bpy.data.armatures.new(name)
    armature = bpy.data.objects.new(name, data)
    scene.collection.objects.link(armature)
    armature.matrix_world = world
    to_armature = np.array(world.inverted())
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    rng = np.random.default_rng(roll_seed)
    for bone, parent, head, tail in bones:
        edit = data.edit_bones.new(prefix + bone)
        edit.head = (to_armature @ np.append(head, 1.0))[:3]
        edit.tail = (to_armature @ np.append(tail, 1.0))[:3]
        edit.roll = rng.uniform(-np.pi, np.pi)
        if parent is not None:
            edit.parent = data.edit_bones[prefix + parent]
            edit.use_connect = False
    bpy.ops.object.mode_set(mode="OBJECT")
    return armature


def _metarig(scene):
    bpy.ops.object.armature_human_metarig_add()
    return bpy.context.active_object


def _keyed_bones(armature) -> set[str]:
    fcurves = compat.action_fcurves(armature.animation_data.action, compat.assigned_slot(armature))
    return {fc.data_path.split('"')[1] for fc in fcurves}


def _generate(scene, music, armature):
    settings = scene.gm_conductor
    settings.audio_path = str(music)
    settings.armature = armature
    settings.seed = SEED
    assert bpy.ops.gm.generate() == {"FINISHED"}


def _check_performance(scene, armature, music, arms: dict[str, tuple[str, str]], chest: str, head: str):
    """The evaluated wrists match the lifted targets, the head stays up, the hands work in front of the body and
    point (with the baton) towards the orchestra, and the feet, where the map names the legs, stay planted.

    `arms`: side ("L"/"R") → (bone at the shoulder joint, bone at the wrist) as evaluated, e.g. the deforming ones.
    """
    skeleton = rigs.snapshot(armature)
    parts = rigs.rig_map_for(armature).resolve(skeleton.names)
    performance = perform(music, seed=SEED)
    joints = solve_for_rig(performance.motion, skeleton, parts, smoothing=scene.gm_conductor.smoothing).joints
    world = np.array(armature.matrix_world)
    rotation = world[:3, :3] / np.linalg.norm(world[:3, 0])
    rest = {name: (world @ np.append(np.array(armature.data.bones[name].head_local), 1.0))[:3] for name in arms["L"] + arms["R"]}
    # The way the rig faces at rest, in the world (from its shoulder line and the world's up): it keeps facing so.
    facing = np.cross(rest[arms["L"][0]] - rest[arms["R"][0]], [0.0, 0.0, 1.0])
    facing /= np.linalg.norm(facing)
    errors, heads_up, hands_forward, hands_aim, feet = [], [], [], [], []
    for frame in range(1, performance.motion.n_frames, 17):
        scene.frame_set(frame)
        pose = armature.pose.bones

        def at(bone):
            return (world @ np.append(np.array(pose[bone].head), 1.0))[:3]

        for side, key in (("L", "left"), ("R", "right")):
            shoulder_bone, hand_bone = arms[side]
            reach = at(hand_bone) - at(shoulder_bone)
            target = rotation @ (joints[frame - 1, JOINT[f"{key}_wrist"]] - joints[frame - 1, JOINT[f"{key}_shoulder"]])
            errors.append(np.linalg.norm(reach - target))
            hands_forward.append(np.dot(at(hand_bone) - at(chest), facing))
            hands_aim.append(np.dot(world[:3, :3] @ np.array(pose[hand_bone].vector), facing))
        heads_up.append(at(head)[2] - at(chest)[2])
        feet.append([np.concatenate([at(parts[f"foot.{s}"]), (world @ np.append(np.array(pose[parts[f"foot.{s}"]].tail), 1.0))[:3]])
                     for s in "LR" if f"foot.{s}" in parts])
    assert max(errors) < 1e-4
    assert np.ptp(np.array(feet), axis=0).max(initial=0.0) < 1e-3  # heels and toes stay within a millimetre
    assert min(heads_up) > 0.05
    assert np.mean(np.array(hands_forward) > 0) > 0.9
    assert np.mean(np.array(hands_aim) > 0) > 0.9


def test_mixamo_fbx_import_with_a_namespace(empty_scene, music_file):
    world = Matrix.Rotation(np.radians(90), 4, "X") @ Matrix.Scale(0.01, 4)
    armature = build_armature(
        empty_scene, "Armature", _body(MIXAMO, arm_angle_deg=0.0), world, prefix="mixamorig7:", roll_seed=1
    )
    _generate(empty_scene, music_file, armature)
    assert armature.gm_rig_map.name == "mixamo"
    assert all(bone.startswith("mixamorig7:") for bone in _keyed_bones(armature))
    arms = {s: (f"mixamorig7:{side}Arm", f"mixamorig7:{side}Hand") for s, side in (("L", "Left"), ("R", "Right"))}
    _check_performance(empty_scene, armature, music_file, arms, "mixamorig7:Spine2", "mixamorig7:Head")


def test_ue5_manny_in_an_a_pose_facing_plus_y(empty_scene, music_file):
    turned = Matrix.Rotation(np.pi, 4, "Z")
    armature = build_armature(empty_scene, "SK_Mannequin", _body(UE5, arm_angle_deg=45.0), Matrix(), roll_seed=2)
    # Bake the half turn into the rest pose: the armature space itself faces +Y.
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    armature.data.transform(turned)
    bpy.ops.object.mode_set(mode="OBJECT")
    _generate(empty_scene, music_file, armature)
    assert armature.gm_rig_map.name == "ue5_manny"
    assert "upperarm_twist_01_l" not in _keyed_bones(armature)
    arms = {s: (f"upperarm_{s.lower()}", f"hand_{s.lower()}") for s in "LR"}
    _check_performance(empty_scene, armature, music_file, arms, "spine_05", "head")


def check_rigify(scene, music):
    """Rigify's human metarig, then the rig Rigify generates from it (Rigify enabled, in an empty scene)."""
    metarig = _metarig(scene)
    _generate(scene, music, metarig)
    assert metarig.gm_rig_map.name == "rigify_metarig"
    assert {"thumb.01.L", "f_index.03.R", "f_pinky.02.L"} <= _keyed_bones(metarig)  # the metarig's fingers
    arms = {s: (f"upper_arm.{s}", f"hand.{s}") for s in "LR"}
    _check_performance(scene, metarig, music, arms, "spine.003", "spine.006")

    metarig.animation_data_clear()
    bpy.ops.pose.rigify_generate()
    rig = next(o for o in scene.objects if o.type == "ARMATURE" and o != metarig)
    _generate(scene, music, rig)
    assert rig.gm_rig_map.name == "rigify"
    keyed = _keyed_bones(rig)
    assert not any(bone.startswith(("DEF-", "ORG-", "MCH-")) for bone in keyed)
    assert {"upper_arm_fk.L", "forearm_fk.R", "hand_fk.L", "chest"} <= keyed
    assert {"thumb.01.L", "f_index.03.R", "f_pinky.02.L"} <= keyed  # the generated rig's finger controls
    scene.frame_set(1)
    assert rig.pose.bones["upper_arm_parent.L"]["IK_FK"] == 1.0 and rig.pose.bones["upper_arm_parent.R"]["IK_FK"] == 1.0
    # What deforms the mesh (the ORG chain that DEF follows) reaches the targets, through Rigify's own constraints.
    arms = {s: (f"ORG-upper_arm.{s}", f"ORG-hand.{s}") for s in "LR"}
    _check_performance(scene, rig, music, arms, "ORG-spine.003", "ORG-spine.006")


# Rigify runs in a process of its own: it cannot be enabled twice in one process after a factory reset, and with
# the bpy 4.5 wheel a process that has generated a Rigify rig hangs on exit (hence os._exit).
RIGIFY_PROCESS = """
import os, sys, traceback
sys.path[:0] = sys.argv[1:3]
import bpy
import addon_utils
import gm_blender_addon
import test_rig_conventions
gm_blender_addon.register()
bpy.ops.wm.read_factory_settings(use_empty=True)
addon_utils.enable("rigify", default_set=True)
try:
    test_rig_conventions.check_rigify(bpy.context.scene, sys.argv[3])
    print("RIGIFY CHECKED", flush=True)
    code = 0
except BaseException:
    traceback.print_exc()
    code = 1
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
"""


def test_rigify_metarig_and_the_rig_it_generates(music_file, tmp_path):
    here = Path(__file__).resolve().parent
    run = subprocess.run(
        [sys.executable, "-c", RIGIFY_PROCESS, str(here.parents[1]), str(here), str(music_file)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0 and "RIGIFY CHECKED" in run.stdout, run.stdout[-2000:] + run.stderr[-4000:]


def test_the_bundled_rig_keeps_its_own_map(empty_scene):
    armature = rigs.append_bundled_rig(empty_scene)
    assert rigs.rig_map_for(armature).name == "bundled"


def test_detect_lists_missing_bones_and_an_edited_map_is_used(empty_scene, music_file):
    # A Mixamo-like rig whose left forearm has a name of its own.
    renamed = [("LeftElbowBone" if n == "LeftForeArm" else n, "LeftElbowBone" if p == "LeftForeArm" else p, h, t)
               for n, p, h, t in _body(MIXAMO, 10.0)]
    armature = build_armature(empty_scene, "Custom", renamed, Matrix())
    empty_scene.gm_conductor.armature = armature
    assert bpy.ops.gm.rig_map_detect() == {"FINISHED"}
    stored = rig_maps.stored(armature)
    assert stored.name == "mixamo" and stored.missing([b.name for b in armature.data.bones]) == ["LeftForeArm"]
    with pytest.raises(RuntimeError, match="missing bones LeftForeArm"):
        _generate(empty_scene, music_file, armature)
    # The user names the bone in the panel's list.
    next(entry for entry in armature.gm_rig_map.bones if entry.part == "forearm.L").bone = "LeftElbowBone"
    _generate(empty_scene, music_file, armature)
    assert "LeftElbowBone" in _keyed_bones(armature)


def test_saved_map_loads_onto_another_rig(empty_scene, tmp_path):
    first = build_armature(empty_scene, "First", _body(UE5, 30.0), Matrix())
    empty_scene.gm_conductor.armature = first
    bpy.ops.gm.rig_map_detect()
    first.gm_rig_map.name = "my studio rig"
    path = tmp_path / "studio.json"
    assert bpy.ops.gm.rig_map_save(filepath=str(path)) == {"FINISHED"}
    second = build_armature(empty_scene, "Second", _body(UE5, 30.0), Matrix())
    empty_scene.gm_conductor.armature = second
    assert bpy.ops.gm.rig_map_load(filepath=str(path)) == {"FINISHED"}
    assert second.gm_rig_map.name == "my studio rig"
    assert rig_maps.stored(second).bones == rig_maps.stored(first).bones
