"""`python -m gm_blender_addon vocabulary ...`: add, train, explain, search, map and evaluate, their messages and exit
codes. Run in-process with a stand-in sentence model; training is a few steps (what it learns is tested in
tests/core/test_gesture_vocabulary.py)."""

from __future__ import annotations

import json

import pytest

from gm_blender_addon import cli
from gm_blender_addon.core import text_embedding
from helpers import PLANTED, planted_motion, stand_in_embed


@pytest.fixture(autouse=True)
def stand_in_text_model(monkeypatch):
    monkeypatch.setattr(text_embedding, "text_encoder", lambda folder=None: stand_in_embed)


def run(capsys, *args):
    try:
        code = cli.main(["vocabulary", *map(str, args)])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def motions(tmp_path):
    paths = {}
    for kind in PLANTED:
        paths[kind] = planted_motion([kind], seconds=4.5).save(tmp_path / f"{kind}.npz")
    paths["mixed"] = planted_motion(["still", "raise", "beat"], seconds=4.5, seed=7).save(tmp_path / "mixed.npz")
    return paths


def test_add_train_explain_search_and_map(capsys, motions, tmp_path):
    vocabulary = tmp_path / "sub folder" / "vocabulary.npz"
    for kind, (description, meaning) in PLANTED.items():
        code, out, err = run(capsys, "add", vocabulary, motions[kind], "--frames", 0, 120, "--description",
                             description, "--meaning", meaning)
        assert code == 0, err
    assert "3 entries, 3 descriptions, untrained" in out
    code, _, err = run(capsys, "explain", vocabulary, motions["mixed"])
    assert code == 1 and "not trained" in err and "train it" in err
    code, out, err = run(capsys, "train", vocabulary, "--steps", 3)
    assert code == 0, err
    assert "trained on 3 entries" in out
    code, out, err = run(capsys, "explain", vocabulary, motions["mixed"], "--top", 2)
    assert code == 0, err
    assert len(out.splitlines()) > 10 and "silence" in out
    explained = tmp_path / "explained.json"
    assert run(capsys, "explain", vocabulary, motions["mixed"], "--json", explained)[0] == 0
    rows = json.loads(explained.read_text())
    assert rows[0]["time"] > 0 and len(rows[0]["meanings"]) == 3
    code, out, err = run(capsys, "search", vocabulary, motions["mixed"], "arms held up high", "--top", 2)
    assert code == 0, err
    assert len(out.splitlines()) == 2 and out.split()[1] == "s"
    code, out, err = run(capsys, "map", vocabulary, "--out", tmp_path / "map.png")
    assert code == 0, err
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_named_with_its_fix_and_nothing_is_written(capsys, motions, tmp_path):
    vocabulary = tmp_path / "vocabulary.npz"
    code, _, err = run(capsys, "add", vocabulary, motions["raise"], "--frames", 0, 500, "--description", "up",
                       "--meaning", "louder")
    assert code == 1 and "not inside the motion" in err and "frames 0 to 135" in err
    assert not vocabulary.exists()
    code, _, err = run(capsys, "add", vocabulary, motions["raise"], "--frames", 0, 60, "--description", " ",
                       "--meaning", "louder")
    assert code == 2 and "--description is empty" in err
    code, _, err = run(capsys, "train", motions["raise"])
    assert code == 1 and "not a gesture vocabulary" in err
    code, _, err = run(capsys, "add", vocabulary, motions["raise"], "--frames", 0, 60, "--description", "up",
                       "--meaning", "louder")
    assert code == 0
    before = vocabulary.read_bytes()
    code, _, err = run(capsys, "train", vocabulary, "--steps", 3)
    assert code == 1 and "at least two gestures" in err
    assert vocabulary.read_bytes() == before
    code, _, err = run(capsys, "train", vocabulary, "--steps", 0)
    assert code == 2 and "--steps must be at least 1" in err
    code, _, err = run(capsys, "search", vocabulary, motions["raise"], "  ")
    assert code == 2 and "search text is empty" in err


def test_evaluate_writes_the_scores(capsys, tmp_path, monkeypatch):
    out_json = tmp_path / "scores.json"
    code, out, err = run(capsys, "evaluate", "--json", out_json, "--train-performances", 1, "--test-performances", 1,
                         "--steps", 2)
    assert code == 0, err
    scores = json.loads(out_json.read_text())
    for name in ("retrieval_accuracy", "mrr", "alignment", "uniformity", "positive_cosine"):
        assert set(scores[name]) == {"g-d", "g-m", "d-m"}
    assert scores["held_out_clips"] == len(scores["gestures"]) and "retrieval_accuracy" in out
