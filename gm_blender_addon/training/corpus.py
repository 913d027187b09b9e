"""A corpus of performed scores with exact labels: the beat tracker's training set and a ConductorMotion100 export.

Each excerpt is a music21 corpus work played by :mod:`score_render` with a sampled performance (a base tempo in the
range a listener taps for the notated beat given how busy the music is, a tempo curve of sections, ramps, fermatas,
phrase-final lengthening and rubato, dynamics, orchestration with sections of several detuned players, score
articulation, sometimes percussion; each section's instruments from one of three General MIDI SoundFonts), recorded
by :mod:`production` (a synthesised hall, microphones, compression, limiting, loudness, hall noise, a lossy codec and
sample rate) and augmented (EQ, noise, level, 16-bit quantisation), then resampled to 22.05 kHz mono as the add-on
loads audio.  ``--soundfonts`` chooses the SoundFonts; the recipe installs Debian's with apt where they are missing.

Per excerpt, under ``OUT/<split>/``:
- ``<id>.npz``: ``log_mel`` (frames, 64) float16, the analysis spectrogram (``core.analysis.compute_spectral``) that
  the tracker sees at inference; ``beats``, ``downbeats`` (s); ``held`` (30 fps bool); ``loudness`` (30 fps, 0..1).
- ``<id>.json``: labels (meter, beats per bar, subdivision, sections, loudness envelope), the performance and
  augmentation parameters, and the encoding's rights.
- ``<id>.flac`` (test split, or every split with ``--keep-audio``): the audio itself, for end-to-end benchmarks.

Excerpts of 60 s or more also go to ``OUT/cm100/<split>/<k>/{mel.npy, motion.npy}``, the ConductorMotion100 layout:
the official 90 Hz × 128 mel of the first 60 s and 30 fps × 13 × 2 motion from the procedural conductor driven by the
true beats, downbeats, meter, score loudness and held notes; beside them ``beats.npy`` and ``downbeats.npy``, the
true times (s) within those 60 s, for generators trained with the beats as input.

Works are split by opus (every movement of a quartet lands in the same split); the test works are named in
``TEST_GROUPS`` plus a stable hash share of the rest, and are never trained on.  Only encodings whose rights are
stated as permissive or not stated at all are used; see ``EXCLUDED`` and ``rights_tier``.

    python -m gm_blender_addon.training.corpus --out data/corpus --hours 4

The build is resumable: finished excerpts are skipped, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..core.analysis import assemble_analysis, compute_spectral
from ..core.audio import SAMPLE_RATE, Audio, official_mel
from ..core.motion import FPS
from . import production as prod
from . import score_render as sr

SPLITS = ("test", "val", "train")
CM100_SECONDS = 60
# Opus groups held out for testing, whatever the seed: the works the project's tracker comparison was measured on,
# and the demo (so the add-on's own smoke test is never trained on).
TEST_GROUPS = ("haydn/opus74no1", "mozart/k80", "beethoven/opus18no1", "joplin/maple_leaf_rag",
               "weber/concertino_clarinet", "bach/bwv66.6")
VAL_GROUPS = ("mozart/k156", "beethoven/opus59no3")
HASH_TEST_SHARE, HASH_VAL_SHARE = 0.08, 0.06
# Chance that a visit picks each kind of source.  A classical visit renders several excerpts of a long movement and
# chorales and folk tunes are short, so classical music makes up most of the hours (about 83 % of the seed-0 build).
CATEGORY_WEIGHTS = {"chorale": 0.3, "classical": 0.5, "folk": 0.2}
CLASSICAL_DIRS = ("beethoven", "mozart", "haydn", "handel", "joplin", "verdi", "weber", "corelli", "cpebach",
                  "chopin", "schumann_robert", "schumann_clara", "johnson_j_r", "liliuokalani")
FOLK_DIRS = ("ryansMammoth",)
# Corpus folders left out entirely, and why.
EXCLUDED = {
    "essenFolksong": "directory licence is non-commercial",
    "palestrina": "'Copyright 2000, John Miller' with no licence given",
    "monteverdi": "Ut Orpheus Edizioni copyright notices",
    "oneills1850, airdsAirs, miscFolk, nottingham-dataset": (
        "multi-tune files (music21 opus objects), not single scores"),
    "trecento, josquin, ciconia, luca, lusitano": "mensural polyphony without a conducted meter",
    "schubert, beach, webern, schoenberg, demos, leadSheet, theoryExercises": (
        "copyright notices without a licence, share-alike encodings, or not concert repertoire"),
}
SUPPORTED_METERS = (2, 3, 4)  # beats per bar the tracker decodes; 3/8 in one and 5/4 are left out

STRINGS, SLOW_STRINGS, VIOLIN, VIOLA, PIZZICATO, HARP, CHOIR = 48, 49, 40, 41, 45, 46, 52
PIANO, ORGAN = 0, 19
# Instruments that carry a part on their own (winds and brass only double: score_render gates them by dynamics).
_ENSEMBLES = {
    "string orchestra": {"melody": [STRINGS], "inner": [STRINGS], "bass": [sr.CELLO, sr.CONTRABASS]},
    "slow strings": {"melody": [SLOW_STRINGS], "inner": [SLOW_STRINGS], "bass": [sr.CELLO]},
    "string quartet": {"melody": [VIOLIN], "inner": [VIOLA], "bass": [sr.CELLO]},
    "pizzicato": {"melody": [PIZZICATO], "inner": [PIZZICATO], "bass": [PIZZICATO]},
    "choir": {"melody": [CHOIR], "inner": [CHOIR], "bass": [CHOIR, sr.CONTRABASS]},
    "organ": {"melody": [ORGAN], "inner": [ORGAN], "bass": [ORGAN]},
    "harp and strings": {"melody": [STRINGS, HARP], "inner": [HARP], "bass": [sr.CELLO]},
    "piano": {"melody": [PIANO], "inner": [PIANO], "bass": [PIANO]},
}
_WIND_DOUBLINGS = ([], [sr.FLUTE], [sr.OBOE], [sr.CLARINET], [sr.FLUTE, sr.OBOE], [sr.TRUMPET])
# SoundFonts the corpus draws each section's instruments from, and how often.
SOUNDFONT_WEIGHTS = {"musescore": 0.45, "fluidr3": 0.35, "timgm6mb": 0.2}
# Film and game scores, most of what users bring, lean on percussion far more than the concert repertoire.
PERCUSSION_CHANCE = 0.5
WRITE_TIMEOUT_S = 120.0  # one excerpt taking longer than this is a runaway and is skipped


class CorpusError(RuntimeError):
    """The corpus cannot be built (no usable works, unwritable output)."""


@dataclass(frozen=True)
class Work:
    path: str  # corpus path with extension, as music21's corpus.parse takes it
    group: str  # opus: every movement of one work shares it
    category: str
    rights: str
    tier: str  # 'stated' (public domain, CC0, CC-BY) or 'unstated'


def rights_tier(rights: str | None) -> str | None:
    """'stated' for an explicitly permissive encoding, 'unstated' for none given, None for anything else."""
    text = (rights or "").strip()
    if not text:
        return "unstated"
    lowered = text.lower()
    if "sa" in lowered.replace("-", " ").split() or "share" in lowered or "non" in lowered:
        return None
    if any(k in lowered for k in ("public domain", "cc0", "(cc-by)", "creative commons license (cc-by)")):
        return "stated"
    return None


def _group_of(path: str) -> str:
    parts = path.rsplit(".", 1)[0].split("/")
    return "/".join(parts[:2])


def work_pool() -> list[Work]:
    """Every usable single-score work of the music21 corpus, with its rights, one format per work."""
    from music21 import corpus

    bundle = corpus.corpora.CoreCorpus().metadataBundle
    by_stem: dict[str, Work] = {}
    for entry in bundle._metadataEntries.values():  # the bundle offers no public iterator over its entries
        path = str(entry.sourcePath)
        top = path.split("/")[0]
        if entry.number is not None and top not in FOLK_DIRS:
            continue  # one tune of a multi-tune file
        if top == "bach":
            category = "chorale"
        elif top in CLASSICAL_DIRS:
            category = "classical"
        elif top in FOLK_DIRS:
            category = "folk"
        else:
            continue
        suffix = path.rsplit(".", 1)[-1]
        if suffix not in ("mxl", "xml", "musicxml", "krn", "abc"):
            continue
        rights = str(entry.metadata.copyright or "")
        tier = rights_tier(rights)
        if tier is None:
            continue
        stem = path.rsplit(".", 1)[0]
        if stem in by_stem and suffix == "krn":
            continue  # MusicXML keeps dynamics and instruments that Humdrum files often lack
        by_stem[stem] = Work(path, _group_of(path), category, rights, tier)
    if not by_stem:
        raise CorpusError("the music21 corpus is missing; install music21 with its corpus")
    return sorted(by_stem.values(), key=lambda w: w.path)


def split_of(group: str) -> str:
    if group in TEST_GROUPS:
        return "test"
    if group in VAL_GROUPS:
        return "val"
    u = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < HASH_TEST_SHARE else "val" if u < HASH_TEST_SHARE + HASH_VAL_SHARE else "train"


# ---------------------------------------------------------------------------------------------------------------
# Performance sampling


def _orchestrator(ensemble: str, winds: list[int], brass: bool, timpani: bool) -> sr.Orchestrator:
    def orchestrate(parts_info, roles, rng):
        out = {}
        for i, role in enumerate(roles):
            if role is None:
                continue
            if role == "solo":
                out[i] = [parts_info[i][1]]
                continue
            programs = list(_ENSEMBLES[ensemble][role])
            if role == "melody":
                programs += winds + ([sr.TRUMPET] if brass and sr.TRUMPET not in winds else [])
            elif role == "inner" and brass:
                programs.append(sr.HORN)
            elif role == "bass" and timpani:
                programs.append(sr.TIMPANI)
            out[i] = programs
        return out

    return orchestrate


def _fermata_positions(score, first: int, last: int) -> list[tuple[float, float]]:
    """(bar position, length in bars) of the first part's fermatas within bars first..last."""
    from music21 import expressions, stream

    out = []
    for m in score.parts[0].getElementsByClass(stream.Measure):
        if m.number is None or not first <= m.number <= last:
            continue
        bar_ql = float(m.barDuration.quarterLength) or 4.0
        for n in m.recurse().notesAndRests:
            if any(isinstance(e, expressions.Fermata) for e in n.expressions):
                offset = float(n.getOffsetInHierarchy(m))
                out.append((m.number + offset / bar_ql, max(float(n.quarterLength), 0.5) / bar_ql))
    return out


def _tempo_curve(first: int, last: int, fermatas, rng) -> tuple[list[tuple[float, float]], list[float], dict]:
    """Tempo multipliers over bar positions: sections with sudden changes, gradual ramps, fermatas, a final rit."""
    points, sections = [(float(first), 1.0)], []
    mult, bar = 1.0, first
    while True:
        bar += int(rng.integers(4, 13))
        if bar >= last:
            break
        new = float(np.clip(mult * math.exp(rng.uniform(-0.3, 0.3)), 0.65, 1.5))
        kind = rng.random()
        if kind < 0.3:  # a new section at a new tempo
            points += [(float(bar), mult), (float(bar), new)]
            sections.append(float(bar))
            mult = new
        elif kind < 0.6:  # accelerando or ritardando into the next phrase
            points += [(float(bar - int(rng.integers(1, 4))), mult), (float(bar), new)]
            mult = new
    ritardando = float(rng.uniform(0.05, 0.3)) if rng.random() < 0.7 else 0.0
    points += [(float(last), mult), (float(last + 1), mult * (1.0 - ritardando))]

    def base(x):
        return float(np.interp(x, [p for p, _ in points], [m for _, m in points]))

    held = [f for f in fermatas if rng.random() < 0.85]
    # Phrase ends without a written fermata still get an occasional breath.
    held += [(float(b) - 0.25, 0.25) for b in sections if rng.random() < 0.3]
    for pos, length in held:
        stretch = float(rng.uniform(0.3, 0.6))
        end = pos + length
        points += [(pos, base(pos)), (pos, base(pos) * stretch), (end, base(end) * stretch), (end, base(end))]
    points.sort(key=lambda p: p[0])
    info = {"ritardando": round(ritardando, 3), "fermatas": len(held), "sections": len(sections)}
    return points, sections, info


def _dynamics(first: int, last: int, rng) -> list[tuple[float, float]]:
    """A random walk of levels, every one to four bars, with an occasional subito."""
    points, bar, level = [], float(first), float(rng.uniform(0.2, 0.8))
    while bar <= last + 1:
        points.append((bar, level))
        step = float(rng.integers(1, 5))
        target = float(np.clip(level + rng.normal(0, 0.25), 0.1, 0.95))
        if rng.random() < 0.15:
            points.append((bar + step, level))  # subito: hold, then jump
        bar += step
        level = target
    return points


@dataclass
class ExcerptSpec:
    index: int
    seed: int
    work: Work
    options: dict  # plan_excerpt keyword arguments
    production: prod.Production
    info: dict  # what was sampled, for the labels file


def _measures(score):
    from music21 import stream

    return list(score.parts[0].getElementsByClass(stream.Measure))


def onsets_per_beat(score, start_q: float, stop_q: float, beat_ql: float) -> float:
    """How busy the music is: distinct note onsets (all parts together) per notated beat between two offsets."""
    onsets = {round(float(n.offset), 3) for n in score.flatten().notes
              if start_q <= float(n.offset) < stop_q and not n.duration.isGrace}
    return len(onsets) / max((stop_q - start_q) / beat_ql, 1.0)


def listener_tempo(busyness: float, slow_beat: bool, rng: np.random.Generator) -> float:
    """A tempo (notated beats per minute) at which a listener taps the notated beat itself, not its half or double.

    Listeners tap between about 55 and 170 per minute and most readily near 105 (the median beat of the real
    recordings in benchmarks/real_music is 107); a compound or half-note beat is felt slower, about 40 to 110 and
    near 70.  Within that, notes faster than about 10 a second become a blur over a slower beat, so a busy surface
    (`busyness`, onsets per beat) caps the tempo; and a surface of long notes slower than about one every 1.3 s
    leaves the beat unheard, so a sparse one raises it.  Drawn log-normally (±22 %) about the preferred tempo and
    kept within what remains.
    """
    low, preferred, high = (40.0, 70.0, 110.0) if slow_beat else (55.0, 105.0, 170.0)
    high = min(high, 600.0 / max(busyness, 1.0))
    low = min(max(low, 45.0 / max(busyness, 0.25)), high)
    return float(np.clip(preferred * math.exp(rng.normal(0.0, 0.22)), low, high))


def sample_voicing(rng: np.random.Generator, soundfonts: Sequence[str]) -> sr.Voicing:
    """How the orchestra of one excerpt plays (see score_render.Voicing): sections of 1-3 players a few cents and
    milliseconds apart, sections entering 10-40 ms apart, articulation, and now and then percussion."""
    weights = np.array([SOUNDFONT_WEIGHTS.get(name, 0.1) for name in soundfonts])
    chosen = rng.choice(len(soundfonts), size=int(rng.integers(1, len(soundfonts) + 1)), replace=False,
                        p=weights / weights.sum())
    percussion = (str(rng.choice(sr.PERCUSSION_STYLES)) if rng.random() < PERCUSSION_CHANCE else None)
    return sr.Voicing(
        soundfonts=tuple(soundfonts[int(i)] for i in sorted(chosen)),
        section_players=int(rng.integers(1, 4)),
        detune_cents=float(rng.uniform(2.0, 12.0)),
        player_spread_s=float(rng.uniform(0.004, 0.02)),
        entrance_spread_s=float(rng.uniform(0.01, 0.04)) / 2,  # two sections then differ by about this much
        score_articulation=bool(rng.random() < 0.8),
        detached=float(rng.uniform(0.0, 1.0)),
        percussion=percussion,
    )


def sample_spec(work: Work, index: int, seed: int,
                soundfonts: Sequence[str] = tuple(SOUNDFONT_WEIGHTS)) -> ExcerptSpec | None:
    """A performance and recording of `work`, or None where the work cannot give a supported excerpt."""
    from music21 import meter

    rng = np.random.default_rng([seed, index])
    score = sr._load_score(work.path)
    measures = _measures(score)
    if len(measures) < 4:
        return None
    whole_piece = work.category in ("chorale", "folk")
    i0 = 0 if whole_piece else int(rng.integers(0, max(1, len(measures) - 16)))
    # A time signature written in the bar itself is not its context's: without it, excerpts from a piece's first
    # bar (every chorale and folk tune) were all drawn as 4/4.
    ts = (measures[i0].timeSignature or measures[i0].getContextByClass(meter.TimeSignature)
          or meter.TimeSignature("4/4"))
    if ts.beatCount not in SUPPORTED_METERS:
        return None
    beat_ql = float(ts.beatDuration.quarterLength)
    compound = ts.beatDivisionCount == 3
    window = measures[i0 : i0 + 16]
    busyness = onsets_per_beat(score, float(window[0].offset),
                               float(window[-1].offset) + float(window[-1].duration.quarterLength), beat_ql)
    tempo = listener_tempo(busyness, compound or beat_ql >= 2, rng)
    seconds = float(rng.uniform(62.0, 72.0))
    elapsed, i1 = 0.0, i0
    for i1 in range(i0, len(measures)):
        elapsed += float(measures[i1].duration.quarterLength) / beat_ql * 60.0 / tempo
        if not whole_piece and elapsed >= seconds:
            break
    first, last = measures[i0].number, measures[i1].number
    if first is None or last is None or last <= first:
        return None
    curve, sections, curve_info = _tempo_curve(first, last, _fermata_positions(score, first, last), rng)
    ensemble = str(rng.choice(list(_ENSEMBLES)))
    winds = list(_WIND_DOUBLINGS[int(rng.integers(len(_WIND_DOUBLINGS)))])
    brass, timpani = bool(rng.random() < 0.35), bool(rng.random() < 0.5)
    voicing = sample_voicing(rng, soundfonts)
    phrase = (int(rng.choice([2, 4, 8])), float(rng.uniform(0.05, 0.25))) if rng.random() < 0.7 else None
    options = dict(
        start_bar=first, n_bars=i1 - i0 + 1, tempo_bpm=tempo, tempo_curve=curve,
        rubato=float(rng.uniform(0.0, 0.06)),
        dynamics=_dynamics(first, last, rng) if rng.random() < 0.5 else None,
        instrumentation=(_orchestrator(ensemble, winds, brass, timpani) if rng.random() < 0.75 else None),
        lead_in=float(rng.uniform(0.2, 2.0)), seed=int(rng.integers(2**31)),
        voicing=voicing, phrase_lengthening=phrase,
    )
    info = {"tempo_bpm": round(tempo, 2), "onsets_per_beat": round(busyness, 3), "sections_at_bars": sections,
            **curve_info, "ensemble": ensemble if options["instrumentation"] else "score_render default",
            "wind_doublings": winds, "brass": brass, "timpani": timpani,
            "score_dynamics": options["dynamics"] is None, "rubato": round(options["rubato"], 4),
            "phrase_lengthening": phrase,
            "voicing": {k: round(v, 4) if isinstance(v, float) else v for k, v in voicing.__dict__.items()}}
    return ExcerptSpec(index, seed, work, options, prod.sample_production(rng), info)


# ---------------------------------------------------------------------------------------------------------------
# Augmentation


def _biquad(kind: str, freq: float, gain_db: float, rate: int, q: float = 0.7) -> np.ndarray:
    """One second-order section (RBJ audio-EQ cookbook) as a scipy 'sos' row."""
    a = 10 ** (gain_db / 40)
    w = 2 * math.pi * freq / rate
    alpha = math.sin(w) / (2 * q)
    cos = math.cos(w)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        sq = 2 * math.sqrt(a) * alpha
        sign = 1 if kind == "low" else -1
        b = [a * ((a + 1) - sign * (a - 1) * cos + sq), sign * 2 * a * ((a - 1) - sign * (a + 1) * cos),
             a * ((a + 1) - sign * (a - 1) * cos - sq)]
        den = [(a + 1) + sign * (a - 1) * cos + sq, -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
               (a + 1) + sign * (a - 1) * cos - sq]
    return np.array(b + den) / den[0]


def _pink_noise(n: int, rng) -> np.ndarray:
    from scipy.fft import irfft, next_fast_len, rfft

    # An FFT of a length with a large prime factor takes seconds; a fast length is cut to n afterwards.
    size = next_fast_len(n, real=True)
    spectrum = rfft(rng.standard_normal(size))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))
    noise = irfft(spectrum, size)[:n]
    return noise / (np.std(noise) + 1e-12)


def augment(audio: np.ndarray, rate: int, rng) -> tuple[np.ndarray, dict]:
    """EQ, background noise and level on stereo audio; returns the mono mix at SAMPLE_RATE and the parameters."""
    import soxr
    from scipy.signal import sosfilt

    sos = np.stack([
        _biquad("low", rng.uniform(80, 300), rng.uniform(-6, 6), rate),
        _biquad("peak", math.exp(rng.uniform(math.log(300), math.log(3000))), rng.uniform(-6, 6), rate),
        _biquad("high", rng.uniform(2500, min(8000, 0.4 * rate)), rng.uniform(-9, 6), rate),
    ])
    mono = sosfilt(sos, audio.astype(np.float64).mean(axis=1))
    snr_db = float(rng.uniform(12, 45)) if rng.random() < 0.6 else None
    if snr_db is not None:
        signal_rms = np.sqrt(np.mean(mono**2)) + 1e-12
        mono = mono + _pink_noise(len(mono), rng) * signal_rms * 10 ** (-snr_db / 20)
    level_db = float(rng.uniform(-30, 0))
    mono *= 10 ** (level_db / 20) / (np.max(np.abs(mono)) + 1e-12)
    mono = np.round(mono * 32767) / 32767  # a 16-bit file at that level
    if rate != SAMPLE_RATE:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, "HQ")
    params = {"eq": [[round(float(v), 4) for v in row] for row in sos],
              "snr_db": None if snr_db is None else round(snr_db, 2), "level_db": round(level_db, 2)}
    return mono.astype(np.float32), params


# ---------------------------------------------------------------------------------------------------------------
# Labels beyond beats: held notes, loudness, and the conductor driven by them


def held_mask(perf: sr.Performance, n_frames: int) -> np.ndarray:
    """30 fps frames where notes sound but none starts for at least two beats: held chords and fermatas."""
    notes = np.concatenate([c.notes for c in perf.channels])
    onsets = np.unique(np.round(notes[:, 0], 3))
    beats = perf.labels.beats
    t = np.arange(n_frames) / FPS
    sounding = np.zeros(n_frames, bool)
    for start, end in notes[:, :2]:
        sounding[int(math.ceil(start * FPS)):int(end * FPS) + 1] = True
    held = np.zeros(n_frames, bool)
    ibi = np.median(np.diff(beats)) if len(beats) > 1 else 0.5
    for a, b in zip(onsets[:-1], np.append(onsets[1:], perf.end_time)):
        local = np.interp(a, beats[1:], np.diff(beats)) if len(beats) > 1 else ibi
        if b - a >= 2 * local:
            # The attack itself is not part of the hold.
            held[(t >= a + 0.1) & (t < b)] = True
    return held & sounding


def loudness_curve(labels: sr.ExcerptLabels, n_frames: int) -> np.ndarray:
    """The score's dynamics as the analysis reports loudness: 0..1 over 36 dB below the excerpt's loudest level."""
    from ..core.analysis import LOUDNESS_RANGE_DB

    level = np.interp(np.arange(n_frames) / FPS, labels.loudness.times, labels.loudness.levels)
    db = -sr.DYNAMIC_RANGE_DB * (1.0 - level)
    return np.clip((db - db.max() + LOUDNESS_RANGE_DB) / LOUDNESS_RANGE_DB, 0.0, 1.0).astype(np.float32)


def subdivision_of(meter: str) -> int:
    from music21 import meter as m21meter

    return 3 if m21meter.TimeSignature(meter).beatDivisionCount == 3 else 2


def true_analysis(audio: Audio, spectral, perf: sr.Performance):
    """A MusicAnalysis whose beats, bars, meter, loudness and holds are the score's; silences come from the audio."""
    labels = perf.labels
    analysis = assemble_analysis(audio, spectral, labels.beats, labels.downbeats, labels.beats_per_bar,
                                 subdivision_of(labels.meter), "score")
    loudness = loudness_curve(labels, analysis.n_frames)
    loudness[analysis.silent] = 0.0
    return replace(analysis, loudness=loudness, held=held_mask(perf, analysis.n_frames) & ~analysis.silent)


# ---------------------------------------------------------------------------------------------------------------
# The build


def _write_flac(path: Path, samples: np.ndarray) -> None:
    import soundfile as sf

    sf.write(str(path), samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def build_excerpt(spec: ExcerptSpec, split_dir: Path, cm100_dir: Path | None, cm100_index: int | None,
                  keep_audio: bool) -> dict:
    """Render, augment, label and write one excerpt; returns its labels record."""
    from ..generators.procedural import conduct

    started = time.perf_counter()
    perf = sr.plan_excerpt(spec.work.path, **spec.options)
    if perf.labels.beats_per_bar not in SUPPORTED_METERS or len(perf.labels.beats) < 8:
        raise ValueError(f"unsupported excerpt: {perf.labels.meter}, {len(perf.labels.beats)} beats")
    rng = np.random.default_rng([spec.seed, spec.index, 1])
    # Rendered and recorded at the analysis rate, as everything above it is lost when the add-on loads the audio;
    # the delivery rate and codec still act on it.
    stereo, rate = prod.produce(sr.render_stems(perf, rate=SAMPLE_RATE), SAMPLE_RATE, spec.production, rng)
    mono, aug = augment(stereo, rate, rng)
    name = f"{split_dir.name}{spec.index:05d}"
    audio = Audio(samples=mono, sample_rate=SAMPLE_RATE, path=split_dir / f"{name}.flac", sha256="")
    spectral = compute_spectral(audio)
    analysis = true_analysis(audio, spectral, perf)

    labels = perf.labels
    record = {
        "id": name, **labels.to_json(), "subdivision": subdivision_of(labels.meter),
        "duration": round(audio.duration, 4), "corpus_path": spec.work.path, "group": spec.work.group,
        "category": spec.work.category, "rights": spec.work.rights, "rights_tier": spec.work.tier,
        "section_times": [round(t, 4) for t in _section_times(perf, spec)],
        "performance": spec.info, "production": spec.production.to_json(), "augmentation": aug,
        "held_seconds": round(float(analysis.held.sum()) / FPS, 2),
    }
    np.savez_compressed(
        split_dir / f"{name}.npz", log_mel=spectral.log_mel.T.astype(np.float16),
        beats=labels.beats, downbeats=labels.downbeats, held=analysis.held, loudness=analysis.loudness)
    if keep_audio:
        _write_flac(audio.path, mono)
    if cm100_dir is not None and cm100_index is not None and audio.duration >= CM100_SECONDS:
        clip = Audio(samples=mono[: CM100_SECONDS * SAMPLE_RATE], sample_rate=SAMPLE_RATE, path=audio.path,
                     sha256="")
        mel = official_mel(clip)
        motion = conduct(analysis, seed=spec.seed + spec.index)[: CM100_SECONDS * FPS]
        folder = cm100_dir / str(cm100_index)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "mel.npy", mel.astype(np.float32))
        np.save(folder / "motion.npy", motion.astype(np.float32))
        for label, times in (("beats", labels.beats), ("downbeats", labels.downbeats)):
            times = np.asarray(times, dtype=np.float64)
            np.save(folder / f"{label}.npy", times[times < CM100_SECONDS])
        record["cm100"] = cm100_index
    record["build_seconds"] = round(time.perf_counter() - started, 2)
    (split_dir / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def _section_times(perf: sr.Performance, spec: ExcerptSpec) -> list[float]:
    """Seconds of the sampled section boundaries (bar numbers) in the rendered audio."""
    bars = spec.info["sections_at_bars"]
    if not bars:
        return []
    first_bar = perf.labels.bars[0]
    db = perf.labels.downbeats
    # Downbeat j is bar first_bar + j, or first_bar + 1 + j after a pickup.
    offset = 1 if len(perf.labels.beats) and perf.labels.beats[0] < db[0] - 1e-6 else 0
    out = []
    for bar in bars:
        j = int(bar) - first_bar - offset
        if 0 <= j < len(db):
            out.append(float(db[j]))
    return out


Progress = Callable[[str], None]


def _existing(split_dir: Path) -> dict[int, dict]:
    done = {}
    for path in split_dir.glob("*.json"):
        record = json.loads(path.read_text())
        done[int(record["id"][len(split_dir.name):])] = record
    return done


def work_sequence(works: Sequence[Work], split: str, seed: int):
    """The endless, seeded order in which `split` plays its works, one work per excerpt index.

    A long movement is visited for several excerpts in a row (different bars, different performances), so each
    score is parsed once per visit rather than once per excerpt.
    """
    by_category: dict[str, list[Work]] = {}
    for w in works:
        by_category.setdefault(w.category, []).append(w)
    categories = [c for c in CATEGORY_WEIGHTS if c in by_category]
    weights = np.array([CATEGORY_WEIGHTS[c] for c in categories])
    weights /= weights.sum()
    # Named test works are each played once before any sampling, so every one of them is benchmarked.
    yield from (w for w in works if split == "test" and w.group in TEST_GROUPS)
    for visit in range(10**9):
        rng = np.random.default_rng([seed, visit, 7, SPLITS.index(split)])
        category = categories[int(rng.choice(len(categories), p=weights))]
        groups = sorted({w.group for w in by_category[category]})
        group = groups[int(rng.integers(len(groups)))]
        members = [w for w in by_category[category] if w.group == group]
        work = members[int(rng.integers(len(members)))]
        yield from [work] * (int(rng.integers(2, 6)) if category == "classical" else 1)


def build_split(out: Path, split: str, hours: float, works: Sequence[Work], seed: int, keep_audio: bool,
                cm100: bool, log: Progress, soundfonts: Sequence[str] = tuple(SOUNDFONT_WEIGHTS)) -> list[dict]:
    """Excerpts of `split` until `hours` of audio exist; resumes from what is already on disk."""
    split_dir = out / split
    split_dir.mkdir(parents=True, exist_ok=True)
    cm100_dir = out / "cm100" / split if cm100 else None
    records = _existing(split_dir)
    total = sum(r["duration"] for r in records.values())
    failures = 0
    next_cm100 = 1 + max((r.get("cm100", -1) for r in records.values()), default=-1)
    for index, work in enumerate(work_sequence(works, split, seed)):
        if total >= hours * 3600.0:
            break
        if index in records:
            continue
        try:
            spec = sample_spec(work, index, seed, soundfonts)
            if spec is None:
                raise ValueError("no supported excerpt")
            record = build_excerpt(spec, split_dir, cm100_dir, next_cm100, keep_audio or split == "test")
        except Exception as exc:  # a corpus file music21 or the renderer cannot handle: skip it, keep building
            failures += 1
            log(f"{split} #{index} {work.path}: skipped ({type(exc).__name__}: {str(exc)[:120]})")
            if failures > 50 and failures > index // 2:
                raise CorpusError(f"most excerpts of {split} fail; last error: {exc}") from exc
            continue
        records[index] = record
        if "cm100" in record:
            next_cm100 += 1
        total += record["duration"]
        log(f"{split} #{index} {work.path} {record['meter']} {record['duration']:.0f} s "
            f"({record['build_seconds']:.1f} s): {total / 3600:.2f}/{hours:.2f} h")
    return [records[i] for i in sorted(records)]


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def install_soundfonts(names: Sequence[str], log: Progress = print) -> None:
    """Install with apt the Debian packages of the SoundFonts in `names` that are missing; a CorpusError saying what
    to install where that cannot be done here."""
    import shutil
    import subprocess

    missing = sorted({sr.SOUNDFONTS[n][0] for n in names if sr.SOUNDFONTS[n][1] is not None
                      and not sr.SOUNDFONTS[n][1].is_file()})
    if not missing:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if shutil.which("apt-get") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise CorpusError(f"the SoundFonts need installing: run `sudo {' '.join(command)}` or pass --soundfonts "
                          "timgm6mb")
    log(f"installing {', '.join(missing)}")
    if subprocess.run(command, stdout=subprocess.DEVNULL).returncode != 0:
        raise CorpusError(f"`{' '.join(command)}` failed; install the SoundFonts or pass --soundfonts timgm6mb")


def build(out: Path, hours: float, val_hours: float, test_hours: float, seed: int = 0,
          keep_audio: bool = False, cm100: bool = True, log: Progress = print,
          soundfonts: Sequence[str] = tuple(SOUNDFONT_WEIGHTS)) -> dict:
    """Build (or finish building) the corpus under `out`; returns and writes its manifest ``corpus.json``."""
    out = Path(out)
    install_soundfonts(soundfonts, log)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CorpusError(f"cannot create {out}: {exc}") from exc
    started = time.perf_counter()
    works = work_pool()
    manifest = {
        "recipe": f"python -m gm_blender_addon.training.corpus --out {out} --hours {hours} "
                  f"--val-hours {val_hours} --test-hours {test_hours} --seed {seed}"
                  + (" --keep-audio" if keep_audio else "") + ("" if cm100 else " --no-cm100")
                  + ("" if tuple(soundfonts) == tuple(SOUNDFONT_WEIGHTS) else f" --soundfonts {','.join(soundfonts)}"),
        "seed": seed, "soundfonts": {name: str(sr.soundfont_path(name)) for name in soundfonts},
        "excluded_corpus_folders": EXCLUDED, "splits": {},
    }
    for split, target in zip(SPLITS, (test_hours, val_hours, hours)):
        split_works = [w for w in works if split_of(w.group) == split]
        records = build_split(out, split, target, split_works, seed, keep_audio, cm100, log, soundfonts)
        manifest["splits"][split] = {
            "excerpts": len(records),
            "hours": round(sum(r["duration"] for r in records) / 3600, 3),
            "cm100_items": sum("cm100" in r for r in records),
            "works": sorted({r["corpus_path"] for r in records}),
            "groups": sorted({w.group for w in split_works}),
            "rights_tiers": {t: sum(r["rights_tier"] == t for r in records) for t in ("stated", "unstated")},
            "meters": {m: sum(r["meter"] == m for r in records) for m in sorted({r["meter"] for r in records})},
            "build_seconds": round(sum(r["build_seconds"] for r in records), 1),
        }
    manifest["bytes"] = folder_bytes(out)
    manifest["this_run_seconds"] = round(time.perf_counter() - started, 1)
    (out / "corpus.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _soundfont_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in sr.SOUNDFONTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"SoundFonts are {', '.join(sr.SOUNDFONTS)}; got {text!r}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gm_blender_addon.training.corpus",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hours", type=float, required=True, help="hours of training audio")
    parser.add_argument("--val-hours", type=float, help="default: 6 %% of --hours, at least 0.1")
    parser.add_argument("--test-hours", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-audio", action="store_true", help="also keep FLAC audio of train and val")
    parser.add_argument("--no-cm100", action="store_true", help="skip the ConductorMotion100 export")
    parser.add_argument("--soundfonts", type=_soundfont_names, default=tuple(SOUNDFONT_WEIGHTS),
                        help=f"comma-separated SoundFonts to draw from (default {','.join(SOUNDFONT_WEIGHTS)})")
    args = parser.parse_args(argv)
    val_hours = args.val_hours if args.val_hours is not None else max(0.1, 0.06 * args.hours)

    def log(message: str) -> None:
        print(time.strftime("%H:%M:%S"), message, flush=True)

    try:
        manifest = build(args.out, args.hours, val_hours, args.test_hours, args.seed, args.keep_audio,
                         not args.no_cm100, log, args.soundfonts)
    except CorpusError as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 1
    log(json.dumps({k: v for k, v in manifest.items() if k != "excluded_corpus_folders"})[:2000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
