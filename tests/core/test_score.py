"""Scores read from MusicXML and MIDI: music21's corpus as the oracle for notes, bars and parts, hand-written files
for each notation the conductor follows, and files that cannot be read refused with their name and the fix."""

import ast
import struct
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gm_blender_addon.core import score as score_module
from gm_blender_addon.core.score import NOTE_DTYPE, ScoreError, conducted_beats, load_score

# music21 corpus works (excerpt bars, or None for all): what each one exercises.
CORPUS = {
    "bach/bwv66.6": None,  # a pickup, fermatas, a tempo mark
    "bach/bwv8.6": None,  # a repeat with first and second endings, a tie into the second ending left unmarked
    "leadSheet/fosterBrownHair": None,  # a song with chord symbols (not notes), repeats and endings, an unnamed part
    # a clarinet in B-flat, a piano on two staves; from bar 2, as the parts overfill bar 1 each by another length
    "weber/concertino_clarinet": (2, 30),
}


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory):
    """{work: (the music21 stream, the same with its repeats unfolded, its MusicXML file)}, made once."""
    corpus = pytest.importorskip("music21.corpus")
    folder = tmp_path_factory.mktemp("corpus")
    works = {}
    for work, bars in CORPUS.items():
        stream = corpus.parse(work)
        if bars:
            stream = stream.measures(*bars)
        path = folder / (work.replace("/", "_") + ".musicxml")
        stream.write("musicxml", fp=str(path))
        works[work] = (stream, stream.expandRepeats(), path)
    return works


def _music21_notes(stream) -> Counter:
    """(onset, sounding pitch) of each note music21 reads, a note tied on joined with the next of its pitch that
    starts where it ends."""
    from music21 import harmony

    found = Counter()
    for part in stream.toSoundingPitch().parts:
        held: dict[int, float] = {}
        for element in part.flatten().notes:
            if element.duration.isGrace or isinstance(element, harmony.Harmony):
                continue
            onset, end = float(element.offset), float(element.offset + element.quarterLength)
            for note in element.notes if element.isChord else (element,):
                pitch = note.pitch.midi
                if abs(held.get(pitch, -1.0) - onset) > 1e-6:
                    found[(round(onset, 2), pitch)] += 1
                tied_on = note.tie is not None and note.tie.type in ("start", "continue")
                held[pitch] = end if tied_on else -1.0
    return found


def _our_notes(score) -> Counter:
    return Counter((round(float(q), 2), int(p)) for q, p in zip(score.notes["onset"], score.notes["pitch"]))


@pytest.mark.parametrize("work", CORPUS)
def test_musicxml_notes_bars_meters_and_parts_match_music21(corpus_files, work):
    stream, played, path = corpus_files[work]
    score = load_score(path)
    assert _our_notes(score) == _music21_notes(played)
    assert score.notes.dtype == NOTE_DTYPE
    assert np.all(np.diff(score.notes["onset"]) >= 0)
    measures = list(played.parts[0].getElementsByClass("Measure"))
    assert [bar.number for bar in score.bars] == [str(m.number) for m in measures]
    meters, meter = [], (measures[0].timeSignature or measures[0].getContextByClass("TimeSignature")).ratioString
    for measure in measures:
        meter = measure.timeSignature.ratioString if measure.timeSignature else meter
        meters.append(meter)
    assert [bar.meter for bar in score.bars] == meters
    assert [bar.start for bar in score.bars] == pytest.approx([float(m.offset) for m in measures])
    named = dict.fromkeys(part.partName or f"Part {i + 1}" for i, part in enumerate(stream.parts))
    assert [part.name for part in score.parts] == list(named)  # music21 has a part for each staff
    assert score.source == path.name and len(score.notes) == sum(_music21_notes(played).values())


def test_a_pickup_and_fermatas_of_a_chorale(corpus_files):
    score = load_score(corpus_files["bach/bwv66.6"][2])
    assert score.bars[0].number == "0" and score.bars[0].length == 1.0 and score.bars[0].beats == (0.0,)
    assert score.bars[1].beats == (0.0, 1.0, 2.0, 3.0) and score.end == 37.0
    assert len(score.fermatas) == 6 and score.tempo_marks == ((0.0, 96.0),)
    q, bar = score.beat_times()
    assert q[:6].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and bar[:6].tolist() == [0, 1, 1, 1, 1, 2]


def test_a_second_half_repeated_with_no_forward_repeat_is_repeated_from_its_own_start():
    """Mozart's K. 80 Adagio marks its halves' ends only (bars 28 and 67); music21 unfolds the second repeat from bar
    1, where it is played from bar 29."""
    corpus = pytest.importorskip("music21.corpus")
    score = load_score(corpus.getWork("mozart/k80/movement1"))
    first, second = [str(n) for n in range(1, 29)], [str(n) for n in range(29, 68)]
    assert [bar.number for bar in score.bars] == first + first + second + second


def test_a_clarinet_in_b_flat_sounds_a_tone_below_its_written_notes(corpus_files):
    stream, _, path = corpus_files["weber/concertino_clarinet"]
    assert "<chromatic>-2</chromatic>" in path.read_text()
    score = load_score(path)
    assert score.parts[0].instrument == "Bb Clarinet" and score.parts[0].program == 71
    written = [n.pitch.midi for n in stream.parts[0].flatten().notes
               if not n.duration.isGrace and (n.tie is None or n.tie.type == "start")][:5]
    assert score.notes[score.notes["part"] == 0]["pitch"][:5].tolist() == [p - 2 for p in written]


def test_compressed_musicxml_reads_the_rootfile_its_container_names(corpus_files, tmp_path):
    path = corpus_files["bach/bwv66.6"][2]
    mxl = tmp_path / "chorale.mxl"
    with zipfile.ZipFile(mxl, "w") as archive:
        archive.writestr("META-INF/container.xml", '<?xml version="1.0"?><container><rootfiles>'
                         '<rootfile full-path="music/chorale.xml"/></rootfiles></container>')
        archive.writestr("music/chorale.xml", path.read_bytes())
    compressed, plain = load_score(mxl), load_score(path)
    assert np.array_equal(compressed.notes, plain.notes) and compressed.bars == plain.bars


@pytest.mark.parametrize("work", ["bach/bwv66.6", "bach/bwv8.6"])
def test_midi_notes_and_tempo_match_music21(corpus_files, tmp_path, work):
    stream, played, _ = corpus_files[work]
    path = tmp_path / "work.mid"
    stream.write("midi", fp=str(path))
    score = load_score(path)
    assert _our_notes(score) == _music21_notes(played)  # music21 writes MIDI with the repeats unfolded
    assert [part.name for part in score.parts] == [part.partName for part in stream.parts]
    assert score.tempo_marks[0][0] == 0.0 and score.fermatas == () and score.dynamics == ()
    assert all(bar.meter == "4/4" and bar.beats == (0.0, 1.0, 2.0, 3.0) for bar in score.bars)


# Hand-written MusicXML -------------------------------------------------------------------------------------------

def _note(pitch: str, duration: int = 2, inner: str = "", notations: str = "", voice: str = "1") -> str:
    """A note of `pitch` ("C5", "F#4", "Bb3", "rest"), `duration` in eighths (divisions are 2)."""
    if pitch == "rest":
        sound = "<rest/>"
    else:
        step, octave = pitch[0], pitch[-1]
        alter = {"#": 1, "b": -1}.get(pitch[1:-1], 0)
        sound = f"<pitch><step>{step}</step><alter>{alter}</alter><octave>{octave}</octave></pitch>"
    notations = f"<notations>{notations}</notations>" if notations else ""
    return f"<note>{inner}{sound}<duration>{duration}</duration><voice>{voice}</voice>{notations}</note>"


def _attributes(beats: int | str = 4, beat_type: int = 4, extra: str = "") -> str:
    """The first measure's attributes: divisions 2 (an eighth is 1), the time signature, and `extra`."""
    return (f"<attributes><divisions>2</divisions><time><beats>{beats}</beats><beat-type>{beat_type}</beat-type>"
            f"</time>{extra}</attributes>")


def _time(beats: int | str, beat_type: int) -> str:
    return f"<attributes><time><beats>{beats}</beats><beat-type>{beat_type}</beat-type></time></attributes>"


def _measure(number, body: str, implicit: bool = False) -> str:
    pickup = ' implicit="yes"' if implicit else ""
    return f'<measure number="{number}"{pickup}>{body}</measure>'


def _direction(kind: str, offset: int | None = None, sound: str = "") -> str:
    placed = f"<offset>{offset}</offset>" if offset is not None else ""
    return f"<direction><direction-type>{kind}</direction-type>{placed}{sound}</direction>"


def _write(folder: Path, *parts: list[str], part_list: str = "", name: str = "score.musicxml") -> Path:
    """A partwise score of `parts`, each a list of its measures; the parts are named "Part name 1", ...."""
    part_list = part_list or "".join(f'<score-part id="P{i + 1}"><part-name>Part name {i + 1}</part-name>'
                                     "</score-part>" for i in range(len(parts)))
    body = "".join(f'<part id="P{i + 1}">{"".join(measures)}</part>' for i, measures in enumerate(parts))
    path = folder / name
    path.write_text('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="4.0"><work><work-title>'
                    f"Test piece</work-title></work><part-list>{part_list}</part-list>{body}</score-partwise>",
                    encoding="utf-8")
    return path


def test_a_pickup_keeps_the_last_beats_of_its_meter_and_a_short_last_bar_its_first(tmp_path):
    path = _write(tmp_path, [
        _measure(0, _attributes(3, 4) + _note("G4"), implicit=True),
        _measure(1, _note("C5") + _note("D5") + _note("E5")),
        _measure(2, _note("F5", 4)),
    ])
    score = load_score(path)
    assert [(b.number, b.start, b.length, b.meter, b.beats) for b in score.bars] == [
        ("0", 0.0, 1.0, "3/4", (0.0,)), ("1", 1.0, 3.0, "3/4", (0.0, 1.0, 2.0)), ("2", 4.0, 2.0, "3/4", (0.0, 1.0))]
    q, bar = score.beat_times()
    assert q.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and bar.tolist() == [0, 1, 1, 1, 2, 2]
    assert score.end == 6.0 and score.title == "Test piece"


@pytest.mark.parametrize("meter, eighths, beats", [((4, 4), 4, (0.0, 1.0)), ((3, 4), 2, (0.0,)),
                                                   ((6, 8), 4, (0.5,)), ((6, 8), 1, ())])
def test_pickup_beats_are_counted_back_from_its_end(tmp_path, meter, eighths, beats):
    bar = "".join(_note("C5", 1) for _ in range(2 * 4 * meter[0] // meter[1]))
    path = _write(tmp_path, [_measure(0, _attributes(*meter) + _note("G4", eighths)), _measure(1, bar)])
    assert load_score(path).bars[0].beats == beats


def test_compound_uneven_and_changing_meters_are_beaten_in_groups(tmp_path):
    dotted_quarter_60 = ("<metronome><beat-unit>quarter</beat-unit><beat-unit-dot/><per-minute>60</per-minute>"
                         "</metronome>")
    path = _write(tmp_path, [
        _measure(1, _attributes(6, 8) + _direction(dotted_quarter_60) + _note("C5", 3) + _note("D5", 3)),
        _measure(2, _time(5, 4) + "".join(_note("E5") for _ in range(5))),
        _measure(3, _time(7, 8) + "".join(_note("F5", 1) for _ in range(7))),
        _measure(4, _time(2, 2) + _note("G5", 8)),
        _measure(5, "<attributes><time><senza-misura/></time></attributes>" + _note("A5", 8)),
    ])
    score = load_score(path)
    assert [bar.meter for bar in score.bars] == ["6/8", "5/4", "7/8", "2/2", "4/4"]
    assert [bar.beats for bar in score.bars] == [(0.0, 1.5), (0.0, 3.0), (0.0, 1.0, 2.0), (0.0, 2.0),
                                                 (0.0, 1.0, 2.0, 3.0)]
    assert [bar.start for bar in score.bars] == [0.0, 3.0, 8.0, 11.5, 15.5] and score.end == 19.5
    assert score.tempo_marks == ((0.0, 90.0),)


@pytest.mark.parametrize("numerator, denominator, beats", [
    (2, 4, (0, 1)), (3, 4, (0, 1, 2)), (4, 4, (0, 1, 2, 3)), (2, 2, (0, 2)), (3, 2, (0, 2, 4)), (3, 8, (0,)),
    (6, 8, (0, 1.5)), (9, 8, (0, 1.5, 3)), (12, 8, (0, 1.5, 3, 4.5)), (12, 16, (0, 0.75, 1.5, 2.25)),
    (5, 4, (0, 3)), (5, 8, (0, 1.5)), (7, 8, (0, 1, 2)), (6, 4, (0, 3)), (8, 8, (0, 1.5, 3)),
    (11, 8, (0, 1.5, 3, 4.5)),
])
def test_conducted_beats(numerator, denominator, beats):
    assert conducted_beats(numerator, denominator) == tuple(map(float, beats))


FORWARD = '<barline location="left"><repeat direction="forward"/></barline>'
BACK = '<repeat direction="backward"/>'


def _backward(times: int | None = None) -> str:
    counted = f' times="{times}"' if times else ""
    return f'<barline location="right"><repeat direction="backward"{counted}/></barline>'


def _ending(number: str, last: str = "", kind: str = "stop") -> str:
    """A one-measure ending bracket, with `last` (a backward repeat) in its right barline."""
    return (f'<barline location="left"><ending number="{number}" type="start"/></barline>'
            f'<barline location="right"><ending number="{number}" type="{kind}"/>{last}</barline>')


@pytest.mark.parametrize("barlines, played", [
    # first and second endings, repeated from the beginning
    (["", "", _ending("1", BACK), _ending("2", kind="discontinue")], "1 2 3 1 2 4"),
    # a forward repeat, played three times
    (["", FORWARD, _backward(3), ""], "1 2 3 2 3 2 3 4"),
    # endings for passes 1 and 2, then 3
    ([FORWARD, _ending("1, 2", BACK), _ending("3", kind="discontinue"), ""],
     "1 2 1 2 1 3 4"),
    # two repeated sections, the second with or without its forward repeat
    (["", _backward(), FORWARD, _backward()], "1 2 1 2 3 4 3 4"),
    (["", _backward(), "", _backward()], "1 2 1 2 3 4 3 4"),
    # a repeat after the endings of another
    (["", _ending("1", BACK), _ending("2"), _backward()], "1 2 1 3 4 4"),
    # a first ending with no second ending marked, and a second ending with no first
    (["", _ending("1", BACK), ""], "1 2 1 3"),
    (["", _backward(), _ending("2"), ""], "1 2 1 2 3 4"),
])
def test_repeats_and_endings_are_unfolded(tmp_path, barlines, played):
    pitches = ["C4", "D4", "E4", "F4", "G4", "A4"]
    path = _write(tmp_path, [_measure(i + 1, (_attributes() if i == 0 else "") + barline + _note(pitches[i], 8))
                             for i, barline in enumerate(barlines)])
    score = load_score(path)
    numbers = played.split()
    assert [bar.number for bar in score.bars] == numbers
    assert [bar.start for bar in score.bars] == [4.0 * i for i in range(len(numbers))]
    midi = {"C4": 60, "D4": 62, "E4": 64, "F4": 65, "G4": 67, "A4": 69}
    assert score.notes["pitch"].tolist() == [midi[pitches[int(n) - 1]] for n in numbers]
    assert score.notes["onset"].tolist() == [bar.start for bar in score.bars]


def test_ties_chords_voices_backup_forward_and_grace_notes(tmp_path):
    path = _write(tmp_path, [
        _measure(1, _attributes() + _note("C5", 4) + _note("C5", 4, notations='<tied type="start"/>')
                 + "<backup><duration>8</duration></backup>"
                 + _note("E4", 4, voice="2") + _note("G4", 4, inner="<chord/>", voice="2")
                 + "<forward><duration>2</duration></forward>" + _note("D4", 2, voice="2")),
        _measure(2, '<note><grace/><pitch><step>B</step><octave>4</octave></pitch><voice>1</voice></note>'
                 + _note("C5", 2, inner='<tie type="stop"/>') + _note("rest", 6)),
    ])
    notes = load_score(path).notes
    assert notes[["onset", "duration", "pitch"]].tolist() == [(0.0, 2.0, 64), (0.0, 2.0, 67), (0.0, 2.0, 72),
                                                              (2.0, 3.0, 72), (3.0, 1.0, 62)]


def test_transposing_instruments_sound_at_concert_pitch(tmp_path):
    part_list = ('<score-part id="P1"><part-name>Clarinet in B♭</part-name><score-instrument id="P1-I1">'
                 "<instrument-name>B♭ Clarinet</instrument-name></score-instrument><midi-instrument id=\"P1-I1\">"
                 "<midi-channel>1</midi-channel><midi-program>72</midi-program></midi-instrument></score-part>"
                 '<score-part id="P2"><part-name>Bass Clarinet</part-name></score-part>')
    clarinet = "<transpose><diatonic>-1</diatonic><chromatic>-2</chromatic></transpose>"
    bass = "<transpose><diatonic>-1</diatonic><chromatic>-2</chromatic><octave-change>-1</octave-change></transpose>"
    path = _write(tmp_path, [_measure(1, _attributes(extra=clarinet) + _note("D5", 8))],
                  [_measure(1, _attributes(extra=bass) + _note("D4", 8))], part_list=part_list)
    score = load_score(path)
    assert score.notes["pitch"].tolist() == [48, 72]  # the bass clarinet's C3, the clarinet's C5
    assert score.parts[0].name == "Clarinet in B♭" and score.parts[0].instrument == "B♭ Clarinet"
    assert score.parts[0].program == 71 and score.parts[1].instrument == "Bass Clarinet"
    assert score.parts[1].program is None


def test_dynamics_hairpins_fermatas_articulation_slurs_rehearsal_and_tempo(tmp_path):
    quarter_90 = "<metronome><beat-unit>quarter</beat-unit><per-minute>90</per-minute></metronome>"
    half_60 = "<metronome><beat-unit>half</beat-unit><per-minute>c. 60</per-minute></metronome>"
    path = _write(tmp_path, [
        _measure(1, _attributes() + _direction("<rehearsal>A</rehearsal>") + _direction(quarter_90)
                 + _direction("<dynamics><p/></dynamics>") + _direction('<wedge type="crescendo"/>', offset=4)
                 + _note("C4", notations="<articulations><staccato/></articulations>")
                 + _note("D4", notations="<articulations><accent/></articulations>")
                 + _note("E4", notations='<slur number="1" type="start"/>')
                 + _note("F4", notations='<slur number="1" type="stop"/>')),
        _measure(2, _direction('<wedge type="stop"/>') + _direction("<dynamics><f/></dynamics>")
                 + _note("G4", 8, notations="<fermata/>")),
        _measure(3, _direction(half_60, sound='<sound dynamics="50"/>')
                 + _note("A4", notations="<dynamics><sfz/></dynamics>") + _note("rest", 6, notations="<fermata/>")),
    ])
    score = load_score(path)
    assert score.bars[0].rehearsal == "A" and score.bars[1].rehearsal is None
    assert score.tempo_marks == ((0.0, 90.0), (8.0, 120.0))
    assert score.dynamics == ((0.0, "p"), (4.0, "f"), (8.0, "sfz"))
    assert score.hairpins == ((2.0, 4.0, "crescendo"),)
    assert score.fermatas == (4.0, 9.0)
    notes = score.notes
    assert notes["pitch"].tolist() == [60, 62, 64, 65, 67, 69]
    assert notes["velocity"] == pytest.approx([0.4, 0.4, 0.4, 0.4, 90 / 127, 0.5 * 90 / 127])
    assert notes["staccato"].tolist() == [True, False, False, False, False, False]
    assert notes["accent"].tolist() == [False, True, False, False, False, True]
    assert notes["slurred"].tolist() == [False, False, True, True, False, False]


def test_entrances_after_rests_and_first_notes_after_the_first_bar_and_exits_before_rests(tmp_path):
    whole, rest = _note("C4", 8), _note("rest", 8)
    first = _measure(1, _attributes() + _note("rest", 2) + _note("E4", 6))
    path = _write(tmp_path,
                  [first] + [_measure(n, whole) for n in range(2, 7)],
                  [_measure(1, _attributes() + whole)] + [_measure(n, rest) for n in (2, 3, 4)]
                  + [_measure(5, whole), _measure(6, whole)],
                  [_measure(1, _attributes() + rest), _measure(2, rest)] + [_measure(n, whole) for n in range(3, 7)])
    score = load_score(path)
    assert score.entrances() == [(8.0, 2), (16.0, 1)]
    assert score.entrances(min_rest_bars=4.0) == [(8.0, 2)]
    # The second part stops after bar 1 while the first plays on; nobody stops at the end.
    assert score.exits() == [(4.0, 1)] and score.exits(min_rest_bars=4.0) == []
    assert [part.name for part in score.parts] == ["Part name 1", "Part name 2", "Part name 3"]


# Hand-made MIDI --------------------------------------------------------------------------------------------------

def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.insert(0, (value & 0x7F) | 0x80)
    return bytes(out)


def _track(*events: tuple[int, bytes]) -> bytes:
    """An MTrk chunk of (delta ticks, event bytes), ended."""
    body = b"".join(_varlen(delta) + event for delta, event in events) + b"\x00\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(body)) + body


def _midi(file_format: int, ppq: int, *tracks: bytes) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, file_format, len(tracks), ppq) + b"".join(tracks)


def _meta(kind: int, payload: bytes) -> bytes:
    return bytes([0xFF, kind]) + _varlen(len(payload)) + payload


def test_a_midi_file_with_tempo_and_meter_changes_running_status_and_drums(tmp_path):
    q = 96
    conductor = _track((0, _meta(0x03, b"Little March")), (0, _meta(0x51, (500000).to_bytes(3, "big"))),
                       (0, _meta(0x58, bytes([3, 2, 24, 8]))), (3 * q, _meta(0x51, (1000000).to_bytes(3, "big"))),
                       (3 * q, _meta(0x58, bytes([4, 2, 24, 8]))))
    violin = _track((0, _meta(0x03, b"Violin I")), (0, b"\xc0\x28"),
                    (0, b"\x90\x3c\x50"), (q, b"\x3c\x00"),  # running status; a note-on at velocity 0 ends it
                    (0, b"\x3e\x64"), (2 * q, b"\x80\x3e\x40"),
                    (3 * q, b"\x90\x40\x7f"), (3 * q, b"\x40\x00"))
    drums = _track((0, b"\x99\x24\x7f"), (q // 2, b"\x89\x24\x00"), (5 * q // 2, b"\x99\x26\x40"),
                   (q, b"\x26\x00"))
    path = tmp_path / "march.mid"
    path.write_bytes(_midi(1, q, conductor, violin, drums))
    score = load_score(path)
    assert score.title == "Little March" and score.source == "march.mid"
    assert [(p.name, p.instrument, p.program) for p in score.parts] == [("Violin I", "Violin", 40),
                                                                        ("Percussion", "Percussion", None)]
    assert score.notes[["onset", "duration", "pitch", "part"]].tolist() == [
        (0.0, 0.5, 36, 1), (0.0, 1.0, 60, 0), (1.0, 2.0, 62, 0), (3.0, 1.0, 38, 1), (6.0, 3.0, 64, 0)]
    assert score.notes["velocity"] == pytest.approx(np.array([127, 80, 100, 64, 127]) / 127)
    assert score.tempo_marks == ((0.0, 120.0), (3.0, 60.0))
    assert [(b.number, b.start, b.length, b.meter, b.beats) for b in score.bars] == [
        ("1", 0.0, 3.0, "3/4", (0.0, 1.0, 2.0)), ("2", 3.0, 3.0, "3/4", (0.0, 1.0, 2.0)),
        ("3", 6.0, 4.0, "4/4", (0.0, 1.0, 2.0, 3.0))]
    assert score.fermatas == () and score.dynamics == () and score.hairpins == ()


def test_a_format_0_midi_file_names_its_channels_by_their_programs(tmp_path):
    q = 480
    duet = _track((0, _meta(0x03, b"Duet")), (0, b"\xc0\x49"), (0, b"\xc1\x46"),
                  (0, b"\x90\x48\x40"), (0, b"\x91\x30\x40"), (0, b"\x92\x24\x40"),
                  (q, b"\x80\x48\x00"), (0, b"\x81\x30\x00"), (0, b"\x82\x24\x00"))
    path = tmp_path / "duet.midi"
    path.write_bytes(_midi(0, q, duet))
    score = load_score(path)
    assert score.title == "Duet" and [bar.length for bar in score.bars] == [4.0]
    assert [(p.name, p.instrument, p.program) for p in score.parts] == [
        ("Flute", "Flute", 73), ("Bassoon", "Bassoon", 70), ("Part 3", "Part 3", None)]
    assert score.notes[["pitch", "part", "duration"]].tolist() == [(36, 2, 1.0), (48, 1, 1.0), (72, 0, 1.0)]


# Files that cannot be read ---------------------------------------------------------------------------------------

def _timewise() -> bytes:
    return (b'<?xml version="1.0"?><score-timewise><part-list><score-part id="P1"><part-name>A</part-name>'
            b'</score-part></part-list><measure number="1"><part id="P1"/></measure></score-timewise>')


@pytest.mark.parametrize("name, content, problem", [
    ("empty.musicxml", b"", "not readable MusicXML"),
    ("empty.mid", b"", "not a standard MIDI file"),
    ("garbage.musicxml", bytes(range(256)) * 4, "not readable MusicXML"),
    ("garbage.mid", bytes(range(256)) * 4, "not a standard MIDI file"),
    ("cut.mid", _midi(0, 96, _track((0, b"\x90\x3c\x50")))[:-6], "corrupt MIDI file"),
    ("patterns.mid", _midi(2, 96, _track((0, b"\x90\x3c\x50"))), "format 2"),
    ("frames.mid", b"MThd" + struct.pack(">IHHH", 6, 0, 0, 0xE728), "SMPTE"),
    ("garbage.mxl", b"PK\x03\x04 not really a zip", "compressed MusicXML"),
    ("timewise.xml", _timewise(), "re-export it as partwise"),
    ("opus.xml", b"<opus><title>Works</title></opus>", "not a MusicXML score"),
    ("score.pdf", b"%PDF-1.4", "unknown score format"),
])
def test_unreadable_files_are_refused_with_their_name_and_the_fix(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ScoreError, match=problem) as error:
        load_score(path)
    assert name in str(error.value)


def test_a_missing_file_and_a_score_of_rests_are_refused(tmp_path):
    with pytest.raises(ScoreError, match="not found") as error:
        load_score(tmp_path / "nowhere.musicxml")
    assert "nowhere.musicxml" in str(error.value)
    rests = _write(tmp_path, [_measure(1, _attributes() + _note("rest", 8))], name="silence.musicxml")
    with pytest.raises(ScoreError, match="silence.musicxml holds no notes"):
        load_score(rests)
    silent_midi = tmp_path / "silence.mid"
    silent_midi.write_bytes(_midi(1, 96, _track((0, _meta(0x51, (500000).to_bytes(3, "big"))))))
    with pytest.raises(ScoreError, match="silence.mid holds no notes"):
        load_score(silent_midi)


def test_the_reader_needs_only_the_standard_library_and_numpy():
    tree = ast.parse(Path(score_module.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "io", "re", "struct", "xml", "zipfile", "collections", "dataclasses",
                        "fractions", "pathlib", "numpy"}
