"""The stage around the bundled conductor (blender.stage): built once, left as the user arranges it."""

import bpy
import numpy as np

from gm_blender_addon.blender import rigs
from gm_blender_addon.blender.stage import STAGE
from gm_blender_addon.core.stage import default_plan


def _generate(scene, audio, armature=None):
    scene.gm_conductor.audio_path = str(audio)
    scene.gm_conductor.armature = armature
    assert bpy.ops.gm.generate() == {"FINISHED"}


def test_the_bundled_conductor_gets_a_stage_with_the_orchestras_sections(empty_scene, music_file):
    _generate(empty_scene, music_file)
    stage = bpy.data.collections[STAGE]
    assert empty_scene.user_of_id(stage)
    names = {o.name for o in stage.objects}
    assert {"GM Podium", "GM Music Stand", "GM Music Stand Desk", "GM Stage Floor"} <= names
    sections = [o for o in stage.objects if "gm_section" in o]
    plan = default_plan()
    assert sorted(o["gm_section"] for o in sections) == sorted(s.name for s in plan.sections)
    violins = next(o for o in sections if o["gm_section"] == "Violins I")
    assert "violin" in violins["gm_instruments"]
    chairs = next(o for o in violins.children if o.type == "MESH")
    seats = len(next(s for s in plan.sections if s.name == "Violins I").seats())
    assert len(chairs.data.polygons) == 2 * 6 * seats  # a seat and a back per chair, six faces each
    # The stand stays beyond the baton's reach.
    conductor = empty_scene.gm_conductor.armature
    stand = bpy.data.objects["GM Music Stand"]
    assert np.linalg.norm(np.array(stand.location - conductor.location)[:2]) > 0.7

    # A section the user moved stays where it was put when generating again, and nothing is built twice.
    violins.location.x += 1.0
    moved = tuple(violins.location)
    _generate(empty_scene, music_file, conductor)
    assert tuple(violins.location) == moved
    assert [c.name for c in bpy.data.collections].count(STAGE) == 1 and "GM Podium.001" not in bpy.data.objects


def test_a_users_own_armature_gets_no_stage(empty_scene, music_file):
    armature = rigs.append_bundled_rig(empty_scene)
    _generate(empty_scene, music_file, armature)
    assert STAGE not in bpy.data.collections
