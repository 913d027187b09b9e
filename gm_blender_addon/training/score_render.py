"""Expressive orchestral renders of public-domain score excerpts, with exact beat labels.

Path: music21 corpus score -> excerpt bars at sounding pitch with ties merged -> a tempo
map and a dynamics envelope -> note and controller events per General MIDI program ->
tinysoundfont, one stereo stem per instrument section (each player of a section rendered
apart, slightly detuned and early or late) -> summed with reverb, peak normalisation to
-1 dBFS; or, for the training corpus, placed in a synthesised hall by
:mod:`production`.  The General MIDI banks: TimGM6mb.sf2 shipped inside the pretty_midi
wheel (the demo's), and Debian's FluidR3 and MuseScore General SoundFonts (MIT; see
``SOUNDFONTS``), which a :class:`Voicing` chooses per section.

Beats and downbeats come from the score's measures (pickups included, compound meters
counted in dotted beats through ``TimeSignature.beatDuration``) and are mapped through
the very tempo map that places the notes, so they are exact labels of the audio.

The synthesiser is driven event by event into a buffer whose length is fixed before
rendering (last note-off plus a release tail), so no MIDI file is handed to a player and
the runaway renders seen with raw music21 MIDI cannot happen.

Run ``python -m gm_blender_addon.training.score_render --demo gm_blender_addon/data/demo``
to rebuild the add-on's demo clip.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

SOUNDFONT_NAME = "TimGM6mb.sf2"
# General MIDI SoundFonts by name -> (Debian package that installs it, path); TimGM6mb comes
# with pretty_midi.  All three are MIT-licensed or distributed under GPL-2 by Debian; none
# of them ships with the add-on, they only render the training corpus.
SOUNDFONTS = {
    "timgm6mb": (None, None),
    "fluidr3": ("fluid-soundfont-gm", Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")),
    "musescore": ("musescore-general-soundfont-lossless",
                  Path("/usr/share/sounds/sf2/MuseScore_General_Full.sf2")),
}
# Sections are synthesised at this rate unless asked otherwise, and resampled afterwards; a
# SoundFont's samples are loaded once per process and rate (MuseScore General's take 4 s and
# 1 GB).
SYNTH_RATE = 44100

# A level of 1.0 plays at full scale and 0.0 this many dB below it (before the final
# peak normalisation); half of the gain rides on note velocity, half on CC11 expression,
# so attacks change timbre while sustained notes can still swell.
DYNAMIC_RANGE_DB = 24.0

# Orchestrators add wind doublings from about mezzo-forte and brass and timpani only
# in tutti passages; these levels gate those doublings.
_WIND_DOUBLING_LEVEL = 0.5
_TUTTI_LEVEL = 0.6

_MARKING_LEVELS = {
    "pppp": 0.05, "ppp": 0.1, "pp": 0.2, "p": 0.32, "mp": 0.45, "mf": 0.55,
    "f": 0.7, "ff": 0.85, "fff": 0.95, "fp": 0.32, "sf": 0.75, "sfz": 0.8,
    "rf": 0.7, "rfz": 0.75,
}

STRINGS, CELLO, CONTRABASS, TIMPANI = 48, 42, 43, 47
TRUMPET, HORN, OBOE, BASSOON, CLARINET, FLUTE = 56, 60, 68, 70, 71, 73

# TimGM6mb presets differ by up to 10 dB at equal velocity (measured on C4); these
# channel-volume offsets (dB) balance the sections against the string ensemble.
_BALANCE_DB = {
    CELLO: -4.0, CONTRABASS: -5.0, TIMPANI: -4.0, TRUMPET: -8.0, HORN: -10.0,
    OBOE: -11.0, BASSOON: -7.0, CLARINET: -1.0, FLUTE: -11.0,
}
_SOLO_BOOST_DB = 3.0

# Concert seating: violins left, violas and cellos right, basses far right,
# winds centre, soloist in front.
_PAN = {
    (STRINGS, "melody"): 34, (STRINGS, "inner"): 80, (STRINGS, "bass"): 90,
    CELLO: 88, CONTRABASS: 100, TIMPANI: 60, TRUMPET: 84, HORN: 44,
    OBOE: 70, FLUTE: 56, CLARINET: 62, BASSOON: 74,
}

# Players start slow-speaking instruments early so that the attack lands on the beat.
# Seconds from note-on to the onset-strength peak of each TimGM6mb preset (librosa,
# notes around C4) beyond the 20 ms that a click itself shows; the labels stay on the
# beat.  Without this, librosa's beats sat 50-60 ms late and missed a 70 ms window.
_SPEECH_S = {
    STRINGS: 0.035, CELLO: 0.02, CONTRABASS: 0.015, CLARINET: 0.02, FLUTE: 0.04,
    OBOE: 0.03, BASSOON: 0.03, HORN: 0.03, TRUMPET: 0.02, TIMPANI: 0.01,
}

_GRID_QL = 1.0 / 48.0  # tempo-map resolution in quarter lengths (finer than any tuplet)
_EPS = 1e-6
RELEASE_TAIL_S = 1.5  # audio continues this long after the last note-off

DEMO_SPEC = dict(
    work="weber/concertino_clarinet",
    start_bar=147,
    n_bars=16,
    tempo_bpm=100.0,  # the encoding's own mark: dotted quarter = 100
    ritardando=0.1,
    rubato=0.015,
    lead_in=1.0,
    seed=7,
    # A classical orchestra of the Concertino's kind around the solo clarinet: strings,
    # flute, oboe, bassoon, horns, trumpets and timpani.
    instrumentation={
        0: [CLARINET],
        1: [STRINGS, FLUTE, OBOE, HORN, TRUMPET],
        2: [CELLO, CONTRABASS, BASSOON, TIMPANI],
    },
    # Bar positions (bar + fraction of the bar) -> level: the clarinet's theme stays p,
    # a crescendo through bars 153-154 brings in the tutti, which grows to the cadence.
    dynamics=[
        (147.0, 0.32), (153.0, 0.34), (155.0, 0.8), (157.0, 0.78), (159.0, 0.85),
        (161.0, 0.9), (163.0, 0.95),
    ],
)
DEMO_SAMPLE_RATE = 44100
DEMO_TITLE = ("Carl Maria von Weber, Concertino for clarinet, Op. 26: start of the Allegro "
              "finale, bars 147-162 (clarinet theme, orchestral tutti, perfect cadence in "
              "E-flat), orchestrated from the clarinet-and-piano reduction")
DEMO_LICENCE = (
    "Composition: C. M. von Weber (1786-1826), public domain. Encoding: music21 corpus "
    "file weber/concertino_clarinet.mxl (clarinet and piano reduction by Oliver Seely); "
    "its MusicXML <rights> reads 'Released to Public Domain in 1998' and its credits read "
    "'Copyright (c) 1998 by Oliver Seely and assigned to the public domain.' Rendered with "
    "the TimGM6mb.sf2 General MIDI bank bundled in the pretty_midi wheel (Tim Brechbill's "
    "bank, long shipped with MuseScore); neither the file nor the wheel states its licence, "
    "Linux distributions package it as GPL-2."
)
DEMO_RECIPE = "python -m gm_blender_addon.training.score_render --demo gm_blender_addon/data/demo"


# (parts_info, roles, rng) -> {part index: GM programs}; parts_info lists (name, own GM
# program or None, median MIDI pitch or None) and roles are 'solo', 'melody', 'inner',
# 'bass' or None (a silent part), as plan_excerpt computes them.
Orchestrator = Callable[[list, list, np.random.Generator], dict]


class Envelope(NamedTuple):
    """Dynamics envelope applied to a render: level 0..1 (about pp=0.2, ff=0.85)."""

    times: np.ndarray
    levels: np.ndarray


@dataclass
class ExcerptLabels:
    """Ground truth of one planned excerpt; times in seconds from the start of the audio.

    ``meter`` and ``beats_per_bar`` describe the first bar; beats and downbeats follow
    any later change of meter.
    """

    work: str
    bars: tuple[int, int]
    meter: str
    beats_per_bar: int
    tempo_bpm: float
    beats: np.ndarray
    downbeats: np.ndarray
    loudness: Envelope
    instrumentation: dict[str, list[int]]
    seed: int

    def to_json(self) -> dict:
        return {
            "work": self.work,
            "bars": list(self.bars),
            "meter": self.meter,
            "beats_per_bar": self.beats_per_bar,
            "tempo_bpm": round(float(self.tempo_bpm), 3),
            "beats": _rounded(self.beats, 6),
            "downbeats": _rounded(self.downbeats, 6),
            "loudness": {"times": _rounded(self.loudness.times, 3),
                         "levels": _rounded(self.loudness.levels, 3)},
            "instrumentation": self.instrumentation,
            "seed": self.seed,
        }


@dataclass
class RenderedExcerpt(ExcerptLabels):
    """Labels plus the audio: float32, shape (n,) or (n, 2), peak at -1 dBFS."""

    audio: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def to_json(self) -> dict:
        return {**super().to_json(), "sample_rate": self.sample_rate,
                "duration": round(self.duration, 6)}


@dataclass
class _Channel:
    program: int  # GM program, or the drum kit's preset for a percussion channel
    pan: int
    volume: int
    notes: np.ndarray  # rows: start s, end s, MIDI pitch, velocity
    role: str = "inner"
    soundfont: str = "timgm6mb"
    players: int = 1
    drums: bool = False


@dataclass(frozen=True)
class Voicing:
    """How the players sound: where each section's instruments come from, how many play
    it, how together they are, how they articulate and whether percussion joins in.

    The default is the demo's sound: one TimGM6mb preset per program, as written."""

    soundfonts: tuple[str, ...] = ("timgm6mb",)  # each section draws one of these
    section_players: int = 1  # players of each string and choir section
    detune_cents: float = 0.0  # spread of those players' tuning
    player_spread_s: float = 0.0  # spread of their onsets, note by note
    entrance_spread_s: float = 0.004  # spread of the sections' timing against each other
    score_articulation: bool = False  # staccato and accents as the score marks them
    detached: float = 0.0  # 0 plays notes almost their written length, 1 clearly apart
    percussion: str | None = None  # a percussion part in one of PERCUSSION_STYLES


# Programs played by a section of several players.
_SECTION_PROGRAMS = frozenset(range(40, 53))


@dataclass
class Performance:
    """Everything needed to synthesise an excerpt; labels are final before any audio."""

    labels: ExcerptLabels
    channels: list[_Channel]
    expression: tuple[np.ndarray, np.ndarray]  # times (s), CC11 values
    end_time: float  # last note-off
    voicing: "Voicing"


@dataclass(frozen=True)
class _Bar:
    number: int
    start: float  # quarter lengths from the excerpt start
    end: float
    nominal_start: float  # where a complete bar would start (earlier for a pickup)
    bar_ql: float
    beat_ql: float
    beats_per_bar: int
    meter: str


class _Note(NamedTuple):
    on: float
    off: float
    pitches: tuple[int, ...]
    accent_db: float = 0.0


# Share of the written length a note sounds with the score's articulation marks, and the
# extra loudness of accents (dB).
_ARTICULATION_LENGTH = {"Staccatissimo": 0.3, "Staccato": 0.5, "Spiccato": 0.5}
_ACCENT_DB = {"Accent": 4.0, "StrongAccent": 6.0}


def soundfont_path(name: str = "timgm6mb") -> Path:
    """The file of a SoundFont of ``SOUNDFONTS``; TimGM6mb.sf2 comes from the installed
    pretty_midi wheel, located without importing it."""
    if name not in SOUNDFONTS:
        raise ValueError(f"unknown SoundFont {name!r}; known: {', '.join(SOUNDFONTS)}")
    package, path = SOUNDFONTS[name]
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: install it with apt-get install {package}")
        return path
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("pretty_midi is not installed; it ships " + SOUNDFONT_NAME)
    path = Path(spec.origin).parent / SOUNDFONT_NAME
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


@functools.lru_cache(maxsize=8)
def _load_score(work: str):
    from music21 import corpus, stream

    score = corpus.parse(work)
    if not isinstance(score, stream.Score):
        raise ValueError(f"{work} is not a single score (music21 {type(score).__name__})")
    return score


def _rounded(values, digits: int) -> list[float]:
    return [round(float(v), digits) for v in values]


def time_signatures(measures) -> list:
    """The time signature in force in each of `measures` (music21's): a measure's own first, as the context search
    from a measure does not look inside it."""
    from music21 import meter

    current = measures[0].getContextByClass(meter.TimeSignature) or meter.TimeSignature("4/4")
    out = []
    for m in measures:
        current = m.timeSignature or current
        out.append(current)
    return out


def _score_tempo(score, start_offset: float, beat_ql: float) -> float | None:
    from music21 import tempo

    part = score.parts[0]
    marks = [(float(mm.getOffsetInHierarchy(part)), mm)
             for mm in part.recurse().getElementsByClass(tempo.MetronomeMark)]
    marks = [(o, mm) for o, mm in marks
             if o <= start_offset + _EPS and mm.getQuarterBPM() is not None]
    if not marks:
        return None
    return marks[-1][1].getQuarterBPM() / beat_ql


def _bar_table(measures, signatures, score_starts_here: bool) -> list[_Bar]:
    bars = []
    origin = float(measures[0].offset)
    for i, (m, ts) in enumerate(zip(measures, signatures)):
        start = float(m.offset) - origin
        bar_ql = float(ts.barDuration.quarterLength)
        end = (float(measures[i + 1].offset) - origin if i + 1 < len(measures)
               else start + min(float(m.duration.quarterLength), bar_ql))
        padding = float(m.paddingLeft)
        # Some encodings leave paddingLeft unset on an anacrusis; only the score's
        # first bar can be one.
        if i == 0 and score_starts_here and padding == 0 and end - start < bar_ql - _EPS:
            padding = bar_ql - (end - start)
        bars.append(_Bar(int(m.number), start, end, start - padding, bar_ql,
                         float(ts.beatDuration.quarterLength), int(ts.beatCount),
                         ts.ratioString))
    return bars


def _beats(bars: Sequence[_Bar], end_q: float) -> tuple[np.ndarray, np.ndarray]:
    beats, downbeats = [], []
    for bar in bars:
        for k in range(int(math.ceil(bar.bar_ql / bar.beat_ql - _EPS))):
            q = bar.nominal_start + k * bar.beat_ql
            if q < bar.start - _EPS or q >= min(bar.end, end_q) - _EPS:
                continue
            beats.append(q)
            if k == 0:
                downbeats.append(q)
    return np.asarray(beats), np.asarray(downbeats)


def _bar_of(bars: Sequence[_Bar], q: float) -> _Bar:
    starts = [b.start for b in bars]
    return bars[max(0, int(np.searchsorted(starts, q + _EPS, side="right")) - 1)]


def _beat_accent(bars: Sequence[_Bar], q: float) -> float:
    """2 on a downbeat, 1 on another beat, 0 off the beat."""
    bar = _bar_of(bars, q)
    pos = (q - bar.nominal_start) / bar.beat_ql
    if abs(pos - round(pos)) > 1e-4:
        return 0.0
    return 2.0 if round(pos) % bar.beats_per_bar == 0 else 1.0


def _bar_position_to_q(bars: Sequence[_Bar], position: float, end_q: float) -> float:
    number = math.floor(position + _EPS)
    if number < bars[0].number:
        return 0.0
    if number > bars[-1].number:
        return end_q
    bar = next(b for b in bars if b.number >= number)
    return float(np.clip(bar.nominal_start + (position - number) * bar.bar_ql, 0.0, end_q))


def _bar_starts(part, bars: Sequence[_Bar]) -> dict[int, float]:
    """Excerpt offset of each of a part's measures, by identity, from the reference bars.

    Parts of one score can drift apart in absolute offset (an overfull bar in one staff
    of the Weber encoding shifts every later bar of that staff), so everything is
    anchored to the bar it is written in.
    """
    from music21 import stream

    return {id(m): bar.start for bar, m in zip(bars, part.getElementsByClass(stream.Measure))}


def _anchored_offset(el, starts: Mapping[int, float]) -> float | None:
    from music21 import stream

    m = el.getContextByClass(stream.Measure)
    if m is None or id(m) not in starts:
        return None
    return starts[id(m)] + float(el.getOffsetInHierarchy(m))


def _part_notes(part, bars: Sequence[_Bar], articulation: bool = False) -> list[_Note]:
    """The part's notes; with ``articulation``, shortened and accented as the score marks."""
    from music21 import stream

    notes = []
    for bar, m in zip(bars, part.stripTies().getElementsByClass(stream.Measure)):
        for el in m.recurse().notes:
            pitches = tuple(p.midi for p in getattr(el, "pitches", ()))
            if not pitches or el.duration.isGrace or el.quarterLength <= 0:
                continue
            on = bar.start + float(el.getOffsetInHierarchy(m))
            length, accent = float(el.quarterLength), 0.0
            if articulation:
                marks = [type(a).__name__ for a in el.articulations]
                length *= min([_ARTICULATION_LENGTH.get(k, 1.0) for k in marks], default=1.0)
                accent = max([_ACCENT_DB.get(k, 0.0) for k in marks], default=0.0)
            notes.append(_Note(on, on + length, pitches, accent))
    return sorted(notes)


def _tempo_multiplier(bars, end_q, tempo_curve, ritardando, accelerando, rubato, rng,
                      phrase_lengthening=None):
    """Tempo factor as a function of quarter-length offset."""
    phrase_ends = []
    if phrase_lengthening is not None:
        phrase_bars, _ = phrase_lengthening
        phrase_ends = [(b.end, b.beat_ql) for i, b in enumerate(bars)
                       if (i + 1) % phrase_bars == 0 and b.end < end_q - _EPS]
    if rubato:
        periods = rng.uniform(3.0, 9.0, 3)  # in beats: phrase-scale push and pull
        phases = rng.uniform(0, 2 * np.pi, 3)

    def multiplier(q):
        if tempo_curve is not None:
            # A stable sort by position alone keeps two points at one position as a step.
            points = sorted(((_bar_position_to_q(bars, p, end_q), m) for p, m in tempo_curve),
                            key=lambda point: point[0])
            mult = np.interp(q, [p for p, _ in points], [m for _, m in points])
        else:
            mult = np.ones_like(q)
            if accelerando:
                mult *= np.interp(q, [0.15 * end_q, 0.55 * end_q], [1.0, 1.0 + accelerando])
            if ritardando:
                last = bars[-1]
                span = max(last.bar_ql, 2 * last.beat_ql)
                mult *= np.interp(q, [end_q - span, end_q], [1.0, 1.0 - ritardando])
        if rubato:
            beats = q / bars[0].beat_ql
            wave = sum(np.sin(2 * np.pi * beats / p + ph) for p, ph in zip(periods, phases))
            mult = mult * (1.0 + rubato * wave / np.max(np.abs(wave)))
        for end, beat_ql in phrase_ends:
            # The last beat of a phrase broadens towards the bar line, and the next phrase
            # starts in tempo.
            into = np.clip((q - (end - beat_ql)) / beat_ql, 0.0, 1.0) * (q < end)
            mult = mult * (1.0 - phrase_lengthening[1] * into)
        return mult

    return multiplier


def _score_marks(ex, bars) -> tuple[list[tuple[float, float]], list[tuple[float, float, int]]]:
    """(offset, level) for dynamic marks and (start, end, +1/-1) for hairpins."""
    from music21 import dynamics

    marks, wedges = [], []
    for part in ex.parts:
        starts = _bar_starts(part, bars)
        for d in part.recurse().getElementsByClass(dynamics.Dynamic):
            level = _MARKING_LEVELS.get(d.value, d.volumeScalar)
            offset = _anchored_offset(d, starts)
            if level is not None and offset is not None:
                marks.append((offset, float(level)))
        for w in part.spannerBundle.getByClass(dynamics.DynamicWedge):
            els = w.getSpannedElements()
            first = _anchored_offset(els[0], starts) if els else None
            last = _anchored_offset(els[-1], starts) if els else None
            if first is None or last is None:
                continue
            end = last + float(els[-1].quarterLength)
            wedges.append((first, max(end, first + 0.5),
                           1 if isinstance(w, dynamics.Crescendo) else -1))
    return sorted(marks), sorted(wedges)


def _levels_from_marks(q, marks, wedges, first_bar_ql: float) -> np.ndarray:
    initial = marks[0][1] if marks and marks[0][0] <= first_bar_ql else _MARKING_LEVELS["mf"]
    levels = np.full_like(q, initial)
    events = [(o, 0, lv) for o, lv in marks] + [(s, 1, (e, d)) for s, e, d in wedges]
    for start, kind, value in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 0:
            levels[q >= start] = value
            continue
        end, direction = value
        begin = float(np.interp(start, q, levels))
        # A hairpin usually lands on the next marking; otherwise move a step.
        target = next((lv for o, lv in marks if end - 1.0 <= o <= end + 1.0
                       and (lv - begin) * direction > 0), begin + 0.15 * direction)
        target = float(np.clip(target, 0.05, 1.0))
        ramp = (q >= start) & (q < end)
        levels[ramp] = begin + (target - begin) * (q[ramp] - start) / (end - start)
        levels[q >= end] = target
    return levels


def _random_arc(q, end_q, rng) -> np.ndarray:
    low, high = rng.uniform(0.2, 0.4), rng.uniform(0.6, 0.9)
    shape = [[low, high, high, 0.5 * (low + high)],  # swell and settle
             [high, low, low, high],                 # fall away and return
             [low, low, high, high]][rng.integers(3)]  # long crescendo
    a, b = np.sort(rng.uniform(0.2, 0.8, 2))
    return np.interp(q, [0.0, a * end_q, b * end_q, end_q], shape)


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    # Subito changes still take a few tens of milliseconds in an orchestra.
    padded = np.pad(values, (width, width), mode="edge")
    return np.convolve(padded, np.ones(2 * width + 1) / (2 * width + 1), mode="same")[width:-width]


def _roles(parts_info) -> list[str | None]:
    """'solo' for a wind or brass part, else melody / inner / bass by register."""
    roles: list[str | None] = [None] * len(parts_info)
    ranked = []
    for i, (_, program, median) in enumerate(parts_info):
        if median is None:
            continue
        if program is not None and 56 <= program <= 79:
            roles[i] = "solo"
        else:
            ranked.append((median, i))
    ranked.sort(reverse=True)
    for rank, (_, i) in enumerate(ranked):
        if rank == 0:
            roles[i] = "melody"
        elif rank == len(ranked) - 1:
            roles[i] = "bass"
        else:
            roles[i] = "inner"
    return roles


def _default_instrumentation(parts_info, roles, rng) -> dict[int, list[int]]:
    """A seeded orchestration: string ensemble core with wind, brass and timpani doublings."""
    winds = [[], [FLUTE], [OBOE], [FLUTE, OBOE]][rng.integers(4)]
    brass_melody = [TRUMPET] if rng.random() < 0.3 else []
    horns = [HORN] if rng.random() < 0.6 else []
    timpani = [TIMPANI] if rng.random() < 0.6 else []
    bassoon = [BASSOON] if rng.random() < 0.4 else []
    out = {}
    for i, role in enumerate(roles):
        if role == "solo":
            out[i] = [parts_info[i][1]]
        elif role == "melody":
            out[i] = [STRINGS] + winds + brass_melody
        elif role == "inner":
            out[i] = [STRINGS] + horns
        elif role == "bass":
            out[i] = [CELLO, CONTRABASS] + bassoon + timpani
    return out


def _voice_notes(notes, program, own_program, role, bars, level_at, key_pcs):
    """The notes one GM program plays when it doubles a part, as (on, off, pitch, accent dB)."""
    out = []
    doubling = program != own_program
    for note in notes:
        beat_ql = _bar_of(bars, note.on).beat_ql
        pitches = note.pitches
        if doubling and program == TIMPANI:
            low = min(pitches)
            if (level_at(note.on) < _TUTTI_LEVEL or _beat_accent(bars, note.on) == 0
                    or low % 12 not in key_pcs):
                continue
            # Classical timpani sit between F2 and E3.
            pitch = 41 + (low - 41) % 12
            out.append((note.on, min(note.off, note.on + beat_ql), pitch, note.accent_db))
            continue
        if doubling and 56 <= program <= 63:
            if level_at(note.on) < _TUTTI_LEVEL or note.off - note.on < beat_ql - _EPS:
                continue
            pitches = (max(pitches),) if program < 60 else pitches
        elif doubling and 64 <= program <= 79:
            if level_at(note.on) < _WIND_DOUBLING_LEVEL:
                continue
            pitches = (min(pitches),) if role == "bass" else (max(pitches),)
        elif doubling and program == CONTRABASS:
            low = min(pitches)
            # Basses sound an octave below the written cello line where the range allows.
            pitches = (low - 12 if low - 12 >= 28 else low,)
        out.extend((note.on, note.off, p, note.accent_db) for p in pitches)
    return out


PERCUSSION_STYLES = ("march", "ostinato", "accents", "backbeat")
# General MIDI drum keys.
_BASS_DRUM, _SNARE, _CRASH, _HI_HAT, _TOMS = 36, 38, 49, 42, (41, 43, 45, 47)


def _percussion_channel(bars, end_q, tmap, level_at, style: str, rng) -> _Channel:
    """A percussion part in ``style`` drawn from the bar table, playing from a seeded level up.

    'march': snare on the beats (and some of their halves), bass drum on the strong beats;
    'ostinato': a one-bar drum and tom pattern with off-beat strokes, repeated; 'accents':
    bass drum and cymbal on the downbeats of loud bars and a snare roll into each phrase;
    'backbeat' (film and game scores): bass drum on the strong beats, snare on the others,
    hi-hat on every half beat.  Cymbal crashes mark the phrase starts of all but 'accents'."""
    if style not in PERCUSSION_STYLES:
        raise ValueError(f"unknown percussion style {style!r}; known: {', '.join(PERCUSSION_STYLES)}")
    threshold = float(rng.uniform(0.25, 0.55))
    phrase = int(rng.choice([4, 8]))
    halves = rng.random(4) < 0.35  # which beats of the bar the march also plays on the half
    pattern = [(float(f), int(rng.choice(_TOMS)), float(rng.uniform(-8, -2)))
               for f in rng.choice([1 / 3, 0.5, 2 / 3, 0.75], size=int(rng.integers(1, 4)))]
    strokes = []  # (q, key, accent dB)
    for index, bar in enumerate(bars):
        phrase_start = index % phrase == 0
        for k in range(bar.beats_per_bar):
            q = bar.nominal_start + k * bar.beat_ql
            if q < bar.start - _EPS or q >= min(bar.end, end_q) - _EPS or level_at(q) < threshold:
                continue
            strong = k == 0 or (bar.beats_per_bar == 4 and k == 2)
            if style == "march":
                strokes.append((q, _SNARE, 3.0 if k == 0 else 0.0))
                if halves[k % 4]:
                    strokes.append((q + 0.5 * bar.beat_ql, _SNARE, -6.0))
                if strong:
                    strokes.append((q, _BASS_DRUM, 0.0))
            elif style == "ostinato":
                strokes.append((q, _BASS_DRUM if k == 0 else _TOMS[k % len(_TOMS)], 2.0 if k == 0 else 0.0))
                strokes += [(q + f * bar.beat_ql, key, accent) for f, key, accent in pattern]
            elif style == "backbeat":
                strokes.append((q, _BASS_DRUM if strong else _SNARE, 0.0))
                strokes += [(q, _HI_HAT, -8.0), (q + 0.5 * bar.beat_ql, _HI_HAT, -11.0)]
            elif k == 0 and level_at(q) >= threshold + 0.15:
                strokes += [(q, _BASS_DRUM, 2.0), (q, _CRASH, 0.0)]
            if style != "accents" and k == 0 and phrase_start:
                strokes.append((q, _CRASH, 0.0))
            if style == "accents" and k == bar.beats_per_bar - 1 and (index + 1) % phrase == 0:
                strokes += [(q + j * bar.beat_ql / 8, _SNARE, -10.0 + j) for j in range(8)]
    rows = []
    for q, key, accent in strokes:
        if q >= end_q:
            continue
        vel_db = -0.6 * DYNAMIC_RANGE_DB * (1.0 - level_at(q)) + accent - 3.0
        start = float(tmap(q)) + float(np.clip(rng.normal(0.0, 0.006), -0.015, 0.015))
        rows.append((max(0.0, start), start + 0.4, key, int(np.clip(round(127 * 10 ** (vel_db / 20)), 1, 127))))
    kit = 48 if rng.random() < 0.6 else 0  # the orchestra kit, or the standard one
    notes = _merge_unisons(np.array(rows, float)) if rows else np.zeros((0, 4))
    return _Channel(kit, int(64 + rng.integers(-12, 13)), 90, notes, "percussion", drums=True)


def _merge_unisons(rows: np.ndarray) -> np.ndarray:
    """One channel cannot hold two voices on the same key: a note-off would end both."""
    rows = rows[np.lexsort((rows[:, 0], rows[:, 2]))]
    keep = np.ones(len(rows), bool)
    for i in range(1, len(rows)):
        prev, cur = rows[i - 1], rows[i]
        if prev[2] != cur[2] or cur[0] >= prev[1]:
            continue
        if cur[0] - prev[0] < 0.02:
            cur[1] = max(cur[1], prev[1])
            cur[3] = max(cur[3], prev[3])
            keep[i - 1] = False
        else:
            prev[1] = cur[0]
    return rows[keep]


def _select_excerpt(work, start_bar, n_bars, seconds, tempo_bpm, rng):
    """The excerpt score at sounding pitch, its bar table and the base tempo."""
    from music21 import stream

    score = _load_score(work)
    measures = list(score.parts[0].getElementsByClass(stream.Measure))
    signatures = time_signatures(measures)
    try:
        i0 = next(i for i, m in enumerate(measures) if m.number == start_bar)
    except StopIteration:
        raise ValueError(f"{work} has no bar {start_bar}") from None
    if tempo_bpm is None:
        marked = _score_tempo(score, float(measures[i0].offset),
                              float(signatures[i0].beatDuration.quarterLength))
        tempo_bpm = (marked or 84.0) * rng.uniform(0.92, 1.08)
    if n_bars is not None:
        i1 = min(len(measures), i0 + n_bars) - 1
    else:
        elapsed, i1 = 0.0, i0
        for i1 in range(i0, len(measures)):
            beats = float(measures[i1].duration.quarterLength) / float(
                signatures[i1].beatDuration.quarterLength)
            elapsed += beats * 60.0 / tempo_bpm
            if elapsed >= seconds - _EPS:
                break
    ex = score.measures(measures[i0].number, measures[i1].number).toSoundingPitch()
    ex_measures = list(ex.parts[0].getElementsByClass(stream.Measure))
    bars = _bar_table(ex_measures, time_signatures(ex_measures), score_starts_here=i0 == 0)
    return ex, bars, float(tempo_bpm)


class _TempoMap:
    """Quarter-length offset -> seconds, with the tempo constant within each grid step."""

    def __init__(self, bars, end_q, tempo_bpm, lead_in, multiplier):
        self.q = np.arange(int(math.ceil(end_q / _GRID_QL)) + 1) * _GRID_QL
        starts = np.array([b.start for b in bars])
        index = np.clip(np.searchsorted(starts, self.q + _EPS, side="right") - 1, 0, len(bars) - 1)
        beat_ql = np.array([b.beat_ql for b in bars])[index]
        mult = multiplier(self.q)
        step_s = _GRID_QL * 60.0 / (tempo_bpm * beat_ql[:-1] * mult[:-1])
        self.t = lead_in + np.concatenate([[0.0], np.cumsum(step_s)])

    def __call__(self, q):
        return np.interp(q, self.q, self.t)


def _expression_gain(levels):
    """CC11 fraction carrying half the dynamic range (TinySoundFont: 60*log10(cc/127) dB)."""
    return 10 ** (-0.5 * DYNAMIC_RANGE_DB * (1.0 - np.asarray(levels)) / 60)


def _channel(program, role, rows, bars, tmap, level_at, rng, voicing: Voicing) -> _Channel:
    """Time, voice and balance one program's notes."""
    section_shift = rng.normal(0.0, voicing.entrance_spread_s) - _SPEECH_S.get(program, 0.02)
    timed = []
    for on, off, pitch, accent_db in rows:
        gain_db = -DYNAMIC_RANGE_DB * (1.0 - level_at(on))
        # Velocity scales amplitude linearly in TinySoundFont; 2 dB below full velocity
        # leaves room for the beat accents in ff.
        vel_db = 0.5 * gain_db + _beat_accent(bars, on) + accent_db - 2.0 + rng.normal(0.0, 0.5)
        velocity = int(np.clip(round(127 * 10 ** (vel_db / 20)), 1, 127))
        jitter = float(np.clip(rng.normal(0.0, 0.004), -0.01, 0.01))
        start = float(tmap(on)) + section_shift + jitter
        end = float(tmap(off))
        # Re-articulate: a short gap before the next note, longer in a detached style.
        gap = min(0.04 + 0.1 * voicing.detached, (0.12 + 0.3 * voicing.detached) * (end - start))
        end = max(end - gap, start + 0.02)
        timed.append((max(0.0, start), end, pitch, velocity))
    balance = _BALANCE_DB.get(program, 0.0) + (_SOLO_BOOST_DB if role == "solo" else 0.0)
    pan = _PAN.get((program, role), _PAN.get(program, 64)) + int(rng.integers(-5, 6))
    return _Channel(program, int(np.clip(pan, 0, 127)),
                    int(np.clip(round(100 * 10 ** (balance / 60)), 1, 127)),
                    _merge_unisons(np.array(timed, dtype=float)), role)


def plan_excerpt(
    work: str,
    start_bar: int,
    n_bars: int | None = None,
    *,
    seconds: float | None = None,
    tempo_bpm: float | None = None,
    tempo_curve: Sequence[tuple[float, float]] | None = None,
    ritardando: float = 0.12,
    accelerando: float = 0.0,
    rubato: float = 0.0,
    dynamics: Sequence[tuple[float, float]] | None = None,
    instrumentation: Mapping[int | str, Sequence[int]] | Orchestrator | None = None,
    lead_in: float = 0.5,
    seed: int = 0,
    voicing: Voicing = Voicing(),
    phrase_lengthening: tuple[int, float] | None = None,
) -> Performance:
    """Plan an expressive performance of bars of a music21 corpus work, without audio.

    ``work`` is a corpus path ('bach/bwv66.6'); bars are the score's measure numbers
    (0 is a pickup).  Give ``n_bars`` or ``seconds`` (whole bars covering that long at
    the base tempo).  ``tempo_bpm`` counts the meter's beats (dotted quarters in 6/8);
    by default the score's metronome mark, else 84, varied by +-8 % with the seed.
    ``tempo_curve`` lists (bar position, tempo multiplier) and replaces the default
    curve, which is an optional ``accelerando`` (fraction, reached over the middle of the
    excerpt) and a final ``ritardando`` (fraction lost over the last bar); ``rubato``
    adds a smooth seeded drift of that fraction; ``phrase_lengthening`` (bars per phrase,
    fraction) slows the last beat of each phrase by up to that fraction at its bar line.  ``dynamics`` lists (bar position,
    level 0..1); by default the score's marks and hairpins, or a seeded crescendo /
    diminuendo arc when it has none.  ``instrumentation`` maps part index or name to GM
    programs, or is an :data:`Orchestrator` that chooses them from the parts' roles;
    doublings follow orchestration rules (winds take the top line, basses the
    octave below, brass and timpani only in tutti, timpani on tonic and dominant beats).
    A bar position is a measure number plus the elapsed fraction of that bar.  ``voicing``
    says how the players sound (see :class:`Voicing`); it draws from its own seeded stream,
    so the default voicing renders exactly as before it existed.
    """
    if (n_bars is None) == (seconds is None):
        raise ValueError("give exactly one of n_bars and seconds")
    rng = np.random.default_rng(seed)
    ex, bars, tempo_bpm = _select_excerpt(work, start_bar, n_bars, seconds, tempo_bpm, rng)
    part_notes = [[n._replace(off=min(n.off, bars[-1].end))
                   for n in _part_notes(p, bars, voicing.score_articulation)
                   if n.on < bars[-1].end - _EPS] for p in ex.parts]
    if not any(part_notes):
        raise ValueError(f"{work} bars {bars[0].number}..{bars[-1].number} are silent")
    # The excerpt ends when its music does: rests after a final cut-off carry no beats.
    end_q = max(n.off for notes in part_notes for n in notes)

    tmap = _TempoMap(bars, end_q, tempo_bpm, lead_in,
                     _tempo_multiplier(bars, end_q, tempo_curve, ritardando, accelerando,
                                       rubato, rng, phrase_lengthening))
    if dynamics is not None:
        points = sorted(((_bar_position_to_q(bars, p, end_q), lv) for p, lv in dynamics),
                        key=lambda point: point[0])
        levels = np.interp(tmap.q, [p for p, _ in points], [lv for _, lv in points])
    else:
        marks, wedges = _score_marks(ex, bars)
        levels = (_levels_from_marks(tmap.q, marks, wedges, bars[0].end - bars[0].start)
                  if marks or wedges else _random_arc(tmap.q, end_q, rng))
        levels = _smooth(levels, width=6)
    levels = np.clip(levels, 0.0, 1.0)

    parts_info = []
    for p, notes in zip(ex.parts, part_notes):
        inst = p.getInstrument(returnDefault=False)
        pitches = [x for n in notes for x in n.pitches]
        parts_info.append((p.partName or f"part {len(parts_info)}",
                           inst.midiProgram if inst is not None else None,
                           float(np.median(pitches)) if pitches else None))
    roles = _roles(parts_info)
    if instrumentation is None:
        programs = _default_instrumentation(parts_info, roles, rng)
    elif callable(instrumentation):
        programs = instrumentation(parts_info, roles, rng)
    else:
        names = [name for name, _, _ in parts_info]
        programs = {k if isinstance(k, int) else names.index(k): list(v)
                    for k, v in instrumentation.items()}
    key_pcs = set()
    if any(TIMPANI in progs for progs in programs.values()):
        key = ex.analyze("key")
        key_pcs = {key.tonic.pitchClass, key.getDominant().pitchClass}

    def level_at(x):
        return float(np.interp(x, tmap.q, levels))

    voices: dict[tuple[int, str], list] = {}
    for i, progs in sorted(programs.items()):
        role = roles[i] or "inner"
        for program in progs:
            voices.setdefault((program, role), []).extend(
                _voice_notes(part_notes[i], program, parts_info[i][1], role, bars, level_at,
                             key_pcs))
    channels = [_channel(program, role, rows, bars, tmap, level_at, rng, voicing)
                for (program, role), rows in voices.items() if rows]
    voicing_rng = np.random.default_rng([seed, 11])
    for channel in channels:
        channel.soundfont = voicing.soundfonts[int(voicing_rng.integers(len(voicing.soundfonts)))]
        if channel.program in _SECTION_PROGRAMS:
            channel.players = voicing.section_players
    if voicing.percussion is not None:
        drums = _percussion_channel(bars, end_q, tmap, level_at, voicing.percussion, voicing_rng)
        if len(drums.notes):
            drums.soundfont = voicing.soundfonts[int(voicing_rng.integers(len(voicing.soundfonts)))]
            channels.append(drums)

    beats_q, downbeats_q = _beats(bars, end_q)
    loud_q = np.arange(0.0, end_q + _EPS, 0.25)
    labels = ExcerptLabels(
        work=work,
        bars=(bars[0].number, bars[-1].number),
        meter=bars[0].meter,
        beats_per_bar=bars[0].beats_per_bar,
        tempo_bpm=float(tempo_bpm),
        beats=tmap(beats_q),
        downbeats=tmap(downbeats_q),
        loudness=Envelope(tmap(loud_q), np.interp(loud_q, tmap.q, levels)),
        instrumentation={f"{i}:{parts_info[i][0]}": list(p) for i, p in sorted(programs.items())},
        seed=seed,
    )
    expr_q = np.arange(0.0, end_q + _EPS, 1.0 / 12.0)
    expr_cc = np.round(127 * _expression_gain(np.interp(expr_q, tmap.q, levels)))
    changed = np.concatenate([[True], np.diff(expr_cc) != 0])
    end_time = max(float(c.notes[:, 1].max()) for c in channels)
    return Performance(labels, channels, (tmap(expr_q[changed]), expr_cc[changed]), end_time, voicing)


def _n_samples(perf: Performance, sample_rate: int, tail: float) -> int:
    return int(round((perf.end_time + tail) * sample_rate))


def _reverb(audio: np.ndarray, sample_rate: int, amount: float, rng) -> np.ndarray:
    """A hall-like tail from decaying, darkened stereo noise (RT60 about 1.7 s)."""
    from scipy.signal import fftconvolve, lfilter

    n = int(2.0 * sample_rate)
    t = np.arange(n) / sample_rate
    noise = lfilter([0.35], [1.0, -0.65], rng.standard_normal((n, 2)), axis=0)
    ir = noise * np.exp(-6.91 * t / 1.7)[:, None]
    ir[: int(0.02 * sample_rate)] = 0.0  # pre-delay keeps the attacks dry and crisp
    ir /= np.sqrt(np.sum(ir**2, axis=0))
    wet = fftconvolve(audio, ir, axes=0)[: len(audio)]
    return audio + amount * wet


# How far back on the stage each section sits, 0 (front) to 1 (back): it sets how much of
# the hall a microphone hears of it (see production.place_stems).
_DEPTH = {
    CELLO: 0.25, CONTRABASS: 0.35, TIMPANI: 0.95, TRUMPET: 0.85, HORN: 0.75,
    OBOE: 0.55, FLUTE: 0.55, CLARINET: 0.55, BASSOON: 0.6,
}


def _depth(channel: _Channel) -> float:
    if channel.drums:
        return 0.95
    if channel.role == "solo":
        return 0.0
    return _DEPTH.get(channel.program, 0.2 if 40 <= channel.program <= 51 else 0.6)


@dataclass
class Stem:
    """One section's sound, (n, 2) float32, and where it sits on the stage."""

    audio: np.ndarray
    program: int
    role: str
    depth: float


@functools.lru_cache(maxsize=None)
def _synth(soundfont: str, rate: int):
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=rate)
    return synth, synth.sfload(str(soundfont_path(soundfont)))


def _render_player(channel: _Channel, perf: Performance, n_total: int, rate: int, tuning_cents: float,
                   onsets: np.ndarray, gain_db: np.ndarray, pan: int) -> np.ndarray:
    """One player of a section: the channel's notes at the given onsets and velocity gains."""
    synth, sfid = _synth(channel.soundfont, rate)
    chan = 9 if channel.drums else 0
    bank = 128 if channel.drums else 0
    try:
        synth.program_select(chan, sfid, bank, channel.program, is_drums=channel.drums)
    except RuntimeError:  # a bank without that kit or preset plays its first one
        synth.program_select(chan, sfid, bank, 0, is_drums=channel.drums)
    synth.control_change(chan, 7, channel.volume)
    synth.control_change(chan, 10, int(np.clip(pan, 0, 127)))
    synth.pitchbend_range(chan, 2.0)
    synth.pitchbend(chan, int(np.clip(round(8192 + tuning_cents / 200.0 * 8192), 0, 16383)))
    out = np.zeros((n_total, 2), np.float32)
    # (sample, order, kind, a, b); at one instant note-offs go first so a repeated key is
    # not silenced by the previous note's release.
    events = []
    for (start, end, pitch, velocity), onset, gain in zip(channel.notes, onsets, gain_db):
        velocity = int(np.clip(round(velocity * 10 ** (gain / 20)), 1, 127))
        events.append((int(round(onset * rate)), 2, "on", int(pitch), velocity))
        off = max(end + onset - start, onset + 0.02)
        events.append((int(round(off * rate)), 0, "off", int(pitch), 0))
    if not channel.drums:
        events += [(int(round(t * rate)), 1, "cc", 11, int(v)) for t, v in zip(*perf.expression)]
    events.sort()
    pos = 0
    for sample, _, kind, a, b in events:
        sample = min(sample, n_total)
        if sample > pos:
            synth.generate_simple(sample - pos, buffer=memoryview(out[pos:sample]).cast("B"))
            pos = sample
        if kind == "on":
            synth.noteon(chan, a, b)
        elif kind == "off":
            synth.noteoff(chan, a)
        else:
            synth.control_change(chan, a, b)
    if pos < n_total:
        synth.generate_simple(n_total - pos, buffer=memoryview(out[pos:]).cast("B"))
    synth.sounds_off(chan)
    synth.control_change(chan, 11, 127)
    return out


def render_stems(perf: Performance, tail: float = RELEASE_TAIL_S, rate: int = SYNTH_RATE) -> list[Stem]:
    """Each section of the performance rendered on its own at ``rate``, ``tail`` seconds past
    the last note-off.  A section of several players renders each apart: their tuning spreads
    by the voicing's ``detune_cents``, their onsets by its ``player_spread_s`` (a steady lean
    plus a note-by-note scatter), their loudness by a decibel or so, and they sit a little
    apart across the section's place on the stage."""
    n_total = _n_samples(perf, rate, tail)
    voicing = perf.voicing
    rng = np.random.default_rng([perf.labels.seed, 2])
    stems = []
    for channel in perf.channels:
        audio = np.zeros((n_total, 2), np.float32)
        n = len(channel.notes)
        for player in range(channel.players):
            if channel.players == 1:
                tuning, onsets, gains, pan = 0.0, channel.notes[:, 0], np.zeros(n), channel.pan
            else:
                tuning = float(rng.normal(0.0, voicing.detune_cents))
                lean = rng.normal(0.0, 0.5 * voicing.player_spread_s)
                scatter = np.clip(rng.normal(0.0, voicing.player_spread_s, n), -0.05, 0.05)
                onsets = np.maximum(0.0, channel.notes[:, 0] + lean + scatter)
                gains = rng.normal(0.0, 1.0, n)
                pan = channel.pan + int(round(24 * (player / (channel.players - 1) - 0.5)))
            audio += _render_player(channel, perf, n_total, rate, tuning, onsets, gains, pan)
        # A section is louder than one player but far less than their sum (they are not in phase).
        audio *= channel.players ** -0.35
        stems.append(Stem(audio, channel.program, channel.role, _depth(channel)))
    return stems


def synthesize(
    perf: Performance,
    sample_rate: int = 22050,
    *,
    stereo: bool = True,
    reverb: float = 0.3,
    tail: float = RELEASE_TAIL_S,
    fade: float = 0.5,
) -> np.ndarray:
    """Render a planned performance to float32 audio peaking at -1 dBFS.

    The buffer ends ``tail`` seconds after the last note-off and only its last ``fade``
    seconds are faded, so a final cut-off keeps its natural release.
    """
    import soxr

    audio = np.sum([stem.audio for stem in render_stems(perf, tail)], axis=0).astype(np.float64)
    if sample_rate != SYNTH_RATE:
        audio = soxr.resample(audio, SYNTH_RATE, sample_rate, "HQ")
    audio = _fit_length(audio, _n_samples(perf, sample_rate, tail))
    if reverb:
        audio = _reverb(audio, sample_rate, reverb, np.random.default_rng([perf.labels.seed, 1]))
    n_fade = min(len(audio), int(fade * sample_rate))
    if n_fade:
        audio[-n_fade:] *= (0.5 + 0.5 * np.cos(np.linspace(0, np.pi, n_fade)))[:, None]
    if not stereo:
        audio = audio.mean(axis=1)
    peak = np.max(np.abs(audio))
    if peak > 0:
        audio *= 10 ** (-1 / 20) / peak
    return audio.astype(np.float32)


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """``audio`` cut or zero-padded to ``n`` samples (resampling rounds the length)."""
    if len(audio) >= n:
        return audio[:n]
    return np.concatenate([audio, np.zeros((n - len(audio),) + audio.shape[1:], audio.dtype)])


def render_excerpt(
    work: str,
    start_bar: int,
    n_bars: int | None = None,
    *,
    sample_rate: int = 22050,
    stereo: bool = True,
    reverb: float = 0.3,
    **plan_options,
) -> RenderedExcerpt:
    """Plan and synthesise an excerpt; see :func:`plan_excerpt` for the options."""
    perf = plan_excerpt(work, start_bar, n_bars, **plan_options)
    audio = synthesize(perf, sample_rate, stereo=stereo, reverb=reverb)
    label_fields = {f.name: getattr(perf.labels, f.name) for f in fields(ExcerptLabels)}
    return RenderedExcerpt(**label_fields, audio=audio, sample_rate=sample_rate)


def _demo_json(perf: Performance) -> dict:
    return {
        "work": perf.labels.work,
        "title": DEMO_TITLE,
        **{k: v for k, v in perf.labels.to_json().items() if k != "work"},
        "sample_rate": DEMO_SAMPLE_RATE,
        "duration": round(
            _n_samples(perf, DEMO_SAMPLE_RATE, RELEASE_TAIL_S) / DEMO_SAMPLE_RATE, 6),
        "source_licence": DEMO_LICENCE,
        "recipe": DEMO_RECIPE,
    }


def demo_labels() -> dict:
    """The demo's labels as ``write_demo`` writes them, computed without synthesis."""
    return _demo_json(plan_excerpt(**DEMO_SPEC))


def write_demo(out_dir: str | Path) -> tuple[Path, Path]:
    """Render the add-on's demo clip to ``demo.ogg`` and ``demo_labels.json``."""
    import soundfile as sf

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    perf = plan_excerpt(**DEMO_SPEC)
    audio = synthesize(perf, DEMO_SAMPLE_RATE)
    ogg, labels = out_dir / "demo.ogg", out_dir / "demo_labels.json"
    sf.write(ogg, audio, DEMO_SAMPLE_RATE, format="OGG", subtype="VORBIS")
    labels.write_text(json.dumps(_demo_json(perf), indent=1) + "\n")
    return ogg, labels


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gm_blender_addon.training.score_render",
        description=__doc__.split("\n")[0])
    parser.add_argument("--demo", metavar="OUT_DIR", help="write demo.ogg and demo_labels.json")
    parser.add_argument("--work", help="music21 corpus path, e.g. bach/bwv66.6")
    parser.add_argument("--start-bar", type=int, default=1)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float)
    length.add_argument("--bars", type=int)
    parser.add_argument("--tempo", type=float, help="beats per minute (default: from the score)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--out", help="output .wav; labels go to the same name with .json")
    args = parser.parse_args(argv)

    if args.demo:
        for path in write_demo(args.demo):
            print(path)
        return
    if not (args.work and args.out) or (args.seconds is None and args.bars is None):
        parser.error("give --demo OUT_DIR, or --work, --out and one of --seconds / --bars")
    import soundfile as sf

    rendered = render_excerpt(args.work, args.start_bar, args.bars, seconds=args.seconds,
                              tempo_bpm=args.tempo, seed=args.seed, sample_rate=args.sample_rate)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, rendered.audio, rendered.sample_rate, subtype="PCM_16")
    out.with_suffix(".json").write_text(json.dumps(rendered.to_json(), indent=1) + "\n")
    print(f"{out}: {rendered.duration:.2f} s, {len(rendered.beats)} beats, "
          f"{rendered.meter}, {rendered.tempo_bpm:.1f} BPM")


if __name__ == "__main__":
    main()
