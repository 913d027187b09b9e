"""Keys an animator can edit, on the bpy module: each bone keyed in its own rotation mode, sparse Bézier keys that
play within the tolerance, and the NLA track that keeps the animator's own keys above the generated motion."""

import bpy
import numpy as np
import pytest

from gm_blender_addon.blender import compat
from gm_blender_addon.blender.scene import NLA_TRACK
from gm_blender_addon.core import keys

GENERATED_ACTION = "GM Conductor"


def _generate(scene, audio, **settings):
    props = scene.gm_conductor
    props.audio_path = str(audio)
    for key, value in settings.items():
        setattr(props, key, value)
    assert bpy.ops.gm.generate() == {"FINISHED"}
    return props.armature


def _poses(scene, armature) -> np.ndarray:
    """(frames, bones, 4) local rotations as played, whatever the rotation mode."""
    out = []
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        out.append([np.array(bone.matrix_basis.to_quaternion()) for bone in armature.pose.bones])
    return np.array(out)


def _keyed_paths(armature) -> set[str]:
    animation = armature.animation_data
    action = animation.action
    if action is None:
        strip = animation.nla_tracks[NLA_TRACK].strips[0]
        action, slot = strip.action, getattr(strip, "action_slot", None)
    else:
        slot = compat.assigned_slot(armature)
    return {fcurve.data_path.rsplit(".", 1)[-1] for fcurve in compat.action_fcurves(action, slot)}


def test_sparse_keys_play_within_the_tolerance_from_an_nla_track(empty_scene, music_file):
    armature = _generate(empty_scene, music_file)
    dense = _poses(empty_scene, armature)
    dense_keys = sum(len(f.keyframe_points) for f in compat.action_fcurves(armature.animation_data.action,
                                                                            compat.assigned_slot(armature)))
    _generate(empty_scene, music_file, sparse_keys=True)
    animation = armature.animation_data
    assert animation.action is None and animation.action_blend_type == "COMBINE"
    (strip,) = animation.nla_tracks[NLA_TRACK].strips
    assert strip.action.name == GENERATED_ACTION and strip.frame_start == 1
    assert [a.name for a in bpy.data.actions] == [GENERATED_ACTION]  # the dense action went with the change
    sparse_keys = sum(len(f.keyframe_points) for f in compat.action_fcurves(strip.action,
                                                                          getattr(strip, "action_slot", None)))
    assert sparse_keys < dense_keys / 4
    assert f"{sparse_keys:,} keys" in empty_scene.gm_conductor.last_result
    sparse = _poses(empty_scene, armature)
    worst = keys.angle_between_deg(sparse, dense).max()
    assert worst <= keys.DEFAULT_TOLERANCE_DEG + 0.01, f"sparse keys play {worst:.3f}° from the dense ones"


def test_the_animators_layer_survives_generating_again(empty_scene, music_file):
    armature = _generate(empty_scene, music_file, sparse_keys=True)
    armature.pose.bones["hand.R"].location = (0.0, 0.02, 0.0)
    armature.pose.bones["hand.R"].keyframe_insert("location", frame=30)
    tweaks = armature.animation_data.action
    assert tweaks is not None and tweaks.name != GENERATED_ACTION

    _generate(empty_scene, music_file, sparse_keys=True, seed=3)
    animation = armature.animation_data
    assert animation.action == tweaks
    (strip,) = animation.nla_tracks[NLA_TRACK].strips
    assert sorted(a.name for a in bpy.data.actions) == sorted([GENERATED_ACTION, tweaks.name])
    empty_scene.frame_set(30)
    assert armature.pose.bones["hand.R"].location[1] == pytest.approx(0.02, abs=1e-6)

    # Every frame keyed again: the generated action is the active one, the track goes, the tweaks stay in the file.
    _generate(empty_scene, music_file, sparse_keys=False)
    assert animation.action.name == GENERATED_ACTION and NLA_TRACK not in animation.nla_tracks
    assert animation.action_blend_type == "REPLACE"
    assert tweaks.use_fake_user and tweaks.name in bpy.data.actions


@pytest.mark.parametrize("mode", ["YXZ", "AXIS_ANGLE"])
def test_bones_are_keyed_in_their_own_rotation_mode(empty_scene, music_file, mode):
    armature = _generate(empty_scene, music_file)
    as_quaternions = _poses(empty_scene, armature)
    for bone in armature.pose.bones:
        bone.rotation_mode = mode
    for sparse in (False, True):
        _generate(empty_scene, music_file, sparse_keys=sparse)
        assert {bone.rotation_mode for bone in armature.pose.bones} == {mode}
        assert _keyed_paths(armature) == {keys.DATA_PATHS[mode], "location"}  # the hips move too
        worst = keys.angle_between_deg(_poses(empty_scene, armature), as_quaternions).max()
        assert worst <= (keys.DEFAULT_TOLERANCE_DEG + 0.01 if sparse else 0.01), (mode, sparse, worst)
