"""Conducting from the score (issue 20): how well `core.align.align_score` places a score's beats, bars and bar
numbers in a recording of it, and how fast.

Run by hand, not by CI:

    .venv/bin/python benchmarks/score_alignment.py --prepare data/score_bench/val --split val --cases 12
    .venv/bin/python benchmarks/score_alignment.py --prepare data/score_bench/long --split val --long
    .venv/bin/python benchmarks/score_alignment.py --prepare data/score_bench/test --split test --cases 12
    .venv/bin/python benchmarks/score_alignment.py --evaluate data/score_bench/val data/score_bench/long
        [--json OUT.json] [--oracle]

`--prepare DIR` renders cases of the corpus recipe's held-out works (`training.corpus`: val works to develop on,
test works touched once at the end), one folder each, skipping folders already written:
- `audio.flac`: 22.05 kHz mono.  The performance is `corpus.sample_spec`'s (tempo curve with sections, ramps,
  fermatas and a final ritardando, orchestration, SoundFonts, hall, microphones, codec, augmentation) made harder:
  a seeded rubato of ±30 % on top of that curve, a lead-in of 0.5-6 s of silence and, on about half of the cases,
  1-3 s of applause or 2-5 s of orchestra tuning to an A (an oboe, then strings) before it.  Excerpts last about
  a minute as sample_spec picks them; `--long` renders instead one performance of a long movement from its start,
  five minutes long at its base tempo (its tempo curve makes it somewhat longer or shorter), for the speed figure.
- `score.musicxml` and `score.mid`: exactly the rendered bars, written by music21 from `score.measures(first, last)`
  with the score's measure numbers, dynamics, fermatas and tempo marks, the tempo mark in force at the first bar
  added, and repeat signs, voltas and jumps removed (the render plays the bars once, in order).
- `truth.json`: `beats` and `downbeats` (s), `bar_numbers` (the measure number of each downbeat), every bar of the
  exported score and why some carry no downbeat (a pickup or another bar that starts after its downbeat, such as
  the rest of a bar split at a repeat; rests after the final cut-off), `beats_q` (each true beat's score position
  in quarter notes from the excerpt's start), `entrances` (a part's note after two bars or more of rest, timed in
  the audio: where cues belong), the local tempo ratios the performance reached, the prelude, the lead-in, every
  performance and production setting, and the checks that the exported scores have the rendered bars.
Each case depends only on (split, seed, index).  Two processes render at once.

`--evaluate DIR ...` aligns each case's `score.musicxml` to its `audio.flac` on two cores and prints, per case and
pooled over all beats and bars: the error of each true beat to the nearest aligned beat (median, 95th percentile,
maximum), downbeat F-measure (±70 ms, one-to-one, each true downbeat in time order taking the nearest free aligned
bar start), the share of true downbeats whose matched bar start carries the right bar number, and the alignment's
wall time (also per minute of audio).  Aligned bar starts of bars without a true downbeat (see above) are left out.
Then each case's audio is aligned to another work's score: the confidence of those mismatched pairs against the
matched ones sets the threshold below which the score is said not to fit.  Cues are measured from the procedural
conductor's motion on each case's score analysis: an entrance of `truth.json`'s `entrances` is cued when the left
wrist's highest point from two beats before to one after it lies in the beat before it.  `--oracle` replaces the
aligner by the truth with 20 ms Gaussian noise and one bar number in a hundred wrong (matched confidence 0.7-0.95, mismatched
0.05-0.4), which proves the metrics: expect a median near 13.5 ms, a 95th percentile near 39 ms, a downbeat F near
0.999 and about 99 % of bar numbers right.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gm_blender_addon.core.audio import SAMPLE_RATE  # noqa: E402
from gm_blender_addon.training import corpus  # noqa: E402
from gm_blender_addon.training import production as prod  # noqa: E402
from gm_blender_addon.training import score_render as sr  # noqa: E402

# The issue's targets.
MEDIAN_BEAT_ERROR_S, P95_BEAT_ERROR_S = 0.025, 0.080
DOWNBEAT_TOLERANCE_S, MIN_DOWNBEAT_F = 0.070, 0.97
MIN_BARS_CORRECT = 0.99
MIN_CUE_SHARE = 0.9  # of entrances whose left-hand cue peaks within the beat before
LONG_SECONDS, MAX_LONG_ALIGN_S = 300.0, 10.0
CORES = 2

RUBATO = 0.3  # score_render's smooth drift: tempo within ±30 % of the curve, periods of 3-9 beats
LEAD_IN_S = (0.5, 6.0)
PRELUDE_CHANCE = 0.5
APPLAUSE_S, TUNING_S = (1.0, 3.0), (2.0, 5.0)
TUNING_CENTS = 6.0  # the tuning A lies within this of 440 Hz
# Cases cycle through the corpus's categories about as often as it draws them (classical 0.5, chorale 0.3, folk 0.2).
CASE_CATEGORIES = ("classical", "chorale", "classical", "folk", "classical", "chorale")
MAX_ATTEMPTS = 20  # a movement whose meter or encoding the recipe cannot use gives way to the next one
CUE_REST_BARS = 2  # a part entering after this many bars of rest gets a cue
GM_APPLAUSE = 126  # General MIDI's "Applause" program: the audience's stem is no instrument of the score

ORACLE_NOISE_S, ORACLE_WRONG_BARS = 0.020, 0.01


# ---------------------------------------------------------------------------------------------------------------
# Preparing cases


@lru_cache(maxsize=None)
def split_works(split: str) -> tuple[corpus.Work, ...]:
    return tuple(w for w in corpus.work_pool() if corpus.split_of(w.group) == split)


def case_work(split: str, seed: int, index: int, attempt: int) -> corpus.Work:
    """The work of case `index`: its category from CASE_CATEGORIES, then each category's groups (opera) in a seeded
    order, so that the cases of one category visit different groups before any comes back.  `attempt` walks on
    through the group's movements in a seeded order, then through the next groups'."""
    works = split_works(split)
    category = CASE_CATEGORIES[index % len(CASE_CATEGORIES)]
    groups = sorted({w.group for w in works if w.category == category})
    code = corpus.SPLITS.index(split)
    order = [groups[i] for i in np.random.default_rng([seed, code, CASE_CATEGORIES.index(category)]).permutation(
        len(groups))]
    visit = sum(CASE_CATEGORIES[j % len(CASE_CATEGORIES)] == category for j in range(index)) % len(groups)
    walk = []
    for position, group in enumerate(order[visit:] + order[:visit]):
        members = [w for w in works if w.group == group]
        walk += [members[i] for i in np.random.default_rng([seed, code, index, position]).permutation(len(members))]
    return walk[attempt % len(walk)]


def long_spec(work: corpus.Work, spec: corpus.ExcerptSpec, rng) -> corpus.ExcerptSpec | None:
    """`spec` stretched to LONG_SECONDS from the movement's first bar, its tempo curve and dynamics drawn again by
    the recipe for those bars; None where the movement is shorter."""
    from music21 import stream

    score = sr._load_score(work.path)
    measures = list(score.parts[0].getElementsByClass(stream.Measure))
    elapsed = np.cumsum([float(m.duration.quarterLength) / float(ts.beatDuration.quarterLength) * 60.0
                         / spec.info["tempo_bpm"] for m, ts in zip(measures, sr.time_signatures(measures))])
    if elapsed[-1] < LONG_SECONDS:
        return None
    n_bars = int(np.searchsorted(elapsed, LONG_SECONDS)) + 1
    first, last = measures[0].number, measures[n_bars - 1].number
    curve, sections, curve_info = corpus._tempo_curve(first, last, corpus._fermata_positions(score, first, last), rng)
    options = dict(spec.options, start_bar=first, n_bars=n_bars, tempo_curve=curve,
                   dynamics=corpus._dynamics(first, last, rng) if spec.options["dynamics"] is not None else None)
    return replace(spec, options=options, info=dict(spec.info, sections_at_bars=sections, **curve_info))


def applause(seconds: float, rate: int, rng) -> tuple[np.ndarray, dict]:
    """(n, 2) applause dying away: claps of an audience, each a few milliseconds of band-limited noise with its
    own colour and place, thinning out and fading over the last two thirds."""
    from scipy.signal import butter, oaconvolve, sosfilt

    n = int(seconds * rate)
    audience = int(rng.integers(20, 300))
    claps_per_s = audience * float(rng.uniform(3.0, 5.0))
    t = np.arange(n) / rate
    fade_from = seconds / 3
    envelope = np.clip(1.0 - (t - fade_from) / (seconds - fade_from), 0.0, 1.0) ** 2
    out = np.zeros((n, 2))
    kinds = 6  # clap colours: cupped hands are dark, flat ones bright
    for kind in range(kinds):
        times = np.flatnonzero(rng.random(n) < claps_per_s / kinds / rate * envelope)
        train = np.zeros((n, 2))
        side = rng.uniform(0.0, 1.0, len(times))
        strength = rng.lognormal(0.0, 0.4, len(times))
        train[times, 0], train[times, 1] = strength * (1 - side), strength * side
        length = int(0.02 * rate)
        centre = float(rng.uniform(700.0, 2800.0))
        band = butter(2, [0.6 * centre, min(1.6 * centre, 0.45 * rate)], "bandpass", fs=rate, output="sos")
        decay = float(rng.uniform(0.003, 0.008)) * rate
        clap = sosfilt(band, rng.standard_normal(length)) * np.exp(-np.arange(length) / decay)
        out += oaconvolve(train, clap[:, None], axes=0)[:n]
    return out, {"audience": audience, "claps_per_s": round(claps_per_s, 1)}


def held_tone(frequency: float, harmonics, n: int, rate: int, start: int, attack_s: float, rng) -> np.ndarray:
    """A held note from `start` to the end of `n` samples: its harmonics' weights, a slow swell of the bow or
    breath, and a released last 0.3 s."""
    t = np.arange(n - start) / rate
    partials = [(k, w) for k, w in enumerate(harmonics, start=1) if k * frequency < 0.45 * rate]
    wave = sum(w * np.sin(2 * np.pi * k * frequency * t + rng.uniform(0, 2 * np.pi)) for k, w in partials)
    envelope = np.minimum(1.0, t / attack_s) * np.clip((t[-1] - t) / 0.3, 0.0, 1.0)
    swell = 1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t + rng.uniform(0, 2 * np.pi))
    out = np.zeros(n)
    out[start:] = wave * envelope * swell
    return out


OBOE_HARMONICS = (0.45, 1.0, 0.85, 0.6, 0.35, 0.3, 0.2, 0.12, 0.08, 0.05)  # a reedy A: the second partial leads
STRING_HARMONICS = tuple(1.0 / k for k in range(1, 16))  # a bowed string is close to a sawtooth


def tuning(seconds: float, rate: int, rng) -> tuple[np.ndarray, dict]:
    """(n, 2) an orchestra tuning: the oboe's A near 440 Hz, then string players taking it up on their A strings
    a few cents apart, all stopping together."""
    n = int(seconds * rate)
    cents = float(rng.uniform(-TUNING_CENTS, TUNING_CENTS))
    a4 = 440.0 * 2 ** (cents / 1200)
    out = np.repeat(held_tone(a4, OBOE_HARMONICS, n, rate, 0, 0.08, rng)[:, None], 2, axis=1)
    joined = rng.uniform(0.3, 0.6) * seconds
    players = 0
    for _ in range(int(rng.integers(3, 9))):
        octave = int(rng.choice([0, 0, -1, -2]))  # violins and violas on A4, cellos on A3, basses on A2
        detune = float(rng.normal(0.0, 4.0))
        start = int((joined + rng.uniform(0.0, 0.4 * seconds)) * rate)
        if start >= n - int(0.5 * rate):
            continue  # too late to be heard before everyone stops
        side = float(rng.uniform(0.0, 1.0))
        tone = 0.5 * held_tone(a4 * 2 ** (octave + detune / 1200), STRING_HARMONICS, n, rate, start, 0.2, rng)
        out += tone[:, None] * np.array([1 - side, side])
        players += 1
    return out, {"a4_hz": round(a4, 3), "cents": round(cents, 2), "string_players": players}


def with_prelude(stems: list, kind: str, seconds: float, rng) -> tuple[list, dict]:
    """The stems delayed by `seconds` with the prelude's stem sounding before them, as loud as the music or a
    little softer: the audience at the back of the hall, the tuning orchestra on stage."""
    n_pre = int(round(seconds * SAMPLE_RATE))
    music = np.sum([s.audio for s in stems], axis=0)
    sounding = music[np.abs(music).max(axis=1) > 1e-4]
    music_rms = float(np.sqrt(np.mean(sounding**2))) if len(sounding) else 1.0
    sound, info = (applause if kind == "applause" else tuning)(seconds, SAMPLE_RATE, rng)
    gain_db = float(rng.uniform(-10.0, 0.0) if kind == "applause" else rng.uniform(-12.0, -3.0))
    sound *= music_rms * 10 ** (gain_db / 20) / (np.sqrt(np.mean(sound**2)) + 1e-12)
    delayed = [replace(s, audio=np.concatenate([np.zeros((n_pre, 2), np.float32), s.audio])) for s in stems]
    total = len(delayed[0].audio)
    prelude_audio = np.zeros((total, 2), np.float32)
    prelude_audio[: len(sound)] = sound
    prelude = (sr.Stem(prelude_audio, GM_APPLAUSE, "audience", 1.0) if kind == "applause"
               else sr.Stem(prelude_audio, sr.OBOE, "tuning", 0.5))
    return delayed + [prelude], {"kind": kind, "seconds": n_pre / SAMPLE_RATE, "gain_db": round(gain_db, 2), **info}


def measure_label(m) -> str:
    return m.measureNumberWithSuffix()


def export_score(work_path: str, first: int, last: int, folder: Path) -> dict:
    """Write the rendered bars as `score.musicxml` and `score.mid`; returns what was added and removed."""
    from music21 import bar, repeat, spanner, stream, tempo

    score = sr._load_score(work_path)
    selection = score.measures(first, last)
    part0 = score.parts[0]
    start = float(selection.parts[0].getElementsByClass(stream.Measure)[0].getOffsetInHierarchy(part0))
    earlier = [(float(mm.getOffsetInHierarchy(part0)), mm) for mm in part0.recurse().getElementsByClass(
        tempo.MetronomeMark) if float(mm.getOffsetInHierarchy(part0)) <= start + 1e-6]
    # score.measures hands out the cached score's own Measure objects: edit a copy.
    excerpt = copy.deepcopy(selection)
    first_measure = excerpt.parts[0].getElementsByClass(stream.Measure)[0]
    added_tempo = None
    if earlier and first_measure.getElementsByOffset(0.0).getElementsByClass(tempo.MetronomeMark).first() is None:
        mark = copy.deepcopy(max(earlier, key=lambda pair: pair[0])[1])
        first_measure.insert(0.0, mark)
        added_tempo = str(mark)
    removed = 0
    for m in excerpt.recurse().getElementsByClass(stream.Measure):
        for side in ("leftBarline", "rightBarline"):
            if isinstance(getattr(m, side), bar.Repeat):
                setattr(m, side, bar.Barline("regular"))
                removed += 1
    for element in [*excerpt.recurse().getElementsByClass(spanner.RepeatBracket),
                    *excerpt.recurse().getElementsByClass(repeat.RepeatExpression)]:
        element.activeSite.remove(element)
        removed += 1
    excerpt.write("musicxml", fp=str(folder / "score.musicxml"))
    excerpt.write("midi", fp=str(folder / "score.mid"))
    return {"tempo_mark_added": added_tempo, "repeat_signs_removed": removed}


def score_truth(work_path: str, first: int, last: int, beats: np.ndarray, downbeats: np.ndarray,
                score_starts_here: bool) -> dict:
    """The score side of the truth, derived from the bars as written and checked against the rendered beats: the
    score position of every true beat (quarter notes from the excerpt's start), the bar each true downbeat starts
    and why the other bars start none, and the entrances (a part's note after CUE_REST_BARS bars of rest or more,
    the music's opening excepted: where a conductor cues), timed by the true beats around them."""
    from music21 import stream

    excerpt = sr._load_score(work_path).measures(first, last)
    measures = list(excerpt.parts[0].getElementsByClass(stream.Measure))
    signatures = sr.time_signatures(measures)
    origin = float(measures[0].offset)
    starts = [float(m.offset) - origin for m in measures]
    ends = starts[1:] + [starts[-1] + min(float(measures[-1].duration.quarterLength),
                                          float(signatures[-1].barDuration.quarterLength))]
    beat_q, beat_bar, reasons = [], [], {}
    for i, (m, ts) in enumerate(zip(measures, signatures)):
        bar_ql, beat_ql = float(ts.barDuration.quarterLength), float(ts.beatDuration.quarterLength)
        padding = float(m.paddingLeft)
        if i == 0 and score_starts_here and padding == 0 and ends[0] - starts[0] < bar_ql - 1e-6:
            padding = bar_ql - (ends[0] - starts[0])  # an anacrusis encoded without its padding
        if padding > 0:
            reasons[i] = "pickup" if i == 0 else "starts after its downbeat: an upbeat, or the rest of a split bar"
        for k in range(math.ceil(bar_ql / beat_ql - 1e-6)):
            q = starts[i] - padding + k * beat_ql
            if starts[i] - 1e-6 <= q < ends[i] - 1e-6:
                beat_q.append(q)
                beat_bar.append((i, k == 0))
    problems = []
    if len(beat_q) < len(beats):
        problems.append(f"{len(beats)} true beats but {len(beat_q)} written")
    # The render ends with the music: beats after the final cut-off are not played.
    beat_q, beat_bar = np.array(beat_q[: len(beats)]), beat_bar[: len(beats)]
    with_downbeat = [i for i, downbeat in beat_bar if downbeat]
    beats_at_downbeats = np.array([t for t, (_, downbeat) in zip(beats, beat_bar) if downbeat])
    if len(with_downbeat) != len(downbeats) or not np.allclose(beats_at_downbeats, downbeats, atol=1e-6):
        problems.append(f"the written bars put {len(with_downbeat)} downbeats on the true beats, the render "
                        f"{len(downbeats)}")
    for i in range(len(measures)):
        if i not in reasons and i not in with_downbeat:
            reasons[i] = "after the final cut-off"
            if any(p.getElementsByClass(stream.Measure)[i].recurse().notes for p in excerpt.parts
                   if len(p.getElementsByClass(stream.Measure)) > i):
                problems.append(f"bar {measure_label(measures[i])} has notes but no true downbeat")

    cues = []
    for index, part in enumerate(excerpt.parts):
        # (onset, end, bar) of every note, voices merged; offsets anchored to the bar they are written in.
        notes = sorted((starts[i] + float(n.getOffsetInHierarchy(m)), float(n.quarterLength), i)
                       for i, m in enumerate(part.stripTies().getElementsByClass(stream.Measure))
                       for n in m.recurse().notes if not n.duration.isGrace)
        silent_from = 0.0
        for on, length, i in notes:
            if on - silent_from >= CUE_REST_BARS * float(signatures[i].barDuration.quarterLength) - 1e-6:
                cues.append({"time": round(float(np.interp(on, beat_q, beats)), 4), "part": index,
                             "part_name": part.partName, "bar": measure_label(measures[i]), "q": round(on, 4),
                             "rest_quarters": round(on - silent_from, 4)})
            silent_from = max(silent_from, on + length)
    return {
        "beats_q": [round(float(q), 6) for q in beat_q],
        "score_bar_numbers": [measure_label(m) for m in measures],
        "bar_numbers": [measure_label(measures[i]) for i in with_downbeat],
        "bars_without_downbeat": [{"index": i, "bar": measure_label(measures[i]), "why": reasons[i]}
                                  for i in sorted(reasons)],
        "entrances": sorted(cues, key=lambda cue: cue["time"]),
        "problems": problems,
    }


def reread_check(folder: Path, score_bar_numbers: list[str]) -> dict:
    """The exported files read back by music21: MusicXML must keep every bar and its number in every part; MIDI
    keeps no bar numbers, so only its bar count is reported."""
    from music21 import converter, stream

    xml = converter.parse(str(folder / "score.musicxml"))
    numbers = [[measure_label(m) for m in p.getElementsByClass(stream.Measure)] for p in xml.parts]
    midi = converter.parse(str(folder / "score.mid"))
    midi_bars = max(len(p.getElementsByClass(stream.Measure)) for p in midi.parts)
    return {"musicxml_bar_numbers_match": all(n == score_bar_numbers for n in numbers), "musicxml_parts": len(numbers),
            "midi_bars": midi_bars, "midi_bars_match": midi_bars == len(score_bar_numbers)}


def tempo_ratios(beats: np.ndarray) -> dict:
    """Local tempo (each beat's length) against the excerpt's median: what the rubato, sections and fermatas did."""
    ibi = np.diff(beats)
    ratio = np.median(ibi) / ibi
    return {"min": round(float(ratio.min()), 3), "p5": round(float(np.percentile(ratio, 5)), 3),
            "p95": round(float(np.percentile(ratio, 95)), 3), "max": round(float(ratio.max()), 3),
            "median_bpm": round(60.0 / float(np.median(ibi)), 2)}


def render_case(out: str, split: str, seed: int, index: int, long: bool) -> str:
    """Render case `index` of `split` into its folder under `out` (nothing where it exists); a line saying what."""
    name = f"{split}_long" if long else f"{split}_{index:03d}"
    folder = Path(out) / name
    if (folder / "truth.json").exists():
        return f"{name}: exists"
    started = time.perf_counter()
    # Cases of one index in val, in test and the long one draw independent performances and recordings.
    case_seed = (seed * len(corpus.SPLITS) + corpus.SPLITS.index(split)) * 2 + int(long)
    classical = sorted({w.group for w in split_works(split) if w.category == "classical"})
    for attempt in range(MAX_ATTEMPTS):
        spec_index = index * 100 + attempt  # the index sample_spec seeds its draws with
        if long:
            draw = np.random.default_rng([case_seed, attempt])
            group = classical[int(draw.integers(len(classical)))]
            members = [w for w in split_works(split) if w.group == group]
            work = members[int(draw.integers(len(members)))]
        else:
            work = case_work(split, seed, index, attempt)
        try:
            spec = corpus.sample_spec(work, spec_index, case_seed)
            if spec is not None and long:
                spec = long_spec(work, spec, np.random.default_rng([case_seed, spec_index, 3]))
            if spec is None:
                continue
            choices = np.random.default_rng([case_seed, spec_index, 2])
            options = dict(spec.options, rubato=RUBATO, lead_in=float(choices.uniform(*LEAD_IN_S)))
            perf = sr.plan_excerpt(work.path, **options)
        except ValueError:  # an encoding the renderer cannot play: the recipe skips these too
            continue
        if perf.labels.beats_per_bar in corpus.SUPPORTED_METERS and len(perf.labels.beats) >= 8:
            break
    else:
        raise RuntimeError(f"{name}: no playable work in {MAX_ATTEMPTS} attempts")

    stems = sr.render_stems(perf, rate=SAMPLE_RATE)
    prelude = None
    if choices.random() < PRELUDE_CHANCE:
        kind = "applause" if choices.random() < 0.5 else "tuning"
        stems, prelude = with_prelude(stems, kind, float(choices.uniform(*(APPLAUSE_S if kind == "applause"
                                                                             else TUNING_S))), choices)
    offset_s = prelude["seconds"] if prelude else 0.0
    # The recipe's production and augmentation stream (corpus.build_excerpt's).
    rng = np.random.default_rng([case_seed, spec_index, 1])
    stereo, rate = prod.produce(stems, SAMPLE_RATE, spec.production, rng)
    mono, augmentation = corpus.augment(stereo, rate, rng)
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(str(folder / "audio.flac"), mono, SAMPLE_RATE, format="FLAC", subtype="PCM_16")

    labels = perf.labels
    beats, downbeats = labels.beats + offset_s, labels.downbeats + offset_s
    first, last = labels.bars
    exported = export_score(work.path, first, last, folder)
    score_first = sr._load_score(work.path).parts[0].getElementsByClass("Measure").first().number
    bars = score_truth(work.path, first, last, beats, downbeats, score_starts_here=score_first == first)
    truth = {
        "case": name, "split": split, "seed": seed, "index": index, "case_seed": case_seed, "spec_index": spec_index,
        "long": long, "work": work.path, "group": work.group, "category": work.category, "rights": work.rights,
        "bars": [first, last], "meter": labels.meter, "beats_per_bar": labels.beats_per_bar,
        "duration_s": round(len(mono) / SAMPLE_RATE, 4),
        "lead_in_s": round(options["lead_in"], 4), "prelude": prelude,
        "music_offset_s": round(offset_s + options["lead_in"], 4),
        "beats": [round(float(t), 6) for t in beats], "downbeats": [round(float(t), 6) for t in downbeats],
        **bars,
        "export": {**exported, **reread_check(folder, bars["score_bar_numbers"])},
        "tempo_ratio": tempo_ratios(beats),
        "performance": {**spec.info, "rubato": RUBATO, "lead_in": round(options["lead_in"], 4),
                        "tempo_curve": [[round(p, 4), round(m, 4)] for p, m in options["tempo_curve"]],
                        "dynamics": options["dynamics"], "plan_seed": options["seed"],
                        "instrumentation": labels.instrumentation},
        "production": spec.production.to_json(), "augmentation": augmentation,
        "render_seconds": round(time.perf_counter() - started, 1),
    }
    (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    tr = truth["tempo_ratio"]
    return (f"{name}: {work.path} bars {first}-{last} {labels.meter} {truth['duration_s']:.0f} s, tempo ratio "
            f"{tr['min']:.2f}-{tr['max']:.2f}, lead-in {options['lead_in']:.1f} s, "
            f"prelude {prelude['kind'] + f' {offset_s:.1f} s' if prelude else 'none'}, "
            f"{len(bars['bar_numbers'])}/{len(bars['score_bar_numbers'])} bars with downbeats, "
            f"{'problems: ' + '; '.join(bars['problems']) if bars['problems'] else 'consistent'}, "
            f"{truth['render_seconds']:.0f} s")


def prepare(out: Path, split: str, cases: int, seed: int, long: bool) -> None:
    corpus.install_soundfonts(tuple(corpus.SOUNDFONT_WEIGHTS))
    out.mkdir(parents=True, exist_ok=True)
    indices = [0] if long else list(range(cases))
    with ProcessPoolExecutor(max_workers=CORES) as pool:
        for line in pool.map(render_case, [str(out)] * len(indices), [split] * len(indices),
                             [seed] * len(indices), indices, [long] * len(indices)):
            print(line, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Metrics


def nearest_errors(truth: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """|error| of each true time to the nearest estimated one (inf where nothing was estimated)."""
    if len(estimate) == 0:
        return np.full(len(truth), np.inf)
    estimate = np.sort(estimate)
    after = np.clip(np.searchsorted(estimate, truth), 0, len(estimate) - 1)
    before = np.clip(after - 1, 0, len(estimate) - 1)
    return np.minimum(np.abs(truth - estimate[before]), np.abs(truth - estimate[after]))


def match(truth: np.ndarray, estimate: np.ndarray, tolerance: float) -> list[tuple[int, int]]:
    """One-to-one pairs (true index, estimate index): each true time, earliest first, takes the nearest estimate
    within `tolerance` that no earlier one took."""
    order = np.argsort(estimate, kind="stable")
    times = np.asarray(estimate)[order]
    taken = np.zeros(len(times), bool)
    pairs = []
    for i, t in enumerate(truth):
        lo, hi = np.searchsorted(times, t - tolerance), np.searchsorted(times, t + tolerance, side="right")
        free = [j for j in range(lo, hi) if not taken[j]]
        if free:
            j = min(free, key=lambda j: abs(times[j] - t))
            taken[j] = True
            pairs.append((i, int(order[j])))
    return pairs


@dataclass
class Aligned:
    """What the benchmark needs of an alignment; `bar_starts` and `bar_numbers` hold one entry per score bar."""

    beats: np.ndarray
    bar_starts: np.ndarray
    bar_numbers: list[str]
    confidence: float


def case_scores(truth: dict, aligned: Aligned | None) -> dict:
    """Beat errors, downbeat matches and right bar numbers of one case (an alignment of None: the aligner refused)."""
    beats, downbeats = np.array(truth["beats"]), np.array(truth["downbeats"])
    if aligned is None:
        return {"beat_errors": np.full(len(beats), np.inf), "downbeats": len(downbeats), "estimated_downbeats": 0,
                "matched": 0, "bars_correct": 0, "bar_count_note": ""}
    starts, numbers = np.asarray(aligned.bar_starts), list(aligned.bar_numbers)
    note = ""
    if len(starts) == len(truth["score_bar_numbers"]):
        keep = sorted(set(range(len(starts))) - {b["index"] for b in truth["bars_without_downbeat"]})
        starts, numbers = starts[keep], [numbers[i] for i in keep]
    else:
        note = f"{len(starts)} aligned bars, {len(truth['score_bar_numbers'])} in the score: all scored"
    pairs = match(downbeats, starts, DOWNBEAT_TOLERANCE_S)
    return {
        "beat_errors": nearest_errors(beats, np.asarray(aligned.beats)),
        "estimated_beats": len(aligned.beats),
        "downbeats": len(downbeats), "estimated_downbeats": len(starts), "matched": len(pairs),
        "bars_correct": sum(truth["bar_numbers"][i] == numbers[j] for i, j in pairs),
        "bar_count_note": note,
    }


def f_measure(matched: int, n_truth: int, n_estimate: int) -> float:
    return 2.0 * matched / (n_truth + n_estimate) if n_truth + n_estimate else 1.0


def summary(scores: list[dict]) -> dict:
    errors = np.concatenate([s["beat_errors"] for s in scores])
    finite = errors[np.isfinite(errors)]
    # Nearest rank: well defined where beats of a refused alignment count as infinitely wrong.
    median, p95 = np.percentile(errors, [50, 95], method="inverted_cdf")
    matched = sum(s["matched"] for s in scores)
    n_truth = sum(s["downbeats"] for s in scores)
    return {
        "beats": len(errors), "unaligned_beats": int(len(errors) - len(finite)),
        "median_ms": 1000 * float(median), "p95_ms": 1000 * float(p95),
        "max_ms": 1000 * float(errors.max()),
        "downbeat_f": f_measure(matched, n_truth, sum(s["estimated_downbeats"] for s in scores)),
        "bars_correct": sum(s["bars_correct"] for s in scores) / max(n_truth, 1),
    }


# ---------------------------------------------------------------------------------------------------------------
# Aligning


def real_aligner():
    """align(score case folder, audio case folder) -> (Aligned, or None where the aligner refuses; seconds aligning;
    seconds loading the score and the audio)."""
    from gm_blender_addon.core.align import AlignmentError, align_score
    from gm_blender_addon.core.audio import load_audio
    from gm_blender_addon.core.score import load_score

    def align(score_case: Path, audio_case: Path):
        started = time.perf_counter()
        score = load_score(score_case / "score.musicxml")
        audio = load_audio(audio_case / "audio.flac")
        loaded = time.perf_counter()
        try:
            alignment = align_score(score, audio)
        except AlignmentError:
            return None, time.perf_counter() - loaded, loaded - started
        return (Aligned(np.asarray(alignment.beats), np.asarray(alignment.downbeats), list(alignment.bar_numbers),
                        float(alignment.confidence)), time.perf_counter() - loaded, loaded - started)

    return align


def oracle_aligner(seed: int = 0):
    """The truth of the score's case, noisy as the module docstring says, with a bar start for every score bar as a
    real aligner gives: a pickup's a beat before the first downbeat, those after the cut-off a bar apart."""
    def align(score_case: Path, audio_case: Path):
        truth = json.loads((score_case / "truth.json").read_text())
        rng = np.random.default_rng([seed, truth["case_seed"], truth["spec_index"], int(score_case == audio_case)])
        downbeats = np.array(truth["downbeats"])
        bar_s = float(np.median(np.diff(downbeats))) if len(downbeats) > 1 else 2.0
        starts = np.empty(len(truth["score_bar_numbers"]))
        with_downbeat = sorted(set(range(len(starts))) - {b["index"] for b in truth["bars_without_downbeat"]})
        starts[with_downbeat] = downbeats
        for bar in truth["bars_without_downbeat"]:
            i = bar["index"]
            starts[i] = downbeats[0] - bar_s / truth["beats_per_bar"] if i == 0 else starts[i - 1] + bar_s
        numbers = [n if rng.random() >= ORACLE_WRONG_BARS else n + "?" for n in truth["score_bar_numbers"]]
        beats = np.array(truth["beats"]) + rng.normal(0.0, ORACLE_NOISE_S, len(truth["beats"]))
        starts += rng.normal(0.0, ORACLE_NOISE_S, len(starts))
        confidence = rng.uniform(0.7, 0.95) if score_case == audio_case else rng.uniform(0.05, 0.4)
        return Aligned(beats, starts, numbers, float(confidence)), 0.0, 0.0

    return align


def case_folders(dirs: list[Path]) -> list[Path]:
    return sorted({p.parent for d in dirs for p in d.rglob("truth.json")})


def limit_to_cores(cores: int) -> int:
    """Run this process, and the thread pools of its numerical libraries, on `cores` CPUs; returns how many."""
    from threadpoolctl import threadpool_limits

    allowed = sorted(os.sched_getaffinity(0))[:cores]
    os.sched_setaffinity(0, allowed)
    threadpool_limits(len(allowed))
    return len(allowed)


def evaluate(dirs: list[Path], json_out: Path | None, oracle: bool) -> dict:
    cores = limit_to_cores(CORES)
    align = oracle_aligner() if oracle else real_aligner()
    folders = case_folders(dirs)
    if not folders:
        raise SystemExit(f"no truth.json under {', '.join(map(str, dirs))}: run --prepare first")
    print(f"{'oracle' if oracle else 'align_score'} on {cores} cores, {len(folders)} cases\n")
    header = (f"{'case':<10} {'work':<36} {'bars':>9} {'dur s':>6} {'beats':>9} {'med ms':>7} {'p95 ms':>7} "
              f"{'max ms':>7} {'DB F':>6} {'bar#':>6} {'conf':>5} {'align s':>7} {'s/min':>6}")
    print(header)
    print("-" * len(header))
    rows, truths = [], {}
    for folder in folders:
        truth = json.loads((folder / "truth.json").read_text())
        truths[folder] = truth
        try:
            aligned, seconds, load_seconds = align(folder, folder)
            error = None
        except Exception as exc:  # one case's failure is a result of the benchmark, not the end of it
            aligned, seconds, load_seconds, error = None, float("nan"), float("nan"), f"{type(exc).__name__}: {exc}"
        scores = case_scores(truth, aligned)
        s = summary([scores])
        row = {"case": truth["case"], "path": str(folder), "work": truth["work"], "long": truth["long"],
               "bars": truth["bars"], "duration_s": truth["duration_s"], "align_s": seconds, "load_s": load_seconds,
               "s_per_audio_min": seconds / (truth["duration_s"] / 60.0),
               "confidence": None if aligned is None else aligned.confidence, "error": error,
               "estimated_beats": scores.get("estimated_beats", 0), "true_beats": len(truth["beats"]),
               "note": scores["bar_count_note"], **s, "scores": scores,
               "aligned": None if aligned is None else {
                   "beats": [round(float(t), 4) for t in aligned.beats],
                   "bar_starts": [round(float(t), 4) for t in aligned.bar_starts], "bar_numbers": aligned.bar_numbers}}
        rows.append(row)
        status = error or ("refused" if aligned is None else "")
        print(f"{row['case']:<10} {truth['work'][:36]:<36} {'-'.join(map(str, truth['bars'])):>9} "
              f"{truth['duration_s']:6.1f} {row['estimated_beats']:>4}/{row['true_beats']:<4} {s['median_ms']:7.1f} "
              f"{s['p95_ms']:7.1f} {s['max_ms']:7.0f} {s['downbeat_f']:6.3f} {100 * s['bars_correct']:5.1f}% "
              f"{rounded(row['confidence'], 2):>5} {seconds:7.2f} {row['s_per_audio_min']:6.2f}"
              + (f"  {status}" if status else "") + (f"  ({row['note']})" if row["note"] else ""), flush=True)

    overall = summary([r["scores"] for r in rows])
    long_rows = [r for r in rows if r["long"]]
    print()
    checks = [
        ("beat error median", f"{overall['median_ms']:.1f} ms", overall["median_ms"] <= 1000 * MEDIAN_BEAT_ERROR_S,
         f"<= {1000 * MEDIAN_BEAT_ERROR_S:.0f} ms"),
        ("beat error p95", f"{overall['p95_ms']:.1f} ms", overall["p95_ms"] <= 1000 * P95_BEAT_ERROR_S,
         f"<= {1000 * P95_BEAT_ERROR_S:.0f} ms"),
        ("beat error max", f"{overall['max_ms']:.0f} ms", None, ""),
        ("downbeat F (±70 ms)", f"{overall['downbeat_f']:.4f}", overall["downbeat_f"] >= MIN_DOWNBEAT_F,
         f">= {MIN_DOWNBEAT_F}"),
        ("bar numbers correct", f"{100 * overall['bars_correct']:.2f} %", overall["bars_correct"] >= MIN_BARS_CORRECT,
         f">= {100 * MIN_BARS_CORRECT:.0f} %"),
    ]
    for r in long_rows:
        checks.append((f"align {r['duration_s'] / 60:.1f}-min piece", f"{r['align_s']:.2f} s",
                       r["align_s"] <= MAX_LONG_ALIGN_S * r["duration_s"] / LONG_SECONDS,
                       f"<= {MAX_LONG_ALIGN_S:.0f} s per {LONG_SECONDS / 60:.0f} min on {cores} cores"))
    short = [r for r in rows if not r["long"] and np.isfinite(r["align_s"])]
    if short:
        checks.append(("align time, excerpts", f"{np.mean([r['s_per_audio_min'] for r in short]):.2f} s per audio min",
                       None, "mean"))
    print(f"overall ({overall['beats']} beats, {overall['unaligned_beats']} unaligned, "
          f"{sum(r['scores']['downbeats'] for r in rows)} downbeats)")
    for name, value, ok, target in checks:
        print(f"  {name:<26} {value:>22}  {target:<30} {'' if ok is None else 'PASS' if ok else 'FAIL'}")
    accepted = [r for r in rows if r["aligned"] is not None]
    if accepted:
        within = summary([r["scores"] for r in accepted])
        print(f"  cases the aligner accepted ({len(accepted)} of {len(rows)}): beat error median "
              f"{within['median_ms']:.1f} ms, p95 {within['p95_ms']:.1f} ms, downbeat F {within['downbeat_f']:.3f}, "
              f"bar numbers {100 * within['bars_correct']:.1f} %")
    cues = None if oracle else cue_check(folders, truths)
    if cues is not None:
        print(f"  {'cues, left-hand peak':<26} {100 * cues['share']:>20.1f} %  {'>= 90 % in the beat before':<30} "
              f"{'PASS' if cues['share'] >= MIN_CUE_SHARE else 'FAIL'}  ({cues['hits']} of {cues['entrances']} "
              f"entrances; {cues['refused']} in refused cases)")

    mismatch = mismatch_check(folders, truths, rows, align)
    result = {"oracle": oracle, "cores": cores, "cases": [{k: v for k, v in r.items() if k != "scores"}
                                                          for r in rows],
              "overall": overall, "checks": [{"name": n, "value": v, "pass": ok, "target": t}
                                             for n, v, ok, t in checks],
              "mismatch": mismatch, "cues": cues}
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"\nwrote {json_out}")
    return result


def cue_check(folders: list[Path], truths: dict) -> dict:
    """The procedural conductor's left-hand cues against each case's true entrances: an entrance is cued when the
    left wrist's highest point within two beats before to one beat after it falls in the beat before it. Cases the
    aligner refuses count all their entrances as missed."""
    from gm_blender_addon.core.align import AlignmentError, align_score
    from gm_blender_addon.core.audio import load_audio
    from gm_blender_addon.core.motion import FPS, JOINT
    from gm_blender_addon.core.score import load_score
    from gm_blender_addon.core.score_guide import score_analysis
    from gm_blender_addon.core.stage import default_plan
    from gm_blender_addon.generators.procedural import conduct

    hits = total = refused = 0
    for folder in folders:
        truth = truths[folder]
        entrances = [e["time"] for e in truth["entrances"]]
        total += len(entrances)
        audio = load_audio(folder / "audio.flac")
        try:
            analysis = score_analysis(audio, align_score(load_score(folder / "score.musicxml"), audio), default_plan())
        except AlignmentError:
            refused += len(entrances)
            continue
        height = -conduct(analysis, seed=0)[:, JOINT["left_wrist"], 1]
        t = np.arange(len(height)) / FPS
        beats = np.array(truth["beats"])
        for entrance in entrances:
            i = int(np.clip(np.searchsorted(beats, entrance), 1, len(beats) - 1))
            beat = float(beats[i] - beats[i - 1])
            near = (t >= entrance - 2 * beat) & (t <= entrance + beat)
            if near.any():
                peak = t[near][np.argmax(height[near])]
                hits += int(entrance - beat <= peak <= entrance)
    return {"hits": hits, "entrances": total, "refused": refused, "share": hits / max(total, 1)}


def mismatch_check(folders: list[Path], truths: dict, rows: list[dict], align) -> dict:
    """Each excerpt's audio aligned to the score of the next case of another work: the confidences of those pairs
    against the matched ones."""
    excerpts = [f for f in folders if not truths[f]["long"]]
    pairs = []
    for k, audio_case in enumerate(excerpts):
        others = [excerpts[(k + step) % len(excerpts)] for step in range(1, len(excerpts))]
        score_case = next((f for f in others if truths[f]["work"] != truths[audio_case]["work"]), None)
        if score_case is None:
            continue
        try:
            aligned, _, _ = align(score_case, audio_case)
            confidence = None if aligned is None else aligned.confidence
            outcome = "refused" if aligned is None else f"{confidence:.3f}"
        except Exception as exc:  # reported like a refusal, with its reason
            confidence, outcome = None, f"{type(exc).__name__}: {exc}"
        pairs.append({"audio": truths[audio_case]["case"], "score": truths[score_case]["case"],
                      "confidence": confidence, "outcome": outcome})
    matched = [r["confidence"] for r in rows if r["confidence"] is not None and not r["long"]]
    mismatched = [p["confidence"] for p in pairs if p["confidence"] is not None]
    print(f"\nmismatch check: audio aligned to another work's score ({len(pairs)} pairs)")
    for p in pairs:
        print(f"  audio {p['audio']:<10} score {p['score']:<10} confidence {p['outcome']}")
    out = {"pairs": pairs, "matched_min": min(matched, default=None), "mismatched_max": max(mismatched, default=None),
           "mismatched_refused": sum(p["confidence"] is None for p in pairs)}
    print(f"  matched confidence: min {rounded(out['matched_min'])} of {len(matched)}; mismatched: max "
          f"{rounded(out['mismatched_max'])} of {len(mismatched)}, {out['mismatched_refused']} refused by the aligner")
    return out


def rounded(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--prepare", type=Path, metavar="DIR", help="render cases into DIR")
    action.add_argument("--evaluate", type=Path, nargs="+", metavar="DIR", help="align and score the cases under DIR")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--cases", type=int, default=12, help="excerpts to render (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--long", action="store_true",
                        help=f"render one long movement instead, {LONG_SECONDS / 60:.0f} minutes at its base tempo")
    parser.add_argument("--json", type=Path, help="write every figure of --evaluate here")
    parser.add_argument("--oracle", action="store_true", help="score the noisy truth instead of the aligner")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(args.prepare, args.split, args.cases, args.seed, args.long)
    else:
        evaluate(args.evaluate, args.json, args.oracle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
