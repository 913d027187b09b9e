"""The panels draw without errors in each state, naming only properties and operators that exist.

Background Blender draws no UI, so the panels' draw() runs on a layout stand-in that checks what it is asked for.
"""

from types import SimpleNamespace

import bpy

from gm_blender_addon.blender import rigs
from gm_blender_addon.blender.operators import GM_OT_generate
from gm_blender_addon.blender.panels import GM_PT_conductor, GM_PT_rig_map
from gm_blender_addon.blender.properties import generator_options
from gm_blender_addon.blender.worker import Job


class CheckingLayout:
    """Records what a panel draws; fails on unknown properties or operators."""

    def __init__(self, drawn):
        self.drawn = drawn

    def _nested(self, *args, **kwargs):
        return CheckingLayout(self.drawn)

    row = column = box = split = _nested

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.drawn.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.drawn.append(("prop_search", kwargs.get("text", name)))

    def operator(self, idname, **kwargs):
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name), idname
        self.drawn.append(("operator", idname))
        return SimpleNamespace()  # where the panel sets the operator's properties

    def operator_menu_enum(self, idname, prop, **kwargs):
        self.operator(idname)

    def label(self, text="", **kwargs):
        self.drawn.append(("label", text))

    def separator(self, **kwargs):
        pass


def _draw(panel, context):
    drawn = []
    panel.draw(SimpleNamespace(layout=CheckingLayout(drawn)), context)
    return drawn


def test_the_chosen_generators_own_settings_are_drawn_and_passed_on(empty_scene):
    settings = empty_scene.gm_conductor
    settings.generator = "procedural"
    assert not any(name.startswith("diffusion_") for _, name in _draw(GM_PT_conductor, bpy.context))
    settings.generator = "diffusion"
    drawn = _draw(GM_PT_conductor, bpy.context)
    assert ("prop", "diffusion_steps") in drawn and ("prop", "diffusion_guidance") in drawn
    assert ("prop", "checkpoint") in drawn
    settings.options.diffusion_steps = 5000  # the registry's limits hold in the panel
    assert settings.options.diffusion_steps == 1000
    settings.options.diffusion_steps, settings.options.diffusion_guidance = 7, 2.5
    assert generator_options(settings) == {"steps": 7, "guidance": 2.5, "beat_lock": True}
    settings.generator = "m2sgan"
    assert ("prop", "m2sgan_beat_lock") in _draw(GM_PT_conductor, bpy.context)  # a checkbox, on by default
    settings.options.m2sgan_beat_lock = False
    assert generator_options(settings) == {"beat_lock": False}


def test_main_panel_offers_generate_or_shows_the_running_job(empty_scene):
    drawn = _draw(GM_PT_conductor, bpy.context)
    for offered in [("operator", "gm.generate"), ("operator", "gm.conduct_to_markers"), ("operator", "gm.tap_beats"),
                    ("prop", "beats_path"), ("prop", "tempo")]:
        assert offered in drawn
    GM_OT_generate.running = Job(lambda progress: None)
    try:
        labels = [text for kind, text in _draw(GM_PT_conductor, bpy.context) if kind == "label"]
    finally:
        GM_OT_generate.running = None
    assert any("Esc to cancel" in text for text in labels)


def test_rig_map_panel_in_each_state(empty_scene):
    assert [kind for kind, _ in _draw(GM_PT_rig_map, bpy.context)] == ["label"]  # no armature yet
    armature = rigs.append_bundled_rig(empty_scene)
    empty_scene.gm_conductor.armature = armature
    drawn = _draw(GM_PT_rig_map, bpy.context)
    assert ("operator", "gm.rig_map_detect") in drawn and not any(kind == "prop_search" for kind, _ in drawn)
    bpy.ops.gm.rig_map_detect()
    entries = {entry.part: entry for entry in armature.gm_rig_map.bones}
    entries["hips"].bone = "no such bone"  # an optional part: no warning
    drawn = _draw(GM_PT_rig_map, bpy.context)
    assert ("label", "hips") in drawn and ("label", "hand.R") in drawn  # each part named on its own label
    # The finger bones fold away under one line until it is opened.
    assert sum(kind == "prop_search" for kind, _ in drawn) == len(entries) - 30
    assert ("prop", "show_fingers") in drawn
    armature.gm_rig_map.show_fingers = True
    drawn = _draw(GM_PT_rig_map, bpy.context)
    assert sum(kind == "prop_search" for kind, _ in drawn) == len(entries)
    assert ("label", "f_pinky.03.L") in drawn
    assert not any(kind == "label" and text.startswith("Missing:") for kind, text in drawn)
    entries["chest"].bone = "no such bone"
    assert ("label", "Missing: no such bone") in _draw(GM_PT_rig_map, bpy.context)
