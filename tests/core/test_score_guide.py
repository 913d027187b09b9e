"""What an aligned score tells the conductor (core.score_guide), and the procedural conductor following it."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gm_blender_addon.core.analysis import GivenBeats, analysis_from_record, analysis_record
from gm_blender_addon.core.audio import SAMPLE_RATE, Audio
from gm_blender_addon.core.hands import hand_poses
from gm_blender_addon.core.motion import FPS, JOINT
from gm_blender_addon.core.score import ScoreBar
from gm_blender_addon.core.score_guide import score_analysis, score_record
from gm_blender_addon.core.score_synth import render_score
from gm_blender_addon.core.stage import default_plan
from gm_blender_addon.generators.procedural import conduct
from helpers import chorale_score


@pytest.fixture(scope="module")
def guided():
    """A score whose horns rest through bars 1-6 and enter on bar 7 and whose cellos stop after bar 9, with a 3/4 bar,
    a fermata, a crescendo, rendered and analysed on its own exact beats."""
    score = chorale_score(bars=12, parts=("Violin I", "Horn in F", "Cello"),
                          resting={"Horn in F": (1, 6), "Cello": (10, 12)},
                          fermatas=(44.0,), dynamics=((0.0, "p"), (32.0, "f")), hairpins=((16.0, 32.0, "crescendo"),))
    bars = list(score.bars)
    bars[3] = ScoreBar("4", 12.0, 3.0, "3/4", (0.0, 1.0, 2.0), rehearsal="A")
    bars[4:] = [ScoreBar(b.number, b.start - 1.0, b.length, b.meter, b.beats) for b in bars[4:]]
    notes = score.notes[(score.notes["onset"] < 15.0) | (score.notes["onset"] >= 16.0)].copy()
    notes["onset"] -= np.where(notes["onset"] >= 16.0, 1.0, 0.0)
    score = replace(score, bars=tuple(bars), notes=notes, fermatas=(43.0,), dynamics=((0.0, "p"), (31.0, "f")),
                    hairpins=((15.0, 31.0, "crescendo"),))
    samples, alignment = render_score(score)
    audio = Audio(samples, SAMPLE_RATE, Path("rendered.wav"), "")
    return score_analysis(audio, alignment, default_plan()), alignment


def test_bars_meters_and_numbers_come_from_the_score(guided):
    analysis, alignment = guided
    guide = analysis.score
    assert guide.bar_numbers == tuple(str(b) for b in range(1, 13))
    assert guide.meters[3] == "3/4" and guide.rehearsal_marks[3] == "A"
    np.testing.assert_allclose(analysis.downbeats, alignment.seconds_at([b.start for b in alignment.score.bars]))
    assert len(analysis.beats) == 47 and analysis.beats_per_bar == 4
    record = score_record(analysis)
    assert record["meter_changes"] == [{"bar": "1", "time": record["bars"][0]["time"], "meter": "4/4"},
                                       {"bar": "4", "time": record["bars"][3]["time"], "meter": "3/4"},
                                       {"bar": "5", "time": record["bars"][4]["time"], "meter": "4/4"}]
    assert record["bars"][3]["rehearsal"] == "A"


def test_the_horns_entrance_is_cued_towards_their_section(guided):
    analysis, alignment = guided
    (cue,) = analysis.score.cues
    assert cue.section == "Horns" and cue.parts == ("Horn in F",)
    assert cue.time == pytest.approx(float(alignment.seconds_at(23.0)), abs=1e-3)
    assert cue.angle == default_plan().section_for("horn").angle


def test_the_cellos_phrase_end_is_released_with_a_closing_left_hand(guided):
    analysis, alignment = guided
    (release,) = analysis.score.releases  # the others play on; the final cut-off is the whole orchestra's
    assert release.section == default_plan().section_for("cello").name and release.parts == ("Cello",)
    assert release.time == pytest.approx(float(alignment.seconds_at(35.0)), abs=1e-3)
    assert score_record(analysis)["releases"] == [{"time": round(release.time, 4), "section": release.section,
                                                   "parts": ["Cello"]}]
    keypoints = conduct(analysis, seed=0)
    fingers, _ = hand_poses(keypoints, analysis)
    t = np.arange(len(keypoints)) / FPS
    beat = float(np.median(np.diff(analysis.beats)))
    at = int(round(release.time * FPS))
    assert fingers[at, 0].mean() > fingers[(t > release.time - 4 * beat) & (t < release.time - 2 * beat), 0].mean(
        axis=1).max() + 0.2
    # The cellos sit to the conductor's right, the camera's left: the nose turns that way as they stop.
    ears = 0.5 * (keypoints[:, JOINT["left_ear"], 0] + keypoints[:, JOINT["right_ear"], 0])
    nose = keypoints[:, JOINT["nose"], 0] - ears
    assert nose[at] < nose[at - int(3 * beat * FPS)] - 0.01


def test_written_dynamics_rise_through_the_crescendo(guided):
    analysis, alignment = guided
    frames = (alignment.seconds_at([8.0, 23.0, 35.0]) * FPS).astype(int)
    soft, middle, loud = analysis.score.dynamics[frames]
    assert soft == pytest.approx(0.35) and soft < middle < loud == pytest.approx(0.7)


def test_the_fermata_holds_its_beat(guided):
    analysis, _ = guided
    (held,) = analysis.score.fermatas
    assert held in analysis.beats
    following = analysis.beats[np.searchsorted(analysis.beats, held) + 1]
    assert following - held > 1.5 * np.median(np.diff(analysis.beats))


def test_the_conductor_cues_with_the_left_hand_and_head_before_the_entrance(guided):
    analysis, _ = guided
    keypoints = conduct(analysis, seed=0)
    cue = analysis.score.cues[0].time
    beat = float(np.median(np.diff(analysis.beats)))
    t = np.arange(len(keypoints)) / FPS
    near = (t > cue - 2 * beat) & (t < cue + beat)
    height = -keypoints[:, JOINT["left_wrist"], 1]
    peak = t[near][np.argmax(height[near])]
    assert cue - beat <= peak <= cue
    assert height[near].max() > height[(t > cue - 6 * beat) & (t < cue - 3 * beat)].max() + 0.03
    # The horns sit to the conductor's left, the camera's right: the nose turns that way.
    ears = 0.5 * (keypoints[:, JOINT["left_ear"], 0] + keypoints[:, JOINT["right_ear"], 0])
    nose = keypoints[:, JOINT["nose"], 0] - ears
    frame = int(round((cue - 0.35 * beat) * FPS))
    assert nose[frame] > nose[frame - int(4 * beat * FPS)] + 0.01


def test_the_score_outlives_conducting_again_to_the_markers(guided):
    analysis, _ = guided
    record = analysis_record(analysis)
    again = analysis_from_record(record, GivenBeats(tuple(analysis.beats), tuple(analysis.downbeats)))
    assert again.score.cues == analysis.score.cues and again.score.bar_numbers == analysis.score.bar_numbers
    assert again.score.releases == analysis.score.releases
    # A record kept before releases existed still conducts, with none.
    older = {**record, "score": {k: v for k, v in record["score"].items() if not k.startswith("release_")}}
    assert analysis_from_record(older, GivenBeats(tuple(analysis.beats), tuple(analysis.downbeats))).score.releases == ()
    fewer = analysis_from_record(record, GivenBeats(tuple(analysis.beats), tuple(np.delete(analysis.downbeats, 5))))
    assert fewer.score.bar_numbers == () and fewer.score.fermatas == analysis.score.fermatas


def test_staccato_beats_rebound_earlier_than_slurred_ones():
    """The rebound peaks early and falls long into a sharp ictus under staccato, and swings evenly when slurred."""
    def rebound_phase(flag: str) -> float:
        score = chorale_score(bars=8)
        notes = score.notes.copy()
        notes[flag] = True
        samples, alignment = render_score(replace(score, notes=notes))
        analysis = score_analysis(Audio(samples, SAMPLE_RATE, Path("r.wav"), ""), alignment, default_plan())
        height = -conduct(analysis, seed=0)[:, JOINT["right_wrist"], 1]
        phases = []
        for a, b in zip(analysis.beats[4:-4], analysis.beats[5:-3]):
            frames = np.arange(int(a * FPS), int(b * FPS))
            phases.append((frames[np.argmax(height[frames])] / FPS - a) / (b - a))
        return float(np.mean(phases))

    assert rebound_phase("staccato") < rebound_phase("slurred") - 0.05
