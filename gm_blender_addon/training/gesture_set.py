"""The project's own gesture vocabulary for evaluating the joint embedding: conducting gestures performed by the
procedural conductor on synthetic music shaped to call for each, many ways (seed, tempo, meter, level, where the
gesture falls), with a description and a meaning each.

Splits draw their music from separate random streams and their conductors from separate seeds, so the development
and held-out performances are new to training in both style and music.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..core import gesture_encoder as ge
from ..core import gesture_vocabulary as gv
from ..core.analysis import MusicAnalysis
from ..core.motion import FPS, Motion
from ..core.score_guide import Cue, ScoreGuide

# Each training clip spans this much around its gesture; held-out clips are one encoder window.
TRAINING_CLIP_S = 6.0
SPLIT_STREAMS = {"train": 11, "dev": 22, "test": 33}
# Performances of each gesture kept in a starter vocabulary (see evaluate).
STARTER_PERFORMANCES = 3
# Training steps for the evaluation vocabulary: on the development split 1000 steps retrieved 94 % of the gestures,
# 600 steps 91 %.
EVALUATION_STEPS = 1000


@dataclass(frozen=True)
class Gesture:
    name: str
    description: str
    meaning: str


GESTURES = (
    Gesture("steady", "the right hand beats an even pattern of the same size, the left hand resting",
            "keep the tempo and the level steady"),
    Gesture("cue_left", "the left hand rises and opens towards the conductor's left while the head turns there",
            "cue the first violins to come in"),
    Gesture("cue_right", "the head turns to the right and the left hand points across the body",
            "cue the cellos and basses to enter"),
    Gesture("crescendo", "the left hand lifts slowly, palm up, as the beat grows wider",
            "crescendo: grow gradually louder"),
    Gesture("diminuendo", "the left hand presses down, palm down, as the beat shrinks",
            "diminuendo: fade gradually softer"),
    Gesture("louder", "the beat jumps suddenly to a large pattern and both hands beat together",
            "subito forte: play loud at once"),
    Gesture("softer", "the pattern drops abruptly to small beats close to the body",
            "subito piano: drop to soft at once"),
    Gesture("cut_off", "a closing click of the baton, then both hands stop and sink to the sides",
            "cut-off: the orchestra stops together"),
    Gesture("fermata", "the baton stops and hangs in the air for a while before the next beat",
            "fermata: hold the note until released"),
    Gesture("tempo_up", "the beats come closer and closer together, quicker each time",
            "accelerando: push the tempo forward"),
    Gesture("tempo_down", "the beats spread further apart, broader and slower",
            "ritardando: hold back the tempo"),
)


def _beats_for(tempo_at: Callable[[np.ndarray], np.ndarray], start: float, end: float) -> np.ndarray:
    """Beat times from a tempo curve: where the integrated beat count passes each whole number."""
    t = np.arange(start, end, 0.001)
    count = np.concatenate([[0.0], np.cumsum(tempo_at(t[:-1]) / 60.0 * 0.001)])
    return np.interp(np.arange(0, np.floor(count[-1]) + 1), count, t)


def _smooth_step(t: np.ndarray, at: float, width: float) -> np.ndarray:
    x = np.clip((t - at) / max(width, 1e-6) + 0.5, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def performance(gesture: str, rng: np.random.Generator) -> tuple[MusicAnalysis, float]:
    """Synthetic music calling for `gesture` (a name in GESTURES), and the time of the gesture in it."""
    bpm = rng.uniform(72.0, 144.0)
    per_bar = int(rng.choice([2, 3, 4]))
    event = rng.uniform(4.0, 7.0)
    duration = event + rng.uniform(4.0, 5.5)
    n = int(duration * FPS)
    t = np.arange(n) / FPS
    level = rng.uniform(0.45, 0.75)
    wander = 0.05 * np.sin(2 * np.pi * t / rng.uniform(5, 9) + rng.uniform(0, 2 * np.pi))
    loudness = np.full(n, level) + wander
    # A marked accelerando or ritardando: the tempo changes by a half or more within a few beats.
    ratio, change_s = rng.uniform(1.45, 1.75), rng.uniform(2.0, 3.0)
    direction = {"tempo_up": 1.0, "tempo_down": -1.0}.get(gesture, 0.0)

    def tempo_at(x: np.ndarray) -> np.ndarray:
        return bpm * ratio ** (direction * _smooth_step(x, event, change_s))

    # Gradual dynamics take longer than the conductor's own smoothing of a sudden change (about 1.5 s).
    ramp_s = rng.uniform(3.5, 5.0)
    low, high = rng.uniform(0.15, 0.35), rng.uniform(0.75, 0.95)
    if gesture in ("crescendo", "diminuendo", "louder", "softer"):
        width = ramp_s if gesture in ("crescendo", "diminuendo") else 0.1
        rise = _smooth_step(t, event, width)
        shape = rise if gesture in ("crescendo", "louder") else 1.0 - rise
        loudness = low + (high - low) * shape + 0.3 * wander
    end = duration - 0.5
    if gesture == "cut_off":
        end = event
    beats = _beats_for(tempo_at, 0.5, end)
    if gesture == "cut_off":
        beats = beats[beats <= event - 0.05]
        event = float(beats[-1])
    silent = t >= (event + 0.15 if gesture == "cut_off" else duration - 0.4)
    held = np.zeros(n, dtype=bool)
    guide = None
    if gesture == "fermata":
        index = int(np.argmin(np.abs(beats - event)))
        ibi = 60.0 / bpm
        # The next beat comes 1.6 to 2.1 beats later: the conductor holds a fermata longer than 1.5 beats, and a
        # gap longer than 2.2 would be a break in the music (a cut-off and a new start).
        hold = ibi * (rng.uniform(1.6, 2.1) - 1.0)
        beats = np.concatenate([beats[: index + 1], beats[index + 1:] + hold])
        beats = beats[beats < duration - 0.5]
        event = float(beats[index])
        held = (t >= event) & (t < event + ibi + hold - 0.1)
        guide = _guide(loudness, fermatas=(event,))
    elif gesture in ("cue_left", "cue_right"):
        side = -1.0 if gesture == "cue_left" else 1.0
        cue = Cue(time=event, section="Violins I" if side < 0 else "Cellos", parts=("part",),
                  angle=side * rng.uniform(25.0, 60.0))
        guide = _guide(loudness, cues=(cue,))
    loudness = np.clip(np.where(silent, 0.0, loudness), 0.0, 1.0).astype(np.float32)
    tempo = tempo_at(t).astype(np.float32)
    first_downbeat = int(rng.integers(0, per_bar))
    return MusicAnalysis(
        duration=duration, beats=beats, downbeats=beats[first_downbeat::per_bar], beats_per_bar=per_bar,
        subdivision=2, tempo_bpm=float(np.median(60.0 / np.diff(beats))), tempo=tempo, loudness=loudness,
        level_db=(loudness - 1.0) * 36.0, silent=silent, held=held, onset=np.zeros(n, np.float32),
        tracker="synthetic", score=guide,
    ), float(event)


def _guide(loudness: np.ndarray, fermatas=(), cues=()) -> ScoreGuide:
    """A score guide with only the fermatas or cues (no bar numbers, as for bars moved since the score was read);
    the written dynamics are what is heard."""
    return ScoreGuide(
        source="synthetic", bar_numbers=(), rehearsal_marks=(), meters=(), tempo_changes=(),
        fermatas=tuple(fermatas), cues=tuple(cues), releases=(), dynamics=loudness.astype(np.float32),
        articulation=(), confidence=1.0, unseated_parts=(),
    )


@dataclass
class Clip:
    gesture: int  # index into GESTURES
    motion: Motion
    frames: tuple[int, int]


def performances(split: str, per_gesture: int, clip_s: float) -> list[Clip]:
    """`per_gesture` performances of every gesture for a split, each a motion and the frames of its clip."""
    from ..generators.procedural import conduct

    rng = np.random.default_rng(SPLIT_STREAMS[split])
    clips = []
    for number in range(per_gesture):
        for index, gesture in enumerate(GESTURES):
            analysis, event = performance(gesture.name, rng)
            seed = SPLIT_STREAMS[split] * 100_000 + number * len(GESTURES) + index
            motion = Motion(conduct(analysis, seed=seed), meta={"gesture": gesture.name, "seed": seed})
            centre = event + rng.uniform(-0.15, 0.15) * clip_s
            start = int(round((centre - clip_s / 2) * FPS))
            start = int(np.clip(start, 0, motion.n_frames - int(clip_s * FPS)))
            clips.append(Clip(index, motion, (start, start + int(round(clip_s * FPS)))))
    return clips


def build_vocabulary(per_gesture: int, embed: gv.Embed, gestures=GESTURES) -> gv.Vocabulary:
    vocabulary = gv.Vocabulary()
    for clip in performances("train", per_gesture, TRAINING_CLIP_S):
        gesture = GESTURES[clip.gesture]
        if gesture in gestures:
            gv.add_entry(vocabulary, clip.motion, *clip.frames, gesture.description, gesture.meaning, embed,
                         source=f"{gesture.name} seed {clip.motion.meta['seed']}")
    return vocabulary


def held_out_scores(vocabulary: gv.Vocabulary, clips: list[Clip]) -> dict:
    """Retrieval accuracy, MRR, alignment, positive cosine and uniformity for each pair of modalities, with the
    clips as the gesture queries (see core/gesture_vocabulary.py for the definitions), and the g-d accuracy of each
    gesture."""
    model = vocabulary.model
    descriptions, meanings = vocabulary.descriptions, vocabulary.meanings
    d_all = gv.text_embeddings(vocabulary, "description", descriptions)
    m_all = gv.text_embeddings(vocabulary, "meaning", meanings)
    g = np.stack([gv.clip_embedding(model, c.motion.keypoints[slice(*c.frames)], c.motion.fps) for c in clips])
    gd_truth = np.array([descriptions.index(GESTURES[c.gesture].description) for c in clips])
    gm_truth = np.array([meanings.index(GESTURES[c.gesture].meaning) for c in clips])
    meaning_of = {g.description: g.meaning for g in GESTURES}
    dm_truth = np.array([meanings.index(meaning_of[d]) for d in descriptions])
    pairs = {"g-d": (g, d_all, gd_truth), "g-m": (g, m_all, gm_truth), "d-m": (d_all, m_all, dm_truth)}
    out = {"retrieval_accuracy": {}, "mrr": {}, "alignment": {}, "positive_cosine": {}, "uniformity": {}}
    for name, (queries, targets, truth) in pairs.items():
        accuracy, mrr = gv.retrieval(queries @ targets.T, truth)
        out["retrieval_accuracy"][name] = round(accuracy, 4)
        out["mrr"][name] = round(mrr, 4)
        out["alignment"][name] = round(gv.alignment(queries, targets[truth]), 4)
        out["positive_cosine"][name] = round(float(np.mean((queries * targets[truth]).sum(axis=1))), 4)
        out["uniformity"][name] = round(gv.uniformity(np.concatenate([queries, targets])), 4)
    # Each gesture's share of its clips that retrieve its own description: which gestures are mistaken.
    hits = (g @ d_all.T).argmax(axis=1) == gd_truth
    kinds = np.array([c.gesture for c in clips])
    out["g-d_accuracy_per_gesture"] = {GESTURES[k].name: round(float(hits[kinds == k].mean()), 4)
                                       for k in np.unique(kinds)}
    return out


def evaluate(embed: gv.Embed, per_gesture_train: int = 30, per_gesture_test: int = 10, split: str = "test",
             settings: ge.TrainingSettings | None = None, arch: ge.Architecture | None = None,
             progress: ge.Progress | None = None, keep: Path | None = None) -> dict:
    """Build the vocabulary from training performances, train it, and score it on `split` ("test": held out;
    "dev": the development performances the sizes were chosen on). With `keep`, the trained vocabulary is also saved
    there as a starter, with STARTER_PERFORMANCES of each gesture (enough for its map; the model is the whole
    vocabulary's)."""
    arch = arch or ge.Architecture()
    settings = settings or replace(ge.TrainingSettings(), steps=EVALUATION_STEPS)
    report = progress or (lambda fraction, message: None)
    report(0.0, "Conducting the training performances")
    started = time.perf_counter()
    vocabulary = build_vocabulary(per_gesture_train, embed)
    held_out = performances(split, per_gesture_test, arch.window_s)
    built = time.perf_counter() - started

    def training_progress(fraction: float, message: str) -> None:
        report(0.05 + 0.9 * fraction, message)

    model = gv.train_vocabulary(vocabulary, settings, arch, progress=training_progress)
    report(0.95, f"Scoring {len(held_out)} {split} performances")
    scores = held_out_scores(vocabulary, held_out)
    if keep is not None:
        starter = gv.Vocabulary(entries=[], sentences=vocabulary.sentences, model=vocabulary.model)
        for meaning in vocabulary.meanings:
            starter.entries += [e for e in vocabulary.entries if e.meaning == meaning][:STARTER_PERFORMANCES]
        gv.save_vocabulary(starter, keep)
    report(1.0, "Done")
    return {
        **scores,
        "split": split, "gestures": [g.name for g in GESTURES],
        "training_clips": len(vocabulary.entries), "held_out_clips": len(held_out),
        "training_seconds": round(model.seconds, 1), "building_seconds": round(built, 1),
        "architecture": model.arch.record(), "settings": model.settings.record(),
    }
