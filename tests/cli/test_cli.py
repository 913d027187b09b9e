"""`python -m gm_blender_addon generate` as a batch renderer runs it: outputs, messages and exit codes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers import blender_has_audio, write_click_music

pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[2]


def run(*args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "gm_blender_addon", "generate", *map(str, args)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("in put")
    write_click_music(folder / "Ständchen mit Leerzeichen.wav", seconds=6.0, bpm=100.0, beats_per_bar=4)
    write_click_music(folder / "second.flac", seconds=5.0, bpm=120.0, beats_per_bar=3)
    (folder / "broken.ogg").write_bytes(b"OggS" + b"\x00" * 300)
    return folder


@pytest.mark.skipif(not blender_has_audio(), reason="this Blender is built without audio")
def test_one_file_gives_a_blend_keypoints_and_an_mp4_with_sound(inputs, tmp_path):
    audio = inputs / "Ständchen mit Leerzeichen.wav"
    out = tmp_path / "ausgabe ü" / "take.blend"
    result = run(audio, "--out", out, "--keypoints", tmp_path / "take.npz", "--render", tmp_path / "take.mp4",
                 "--render-seconds", "1", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert out.is_file() and "bars of 4/4" in result.stdout
    with np.load(tmp_path / "take.npz") as data:
        assert data["keypoints"].shape == (180, 13, 2)
    video = (tmp_path / "take.mp4").read_bytes()
    assert b"avc1" in video and b"mp4a" in video


def test_a_folder_is_done_file_by_file_and_a_bad_file_fails_the_run(inputs, tmp_path):
    result = run(inputs, "--out", tmp_path / "blends")
    assert result.returncode == 1
    assert sorted(p.name for p in (tmp_path / "blends").iterdir()) == ["Ständchen mit Leerzeichen.blend", "second.blend"]
    assert "[2/3] broken.ogg: FAILED" in result.stderr and "corrupt" in result.stderr
    assert "1 of 3 input(s) failed" in result.stderr


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.wav", "not found"),
        (lambda d: write_click_music(d / "short.wav", seconds=1.0), "at least 2 s"),
        (lambda d: soundfile.write(str(d / "quiet.wav"), np.zeros(22050 * 4), 22050) or d / "quiet.wav", "silent"),
    ],
)
def test_unusable_audio_exits_non_zero_and_writes_nothing(tmp_path, make, message):
    out = tmp_path / "out.blend"
    result = run(make(tmp_path), "--out", out)
    assert result.returncode == 1 and message in result.stderr
    assert not out.exists()


def test_unwritable_output_folder_is_refused_before_any_work(inputs, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    result = run(inputs / "second.flac", "--out", blocker / "out.blend")
    assert result.returncode == 2 and "not writable" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--smoothing", "2"], "between 0 and 1"),
        (["--render-seconds", "3"], "needs --render"),
        (["--generator", "nope"], "invalid choice"),
        (["--sparse-keys", "50"], "--sparse-keys must be between 0.01 and 10.0 degrees"),
    ],
)
def test_bad_arguments_exit_2(inputs, tmp_path, args, message):
    result = run(inputs / "second.flac", "--out", tmp_path / "o.blend", *args)
    assert result.returncode == 2 and message in result.stderr


def test_a_rig_file_missing_bones_is_reported(inputs, tmp_path):
    make_rig = (
        "import bpy\n"
        "bpy.ops.wm.read_factory_settings(use_empty=True)\n"
        "arm = bpy.data.objects.new('Bare', bpy.data.armatures.new('Bare'))\n"
        "bpy.context.scene.collection.objects.link(arm)\n"
        "bpy.context.view_layer.objects.active = arm\n"
        "bpy.ops.object.mode_set(mode='EDIT')\n"
        "b = arm.data.edit_bones.new('spine'); b.tail = (0, 0, 1)\n"
        "bpy.ops.object.mode_set(mode='OBJECT')\n"
        f"bpy.ops.wm.save_as_mainfile(filepath={str(tmp_path / 'bare.blend')!r})\n"
    )
    subprocess.run([sys.executable, "-c", make_rig], check=True, capture_output=True)
    result = run(inputs / "second.flac", "--out", tmp_path / "o.blend", "--rig", tmp_path / "bare.blend")
    assert result.returncode == 1 and "missing bones" in result.stderr and "upper_arm.L" in result.stderr
    assert not (tmp_path / "o.blend").exists()


def test_sparse_keys_write_fewer_keys_played_from_an_nla_track(inputs, tmp_path):
    import re

    audio = inputs / "second.flac"
    dense = run(audio, "--out", tmp_path / "dense.blend")
    sparse = run(audio, "--out", tmp_path / "sparse.blend", "--sparse-keys")
    coarse = run(audio, "--out", tmp_path / "coarse.blend", "--sparse-keys", "2")
    counts = [int(re.search(r"(\d+) keys", r.stdout).group(1)) for r in (dense, sparse, coarse)]
    assert counts[0] > 4 * counts[1] > 4 * counts[2], counts
    check = ("import bpy; a = [o for o in bpy.data.objects if o.type == 'ARMATURE'][0].animation_data; "
             "assert a.action is None and a.nla_tracks['GM Conductor'].strips[0].action.name == 'GM Conductor'")
    opened = subprocess.run([sys.executable, "-c", f"import bpy; bpy.ops.wm.open_mainfile(filepath="
                             f"{str(tmp_path / 'sparse.blend')!r}); {check}"], capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr


def analyze(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "gm_blender_addon", "analyze", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_beats_from_analyze_json_or_a_text_file_are_conducted_as_given(inputs, tmp_path):
    import json

    audio = inputs / "second.flac"
    assert analyze(audio, "--json", tmp_path / "found.json").returncode == 0
    found = json.loads((tmp_path / "found.json").read_text())
    again = analyze(audio, "--beats", tmp_path / "found.json")
    assert again.returncode == 0, again.stderr
    echoed = json.loads(again.stdout)
    assert echoed["beats"] == found["beats"] and echoed["downbeats"] == found["downbeats"]
    assert echoed["tracker"] == "given" and echoed["meter"] == found["meter"]
    (tmp_path / "mine.txt").write_text("0.3\n0.8\n1.3 1\n1.8\n2.3\n2.8 2\n3.3\n3.8\n")
    result = run(audio, "--out", tmp_path / "mine.blend", "--beats", tmp_path / "mine.txt", "--keypoints",
                 tmp_path / "mine.npz")
    assert result.returncode == 0, result.stderr
    assert "2 bars of 3/4 at 120 BPM" in result.stdout and (tmp_path / "mine.blend").is_file()


@pytest.mark.parametrize(
    "beats, extra, message",
    [
        ("0.5\n1.0\n1.5 x\n", [], "beats.txt:3: 'x' is not a bar mark"),
        ("0.5\n1.0\n1.5\n", ["--tempo", "90"], "give the beats or the tempo"),
    ],
)
def test_a_bad_beats_file_exits_2_before_any_work(inputs, tmp_path, beats, extra, message):
    (tmp_path / "beats.txt").write_text(beats)
    out = tmp_path / "o.blend"
    result = run(inputs / "second.flac", "--out", out, "--beats", tmp_path / "beats.txt", *extra)
    assert result.returncode == 2 and message in result.stderr
    assert not out.exists()


def test_one_beats_file_for_several_recordings_is_refused(inputs, tmp_path):
    (tmp_path / "beats.txt").write_text("0.5\n1.0\n")
    result = run(inputs, "--out", tmp_path / "blends", "--beats", tmp_path / "beats.txt")
    assert result.returncode == 2 and "one audio file" in result.stderr


@pytest.fixture(scope="module")
def midi_score(tmp_path_factory):
    """Eight bars of 4/4 at 120 BPM: violins on a new chord every beat, horns resting until bar 5."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    violins = pretty_midi.Instrument(program=40, name="Violin I")
    horns = pretty_midi.Instrument(program=60, name="Horn in F")
    rng = np.random.default_rng(3)
    for beat in range(32):
        root = int(rng.integers(60, 72))
        for pitch in (root, root + 4, root + 7):
            violins.notes.append(pretty_midi.Note(80, pitch, 0.5 * beat, 0.5 * beat + 0.45))
        if beat >= 16:
            horns.notes.append(pretty_midi.Note(80, root - 12, 0.5 * beat, 0.5 * beat + 0.45))
    midi.instruments += [violins, horns]
    path = tmp_path_factory.mktemp("score") / "eight bars.mid"
    midi.write(str(path))
    return path


def test_a_score_alone_is_rendered_and_conducted_with_its_bars_and_cues(midi_score, tmp_path):
    out = tmp_path / "score.blend"
    result = run("--score", midi_score, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "8 bars of 4/4 at 120 BPM" in result.stdout and "1 cue, 0 section cut-offs)" in result.stdout
    assert out.with_suffix(".wav").is_file()
    check = ("import bpy; names = {m.name for m in bpy.context.scene.timeline_markers}; "
             "assert {'Bar 1', 'Bar 5', 'Cue: Horns', '8.4'} <= names, sorted(names)")
    opened = subprocess.run([sys.executable, "-c", f"import bpy; bpy.ops.wm.open_mainfile(filepath="
                             f"{str(out)!r}); {check}"], capture_output=True, text=True)
    assert opened.returncode == 0, opened.stderr


def test_analyze_with_a_score_writes_its_bars_and_cues(midi_score, tmp_path):
    import json

    recording = tmp_path / "played.wav"
    assert run("--score", midi_score, "--out", recording.with_suffix(".blend")).returncode == 0
    result = analyze(recording, "--score", midi_score, "--json", tmp_path / "a.json")
    assert result.returncode == 0, result.stderr
    found = json.loads((tmp_path / "a.json").read_text())
    assert [b["number"] for b in found["bars"]] == [str(b) for b in range(1, 9)]
    assert [c["section"] for c in found["cues"]] == ["Horns"] and found["alignment_confidence"] > 0.5
    assert abs(found["cues"][0]["time"] - found["bars"][4]["time"]) < 0.08


def test_a_score_of_other_music_is_said_and_the_recording_analysed_without_it(inputs, midi_score, tmp_path):
    result = analyze(inputs / "second.flac", "--score", midi_score)
    assert result.returncode == 1 and "does not match second.flac" in result.stderr
    assert '"tracker"' in result.stdout and '"cues"' not in result.stdout


@pytest.mark.parametrize("content, message", [(b"MThd garbage", "eight bars.mid"), (None, "not found")])
def test_an_unreadable_score_exits_2_before_any_work(inputs, tmp_path, content, message):
    score = tmp_path / "eight bars.mid"
    if content is not None:
        score.write_bytes(content)
    out = tmp_path / "o.blend"
    result = run(inputs / "second.flac", "--score", score, "--out", out)
    assert result.returncode == 2 and message in result.stderr and not out.exists()
