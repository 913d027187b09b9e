"""The conductor's breath: in on the preparation before each entry, out as the music enters; the chest lifts and
the collarbones rise on the rig."""

from dataclasses import replace

import numpy as np

from gm_blender_addon.core.breath import CUE_BREATH, beat_sections, breathing
from gm_blender_addon.core.lift import lift
from gm_blender_addon.core.motion import FPS, Motion
from gm_blender_addon.core.retarget import forward_kinematics, proportions, solve, to_armature_space
from gm_blender_addon.core.score_guide import Cue, ScoreGuide
from gm_blender_addon.generators.procedural import conduct
from gm_blender_addon.pipeline import perform_to_beats, with_hands_and_breath
from helpers import humanoid, steady_analysis


def _with_break(analysis, gap_from: float, gap_to: float):
    """The analysis with its beats between the two times taken out: the music stops and enters again."""
    beats = analysis.beats[(analysis.beats < gap_from) | (analysis.beats >= gap_to)]
    return replace(analysis, beats=beats, downbeats=beats[::analysis.beats_per_bar])


def test_the_breath_fills_the_preparation_before_each_entry_and_settles_as_the_music_enters():
    analysis = _with_break(steady_analysis(seconds=20.0), 8.0, 11.0)
    first, again = analysis.beats[0], analysis.beats[analysis.beats >= 11.0][0]
    assert [s[0] for s in beat_sections(analysis)] == [first, again]
    breath = breathing(analysis)
    frame = lambda time: int(round(time * FPS))  # noqa: E731
    for entry in (first, again):
        before = breath[frame(entry - 0.5): frame(entry) + 1]
        assert before.max() > 0.9 and np.argmax(before) < len(before) - 1  # full just before the ictus
        assert breath[frame(entry - 0.5) - 10] < breath[frame(entry - 0.5)]  # breathing in during the preparation
        assert breath[frame(entry + 1.0)] < 0.05  # out again once the music has entered
    assert breath[frame(5.0)] == 0.0  # no breath held through steady beating


def test_a_sections_entrance_from_the_score_gets_a_smaller_breath():
    analysis = steady_analysis(seconds=12.0)
    quiet = breathing(analysis)[int(6.0 * FPS)]
    cued = replace(analysis, score=ScoreGuide(
        source="test", bar_numbers=(), rehearsal_marks=(), meters=(), tempo_changes=(), fermatas=(),
        cues=(Cue(time=6.0, section="horns", parts=("Horn",), angle=0.0),), releases=(), dynamics=analysis.loudness,
        articulation=(), confidence=1.0, unseated_parts=()))
    peak = breathing(cued)[int(5.5 * FPS): int(6.0 * FPS) + 1].max()
    assert quiet == 0.0 and 0.8 * CUE_BREATH < peak <= CUE_BREATH + 1e-6


def test_breathing_in_lifts_the_chest_and_raises_the_collarbones():
    analysis = steady_analysis(seconds=4.0)
    keypoints = np.tile(conduct(analysis, seed=0)[60:61], (2, 1, 1))
    skeleton = humanoid(roll_seed=2)
    parts = {name: name for name in skeleton.names} | {"hips": "spine", "spine": "spine.001",
                                                      "chest": "spine.003", "neck": "spine.004", "head": "spine.006"}
    joints = to_armature_space(lift(Motion(keypoints), proportions(skeleton, parts)), skeleton, parts)
    world = forward_kinematics(skeleton, solve(joints, skeleton, parts, breath=np.array([0.0, 1.0])))
    chest_top = world[:, skeleton.index["spine.004"], :3, 3]  # the neck's head sits on the chest's tail
    assert chest_top[1, 1] - chest_top[0, 1] > 0.005  # back (+Y is away from the orchestra)
    for side in "LR":
        shoulder = world[:, skeleton.index[f"upper_arm.{side}"], :3, 3]  # the collarbone's outer end
        assert shoulder[1, 2] - shoulder[0, 2] > 0.008  # up


def test_every_generated_motion_breathes_and_keeps_its_breath_in_the_file(tmp_path, music_file):
    performance = perform_to_beats(None, None, music_file)
    motion = performance.motion
    assert motion.breath is not None and motion.breath.max() > 0.9
    np.testing.assert_array_equal(Motion.load(motion.save(tmp_path / "m.npz")).breath, motion.breath)
    assert with_hands_and_breath(Motion(motion.keypoints)).breath is None  # no music, no breath
