"""What an aligned score tells the conductor: exact beats and bars, meter changes, tempo changes, fermatas,
dynamics, the entrances to cue and the phrase ends to cut off, as times in the recording.

The analysis of a recording with its score is the audio analysis (loudness, silences, held notes) on the score's
beats and bars, plus a `ScoreGuide` that generators read where they can use it (the procedural conductor cues,
holds fermatas, prepares tempo changes and shows the marked dynamics ahead of the sound).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .align import ScoreAlignment
from .analysis import MAX_BEATS_PER_BAR, MusicAnalysis, Spectral, assemble_analysis, compute_spectral
from .audio import Audio
from .motion import FPS
from .stage import SeatingPlan
from .tracker import MAX_BPM

SCORE_TRACKER = "score"
MIN_BEAT_S = 60.0 / MAX_BPM
# An entrance is a part playing again after at least this many bars of rest (or for the first time after the start).
CUE_AFTER_BARS = 2.0
# Entrances closer than this (beats) to the previous cue share it: a hand cannot cue twice within a beat.
CUE_SPACING_BEATS = 1.0
# More sections than this entering together is a tutti: cued to the whole orchestra, straight ahead.
TUTTI_SECTIONS = 3
TUTTI = "Tutti"
# Levels (0 … 1, as the analysis's loudness) of the written dynamics.
MARK_LEVELS = {"ppp": 0.1, "pp": 0.2, "p": 0.35, "mp": 0.45, "mf": 0.55, "f": 0.7, "ff": 0.85, "fff": 0.95}
HAIRPIN_STEP = 0.15  # a hairpin with no mark after it changes the level this much


@dataclass(frozen=True)
class Cue:
    """A section's entrance (a cue) or the end of its phrase while others play on (a release)."""

    time: float  # seconds: when the section enters, or stops
    section: str  # the seating plan's section, or TUTTI
    parts: tuple[str, ...]  # the score's parts entering
    angle: float  # degrees from straight ahead, positive to the conductor's right (as the seating plan)


@dataclass(frozen=True)
class ScoreGuide:
    """The score's information at recording times; `bar_numbers` name the analysis's downbeats one to one."""

    source: str
    bar_numbers: tuple[str, ...]
    rehearsal_marks: tuple[str | None, ...]  # one per downbeat
    meters: tuple[str, ...]  # one per downbeat
    tempo_changes: tuple[tuple[float, float], ...]  # (seconds, marked quarter-note BPM)
    fermatas: tuple[float, ...]  # seconds of the beats held
    cues: tuple[Cue, ...]
    releases: tuple[Cue, ...]  # phrase ends of sections that rest while others play on
    dynamics: np.ndarray  # (T,) 0 … 1 at 30 fps: the written dynamics
    # (seconds of a beat, -1 slurred … 1 staccato or accented) for the beats whose notes the score marks so.
    articulation: tuple[tuple[float, float], ...]
    confidence: float
    unseated_parts: tuple[str, ...]  # parts the seating plan has no section for (never cued)


def guide_record(guide: ScoreGuide) -> dict:
    """The guide as plain numbers, arrays and strings (what a Blender ID property holds: lists of text are joined
    by new lines), kept with the analysis so that conducting again to the markers still cues."""
    def text(values) -> str:
        return "\n".join(values)

    return {
        "source": guide.source, "confidence": float(guide.confidence),
        "bar_numbers": text(guide.bar_numbers), "rehearsal_marks": text(m or "" for m in guide.rehearsal_marks),
        "meters": text(guide.meters),
        "tempo_times": np.array([t for t, _ in guide.tempo_changes], dtype=np.float64),
        "tempo_bpm": np.array([b for _, b in guide.tempo_changes], dtype=np.float64),
        "fermatas": np.array(guide.fermatas, dtype=np.float64),
        "cue_times": np.array([c.time for c in guide.cues], dtype=np.float64),
        "cue_angles": np.array([c.angle for c in guide.cues], dtype=np.float64),
        "cue_sections": text(c.section for c in guide.cues), "cue_parts": text("|".join(c.parts) for c in guide.cues),
        "release_times": np.array([c.time for c in guide.releases], dtype=np.float64),
        "release_angles": np.array([c.angle for c in guide.releases], dtype=np.float64),
        "release_sections": text(c.section for c in guide.releases),
        "release_parts": text("|".join(c.parts) for c in guide.releases),
        "dynamics": np.asarray(guide.dynamics, dtype=np.float32), "unseated_parts": text(guide.unseated_parts),
        "articulation_times": np.array([t for t, _ in guide.articulation], dtype=np.float64),
        "articulation": np.array([a for _, a in guide.articulation], dtype=np.float64),
    }


def guide_from_record(record: dict, n_downbeats: int) -> ScoreGuide:
    """The guide `guide_record` kept; its bar numbers only while the bars are as many as it numbered (markers moved,
    not added or deleted)."""
    def lines(key: str) -> list[str]:
        return str(record[key]).split("\n") if str(record.get(key, "")) else []

    def events(kind: str) -> tuple[Cue, ...]:
        # Records kept before releases existed have none.
        return tuple(Cue(float(t), section, tuple(parts.split("|")), float(angle)) for t, section, parts, angle in
                     zip(record.get(f"{kind}_times", ()), lines(f"{kind}_sections"), lines(f"{kind}_parts"),
                         record.get(f"{kind}_angles", ())))

    numbers, marks, meters = lines("bar_numbers"), lines("rehearsal_marks"), lines("meters")
    if len(numbers) != n_downbeats:
        numbers, marks, meters = [], [], []
    return ScoreGuide(
        source=str(record["source"]), bar_numbers=tuple(numbers), rehearsal_marks=tuple(m or None for m in marks),
        meters=tuple(meters),
        tempo_changes=tuple(zip(map(float, record["tempo_times"]), map(float, record["tempo_bpm"]))),
        fermatas=tuple(map(float, record["fermatas"])), cues=events("cue"), releases=events("release"),
        dynamics=np.asarray(record["dynamics"], dtype=np.float32),
        articulation=tuple(zip(map(float, record["articulation_times"]), map(float, record["articulation"]))),
        confidence=float(record["confidence"]),
        unseated_parts=tuple(lines("unseated_parts")),
    )


def score_analysis(audio: Audio, alignment: ScoreAlignment, plan: SeatingPlan,
                   spectral: Spectral | None = None) -> MusicAnalysis:
    """The analysis of `audio` on the beats and bars of its aligned score, with the score's guide. `spectral`: the
    recording's spectral features (core.analysis.compute_spectral) when the caller has them already."""
    score = alignment.score
    beat_q, beat_bar = score.beat_times()
    beat_s = alignment.seconds_at(beat_q)
    # Where the recording gives no time between two beats (a path squeezed through a silence), they are spread by
    # the shortest beat a conductor shows.
    for i in range(1, len(beat_s)):
        beat_s[i] = max(beat_s[i], beat_s[i - 1] + MIN_BEAT_S)
    inside = (beat_s >= 0.0) & (beat_s <= audio.duration)
    beat_q, beat_bar, beat_s = beat_q[inside], beat_bar[inside], beat_s[inside]
    # A bar's downbeat is its first conducted beat where the bar is whole; a pickup's beats lead into bar 1.
    bars = score.bars
    full = np.array([bar.whole for bar in bars])
    first_of_bar = np.concatenate([[True], beat_bar[1:] != beat_bar[:-1]])
    is_downbeat = first_of_bar & full[beat_bar] & np.isclose([bars[b].beats[0] for b in beat_bar], 0.0)
    downbeat_bars = beat_bar[is_downbeat]
    counts = np.bincount(beat_bar, minlength=len(bars))[full]
    counts = counts[(counts >= 1) & (counts <= MAX_BEATS_PER_BAR)]
    per_bar = int(np.bincount(counts).argmax()) if len(counts) else 4
    compound = sum(_is_compound(bar.meter) for bar in bars) > len(bars) / 2
    analysis = assemble_analysis(audio, spectral or compute_spectral(audio), beat_s, beat_s[is_downbeat], per_bar,
                                 3 if compound else 2, SCORE_TRACKER)
    typical_beat = float(np.median(np.diff(beat_s))) if len(beat_s) > 1 else 0.5
    sections = [plan.section_for(part.name, part.instrument) for part in score.parts]
    unseated = tuple(part.name for part, section in zip(score.parts, sections) if section is None)
    cues = _section_events(alignment, sections, score.entrances(CUE_AFTER_BARS), typical_beat)
    releases = _section_events(alignment, sections, score.exits(CUE_AFTER_BARS), typical_beat)
    guide = ScoreGuide(
        source=score.source,
        bar_numbers=tuple(bars[b].number for b in downbeat_bars),
        rehearsal_marks=tuple(bars[b].rehearsal for b in downbeat_bars),
        meters=tuple(bars[b].meter for b in downbeat_bars),
        tempo_changes=_tempo_changes(alignment),
        fermatas=_fermatas(alignment, beat_q, beat_s),
        cues=cues,
        releases=releases,
        dynamics=_dynamics(alignment, analysis.n_frames),
        articulation=_articulation(score, beat_q, beat_s),
        confidence=alignment.confidence,
        unseated_parts=unseated,
    )
    return replace(analysis, score=guide)


def _is_compound(meter: str) -> bool:
    numerator, _, denominator = meter.partition("/")
    return numerator in ("6", "9", "12") and denominator in ("8", "16")


def _tempo_changes(alignment: ScoreAlignment) -> tuple[tuple[float, float], ...]:
    marks = alignment.score.tempo_marks
    changed = [(q, bpm) for i, (q, bpm) in enumerate(marks) if i == 0 or abs(bpm - marks[i - 1][1]) > 1e-6]
    return tuple((float(alignment.seconds_at(q)), float(bpm)) for q, bpm in changed if q > 0)


def _fermatas(alignment: ScoreAlignment, beat_q: np.ndarray, beat_s: np.ndarray) -> tuple[float, ...]:
    """The beat each fermata holds: the last beat at or before the held note."""
    held = set()
    for q in alignment.score.fermatas:
        index = int(np.searchsorted(beat_q, q + 1e-6)) - 1
        if index >= 0:
            held.add(float(beat_s[index]))
    return tuple(sorted(held))


def _articulation(score, beat_q: np.ndarray, beat_s: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Each beat's share of notes starting on it that are staccato or accented, less the share that are slurred."""
    notes = score.notes
    out = []
    for q, s in zip(beat_q, beat_s):
        starting = notes[np.abs(notes["onset"] - q) < 1e-3]
        if len(starting):
            value = float(np.mean(starting["staccato"] | starting["accent"]) - np.mean(starting["slurred"]))
            if value:
                out.append((float(s), value))
    return tuple(out)


def _section_events(alignment: ScoreAlignment, sections: list, events: list[tuple[float, int]],
                    beat_s: float) -> tuple[Cue, ...]:
    """Entrances or exits ((q, part) from the score) of seated parts, at recording times, grouped by section: those
    within CUE_SPACING_BEATS of the previous one are left to it, and more than TUTTI_SECTIONS at once go to the
    whole orchestra."""
    score = alignment.score
    groups: dict[float, list[int]] = {}
    for q, part in events:
        if sections[part] is not None:
            groups.setdefault(round(float(alignment.seconds_at(q)), 3), []).append(part)
    out: list[Cue] = []
    for time, parts in sorted(groups.items()):
        if out and time - out[-1].time < CUE_SPACING_BEATS * beat_s:
            continue
        moving = {sections[p].name: sections[p] for p in parts}
        names = tuple(score.parts[p].name for p in parts)
        if len(moving) > TUTTI_SECTIONS:
            out.append(Cue(time, TUTTI, names, 0.0))
        else:
            section = sections[parts[0]]
            out.append(Cue(time, section.name, tuple(n for p, n in zip(parts, names)
                                                      if sections[p].name == section.name), section.angle))
    return tuple(out)


def _dynamics(alignment: ScoreAlignment, n_frames: int) -> np.ndarray:
    """The written dynamics at 30 fps: each mark's level from where it is written, hairpins ramping to the next
    mark (or HAIRPIN_STEP up or down), mf where nothing is marked yet."""
    score = alignment.score
    marks = [(q, MARK_LEVELS[m]) for q, m in score.dynamics if m in MARK_LEVELS]
    marks += [(q + 1e-3, MARK_LEVELS["p"]) for q, m in score.dynamics if m == "fp"]
    marks.sort()
    points = [(0.0, marks[0][1] if marks else MARK_LEVELS["mf"])]
    for q, level in marks:
        points += [(q, points[-1][1]), (q, level)]
    for start, stop, kind in score.hairpins:
        before = _level_at(points, start)
        following = [level for q, level in marks if q >= stop - 1e-6]
        target = following[0] if following else before + (HAIRPIN_STEP if kind == "crescendo" else -HAIRPIN_STEP)
        points = [p for p in points if not start < p[0] <= stop] + [(start, before), (stop, target)]
        points.sort(key=lambda p: p[0])
    q = np.array([p[0] for p in points])
    level = np.clip([p[1] for p in points], 0.0, 1.0)
    seconds = alignment.seconds_at(q)
    frames = np.arange(n_frames) / FPS
    return np.interp(frames, seconds + 1e-9 * np.arange(len(seconds)), level).astype(np.float32)


def _level_at(points: list[tuple[float, float]], q: float) -> float:
    before = [level for at, level in points if at <= q + 1e-9]
    return before[-1] if before else points[0][1]


def score_record(analysis: MusicAnalysis) -> dict:
    """What `analyze --score --json` adds: bars as the score numbers them, meter and tempo changes, fermatas, cues
    and releases, all in seconds of the recording."""
    guide = analysis.score
    bars = [{"number": number, "time": round(float(t), 4), "meter": meter,
             **({"rehearsal": mark} if mark else {})}
            for number, t, meter, mark in zip(guide.bar_numbers, analysis.downbeats, guide.meters,
                                              guide.rehearsal_marks)]
    meter_changes = [bar for i, bar in enumerate(bars) if i == 0 or bar["meter"] != bars[i - 1]["meter"]]
    return {
        "score": guide.source,
        "alignment_confidence": round(guide.confidence, 3),
        "bars": bars,
        "meter_changes": [{"bar": b["number"], "time": b["time"], "meter": b["meter"]} for b in meter_changes],
        "tempo_changes": [{"time": round(t, 4), "bpm": round(bpm, 2)} for t, bpm in guide.tempo_changes],
        "fermatas": [round(t, 4) for t in guide.fermatas],
        "cues": [{"time": round(c.time, 4), "section": c.section, "parts": list(c.parts)} for c in guide.cues],
        "releases": [{"time": round(c.time, 4), "section": c.section, "parts": list(c.parts)}
                     for c in guide.releases],
        "unseated_parts": list(guide.unseated_parts),
    }
