"""Shared test fixtures that need no Blender: synthetic skeletons, a synthetic musical analysis, synthetic gestures
and a stand-in sentence model."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from gm_blender_addon.core.analysis import MusicAnalysis
from gm_blender_addon.core.motion import FPS
from gm_blender_addon.core.retarget import Skeleton

BUNDLED_PARTS = {
    "hips": "spine", "spine": "spine.001", "chest": "spine.003", "neck": "spine.004", "head": "spine.006",
    "shoulder.L": "shoulder.L", "upper_arm.L": "upper_arm.L", "forearm.L": "forearm.L", "hand.L": "hand.L",
    "shoulder.R": "shoulder.R", "upper_arm.R": "upper_arm.R", "forearm.R": "forearm.R", "hand.R": "hand.R",
}


def bone_matrix(head, tail, roll: float) -> np.ndarray:
    """A bone's armature-space rest matrix: Y along the bone, X and Z turned by `roll` about it."""
    y = np.asarray(tail, float) - np.asarray(head, float)
    y /= np.linalg.norm(y)
    ref = np.array([0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(y, ref)
    x /= np.linalg.norm(x)
    z = np.cross(x, y)
    c, s = np.cos(roll), np.sin(roll)
    x, z = c * x - s * z, s * x + c * z
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, head
    return m


def humanoid(arm_angle_deg: float = 40.0, roll_seed: int | None = None, elbow_bend_deg: float = 10.0,
             fingers: bool = False, legs: bool = False) -> Skeleton:
    """An upper-body armature with Rigify-metarig names, arms `arm_angle_deg` below horizontal (0 = T-pose); with
    `fingers`, an index and a little finger of three bones on each hand, the thumb side forward; with `legs`, thigh,
    shin and foot on each side, the knees slightly bent forward."""
    rng = np.random.default_rng(roll_seed)
    a, bend = np.radians(arm_angle_deg), np.radians(elbow_bend_deg)
    bones = [
        ("spine", None, (0, 0, 0.95), (0, 0.01, 1.05)),
        ("spine.001", "spine", (0, 0.01, 1.05), (0, 0.02, 1.17)),
        ("spine.002", "spine.001", (0, 0.02, 1.17), (0, 0.02, 1.29)),
        ("spine.003", "spine.002", (0, 0.02, 1.29), (0, 0.02, 1.45)),
        ("spine.004", "spine.003", (0, 0.02, 1.45), (0, 0.0, 1.53)),
        ("spine.005", "spine.004", (0, 0.0, 1.53), (0, -0.01, 1.58)),
        ("spine.006", "spine.005", (0, -0.01, 1.58), (0, -0.01, 1.78)),
    ]
    for side, sx in (("L", 1.0), ("R", -1.0)):
        shoulder = np.array([sx * 0.19, 0.0, 1.42])
        elbow = shoulder + 0.28 * np.array([sx * np.cos(a), 0.0, -np.sin(a)])
        fore_dir = np.array([sx * np.cos(a + bend), -np.sin(bend) * 0.3, -np.sin(a + bend)])
        wrist = elbow + 0.26 * fore_dir / np.linalg.norm(fore_dir)
        hand_tip = wrist + 0.09 * (wrist - elbow) / np.linalg.norm(wrist - elbow)
        bones += [
            (f"shoulder.{side}", "spine.003", (sx * 0.02, -0.02, 1.43), tuple(shoulder)),
            (f"upper_arm.{side}", f"shoulder.{side}", tuple(shoulder), tuple(elbow)),
            (f"forearm.{side}", f"upper_arm.{side}", tuple(elbow), tuple(wrist)),
            (f"hand.{side}", f"forearm.{side}", tuple(wrist), tuple(hand_tip)),
        ]
        along = (hand_tip - wrist) / np.linalg.norm(hand_tip - wrist)
        for finger, across in (("f_index", -0.02), ("f_pinky", 0.02)) if fingers else ():
            joint, parent = hand_tip + np.array([0.0, across, 0.0]), f"hand.{side}"
            for number in (1, 2, 3):
                name = f"{finger}.{number:02d}.{side}"
                bones.append((name, parent, tuple(joint), tuple(joint + 0.03 * along)))
                joint, parent = joint + 0.03 * along, name
        if legs:
            hip, knee, ankle = (sx * 0.1, 0.01, 0.93), (sx * 0.1, -0.01, 0.51), (sx * 0.1, 0.02, 0.09)
            bones += [(f"thigh.{side}", "spine", hip, knee), (f"shin.{side}", f"thigh.{side}", knee, ankle),
                      (f"foot.{side}", f"shin.{side}", ankle, (sx * 0.1, -0.1, 0.02))]
    names = [b[0] for b in bones]
    rolls = rng.uniform(-np.pi, np.pi, len(bones)) if roll_seed is not None else np.zeros(len(bones))
    rest = np.stack([bone_matrix(h, t, r) for (_, _, h, t), r in zip(bones, rolls)])
    parents = [names.index(p) if p else -1 for _, p, _, _ in bones]
    return Skeleton(names=names, parents=parents, rest=rest, basis=np.tile(np.eye(4), (len(bones), 1, 1)))


def blender_has_audio() -> bool:
    """False for Blender builds without audio (the bpy 4.2 wheel): no sound strips, no sound in renders."""
    import bpy

    return bpy.app.build_options.audaspace


def steady_analysis(seconds: float = 12.0, bpm: float = 120.0, beats_per_bar: int = 4, start: float = 0.5,
                    tail: float = 1.0) -> MusicAnalysis:
    """A piece with a steady beat, a crescendo over its first half, a diminuendo over its second, `tail` s of silence."""
    n = int(seconds * FPS)
    t = np.arange(n) / FPS
    end = seconds - tail
    beats = np.arange(start, end, 60.0 / bpm)
    loudness = np.clip(0.3 + 0.6 * np.sin(np.pi * t / end), 0, 1).astype(np.float32)
    silent = t >= end
    loudness[silent] = 0
    return MusicAnalysis(
        duration=seconds, beats=beats, downbeats=beats[::beats_per_bar], beats_per_bar=beats_per_bar, subdivision=2,
        tempo_bpm=bpm, tempo=np.full(n, bpm, np.float32), loudness=loudness, level_db=(loudness - 1) * 36,
        silent=silent, held=np.zeros(n, bool), onset=np.zeros(n, np.float32), tracker="synthetic",
    )


def click_music(seconds: float, bpm: float, beats_per_bar: int, sample_rate: int = 22050, stereo: bool = False,
                crescendo: bool = True) -> np.ndarray:
    """A chord with percussive beats: accented downbeats, a bass note and a chord change on each bar line."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    period = 60.0 / bpm
    chords = [(220.0, 277.2, 329.6), (196.0, 246.9, 293.7), (174.6, 220.0, 261.6), (164.8, 207.7, 246.9)]
    for k, start in enumerate(np.arange(0.25, seconds - 0.2, period)):
        bar, beat = divmod(k, beats_per_bar)
        idx = slice(int(start * sample_rate), int(min(seconds, start + period) * sample_rate))
        local = t[idx] - start
        decay = np.exp(-local * (4.0 if beat else 2.5))
        accent = 1.0 if beat == 0 else 0.45
        tone = sum(np.sin(2 * np.pi * f * local) for f in chords[bar % len(chords)]) / 3
        out[idx] += accent * decay * tone
        if beat == 0:
            out[idx] += 0.8 * np.exp(-local * 6) * np.sin(2 * np.pi * 55.0 * local)
        out[idx] += 0.3 * accent * np.exp(-local * 60) * rng.standard_normal(len(local))
    if crescendo:
        out *= 0.15 + 0.85 * np.clip(t / seconds, 0, 1)
    out = (0.8 * out / np.abs(out).max()).astype(np.float32)
    return np.stack([out, 0.9 * out], axis=1) if stereo else out


def write_click_music(path, seconds=12.0, bpm=120.0, beats_per_bar=3, sample_rate=22050, stereo=False, **kwargs):
    import soundfile

    soundfile.write(str(path), click_music(seconds, bpm, beats_per_bar, sample_rate, stereo), sample_rate, **kwargs)
    return path


def build_linux_zip(out: Path, python: str) -> Path:
    """The Linux extension zip for `python`, built into `out` by build_addon.py; skips the calling test when the
    wheels cannot be downloaded."""
    import pytest

    build = subprocess.run(
        [sys.executable, "build_addon.py", "--out", str(out), "--platform", "linux-x64", "--python", python],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
    )
    if build.returncode == 3:
        pytest.skip(f"the wheels could not be downloaded: {build.stderr.strip()[-300:]}")
    assert build.returncode == 0, build.stdout + build.stderr
    assert "linux-x64" in build.stdout and "MB" in build.stdout
    (zip_path,) = out.glob(f"gesture_maestro-*-py{python.replace('.', '')}-linux_x64.zip")
    return zip_path


def chorale_score(bars: int = 16, seed: int = 0, bpm: float = 120.0, parts: tuple[str, ...] = ("Violin I", "Cello"),
                  resting: dict[str, tuple[int, int]] | None = None, **fields):
    """A 4/4 score (core.score.Score) of a new triad on every beat, the top voice in the first part and the bass in
    the last, drawn from `seed`; `resting` names parts silent over bars (first, last), 1-based. `fields` replace the
    Score's (fermatas, dynamics, tempo_marks, …)."""
    from gm_blender_addon.core.score import NOTE_DTYPE, Score, ScoreBar, ScorePart

    rng = np.random.default_rng(seed)
    rows = []
    for beat in range(4 * bars):
        root = int(rng.integers(48, 60))
        third = 3 + int(rng.integers(0, 2))
        for part, name in enumerate(parts):
            first, last = (resting or {}).get(name, (0, -1))
            if first <= beat // 4 + 1 <= last:
                continue
            pitches = (root + 12, root + 12 + third, root + 19) if part == 0 else (root - 12,)
            rows += [(float(beat), 1.0, p, part, 0.6, False, False, False) for p in pitches]
    notes = np.array(rows, dtype=NOTE_DTYPE)
    score = dict(
        title="chorale", source="chorale.musicxml", parts=tuple(ScorePart(n, n, None) for n in parts), notes=notes,
        bars=tuple(ScoreBar(str(b + 1), 4.0 * b, 4.0, "4/4", (0.0, 1.0, 2.0, 3.0)) for b in range(bars)),
        tempo_marks=((0.0, bpm),), fermatas=(), dynamics=(), hairpins=())
    score.update(fields)
    return Score(**score)


def write_musicxml(path, bars: int = 8, resting: dict[str, int] | None = None, seed: int = 0) -> Path:
    """A MusicXML score of 4/4 bars at 120 BPM: violins on a new triad every beat, horns under them, each part in
    `resting` silent until that bar (1-based)."""
    rng = np.random.default_rng(seed)
    roots = rng.integers(0, 7, 4 * bars)
    steps = "CDEFGAB"
    parts = {"P1": ("Violin I", 5), "P2": ("Horn in F", 3)}
    listing = "".join(f'<score-part id="{pid}"><part-name>{name}</part-name></score-part>'
                      for pid, (name, _) in parts.items())
    body = []
    for pid, (name, octave) in parts.items():
        measures = []
        for bar in range(bars):
            head = ('<attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time>'
                    '</attributes><direction><sound tempo="120"/></direction>') if bar == 0 else ""
            if bar + 1 < (resting or {}).get(name, 0):
                notes = '<note><rest measure="yes"/><duration>4</duration></note>'
            else:
                notes = ""
                for beat in range(4):
                    root = int(roots[4 * bar + beat])
                    for k, degree in enumerate((0, 2, 4) if pid == "P1" else (0,)):
                        step = steps[(root + degree) % 7]
                        up = (root + degree) // 7
                        notes += (f'<note>{"<chord/>" if k else ""}<pitch><step>{step}</step>'
                                  f'<octave>{octave + up}</octave></pitch><duration>1</duration></note>')
            measures.append(f'<measure number="{bar + 1}">{head}{notes}</measure>')
        body.append(f'<part id="{pid}">{"".join(measures)}</part>')
    Path(path).write_text('<?xml version="1.0"?><score-partwise version="4.0">'
                          f'<part-list>{listing}</part-list>{"".join(body)}</score-partwise>')
    return Path(path)


def stand_in_embed(sentences):
    """A stand-in sentence model: a fixed random unit vector per sentence."""
    out = []
    for text in sentences:
        rng = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))
        vector = rng.normal(size=384)
        out.append(vector / np.linalg.norm(vector))
    return np.array(out, dtype=np.float32)


REST_POSE = np.array([[0.5, 0.40], [0.52, 0.39], [0.48, 0.39], [0.54, 0.40], [0.46, 0.40], [0.6, 0.49],
                      [0.4, 0.49], [0.64, 0.62], [0.36, 0.62], [0.63, 0.75], [0.37, 0.75], [0.55, 0.75], [0.45, 0.75]])
PLANTED = {
    "raise": ("the left hand rises above the shoulder", "louder please"),
    "beat": ("the right hand beats quickly up and down", "keep time"),
    "still": ("both hands stay still at the sides", "silence"),
}


def planted_motion(kinds: list[str], seconds: float = 3.0, seed: int = 0):
    """A motion doing each of `kinds` (keys of PLANTED) in turn for `seconds`, with a little noise and a random
    tempo and height."""
    from gm_blender_addon.core.motion import JOINT, Motion

    rng = np.random.default_rng(seed)
    parts = []
    n = int(seconds * FPS)
    t = np.arange(n) / FPS
    for kind in kinds:
        kp = np.tile(REST_POSE, (n, 1, 1)) + rng.normal(0, 0.002, (n, 13, 2))
        if kind == "raise":
            height = rng.uniform(0.25, 0.35)
            kp[:, JOINT["left_wrist"], 1] -= height * np.sin(np.pi * t / seconds)
            kp[:, JOINT["left_elbow"], 1] -= 0.5 * height * np.sin(np.pi * t / seconds)
        elif kind == "beat":
            kp[:, JOINT["right_wrist"], 1] -= 0.08 * np.abs(np.sin(np.pi * rng.uniform(1.5, 2.5) * t))
        parts.append(kp)
    return Motion(np.concatenate(parts).astype(np.float32))


# What a fresh interpreter runs first to be like Blender's Python: importing torch fails.
_NO_TORCH = """
import json, sys


class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")


sys.meta_path.insert(0, NoTorch())
sys.path[:0] = [%(root)r, %(tests)r]
"""


def run_without_torch(body: str, timeout: float = 300) -> dict:
    """Run `body` in a fresh interpreter where importing torch fails, with the repository and tests/ importable; what
    it printed as its last `RESULT <json>` line (json and sys are imported for it)."""
    root = Path(__file__).resolve().parents[1]
    script = _NO_TORCH % {"root": str(root), "tests": str(root / "tests")} + body
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(lines[-1][len("RESULT "):])
