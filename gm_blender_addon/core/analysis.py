"""Musical analysis at 30 fps: beats, downbeats and meter, tempo, loudness, silences and held notes.

Beat tracking sits behind one interface (`BeatTracker`) so that a better tracker replaces librosa's by adding a class
to `TRACKERS`; everything else (loudness, silences, meter from beat accents) is shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from .audio import N_FFT, SAMPLE_RATE, Audio, filterbank_power, mel_basis
from .motion import FPS
from .tracker import MAX_BPM, MIN_BPM, TCNTracker, approved_as_default, max_near, shipped_weights

if TYPE_CHECKING:
    from .score_guide import ScoreGuide

ANALYSIS_HOP = 512
ANALYSIS_RATE = SAMPLE_RATE / ANALYSIS_HOP
# Loudness is shown to the conductor over this many dB below the piece's loudest moment.
LOUDNESS_RANGE_DB = 36.0
SILENCE_DB = -50.0
MIN_SILENCE_S = 0.3
# Silences longer than this stop the beat: the conductor cuts off, waits, then prepares the next entry.
BEAT_GAP_S = 1.0
# `MusicAnalysis.tracker` when the beats are the user's (a beats file, the timeline markers): nothing was tracked.
GIVEN_TRACKER = "given"
# The conductor's patterns beat 1 to 4 to the bar: bars the user marks longer than that are refused.
MAX_BEATS_PER_BAR = 4

Progress = Callable[[float, str], None]


class AnalysisError(ValueError):
    """Music in which no usable beat could be found, or a meter or tempo the conductor cannot beat."""


# Meters a user may give when the detected one is wrong, as (beats per bar, subdivision of the beat).  The conductor
# beats 2, 3 or 4 to the bar, so 2/2 and 3/2 are conducted (and reported) as 2/4 and 3/4.
METER_NAMES = {"2/4": (2, 2), "3/4": (3, 2), "4/4": (4, 2), "6/8": (2, 3), "9/8": (3, 3), "12/8": (4, 3)}
METER_ALIASES = {"2/2": "2/4", "3/2": "3/4"}


def parse_meter(name: str) -> tuple[int, int]:
    """(beats per bar, subdivision) of a meter named like "3/4" or "6/8"."""
    name = name.strip().replace(" ", "")
    meter = METER_NAMES.get(METER_ALIASES.get(name, name))
    if meter is None:
        raise AnalysisError(f"Unsupported meter {name!r}: use one of {', '.join([*METER_NAMES, *METER_ALIASES])} "
                            "(the conductor beats 2, 3 or 4 to the bar; for other meters pick the nearest grouping).")
    return meter


@dataclass(frozen=True)
class GivenBeats:
    """Beats the user gives instead of having them tracked: times in seconds, and the downbeats among them where the
    source marks bars (None: the bars are found as for tracked beats). `meter` is one the source states
    ("6/8", as `analyze --json` writes it); `source` names where the beats come from, for messages.
    """

    beats: tuple[float, ...]
    downbeats: tuple[float, ...] | None = None
    meter: str | None = None
    source: str = "the beats given"

    def __post_init__(self):
        times = np.asarray(self.beats, dtype=np.float64)
        if len(times) < 2:
            raise AnalysisError(f"Only {len(times)} beat(s) in {self.source}: at least two are needed to conduct.")
        if not np.all(np.isfinite(times)) or times[0] < 0 or np.any(np.diff(times) <= 0):
            raise AnalysisError(f"The times of {self.source} must be seconds from the start of the music, each later "
                                "than the one before.")
        if self.downbeats is not None and not np.all(np.isin(self.downbeats, times)):
            raise AnalysisError(f"Every downbeat of {self.source} must be one of its beats.")
        if self.meter is not None:
            parse_meter(self.meter)
        per_bar = typical_bar_length(times, self.bar_lines)
        if per_bar is not None and per_bar > MAX_BEATS_PER_BAR:
            raise AnalysisError(
                f"The bars in {self.source} have {per_bar} beats; the conductor beats 1 to {MAX_BEATS_PER_BAR} to "
                "the bar: give only the beats it should beat (6/8 in two: the dotted quarters)."
            )

    @property
    def bar_lines(self) -> np.ndarray:
        return np.asarray(self.downbeats or (), dtype=np.float64)


@dataclass(frozen=True)
class MusicHints:
    """What the user says about the music where detection gets it wrong; None leaves it to detection.

    `meter` ("3/4", see METER_NAMES) replaces the detected one: the bar lines are then placed to fit it.  `tempo_bpm`,
    the beat's tempo roughly, holds the beat near it: for music whose beat is found at double, half or another speed.
    `beats` replace the tracked ones: nothing is tracked, and the bars are the ones they mark, else found as for
    tracked beats. Refused with an AnalysisError when made, before any audio is read.
    """

    meter: str | None = None
    tempo_bpm: float | None = None
    beats: GivenBeats | None = None

    def __post_init__(self):
        if self.meter is not None:
            parse_meter(self.meter)
        if self.tempo_bpm is not None and not MIN_BPM <= self.tempo_bpm <= MAX_BPM:
            raise AnalysisError(f"A tempo of {self.tempo_bpm:g} BPM cannot be conducted: give the tempo of the beat "
                                f"the conductor should follow, {MIN_BPM:.0f} to {MAX_BPM:.0f} BPM.")
        if self.beats is None:
            return
        if self.tempo_bpm is not None:
            raise AnalysisError(f"The beats of {self.beats.source} are conducted as they are, so a tempo has nothing "
                                "to steer: give the beats or the tempo, not both.")
        per_bar = typical_bar_length(np.asarray(self.beats.beats), self.beats.bar_lines)
        if self.meter is not None and per_bar is not None and per_bar != parse_meter(self.meter)[0]:
            raise AnalysisError(f"The bars in {self.beats.source} have {per_bar} beats but the meter given, "
                                f"{self.meter}, has {parse_meter(self.meter)[0]}: leave out the meter (the bars "
                                "marked are used) or the bar marks.")

    @property
    def beat_grouping(self) -> tuple[int, int] | None:
        """(beats per bar, subdivision) of the given meter."""
        return parse_meter(self.meter) if self.meter is not None else None


@dataclass
class Spectral:
    """Chunk-built spectral features at ANALYSIS_RATE shared by the trackers and the analysis."""

    log_mel: np.ndarray  # (64, n) dB relative to the piece maximum
    chroma: np.ndarray  # (12, n) energy-normalised
    onset: np.ndarray  # (n,) spectral flux
    bass_onset: np.ndarray  # (n,) flux below ~250 Hz
    level_db: np.ndarray  # (n,) frame energy in dB relative to the loudest frame
    rate: float = ANALYSIS_RATE

    @property
    def n_frames(self) -> int:
        return len(self.onset)


@dataclass
class BeatGrid:
    beats: np.ndarray  # seconds
    tempo_bpm: float
    # Trackers that decode the bar themselves fill these; otherwise the meter is estimated from beat accents.
    downbeats: np.ndarray | None = None  # seconds, a subset of `beats`
    beats_per_bar: int | None = None
    subdivision: int | None = None  # 3 for compound meters (6/8), else 2


class BeatTracker(Protocol):
    name: str

    def track(self, audio: Audio, spectral: Spectral, hints: MusicHints) -> BeatGrid: ...


@dataclass
class MusicAnalysis:
    """Everything the conductor needs to know about the music, sampled at 30 fps (frame k ↔ k/30 s)."""

    duration: float
    beats: np.ndarray
    downbeats: np.ndarray
    beats_per_bar: int
    subdivision: int
    tempo_bpm: float
    tempo: np.ndarray  # (T,) local tempo in BPM
    loudness: np.ndarray  # (T,) 0 (silent or 36 dB down) … 1 (loudest)
    level_db: np.ndarray  # (T,) dB relative to the loudest moment
    silent: np.ndarray  # (T,) bool
    held: np.ndarray  # (T,) bool: sound sustains with no new onsets
    onset: np.ndarray  # (T,) onset strength scaled to its 99th percentile
    tracker: str
    score: ScoreGuide | None = None  # what an aligned score adds (cues, fermatas, written dynamics)

    @property
    def n_frames(self) -> int:
        return len(self.loudness)

    @property
    def meter(self) -> str:
        if self.subdivision == 3:
            return f"{3 * self.beats_per_bar}/8"
        return f"{self.beats_per_bar}/4"

    @property
    def sound_end(self) -> float:
        """Time the music stops sounding: where the final cut-off goes."""
        sounding = np.flatnonzero(~self.silent)
        return float(sounding[-1] + 1) / FPS if len(sounding) else 0.0

    def beat_positions(self) -> list[tuple[int, int]]:
        return beat_positions(self.beats, self.downbeats, self.beats_per_bar)


def beat_positions(beats: np.ndarray, downbeats: np.ndarray, beats_per_bar: int) -> list[tuple[int, int]]:
    """(bar, beat in the bar), both 1-based, of each beat; beats before the first downbeat (a pickup) are in bar 0,
    numbered so that the pickup's last beat leads into beat 1."""
    bars = np.searchsorted(np.asarray(downbeats) - 1e-3, beats, side="right")
    positions, count = [], 0
    for i, bar in enumerate(bars):
        count = count + 1 if i and bar == bars[i - 1] else 1
        positions.append((int(bar), count))
    pickup = int(np.sum(bars == 0))
    return [(0, max(1, beats_per_bar - pickup + beat)) if bar == 0 else (bar, beat) for bar, beat in positions]


def typical_bar_length(beats: np.ndarray, downbeats: np.ndarray) -> int | None:
    """The most common number of beats from one downbeat to the next; None without two downbeats."""
    if len(downbeats) < 2:
        return None
    lengths = np.diff(np.searchsorted(beats, np.asarray(downbeats) - 1e-6))
    values, counts = np.unique(lengths, return_counts=True)
    return int(values[np.argmax(counts)])


def _complete_bars(beats: np.ndarray, downbeats: np.ndarray, per_bar: int) -> np.ndarray:
    """The downbeats given, with bars of `per_bar` beats counted on from the last one and back from the first."""
    marked = np.searchsorted(beats, np.asarray(downbeats) - 1e-6)
    index = np.arange(len(beats))
    before = (index < marked[0]) & ((marked[0] - index) % per_bar == 0)
    after = (index > marked[-1]) & ((index - marked[-1]) % per_bar == 0)
    return beats[np.isin(index, marked) | before | after]


def compute_spectral(audio: Audio) -> Spectral:
    import librosa

    mel = mel_basis(audio.sample_rate, 64)
    chroma = librosa.filters.chroma(sr=audio.sample_rate, n_fft=N_FFT)
    power = filterbank_power(audio.samples, np.vstack([mel, chroma]), hop=ANALYSIS_HOP)
    mel_power, chroma_power = power[:64], power[64:]
    log_mel = librosa.power_to_db(mel_power, ref=np.max, top_db=80.0)
    flux = np.maximum(0.0, np.diff(log_mel, axis=1, prepend=log_mel[:, :1]))
    bass_bands = librosa.mel_frequencies(66, fmax=audio.sample_rate / 2)[1:-1] < 250.0
    energy = mel_power.sum(axis=0)
    level_db = 10 * np.log10(np.maximum(energy, 1e-12) / max(float(energy.max()), 1e-12))
    chroma_norm = chroma_power / np.maximum(chroma_power.sum(axis=0, keepdims=True), 1e-12)
    return Spectral(
        log_mel=log_mel.astype(np.float32),
        chroma=chroma_norm.astype(np.float32),
        onset=flux.mean(axis=0).astype(np.float32),
        bass_onset=flux[bass_bands].mean(axis=0).astype(np.float32),
        level_db=level_db.astype(np.float32),
    )


class LibrosaTracker:
    """librosa's dynamic-programming tracker, steered by a slowly varying tempo estimate so ritardandi are followed."""

    name = "librosa"

    def track(self, audio: Audio, spectral: Spectral, hints: MusicHints) -> BeatGrid:
        import librosa
        from scipy.ndimage import median_filter

        env = spectral.onset.astype(np.float64)
        # The piece's tempo is the median of a broadly-primed local estimate (or the user's); a second, tighter pass
        # around it follows ritardandi without jumping between tempo octaves.
        global_tempo = hints.tempo_bpm
        if global_tempo is None:
            global_tempo = float(np.median(_local_tempo(env, audio.sample_rate, spectral.rate, 120.0, 1.0)))
        local = _local_tempo(env, audio.sample_rate, spectral.rate, global_tempo, 0.5)
        # Octave errors of the local estimate are folded back to the global tempo before steering the tracker.
        ratio = np.round(np.log2(local / global_tempo))
        local = median_filter(local / 2.0**ratio, size=int(4 * spectral.rate), mode="nearest")
        _, beats = librosa.beat.beat_track(
            onset_envelope=env, sr=audio.sample_rate, hop_length=ANALYSIS_HOP, bpm=local, units="time", trim=False
        )
        return BeatGrid(beats=np.asarray(beats, dtype=np.float64), tempo_bpm=global_tempo)


def _local_tempo(env: np.ndarray, sample_rate: int, rate: float, prior_bpm: float, prior_octaves: float) -> np.ndarray:
    """Per-frame tempo from 5-minute stretches with 8 s of context on each side.

    A whole-piece tempogram of an hour costs about 2 GB in its autocorrelation; stretches keep it bounded.
    """
    import librosa

    stretch, context = int(300 * rate), int(8 * rate)
    tempo = np.empty(len(env))
    for start in range(0, len(env), stretch):
        lo, hi = max(0, start - context), min(len(env), start + stretch + context)
        part = librosa.feature.tempo(
            onset_envelope=env[lo:hi], sr=sample_rate, hop_length=ANALYSIS_HOP, aggregate=None,
            start_bpm=prior_bpm, std_bpm=prior_octaves,
        )
        stop = min(len(env), start + stretch)
        tempo[start:stop] = part[start - lo : stop - lo]
    return tempo


TRACKERS: dict[str, type] = {LibrosaTracker.name: LibrosaTracker, TCNTracker.name: TCNTracker}
# "auto": the project-trained tracker where its weights are installed, sound and approved as the default, else librosa.
DEFAULT_TRACKER = "auto"


def resolve_tracker(name: str) -> str:
    """The tracker `name` stands for; "auto" picks the trained tracker when its installed weights are approved."""
    if name != "auto":
        return name
    from ..weights import WeightsError

    try:
        approved = approved_as_default() and shipped_weights() is not None
        return TCNTracker.name if approved else LibrosaTracker.name
    except WeightsError:
        return LibrosaTracker.name  # a damaged install still analyses, with the fallback tracker


def _to_fps(values: np.ndarray, rate: float, n_frames: int) -> np.ndarray:
    t_src = np.arange(len(values)) / rate
    return np.interp(np.arange(n_frames) / FPS, t_src, values).astype(np.float32)


def _runs(mask: np.ndarray):
    """(start, stop) index pairs of the True runs of a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))


def _silence_mask(level_db: np.ndarray, rate: float) -> np.ndarray:
    quiet = level_db < SILENCE_DB
    silent = np.zeros_like(quiet)
    for start, stop in _runs(quiet):
        if (stop - start) / rate >= MIN_SILENCE_S or start == 0 or stop == len(quiet):
            silent[start:stop] = True
    return silent


def _drop_beats_in_gaps(beats: np.ndarray, silent: np.ndarray, rate: float) -> np.ndarray:
    keep = np.ones(len(beats), dtype=bool)
    for start, stop in _runs(silent):
        if (stop - start) / rate < BEAT_GAP_S:
            continue
        # A beat just before the sound resumes is the entry itself; keep a 100 ms margin for onset smearing.
        keep &= ~((beats >= start / rate) & (beats < stop / rate - 0.1))
    return beats[keep]


def beat_accents(beats: np.ndarray, spectral: Spectral) -> np.ndarray:
    """Per-beat evidence of a bar line: harmony change, bass entry and onset strength (z-scored, summed)."""
    frames = np.clip(np.round(beats * spectral.rate).astype(int), 0, spectral.n_frames - 1)
    bounds = np.concatenate([frames, [spectral.n_frames]])
    chroma = np.stack(
        [spectral.chroma[:, a : max(b, a + 1)].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:])], axis=1
    )
    unit = chroma / np.maximum(np.linalg.norm(chroma, axis=0, keepdims=True), 1e-9)
    change = np.concatenate([[0.0], 1.0 - np.sum(unit[:, 1:] * unit[:, :-1], axis=0)])
    window = max(1, int(0.05 * spectral.rate))

    def z(x):
        return (x - x.mean()) / (x.std() + 1e-9)

    return (z(change) + 0.5 * z(max_near(spectral.bass_onset, frames, window))
            + 0.5 * z(max_near(spectral.onset, frames, window)))


# Penalty, in accent standard deviations, against compound bars of 3 or 4 beats (9/8, 12/8): far rarer than 6/8 in
# the music21 corpus (6/8 is its third most common meter, 12/8 is not among the common ones), while the 2-bar
# phrases typical of 6/8 give 4-beat accent patterns as strong as real 12/8.
COMPOUND_PENALTY = {2: 0.0, 3: 0.4, 4: 0.7}


def estimate_meter(beats: np.ndarray, spectral: Spectral,
                   meter: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """(beats_per_bar, index of the first downbeat, subdivision) from the accents of the tracked beats; with a given
    `meter` (beats per bar, subdivision) only the first downbeat."""
    if len(beats) < 8:
        return (4, 0, 2) if meter is None else (meter[0], 0, meter[1])
    subdivision = _subdivision(beats, spectral) if meter is None else meter[1]
    accents = beat_accents(beats, spectral)
    best = (-np.inf, 4, 0)
    for per_bar in (2, 3, 4) if meter is None else (meter[0],):
        penalty = COMPOUND_PENALTY[per_bar] if subdivision == 3 else 0.0
        for phase in range(per_bar):
            on = np.arange(len(beats)) % per_bar == phase
            score = accents[on].mean() - accents[~on].mean() - penalty
            if score > best[0]:
                best = (score, per_bar, phase)
    return best[1], best[2], subdivision


def _subdivision(beats: np.ndarray, spectral: Spectral) -> int:
    """3 when onsets fall on the thirds of the beat rather than on its half (compound meter), else 2."""
    env = spectral.onset
    thirds, halves = [], []
    for a, b in zip(beats[:-1], beats[1:]):
        ibi = b - a

        def at(fraction):
            f = int(round((a + fraction * ibi) * spectral.rate))
            w = max(1, int(0.04 * spectral.rate))
            return env[max(0, f - w) : f + w + 1].max() if f < len(env) else 0.0

        thirds.append(0.5 * (at(1 / 3) + at(2 / 3)))
        halves.append(at(0.5))
    return 3 if np.median(thirds) > 1.3 * np.median(halves) + 1e-9 else 2


def _held_mask(onset: np.ndarray, silent: np.ndarray, tempo: np.ndarray) -> np.ndarray:
    """Sounding frames with no new onset for at least two beats: a held chord or a fermata."""
    from scipy.ndimage import maximum_filter1d

    active = onset > 0.25
    held = np.zeros(len(onset), dtype=bool)
    for start, stop in _runs(~active & ~silent):
        beat_frames = 60.0 / max(float(np.median(tempo[start:stop])), 1.0) * FPS
        if stop - start >= 2 * beat_frames:
            held[start:stop] = True
    # The attack that starts a hold is not part of it.
    return held & ~maximum_filter1d(active, 3)


def _given_bars(given: GivenBeats, meter: tuple[int, int] | None,
                estimate: Callable[[tuple[int, int] | None], tuple[int, int, int]]) -> tuple[np.ndarray, int, int]:
    """(downbeats, beats per bar, subdivision) of beats the user gave.

    The bars are the ones the beats mark, counted on in bars of their typical length before the first and after the
    last; unmarked beats are grouped by `estimate(meter)` ((beats per bar, index of the first downbeat, subdivision)),
    which also supplies whatever neither the beats nor the given `meter` say.
    """
    beats = np.asarray(given.beats, dtype=np.float64)
    grouping = meter or (parse_meter(given.meter) if given.meter is not None else None)
    if not len(given.bar_lines):
        per_bar, phase, subdivision = estimate(grouping)
        return beats[phase::per_bar], per_bar, subdivision
    if grouping is None:
        estimated, _, subdivision = estimate(None)
        per_bar = typical_bar_length(beats, given.bar_lines) or estimated
    else:
        per_bar, subdivision = grouping
    return _complete_bars(beats, given.bar_lines, per_bar), per_bar, subdivision


FIRST_ANALYSIS_MESSAGE = "Analysing the spectrum (first run: preparing compiled code, up to a minute after installing)"
_kernels_loaded = False


def analyse(audio: Audio, tracker: str = DEFAULT_TRACKER, progress: Progress | None = None,
            hints: MusicHints = MusicHints()) -> MusicAnalysis:
    """Beats, meter, tempo and dynamics of `audio` at 30 fps, following what the user says in `hints`."""
    global _kernels_loaded
    report = progress or (lambda fraction, message: None)
    # numba compiles librosa's kernels on the first analysis after installing (about a minute on a slow machine) and
    # loads them from its cache on the first one of each later process: say so, or the progress looks stuck.
    report(0.0, "Analysing the spectrum" if _kernels_loaded else FIRST_ANALYSIS_MESSAGE)
    _kernels_loaded = True
    if hints.beats is not None:
        return _analyse_around(hints.beats, audio, compute_spectral(audio), hints, report)
    tracker = resolve_tracker(tracker)
    if tracker not in TRACKERS:
        raise ValueError(f"unknown beat tracker {tracker!r}; available: {', '.join(TRACKERS)}")
    spectral = compute_spectral(audio)
    report(0.4, "Tracking beats")
    grid = TRACKERS[tracker]().track(audio, spectral, hints)
    silent_fine = _silence_mask(spectral.level_db, spectral.rate)
    beats = _drop_beats_in_gaps(grid.beats, silent_fine, spectral.rate)
    if len(beats) < 2:
        raise AnalysisError(
            f"No steady beat found in {audio.name}: the music may be too free in tempo or too short. "
            "Try a longer excerpt with a clear pulse."
        )
    report(0.8, "Estimating meter and dynamics")
    if grid.downbeats is None:
        per_bar, phase, subdivision = estimate_meter(beats, spectral, hints.beat_grouping)
        downbeats = beats[phase::per_bar]
    else:
        per_bar, subdivision = grid.beats_per_bar, grid.subdivision
        downbeats = grid.downbeats[np.isin(grid.downbeats, beats)]
    analysis = assemble_analysis(audio, spectral, beats, downbeats, per_bar, subdivision, tracker)
    report(1.0, "Analysis done")
    return analysis


def _analyse_around(given: GivenBeats, audio: Audio, spectral: Spectral, hints: MusicHints,
                    report: Progress) -> MusicAnalysis:
    """The analysis of `audio` on the beats the user gave: nothing is tracked, and no beat is dropped."""
    beats = np.asarray(given.beats, dtype=np.float64)
    if beats[-1] > audio.duration:
        raise AnalysisError(
            f"There are beats after {audio.name} ends in {given.source} (the last at {beats[-1]:.2f} s; the music "
            f"lasts {audio.duration:.2f} s): give the beats of this recording."
        )
    report(0.8, "Placing the bars and measuring dynamics")
    downbeats, per_bar, subdivision = _given_bars(
        given, hints.beat_grouping, lambda meter: estimate_meter(beats, spectral, meter))
    analysis = assemble_analysis(audio, spectral, beats, downbeats, per_bar, subdivision, GIVEN_TRACKER)
    report(1.0, "Analysis done")
    return analysis


def assemble_analysis(
    audio: Audio,
    spectral: Spectral,
    beats: np.ndarray,
    downbeats: np.ndarray,
    per_bar: int,
    subdivision: int,
    tracker: str,
) -> MusicAnalysis:
    """The 30 fps analysis around a known beat grid: tempo from the beats, dynamics and silences from the audio."""
    from scipy.ndimage import uniform_filter1d

    silent_fine = _silence_mask(spectral.level_db, spectral.rate)
    n_frames = max(1, int(np.ceil(audio.duration * FPS)))
    level_db = _to_fps(uniform_filter1d(spectral.level_db, int(0.3 * spectral.rate)), spectral.rate, n_frames)
    silent = _to_fps(silent_fine.astype(np.float32), spectral.rate, n_frames) > 0.5
    onset = spectral.onset / max(float(np.percentile(spectral.onset, 99)), 1e-9)
    return _analysis_on_beats(audio.duration, level_db, silent, _to_fps(onset, spectral.rate, n_frames), beats,
                              downbeats, per_bar, subdivision, tracker)


def _analysis_on_beats(duration: float, level_db: np.ndarray, silent: np.ndarray, onset: np.ndarray,
                       beats: np.ndarray, downbeats: np.ndarray, per_bar: int, subdivision: int,
                       tracker: str) -> MusicAnalysis:
    """The analysis from its 30 fps measurements and a beat grid; the tempo and the held notes follow the beats."""
    loudness = np.clip((level_db + LOUDNESS_RANGE_DB) / LOUDNESS_RANGE_DB, 0.0, 1.0).astype(np.float32)
    loudness[silent] = 0.0
    local_bpm = 60.0 / np.diff(beats)
    midpoints = 0.5 * (beats[1:] + beats[:-1])
    tempo = np.interp(np.arange(len(level_db)) / FPS, midpoints, local_bpm).astype(np.float32)
    return MusicAnalysis(
        duration=duration,
        beats=beats,
        downbeats=downbeats,
        beats_per_bar=per_bar,
        subdivision=subdivision,
        tempo_bpm=float(np.median(local_bpm)),
        tempo=tempo,
        loudness=loudness,
        level_db=level_db,
        silent=silent,
        held=_held_mask(onset, silent, tempo),
        onset=onset,
        tracker=tracker,
    )


# What an analysis keeps besides its beats, so that the music can be conducted again to other beats without
# analysing it again (`analysis_record`, `analysis_from_record`). A record of another version is not read.
RECORD_VERSION = 1


def analysis_record(analysis: MusicAnalysis) -> dict:
    """The analysis without its beats, as plain numbers and float32/int32 arrays (about 12 bytes per frame), and
    what its score said (core.score_guide.guide_record) when it had one."""
    record = {
        "version": RECORD_VERSION,
        "duration": float(analysis.duration),
        "beats_per_bar": int(analysis.beats_per_bar),
        "subdivision": int(analysis.subdivision),
        "level_db": np.asarray(analysis.level_db, dtype=np.float32),
        "onset": np.asarray(analysis.onset, dtype=np.float32),
        "silent": np.asarray(analysis.silent, dtype=np.int32),
    }
    if analysis.score is not None:
        from .score_guide import guide_record

        record["score"] = guide_record(analysis.score)
    return record


def analysis_from_record(record: dict, given: GivenBeats) -> MusicAnalysis:
    """The recorded analysis on the beats the user gave; unmarked bars are counted in the recorded beats per bar
    from the first beat. AnalysisError for beats outside the music."""
    beats = np.asarray(given.beats, dtype=np.float64)
    if beats[-1] > record["duration"]:
        raise AnalysisError(f"There are beats after the music ends in {given.source} ({beats[-1]:.2f} s; the music "
                            f"lasts {record['duration']:.2f} s): move them inside the music.")

    def counted_from_first_beat(meter):
        per_bar, subdivision = meter or (record["beats_per_bar"], record["subdivision"])
        return per_bar, 0, subdivision

    downbeats, per_bar, subdivision = _given_bars(given, None, counted_from_first_beat)
    analysis = _analysis_on_beats(record["duration"], np.asarray(record["level_db"], dtype=np.float32),
                                  np.asarray(record["silent"]).astype(bool),
                                  np.asarray(record["onset"], dtype=np.float32), beats, downbeats, per_bar,
                                  subdivision, GIVEN_TRACKER)
    if "score" in record:
        from .score_guide import guide_from_record

        analysis.score = guide_from_record(record["score"], len(downbeats))
    return analysis
