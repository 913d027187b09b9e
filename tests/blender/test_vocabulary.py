"""The gesture vocabulary in Blender: gestures taken from the preview range of a keyed armature's motion, kept with
the .blend, trained, and used to explain and search the motion on the timeline, to draw its map and to exchange
files with the command line."""

import bpy
import numpy as np
import pytest

from gm_blender_addon.blender import rigs, vocabulary_operators
from gm_blender_addon.blender.scene import store_motion
from gm_blender_addon.blender.vocabulary_operators import (EXPLAIN_PREFIX, MAP_IMAGE, MATCH_PREFIX, scene_vocabulary,
                                                           vocabulary_summary)
from gm_blender_addon.core.gesture_vocabulary import load_vocabulary
from helpers import PLANTED, planted_motion, stand_in_embed

KINDS = ["raise", "beat", "still", "raise", "beat", "still"]


@pytest.fixture
def keyed(empty_scene, monkeypatch):
    """The bundled conductor holding a motion that raises, beats and rests in turn (3 s each, twice), selected."""
    monkeypatch.setattr(vocabulary_operators, "_embed", stand_in_embed)
    armature = rigs.append_bundled_rig(empty_scene)
    store_motion(armature, planted_motion(KINDS, seconds=3.0, seed=1))
    bpy.context.view_layer.objects.active = armature
    empty_scene.render.fps = 24  # the timeline need not run at the motion's 30 frames a second
    empty_scene.frame_end = len(KINDS) * 72
    return empty_scene


def _add(scene, start: int, end: int, kind: str):
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = start, end
    scene.gm_vocabulary.description, scene.gm_vocabulary.meaning = PLANTED[kind]
    return bpy.ops.gm.vocabulary_add()


def test_gestures_are_added_trained_and_explain_and_find_the_motion(keyed, tmp_path):
    scene = keyed
    for number, kind in enumerate(KINDS[:3]):
        assert _add(scene, 1 + 72 * number, 72 * (number + 1), kind) == {"FINISHED"}
    assert [len(e.keypoints) for e in scene_vocabulary(scene).entries] == [90, 90, 90]
    entries, trained = vocabulary_summary(scene)
    assert entries == [PLANTED[k] for k in KINDS[:3]] and trained is None
    scene.gm_vocabulary.steps = 80
    assert bpy.ops.gm.vocabulary_train() == {"FINISHED"}
    assert vocabulary_summary(scene)[1] is not None

    assert bpy.ops.gm.vocabulary_explain() == {"FINISHED"}
    explained = sorted((m.frame, m.name) for m in scene.timeline_markers if m.name.startswith(EXPLAIN_PREFIX))
    assert explained and all(name.count("(") == 1 for _, name in explained)
    # The second raise (seconds 9-12) is explained as its meaning.
    during = [name for frame, name in explained if 9 * 24 <= frame <= 12 * 24]
    before = [name for frame, name in explained if frame < 9 * 24]
    assert any(PLANTED["raise"][1] in name for name in during + before[-1:])

    scene.gm_vocabulary.query = PLANTED["beat"][0]  # a stored description: no text model needed
    assert bpy.ops.gm.vocabulary_search() == {"FINISHED"}
    matches = [m for m in scene.timeline_markers if m.name.startswith(MATCH_PREFIX)]
    assert len(matches) == vocabulary_operators.SEARCH_RESULTS
    best = max(matches, key=lambda m: float(m.name.rsplit("(", 1)[1].rstrip(")")))
    assert scene.frame_current == best.frame
    seconds = (best.frame - 1) / 24
    assert 3 <= seconds <= 6 or 12 <= seconds <= 15  # a beating stretch

    assert bpy.ops.gm.vocabulary_map() == {"FINISHED"}
    assert bpy.data.images[MAP_IMAGE].size[0] > 0

    path = tmp_path / "vocabulary.npz"
    assert bpy.ops.gm.vocabulary_export(filepath=str(path)) == {"FINISHED"}
    assert load_vocabulary(path).model is not None
    description, meaning = PLANTED["raise"]
    assert bpy.ops.gm.vocabulary_remove(description=description, meaning=meaning) == {"FINISHED"}
    assert len(scene_vocabulary(scene).entries) == 2 and scene_vocabulary(scene).model is None
    assert bpy.ops.gm.vocabulary_import(filepath=str(path)) == {"FINISHED"}
    kept = scene_vocabulary(scene)
    assert len(kept.entries) == 3 and kept.model is not None
    np.testing.assert_array_equal(kept.entries[1].keypoints, load_vocabulary(path).entries[1].keypoints)


def test_the_vocabulary_is_saved_with_the_blend(keyed, tmp_path):
    assert _add(keyed, 1, 72, "raise") == {"FINISHED"}
    path = tmp_path / "kept.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    (entry,) = scene_vocabulary(bpy.context.scene).entries
    assert (entry.description, entry.meaning) == PLANTED["raise"] and entry.keypoints.shape == (90, 13, 2)


def test_bad_requests_are_reported_and_change_nothing(keyed, monkeypatch):
    scene = keyed
    scene.use_preview_range = False
    with pytest.raises(RuntimeError, match="preview range"):
        bpy.ops.gm.vocabulary_add()
    with pytest.raises(RuntimeError, match="empty"):
        _add(scene, 1, 72, "raise") and None
        scene.gm_vocabulary.description = "  "
        bpy.ops.gm.vocabulary_add()
    with pytest.raises(RuntimeError, match="not trained"):
        bpy.ops.gm.vocabulary_explain()
    with pytest.raises(RuntimeError, match="at least two gestures"):
        bpy.ops.gm.vocabulary_train()

    def no_model(texts):
        from gm_blender_addon.core.text_embedding import TextModelError
        raise TextModelError("The text model is missing: set the model folder in the add-on preferences.")

    monkeypatch.setattr(vocabulary_operators, "_embed", no_model)
    with pytest.raises(RuntimeError, match="preferences"):
        _add(scene, 80, 160, "beat")
    assert len(scene_vocabulary(scene).entries) == 1  # only the first, good one
    bpy.context.view_layer.objects.active = None
    assert not bpy.ops.gm.vocabulary_add.poll()


def test_the_panel_lists_the_gestures_and_the_training_state(keyed):
    from test_panels import _draw

    from gm_blender_addon.blender.vocabulary_panels import GM_PT_vocabulary

    drawn = _draw(GM_PT_vocabulary, bpy.context)
    assert ("operator", "gm.vocabulary_add") in drawn and ("label", "Untrained") in drawn
    _add(keyed, 1, 72, "raise")
    drawn = _draw(GM_PT_vocabulary, bpy.context)
    assert ("label", " → ".join(PLANTED["raise"])) in drawn and ("operator", "gm.vocabulary_remove") in drawn
    _add(keyed, 100, 172, "raise")  # a second performance of the same gesture shares its row
    assert ("label", " → ".join(PLANTED["raise"]) + " (×2)") in _draw(GM_PT_vocabulary, bpy.context)


def test_the_starter_vocabulary_explains_a_conductor_out_of_the_box(keyed, monkeypatch):
    def no_model(texts):
        raise AssertionError("the starter needs no text model")

    monkeypatch.setattr(vocabulary_operators, "_embed", no_model)
    assert bpy.ops.gm.vocabulary_starter() == {"FINISHED"}
    vocabulary = scene_vocabulary(keyed)
    assert vocabulary.model is not None and len(vocabulary.meanings) == 11
    from gm_blender_addon.generators.procedural import conduct
    from gm_blender_addon.core.motion import Motion
    from helpers import steady_analysis

    store_motion(bpy.context.active_object, Motion(conduct(steady_analysis(seconds=12.0), seed=3)))
    assert bpy.ops.gm.vocabulary_explain() == {"FINISHED"}
    assert any(m.name.startswith(EXPLAIN_PREFIX) for m in keyed.timeline_markers)
    keyed.gm_vocabulary.query = vocabulary.descriptions[0]
    assert bpy.ops.gm.vocabulary_search() == {"FINISHED"}


def test_keeping_the_vocabulary_leaves_the_panel_settings_alone(keyed):
    keyed.gm_vocabulary.query, keyed.gm_vocabulary.steps = "cut-off", 123
    assert bpy.ops.gm.vocabulary_starter() == {"FINISHED"}
    assert (keyed.gm_vocabulary.query, keyed.gm_vocabulary.steps) == ("cut-off", 123)
    assert scene_vocabulary(keyed).model is not None
