"""The orchestra's seating plan (core.stage): where the sections and their chairs are."""

import json

import numpy as np
import pytest

from gm_blender_addon.core.stage import SeatingPlan, SeatingPlanError, default_plan


def test_the_default_plan_seats_the_orchestra_in_front_of_the_conductor():
    plan = default_plan()
    names = [s.name for s in plan.sections]
    assert {"Violins I", "Violins II", "Violas", "Cellos", "Basses", "Flutes", "Horns", "Timpani"} <= set(names)
    assert len(names) == len(set(names))
    for section in plan.sections:
        seats = section.seats()
        assert len(seats) >= section.rows
        distance = np.linalg.norm(seats, axis=1)
        assert distance.min() >= section.radius - 1e-9 and (seats[:, 1] < 0).all(), section.name
        # Neighbouring chairs are apart, and no two sections share a chair's place.
        if len(seats) > 1:
            gaps = np.linalg.norm(seats[:, None] - seats[None], axis=2) + np.eye(len(seats)) * 9
            assert gaps.min() > 0.5, section.name
    every = np.concatenate([s.seats() for s in plan.sections])
    gaps = np.linalg.norm(every[:, None] - every[None], axis=2) + np.eye(len(every)) * 9
    assert gaps.min() > 0.4


def test_the_first_violins_sit_on_the_conductors_left_and_the_cellos_on_the_right():
    by_name = {s.name: s for s in default_plan().sections}
    # Facing -Y the conductor's left is +X.
    assert by_name["Violins I"].centre()[0] > 1.0 and by_name["Cellos"].centre()[0] < -1.0
    assert np.linalg.norm(by_name["Timpani"].centre()) > np.linalg.norm(by_name["Violas"].centre())


@pytest.mark.parametrize("content, message", [
    ("{", "is not a seating plan"),
    ('{"sections": [{"name": "Violins"}]}', "needs a name, instruments, angle, width"),
    ('{"sections": []}', "it has no sections"),
    ('{"sections": [{"name": "X", "instruments": [], "angle": 0, "width": 20, "radius": 2, "rows": 0}]}',
     "(X)"),
])
def test_a_bad_seating_plan_is_refused_with_its_name(tmp_path, content, message):
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(SeatingPlanError, match="plan.json") as error:
        SeatingPlan.load(path)
    assert message in str(error.value)


def test_a_plan_file_round_trips(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"name": "Quartet", "sections": [
        {"name": "Violin", "instruments": ["Violin"], "angle": -30, "width": 50, "radius": 1.5, "rows": 1}]}))
    plan = SeatingPlan.load(path)
    assert plan.name == "Quartet" and plan.sections[0].instruments == ("violin",)
    assert len(plan.sections[0].seats()) == 1  # 50° of arc at 1.5 m is 1.3 m: room for one chair 0.7 m wide
