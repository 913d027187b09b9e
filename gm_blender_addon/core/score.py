"""A score read from MusicXML or MIDI into `Score`: its parts, notes, bars with their conducted beats, tempo marks,
fermatas, dynamics and hairpins, placed in quarter notes from the start of the performance.

Only the standard library and numpy are used, as inside Blender:

- MusicXML score-partwise, plain (.musicxml, .xml) or compressed (.mxl). Repeat barlines and numbered endings are
  unfolded, each pass taking its ending (a backward repeat with no forward repeat before it goes back to the end of
  the previous repeat, else to the beginning); D.C., D.S., segno, coda and fine are not followed, so the music plays
  as written between the repeat barlines. A bar lasts as long as most parts playing in it reach (a pickup is
  shorter), so that one part's miscounted measure leaves the others in place. Grace and cue notes are left out; a
  tied note joins the next note of its pitch in its voice that starts where it ends; pitches sound as <transpose>
  says; a note's velocity is the level of the last dynamic mark or <sound dynamics> in its part.
- Standard MIDI files of format 0 and 1 timed in ticks per quarter note. A part is one channel of one track; bars
  follow the time signatures from tick 0 (4/4 until one is set) and the last bar is whole. MIDI has no fermatas,
  dynamics or articulation.

A file that cannot be read, or holds no notes, raises ScoreError naming the file, the problem and the fix.
"""

from __future__ import annotations

import io
import re
import struct
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

# onset and duration in quarter notes from the start of the unfolded score; pitch the sounding MIDI key; velocity 0..1
# (MusicXML: the dynamic in force in the part; MIDI: velocity / 127).
NOTE_DTYPE = np.dtype([("onset", "f8"), ("duration", "f8"), ("pitch", "i2"), ("part", "i2"),
                       ("velocity", "f4"), ("staccato", "?"), ("accent", "?"), ("slurred", "?")])
MUSICXML_SUFFIXES = (".musicxml", ".xml", ".mxl")
MIDI_SUFFIXES = (".mid", ".midi")
DEFAULT_VELOCITY = 0.6  # a note before any dynamic mark
# MusicXML's forte is MIDI velocity 90; <sound dynamics> counts in percent of it.
FORTE_VELOCITY = 90 / 127
LEVEL_VELOCITY = {"pppp": 0.15, "ppp": 0.2, "pp": 0.3, "p": 0.4, "mp": 0.5, "mf": 0.6, "f": FORTE_VELOCITY,
                  "ff": 0.83, "fff": 0.94, "ffff": 1.0}
# Marks loud at once then soft: the level after them.
LEVEL_AFTER = {"fp": "p", "sfp": "p", "sfpp": "pp"}
SFORZANDO = {"sf", "sfz", "sffz", "sfzp", "sfp", "sfpp", "fz", "rf", "rfz"}
PERCUSSION_CHANNEL = 9
_EPS = 1e-9
_STEP_SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_BEAT_UNIT_QUARTERS = {"long": 16.0, "breve": 8.0, "whole": 4.0, "half": 2.0, "quarter": 1.0, "eighth": 0.5,
                       "16th": 0.25, "32nd": 0.125, "64th": 0.0625}
GM_PROGRAMS = (
    "Acoustic Grand Piano|Bright Acoustic Piano|Electric Grand Piano|Honky-tonk Piano|Electric Piano 1|"
    "Electric Piano 2|Harpsichord|Clavinet|Celesta|Glockenspiel|Music Box|Vibraphone|Marimba|Xylophone|"
    "Tubular Bells|Dulcimer|Drawbar Organ|Percussive Organ|Rock Organ|Church Organ|Reed Organ|Accordion|Harmonica|"
    "Tango Accordion|Acoustic Guitar (nylon)|Acoustic Guitar (steel)|Electric Guitar (jazz)|Electric Guitar (clean)|"
    "Electric Guitar (muted)|Overdriven Guitar|Distortion Guitar|Guitar Harmonics|Acoustic Bass|"
    "Electric Bass (finger)|Electric Bass (pick)|Fretless Bass|Slap Bass 1|Slap Bass 2|Synth Bass 1|Synth Bass 2|"
    "Violin|Viola|Cello|Contrabass|Tremolo Strings|Pizzicato Strings|Orchestral Harp|Timpani|String Ensemble 1|"
    "String Ensemble 2|Synth Strings 1|Synth Strings 2|Choir Aahs|Voice Oohs|Synth Voice|Orchestra Hit|Trumpet|"
    "Trombone|Tuba|Muted Trumpet|French Horn|Brass Section|Synth Brass 1|Synth Brass 2|Soprano Sax|Alto Sax|"
    "Tenor Sax|Baritone Sax|Oboe|English Horn|Bassoon|Clarinet|Piccolo|Flute|Recorder|Pan Flute|Blown Bottle|"
    "Shakuhachi|Whistle|Ocarina|Lead 1 (square)|Lead 2 (sawtooth)|Lead 3 (calliope)|Lead 4 (chiff)|"
    "Lead 5 (charang)|Lead 6 (voice)|Lead 7 (fifths)|Lead 8 (bass + lead)|Pad 1 (new age)|Pad 2 (warm)|"
    "Pad 3 (polysynth)|Pad 4 (choir)|Pad 5 (bowed)|Pad 6 (metallic)|Pad 7 (halo)|Pad 8 (sweep)|FX 1 (rain)|"
    "FX 2 (soundtrack)|FX 3 (crystal)|FX 4 (atmosphere)|FX 5 (brightness)|FX 6 (goblins)|FX 7 (echoes)|"
    "FX 8 (sci-fi)|Sitar|Banjo|Shamisen|Koto|Kalimba|Bagpipe|Fiddle|Shanai|Tinkle Bell|Agogo|Steel Drums|"
    "Woodblock|Taiko Drum|Melodic Tom|Synth Drum|Reverse Cymbal|Guitar Fret Noise|Breath Noise|Seashore|Bird Tweet|"
    "Telephone Ring|Helicopter|Applause|Gunshot"
).split("|")


class ScoreError(ValueError):
    """A score file that cannot be read or holds no notes; the message names the file, the problem and the fix."""


@dataclass(frozen=True)
class ScorePart:
    name: str  # the printed part name, else the MIDI track name, else "Part 3"
    instrument: str  # the instrument's name (MIDI: the General MIDI program's, "Percussion" on channel 10)
    program: int | None  # General MIDI program 0..127 when the file says


@dataclass(frozen=True)
class ScoreBar:
    number: str  # as printed; a repeated bar keeps its number
    start: float  # quarter notes from the start of the unfolded score
    length: float  # quarter notes the bar lasts (a pickup or a short bar is shorter than its meter)
    meter: str  # the time signature in force, "3/4"
    beats: tuple[float, ...]  # the conducted beats, quarter notes from the bar's start (a pickup: its last ones)
    rehearsal: str | None = None

    @property
    def whole(self) -> bool:
        """Whether the bar lasts its meter's full length (a pickup or a short bar does not)."""
        return self.length >= _nominal_length(self.meter) - _EPS


@dataclass(frozen=True)
class Score:
    """A score as performed, every position in quarter notes (q) from its start."""

    title: str
    source: str  # the file name, for messages
    parts: tuple[ScorePart, ...]
    notes: np.ndarray  # NOTE_DTYPE, sorted by onset then pitch
    bars: tuple[ScoreBar, ...]  # in performance (unfolded) order
    tempo_marks: tuple[tuple[float, float], ...]  # (q, quarter-note BPM), sorted
    fermatas: tuple[float, ...]  # q of each note or rest held, sorted
    dynamics: tuple[tuple[float, str], ...]  # (q, mark as written), sorted
    hairpins: tuple[tuple[float, float, str], ...]  # (start q, stop q, "crescendo" | "diminuendo"), sorted

    @property
    def end(self) -> float:
        """q where the last bar ends."""
        return self.bars[-1].start + self.bars[-1].length

    def beat_times(self) -> tuple[np.ndarray, np.ndarray]:
        """(q of every conducted beat in order, index of the bar each belongs to)."""
        q = [bar.start + beat for bar in self.bars for beat in bar.beats]
        index = [i for i, bar in enumerate(self.bars) for _ in bar.beats]
        return np.array(q, dtype=np.float64), np.array(index, dtype=np.int64)

    def _bar_position(self, q: np.ndarray) -> np.ndarray:
        """Quarter notes → bars from the first bar line (2.5: halfway through the third bar)."""
        starts = np.array([bar.start for bar in self.bars])
        lengths = np.array([bar.length for bar in self.bars])
        index = np.clip(np.searchsorted(starts, q + _EPS, side="right") - 1, 0, len(starts) - 1)
        return index + (q - starts[index]) / lengths[index]

    def entrances(self, min_rest_bars: float = 2.0) -> list[tuple[float, int]]:
        """(q, part index) of each note that starts after its part was silent for at least `min_rest_bars` bars (in
        the lengths of the bars it rests through), and of each part's first note from the end of the first full bar
        on (a pickup and the bar after it are the start). Sorted by q."""
        first = self.bars[0]
        pickup = len(self.bars) > 1 and not first.whole
        start_over = self.bars[1].start + self.bars[1].length if pickup else first.start + first.length
        found: set[tuple[float, int]] = set()
        for part in range(len(self.parts)):
            notes = self.notes[self.notes["part"] == part]
            if not len(notes):
                continue
            onsets = notes["onset"]
            silent_from = np.maximum.accumulate(onsets + notes["duration"])[:-1]
            rest = self._bar_position(onsets[1:]) - self._bar_position(silent_from)
            found.update((float(q), part) for q in onsets[1:][rest >= min_rest_bars - _EPS])
            if onsets[0] >= start_over - _EPS:
                found.add((float(onsets[0]), part))
        return sorted(found)

    def exits(self, min_rest_bars: float = 2.0) -> list[tuple[float, int]]:
        """(q, part index) where a part stops for at least `min_rest_bars` bars while other parts play on: the end of
        each phrase before such a rest, and of its last note when the piece goes on that long after it. Sorted by q."""
        found = []
        ends_all = self.notes["onset"] + self.notes["duration"]
        for part in range(len(self.parts)):
            notes = self.notes[self.notes["part"] == part]
            if not len(notes):
                continue
            silent_from = np.maximum.accumulate(notes["onset"] + notes["duration"])
            resumes = np.append(notes["onset"][1:], self.end)
            rest = self._bar_position(resumes) - self._bar_position(silent_from)
            for q in np.unique(silent_from[rest >= min_rest_bars - _EPS]):
                others = (self.notes["part"] != part) & (self.notes["onset"] <= q + _EPS) & (ends_all > q + _EPS)
                if others.any():
                    found.append((float(q), part))
        return sorted(found)


def conducted_beats(numerator: int, denominator: int) -> tuple[float, ...]:
    """Beat offsets in quarter notes of a full bar: simple meters beat their numerator (2/2 -> (0, 2)); 3, 6, 9 and
    12 eighths or sixteenths beat in dotted groups (3/8 is one beat); larger numerators beat in groups of 3 and 2
    units, at most 4 groups (5/4 -> 3+2 -> (0, 3); 7/8 -> 2+2+3 -> (0, 1, 2))."""
    unit = 4.0 / denominator
    if numerator % 3 == 0 and denominator >= 8 and numerator <= 12:
        groups = [3] * (numerator // 3)
    elif numerator <= 4:
        groups = [1] * max(numerator, 1)
    elif numerator == 7:
        groups = [2, 2, 3]  # as 7/8 is most often grouped
    else:
        count = min(4, -(-numerator // 3))
        size, larger = divmod(numerator, count)
        groups = [size + 1] * larger + [size] * (count - larger)
    return tuple(float(x) * unit for x in np.cumsum([0] + groups[:-1]))


def load_score(path: str | Path) -> Score:
    """The score of a .musicxml / .xml (partwise), .mxl or .mid / .midi file; ScoreError if it cannot be read."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MUSICXML_SUFFIXES + MIDI_SUFFIXES:
        raise ScoreError(f"{path.name}: unknown score format {suffix or '(no extension)'}; give a MusicXML "
                         "(.musicxml, .xml, .mxl) or MIDI (.mid) file.")
    if not path.is_file():
        raise ScoreError(f"Score file not found: {path}. Check the path.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScoreError(f"{path.name} cannot be read ({exc}): check its permissions.") from exc
    score = _read_midi(path, data) if suffix in MIDI_SUFFIXES else _read_musicxml(path, data)
    if not len(score.notes):
        raise ScoreError(f"{path.name} holds no notes: give the score of the music to conduct.")
    return score


def _nominal_length(meter: str) -> float:
    numerator, denominator = meter.split("/")
    return 4.0 * int(numerator) / int(denominator)


def _bar_beats(numerator: int, denominator: int, length: Fraction, pickup: bool) -> tuple[float, ...]:
    """The conducted beats inside a bar of `length`: a short pickup keeps the meter's last beats, another short bar
    its first."""
    full = conducted_beats(numerator, denominator)
    short_by = float(Fraction(4 * numerator, denominator) - length)
    if short_by <= _EPS:
        return full
    if pickup:
        return tuple(max(beat - short_by, 0.0) for beat in full if beat >= short_by - _EPS)
    return tuple(beat for beat in full if beat < float(length) - _EPS)


def _score(title: str, source: str, parts: list[ScorePart], rows: list[tuple], bars: list[ScoreBar],
           tempo: dict, fermatas: set, dynamics: set, hairpins: set) -> Score:
    notes = np.array([tuple(row) for row in rows], dtype=NOTE_DTYPE)
    notes = notes[np.lexsort((notes["part"], notes["pitch"], notes["onset"]))]
    return Score(
        title=title, source=source, parts=tuple(parts), notes=notes, bars=tuple(bars),
        tempo_marks=tuple(sorted((float(q), float(bpm)) for q, bpm in tempo.items())),
        fermatas=tuple(sorted({float(q) for q in fermatas})),
        dynamics=tuple(sorted((float(q), mark) for q, mark in dynamics)),
        hairpins=tuple(sorted((float(a), float(b), kind) for a, b, kind in hairpins)),
    )


# MusicXML ----------------------------------------------------------------------------------------------------------

@dataclass
class _Chord:
    """Notes struck together in one voice; the marks of any of them hold for all."""
    voice: str
    pitches: list[tuple[int, Fraction, bool]] = field(default_factory=list)  # (pitch, duration, tied to the next)
    staccato: bool = False
    accent: bool = False
    slur_starts: set[str] = field(default_factory=set)
    slur_stops: set[str] = field(default_factory=set)


@dataclass
class _Measure:
    """One part's measure as written: its events at offsets (quarter notes) from its start, and its bar marks."""
    number: str
    implicit: bool
    content: Fraction = Fraction(0)  # how far its voices reach
    meter: tuple[int, int] | None = None  # a time signature set here
    rehearsal: str | None = None
    forward: bool = False
    backward: bool = False
    times: int | None = None  # how often the repeat ending here is played
    ending: frozenset[int] | None = None  # the passes this measure is played on
    events: list[tuple[Fraction, int, object]] = field(default_factory=list)  # (offset, 0 direction / 1 chord, what)
    fermatas: list[Fraction] = field(default_factory=list)


def _read_musicxml(path: Path, data: bytes) -> Score:
    if path.suffix.lower() == ".mxl":
        data = _unzip_mxl(path.name, data)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ScoreError(f"{path.name} is not readable MusicXML ({exc}): export the score again as MusicXML.") from exc
    if root.tag == "score-timewise":
        raise ScoreError(f"{path.name} is timewise MusicXML, which is not read: re-export it as partwise MusicXML "
                         "(the usual kind).")
    if root.tag != "score-partwise":
        raise ScoreError(f"{path.name} is not a MusicXML score (its root is <{root.tag}>): export the score as "
                         "MusicXML.")
    listed = {el.get("id"): el for el in root.iter("score-part")}
    parts, part_measures = [], []
    for el in root.findall("part"):
        listing = listed.get(el.get("id"))
        parts.append(_score_part(listing, len(parts)))
        part_measures.append(_read_part(el, _unpitched_keys(listing)))
    if not any(part_measures):
        raise ScoreError(f"{path.name} holds no notes: give the score of the music to conduct.")
    title = (root.findtext("work/work-title") or root.findtext("movement-title") or "").strip() or path.stem
    return _unfold(title, path.name, parts, part_measures)


def _unzip_mxl(name: str, data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if "META-INF/container.xml" in names:
                rootfile = ET.fromstring(archive.read("META-INF/container.xml")).find(".//rootfile")
                inner = rootfile.get("full-path") if rootfile is not None else None
            else:
                inner = next((n for n in names if n.endswith((".xml", ".musicxml")) and not n.startswith("META")),
                             None)
            if inner is None:
                raise ScoreError(f"{name} holds no MusicXML score: export the score again as compressed MusicXML.")
            return archive.read(inner)
    except (zipfile.BadZipFile, KeyError, ET.ParseError) as exc:
        raise ScoreError(f"{name} is not a readable compressed MusicXML file ({exc}): export the score again, "
                         "or as uncompressed .musicxml.") from exc


def _score_part(listing: ET.Element | None, index: int) -> ScorePart:
    name = (listing.findtext("part-name") or "").strip() if listing is not None else ""
    name = name or f"Part {index + 1}"
    if listing is None:
        return ScorePart(name, name, None)
    instrument = (listing.findtext("score-instrument/instrument-name") or "").strip() or name
    program = listing.findtext("midi-instrument/midi-program")
    return ScorePart(name, instrument, int(program) - 1 if program and program.strip().isdigit() else None)


def _unpitched_keys(listing: ET.Element | None) -> dict[str, int]:
    """The MIDI key each percussion instrument of the part sounds, by its id."""
    if listing is None:
        return {}
    return {el.get("id"): int(el.findtext("midi-unpitched")) - 1 for el in listing.findall("midi-instrument")
            if (el.findtext("midi-unpitched") or "").strip().isdigit()}


def _number(text: str | None, default: Fraction = Fraction(0)) -> Fraction:
    try:
        return Fraction(text.strip()) if text and text.strip() else default
    except (ValueError, ZeroDivisionError):
        return default


def _read_part(part: ET.Element, unpitched: dict[str, int]) -> list[_Measure]:
    divisions, transpose = Fraction(1), 0
    ending: frozenset[int] | None = None
    measures = []
    for measure_el in part.findall("measure"):
        measure = _Measure(measure_el.get("number", ""), measure_el.get("implicit") == "yes")
        position = chord_onset = Fraction(0)
        chord: _Chord | None = None
        for el in measure_el:
            if el.tag == "attributes":
                divisions = _number(el.findtext("divisions"), divisions) or divisions
                time = el.find("time")
                if time is not None:
                    measure.meter = _meter(time) or measure.meter
                shift = el.find("transpose")
                if shift is not None:
                    transpose = int(_number(shift.findtext("chromatic"))) + 12 * int(
                        _number(shift.findtext("octave-change")))
            elif el.tag == "note" and el.find("grace") is None:
                duration = _number(el.findtext("duration")) / divisions
                in_chord = el.find("chord") is not None
                if not in_chord:
                    chord_onset, position = position, position + duration
                chord = _read_note(el, chord_onset, duration, chord if in_chord else None, transpose, unpitched,
                                   measure)
            elif el.tag in ("backup", "forward"):
                step = _number(el.findtext("duration")) / divisions
                position = max(position - step, Fraction(0)) if el.tag == "backup" else position + step
            elif el.tag in ("direction", "sound"):
                at = position + _number(el.findtext("offset")) / divisions
                _read_direction(el, at, measure)
            measure.content = max(measure.content, position)
        for barline in measure_el.findall("barline"):
            repeat, bracket = barline.find("repeat"), barline.find("ending")
            if repeat is not None and repeat.get("direction") == "forward":
                measure.forward = True
            elif repeat is not None:
                measure.backward = True
                measure.times = int(_number(repeat.get("times"))) or None
            if bracket is not None and bracket.get("type") == "start":
                ending = frozenset(int(n) for n in re.findall(r"\d+", bracket.get("number", ""))) or frozenset({1})
        measure.ending = ending
        if any(b.get("type") in ("stop", "discontinue") for b in measure_el.findall("barline/ending")):
            ending = None
        measure.events.sort(key=lambda event: event[:2])
        measures.append(measure)
    return measures


def _meter(time: ET.Element) -> tuple[int, int] | None:
    if time.find("senza-misura") is not None:
        return 4, 4
    numerator = sum(int(n) for n in re.findall(r"\d+", time.findtext("beats") or ""))
    denominator = int(_number(time.findtext("beat-type")))
    return (numerator, denominator) if numerator > 0 and denominator > 0 else None


def _read_note(el: ET.Element, onset: Fraction, duration: Fraction, chord: _Chord | None, transpose: int,
               unpitched: dict[str, int], measure: _Measure) -> _Chord | None:
    """Adds the note to `chord` (the one it is written in, if any) or to a new chord; the chord it is in."""
    notations = el.findall("notations")
    if any(n.find("fermata") is not None for n in notations):
        measure.fermatas.append(onset)
    if el.find("rest") is not None or el.find("cue") is not None:
        return None
    pitch = _pitch(el, transpose, unpitched)
    if pitch is None:
        return chord
    if chord is None:
        chord = _Chord((el.findtext("voice") or "1").strip())
        measure.events.append((onset, 1, chord))
    ties = {t.get("type") for t in el.findall("tie")} | {t.get("type") for t in el.findall("notations/tied")}
    chord.pitches.append((pitch, duration, bool(ties & {"start", "continue"})))
    for marks in notations:
        for mark in marks.iterfind("articulations/*"):
            chord.staccato |= mark.tag in ("staccato", "staccatissimo", "spiccato")
            chord.accent |= mark.tag in ("accent", "strong-accent")
        for mark in marks.iterfind("dynamics/*"):
            written = _dynamic_mark(mark)
            chord.accent |= written in SFORZANDO
            measure.events.append((onset, 0, ("dynamic", written)))
        for slur in marks.iterfind("slur"):
            if slur.get("type") == "start":
                chord.slur_starts.add(slur.get("number", "1"))
            elif slur.get("type") == "stop":
                chord.slur_stops.add(slur.get("number", "1"))
    return chord


def _pitch(el: ET.Element, transpose: int, unpitched: dict[str, int]) -> int | None:
    written = el.find("pitch")
    if written is not None:
        step, octave = written.findtext("step", "").strip(), int(_number(written.findtext("octave"), Fraction(4)))
        if step not in _STEP_SEMITONES:
            return None
        alter = round(float(_number(written.findtext("alter"))))
        return 12 * (octave + 1) + _STEP_SEMITONES[step] + alter + transpose
    shown = el.find("unpitched")
    if shown is None:
        return None
    instrument = el.find("instrument")
    if instrument is not None and instrument.get("id") in unpitched:
        return unpitched[instrument.get("id")]
    step = shown.findtext("display-step", "C").strip()
    return 12 * (int(_number(shown.findtext("display-octave"), Fraction(4))) + 1) + _STEP_SEMITONES.get(step, 0)


def _dynamic_mark(el: ET.Element) -> str:
    return (el.text or "").strip() if el.tag == "other-dynamics" else el.tag


def _read_direction(el: ET.Element, at: Fraction, measure: _Measure) -> None:
    """A <direction> or <sound>: its dynamics, hairpins and tempo as events, its rehearsal mark on the measure."""
    metronome_bpm = None
    for kind in el.iterfind("direction-type/*"):
        if kind.tag == "dynamics":
            measure.events.extend((at, 0, ("dynamic", _dynamic_mark(mark))) for mark in kind)
        elif kind.tag == "wedge" and kind.get("type") in ("crescendo", "diminuendo", "stop"):
            measure.events.append((at, 0, ("wedge", (kind.get("type"), kind.get("number", "1")))))
        elif kind.tag == "rehearsal" and (kind.text or "").strip() and measure.rehearsal is None:
            measure.rehearsal = kind.text.strip()
        elif kind.tag == "metronome":
            metronome_bpm = _metronome_bpm(kind)
    sound = el if el.tag == "sound" else el.find("sound")
    sound_tempo = float(_number(sound.get("tempo"))) if sound is not None else 0.0
    if sound_tempo > 0 or metronome_bpm:
        measure.events.append((at, 0, ("tempo", sound_tempo if sound_tempo > 0 else metronome_bpm)))
    if sound is not None and sound.get("dynamics"):
        level = min(float(_number(sound.get("dynamics"))) / 100 * FORTE_VELOCITY, 1.0)
        measure.events.append((at, 0, ("level", level)))


def _metronome_bpm(metronome: ET.Element) -> float | None:
    """Quarter notes a minute of "beat-unit = per-minute" ("c. 120" and "120-132" read as 120)."""
    unit = _BEAT_UNIT_QUARTERS.get((metronome.findtext("beat-unit") or "").strip())
    rate = re.search(r"\d+(\.\d+)?", metronome.findtext("per-minute") or "")
    if unit is None or rate is None:
        return None
    dots = len(metronome.findall("beat-unit-dot"))
    return float(rate.group()) * unit * (2 - 0.5 ** dots)


def _performance_order(measures: list[_Measure]) -> list[int]:
    """Measure indices as played. A backward repeat goes back to the forward repeat before it, else to the bar after
    the previous repeat and its endings, else to the beginning; it is taken as often as its `times` say, else until
    each ending after it has had its pass (once where there are none). Each pass skips the endings not numbered
    for it."""
    start_of, opening = {}, 0
    for i, measure in enumerate(measures):
        if measure.forward:
            opening = i
        elif measure.ending is not None and 1 not in measure.ending and opening == i:
            opening = i + 1  # a later ending of the repeat before
        if measure.backward:
            start_of[i], opening = opening, i + 1
    counted: dict[int, list[int]] = {}  # ending measure -> the backward repeats whose jumps count its passes
    last_pass: dict[int, int] = {}  # ending measure -> the highest pass its group of endings numbers
    group: list[int] = []
    for i, measure in enumerate(measures + [_Measure("", False)]):
        if group and (measure.ending is None or (1 in measure.ending and 1 not in measures[i - 1].ending)):
            repeats = [k for k in group if measures[k].backward]
            if not repeats and group[0] > 0 and measures[group[0] - 1].backward:
                repeats = [group[0] - 1]  # a first ending left unmarked
            top = max(max(measures[k].ending) for k in group)
            for k in group:
                counted[k], last_pass[k] = repeats, top
            group = []
        if measure.ending is not None:
            group.append(i)
    order: list[int] = []
    jumps: dict[int, int] = defaultdict(int)
    i = 0
    while i < len(measures):
        measure = measures[i]
        if measure.ending is None:
            passage, times = jumps[i] + 1, measure.times or 2
        else:
            passage = 1 + sum(jumps[k] for k in counted[i])
            times = measure.times or max(last_pass[i], max(measure.ending) + 1)
            if passage not in measure.ending:
                i += 1
                continue
        order.append(i)
        if measure.backward and passage < times:
            jumps[i] += 1
            i = start_of[i]
            continue
        i += 1
    return order


def _unfold(title: str, source: str, parts: list[ScorePart], part_measures: list[list[_Measure]]) -> Score:
    """The score played through: the bars in performance order and each part's notes and marks in them."""
    written = [_merged_marks([measures[i] for measures in part_measures if i < len(measures)])
               for i in range(max(len(measures) for measures in part_measures))]
    meters, meter = [], (4, 4)
    for measure in written:
        meter = measure.meter or meter
        meters.append(meter)
    lengths = [m.content or Fraction(4 * num, den) for m, (num, den) in zip(written, meters)]
    order = _performance_order(written)
    starts, bars, q = [], [], Fraction(0)
    for index in order:
        (num, den), measure = meters[index], written[index]
        beats = _bar_beats(num, den, lengths[index], pickup=measure.implicit or index == 0)
        bars.append(ScoreBar(measure.number, float(q), float(lengths[index]), f"{num}/{den}", beats,
                             measure.rehearsal))
        starts.append(q)
        q += lengths[index]

    rows: list[list] = []
    tempo: dict[Fraction, float] = {}
    fermatas, dynamics, hairpins = set(), set(), set()
    for part, measures in enumerate(part_measures):
        held: dict[tuple[str, int], int] = {}  # (voice, pitch) -> row of the note tied on
        slurs: dict[str, set[str]] = defaultdict(set)  # voice -> slurs open
        wedges: dict[str, tuple[Fraction, str]] = {}
        level = DEFAULT_VELOCITY
        for bar_start, index in zip(starts, order):
            if index >= len(measures):
                continue
            fermatas.update(bar_start + offset for offset in measures[index].fermatas)
            for offset, _, event in measures[index].events:
                at = bar_start + offset
                if isinstance(event, _Chord):
                    open_slurs = slurs[event.voice]
                    slurred = bool(open_slurs or event.slur_starts or event.slur_stops)
                    open_slurs -= event.slur_stops
                    open_slurs |= event.slur_starts
                    for pitch, duration, tied_on in event.pitches:
                        # A tie goes on into the voice's next note of its pitch starting where it ends, stop marked
                        # or not (files leave it out at a second ending).
                        row = held.pop((event.voice, pitch), None)
                        if row is not None and rows[row][0] + rows[row][1] == at:
                            rows[row][1] += duration
                        else:
                            rows.append([at, duration, pitch, part, level, event.staccato, event.accent, slurred])
                            row = len(rows) - 1
                        if tied_on:
                            held[(event.voice, pitch)] = row
                    continue
                kind, value = event
                if kind == "dynamic":
                    dynamics.add((at, value))
                    level = LEVEL_VELOCITY.get(LEVEL_AFTER.get(value, value), level)
                elif kind == "level":
                    level = value
                elif kind == "tempo":
                    tempo.setdefault(at, value)
                elif value[0] != "stop":
                    wedges[value[1]] = (at, value[0])
                elif value[1] in wedges:
                    begun, shape = wedges.pop(value[1])
                    hairpins.add((begun, at, shape))
    for row in rows:
        row[0], row[1] = float(row[0]), float(row[1])
    return _score(title, source, parts, rows, bars, tempo, fermatas, dynamics, hairpins)


def _merged_marks(measures: list[_Measure]) -> _Measure:
    """The bar all parts' measures at one index make together: the first part's marks where they differ, and the
    length most parts with notes there reach (the longest of those equally many; all parts' where none has notes)."""
    first = measures[0]
    playing = [m for m in measures if any(isinstance(event, _Chord) for _, _, event in m.events)]
    reached = Counter(m.content for m in playing or measures if m.content > 0)
    return _Measure(
        number=first.number, implicit=any(m.implicit for m in measures),
        content=max(reached, key=lambda length: (reached[length], length), default=Fraction(0)),
        meter=next((m.meter for m in measures if m.meter), None),
        rehearsal=next((m.rehearsal for m in measures if m.rehearsal), None),
        forward=any(m.forward for m in measures), backward=any(m.backward for m in measures),
        times=max((m.times for m in measures if m.times), default=None),
        ending=next((m.ending for m in measures if m.ending is not None), None),
    )


# MIDI --------------------------------------------------------------------------------------------------------------

@dataclass
class _Track:
    name: str = ""
    notes: list[tuple[int, int, int, int, int]] = field(default_factory=list)  # (start, end tick, pitch, chan, vel)
    programs: dict[int, int] = field(default_factory=dict)  # channel -> first program
    tempos: list[tuple[int, float]] = field(default_factory=list)  # (tick, quarter BPM)
    meters: list[tuple[int, int, int]] = field(default_factory=list)  # (tick, numerator, denominator)


def _read_midi(path: Path, data: bytes) -> Score:
    name = path.name
    if len(data) < 14 or data[:4] != b"MThd":
        raise ScoreError(f"{name} is not a standard MIDI file (it does not begin with MThd): export the score as a "
                         "MIDI (.mid) file.")
    header_length, file_format, _, division = struct.unpack(">IHHH", data[4:14])
    if file_format == 2:
        raise ScoreError(f"{name} is a format 2 MIDI file (independent patterns), which is not read: export it as "
                         "format 1.")
    if division & 0x8000 or division == 0:
        raise ScoreError(f"{name} is not timed in ticks per quarter note (SMPTE time code, or none): export it "
                         "timed in beats.")
    tracks, at = [], 8 + header_length
    while at + 8 <= len(data):
        kind, size = struct.unpack(">4sI", data[at:at + 8])
        if kind == b"MTrk":
            tracks.append(_read_track(name, data[at + 8:at + 8 + size]))
        at += 8 + size
    ppq = division
    programs_anywhere = {channel: program for track in reversed(tracks) for channel, program in track.programs.items()}
    parts, rows = [], []
    for track in tracks:
        channels = sorted({note[3] for note in track.notes})
        for channel in channels:
            program = track.programs.get(channel, programs_anywhere.get(channel))
            instrument = "Percussion" if channel == PERCUSSION_CHANNEL else (
                GM_PROGRAMS[program] if program is not None else "")
            part_name = (track.name if len(channels) == 1 else "") or instrument or f"Part {len(parts) + 1}"
            rows += [(start / ppq, (end - start) / ppq, pitch, len(parts), velocity / 127, False, False, False)
                     for start, end, pitch, note_channel, velocity in track.notes if note_channel == channel]
            parts.append(ScorePart(part_name, instrument or part_name, program))
    title = tracks[0].name if tracks and (file_format == 0 or not tracks[0].notes) else ""
    tempo: dict[Fraction, float] = {}
    for track in tracks:
        for tick, bpm in track.tempos:
            tempo.setdefault(Fraction(tick, ppq), bpm)
    meters = sorted({tick: (num, den) for track in tracks for tick, num, den in track.meters}.items())
    end = Fraction(max((note[1] for track in tracks for note in track.notes), default=0), ppq)
    return _score(title or path.stem, name, parts, rows, _midi_bars(meters, ppq, end), tempo, set(), set(), set())


def _midi_bars(meters: list[tuple[int, tuple[int, int]]], ppq: int, end: Fraction) -> list[ScoreBar]:
    """Whole bars from tick 0 to `end`, cut short where a time signature comes inside one."""
    changes = [(Fraction(tick, ppq), meter) for tick, meter in meters]
    bars, q, meter, upcoming = [], Fraction(0), (4, 4), 0
    while q < end or not bars:
        while upcoming < len(changes) and changes[upcoming][0] <= q:
            meter, upcoming = changes[upcoming][1], upcoming + 1
        length = Fraction(4 * meter[0], meter[1])
        if upcoming < len(changes) and changes[upcoming][0] < q + length:
            length = changes[upcoming][0] - q
        bars.append(ScoreBar(str(len(bars) + 1), float(q), float(length), f"{meter[0]}/{meter[1]}",
                             _bar_beats(*meter, length, pickup=False)))
        q += length
    return bars


def _varlen(body: bytes, at: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        byte = body[at]
        at += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at
    raise ValueError("a number longer than 4 bytes")


def _read_track(name: str, body: bytes) -> _Track:
    track, tick, at, status = _Track(), 0, 0, 0
    sounding: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)  # (channel, pitch) -> [(tick, vel)]
    try:
        while at < len(body):
            delta, at = _varlen(body, at)
            tick += delta
            lead = body[at]
            if lead == 0xFF:
                kind = body[at + 1]
                length, at = _varlen(body, at + 2)
                payload, at = body[at:at + length], at + length
                if len(payload) < length:
                    raise IndexError
                if kind == 0x2F:
                    break
                if kind == 0x03 and not track.name:
                    track.name = payload.decode("utf-8", errors="replace").strip()
                elif kind == 0x51 and length == 3 and int.from_bytes(payload, "big") > 0:
                    track.tempos.append((tick, 60e6 / int.from_bytes(payload, "big")))
                elif kind == 0x58 and length >= 2 and payload[0] > 0:
                    track.meters.append((tick, payload[0], 2 ** payload[1]))
                continue
            if lead in (0xF0, 0xF7):
                length, at = _varlen(body, at + 1)
                at += length
                continue
            if lead & 0x80:
                status, at = lead, at + 1
            if status < 0x80 or status >= 0xF0:
                raise ValueError(f"data byte {lead:#04x} with no status before it")
            kind, channel = status & 0xF0, status & 0x0F
            size = 1 if kind in (0xC0, 0xD0) else 2
            message, at = body[at:at + size], at + size
            if len(message) < size:
                raise IndexError
            if kind == 0x90 and message[1] > 0:
                sounding[(channel, message[0])].append((tick, message[1]))
            elif kind in (0x80, 0x90) and sounding[(channel, message[0])]:
                start, velocity = sounding[(channel, message[0])].pop(0)
                track.notes.append((start, tick, message[0], channel, velocity))
            elif kind == 0xC0:
                track.programs.setdefault(channel, message[0])
    except IndexError as exc:
        raise ScoreError(f"{name} is a corrupt MIDI file (a track ends inside an event): export it again.") from exc
    except ValueError as exc:
        raise ScoreError(f"{name} is a corrupt MIDI file ({exc}): export it again.") from exc
    track.notes += [(start, tick, pitch, channel, velocity) for (channel, pitch), held in sounding.items()
                    for start, velocity in held]
    return track
