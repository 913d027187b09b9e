"""Where a score's beats fall in a recording of it: audio-to-score alignment by multi-resolution DTW.

Both sides become chroma (how much of each pitch class sounds) 50 times a second; the score's is computed from its
notes, not from a rendering of them, so nothing about the recording's instruments has to be guessed. A coarse DTW
over the whole piece (5 Hz) finds where the music starts and ends in the recording (silence, tuning or applause may
surround it) and which transposition fits; a fine DTW (50 Hz) in a band around that coarse path places every chord.
A fermata or a rubato of any size is a horizontal or vertical run of the path: the score's tempo marks only set the
nominal time axis. Chroma says where the harmony changes, not exactly when an attack is heard, so each beat is then
moved onto the recording's attacks of the pitch classes the score starts on it and onto the beat tracker's beat
activation (core.tracker), keeping the tempo smooth.

Chosen on development renders of the corpus's validation works (see benchmarks/score_alignment.py): pitch-class
onsets as a second DTW feature, as some aligners use, made beats worse there, not better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from .audio import Audio, filterbank_power

if TYPE_CHECKING:
    from .analysis import Spectral
    from .score import Score

Progress = Callable[[float, str], None]

FEATURE_HOP = 441  # samples at 22050 Hz: 50 chroma frames a second
# 0.37 s windows: a semitone apart is two frequency bins from about 100 Hz up, where 2048 smears the bass's pitch
# classes into each other.
CHROMA_FFT = 8192
CHROMA_GAIN = 10.0  # log compression of the pitch-class energies, log(1 + gain · energy / max)
CHROMA_FLOOR = 0.02  # of the loudest frame's level, added to every bin: silent frames become the flat vector
COARSE_STEP = 10  # fine frames per coarse frame (5 Hz)
# Horizontal and vertical steps of the coarse path cost this much more than diagonal ones: without it the path may
# squeeze a quiet opening into a moment of the recording.
COARSE_SIDE_WEIGHT = 2.0
BAND_S = 1.5  # the fine path stays this close (in the recording) to the coarse one
END_SLACK = 5  # fine frames the fine path may start or end away from the coarse path's ends
ATTACK_HOP = 221  # samples at 22050 Hz: attacks 100 times a second
ATTACK_FFT = 4096
REFINE_S = 0.3  # how far the attacks may move a beat from where the DTW put it
# The trained beat tracker hears where a beat falls in a slow string attack, whose energy (and so its chroma) comes
# a fifth of a second after it: its activation weighs this much against an attack's strength.
BEAT_ACTIVATION_WEIGHT = 2.0
TEMPO_CHANGE_COST = 3.0  # against an attack's strength (0 … 1), per squared log change of a beat's length
DTW_TRUST = 0.1  # cost, against an attack's strength, of moving a beat the whole REFINE_S from the DTW's time
EDGE_QUARTERS = 4.0  # the tempo before the first note and after the last is the one of this much music
DEFAULT_QUARTER_BPM = 100.0  # nominal time axis of a score without tempo marks
# The music in the recording may last up to this many times the score's marked duration, or its reciprocal.
MAX_TEMPO_RATIO = 2.0
TRANSPOSITION_MARGIN = 0.85  # another transposition's path must cost this fraction of the written key's, or less
# Below this the score and the recording are too unlike for the bars to be trusted: on the development renders
# (benchmarks/score_alignment.py) a recording aligned to another work's score reached 0.38.
MIN_CONFIDENCE = 0.4
# Harmonic partials a note's chroma carries: (semitones above the fundamental, weight).
PARTIALS = ((0, 1.0), (12, 0.5), (19, 0.33), (24, 0.25), (28, 0.2))


class AlignmentError(ValueError):
    """A score that does not fit the recording it is aligned to."""


@dataclass(frozen=True)
class ScoreAlignment:
    """The score's positions (quarter notes of its unfolded form) matched to times in the recording."""

    score: Score
    knots_q: np.ndarray  # strictly increasing
    knots_s: np.ndarray  # non-decreasing
    confidence: float  # 0 (unrelated music) … 1
    transposition: int  # semitones the recording sounds above the score, -5 … 6
    tuning_cents: float  # the recording's reference pitch against A = 440 Hz

    def seconds_at(self, q) -> np.ndarray:
        """Times in the recording of score positions; outside the sounding music (a first bar's rests, a last
        bar's) at the tempo of its first and last EDGE_QUARTERS."""
        q = np.asarray(q, dtype=np.float64)
        kq, ks = self.knots_q, self.knots_s
        s = np.interp(q, kq, ks)
        if len(kq) > 1:
            head = min(len(kq) - 1, int(np.searchsorted(kq, kq[0] + EDGE_QUARTERS)))
            tail = max(0, int(np.searchsorted(kq, kq[-1] - EDGE_QUARTERS)) - 1)
            s = np.where(q < kq[0], ks[0] + (q - kq[0]) * (ks[head] - ks[0]) / (kq[head] - kq[0]), s)
            s = np.where(q > kq[-1], ks[-1] + (q - kq[-1]) * (ks[-1] - ks[tail]) / (kq[-1] - kq[tail]), s)
        return s

    @property
    def beats(self) -> np.ndarray:
        return self.seconds_at(self.score.beat_times()[0])

    @property
    def downbeats(self) -> np.ndarray:
        """The start of every bar, pickups included."""
        return self.seconds_at([bar.start for bar in self.score.bars])

    @property
    def bar_numbers(self) -> list[str]:
        return [bar.number for bar in self.score.bars]


# ---------------------------------------------------------------------------------------------------------------
# Features


def _unit_frames(features: np.ndarray) -> np.ndarray:
    """Each frame (column) scaled to unit length after adding CHROMA_FLOOR of the loudest level to every bin:
    frames with nothing in them become the flat vector, so silence in the score matches silence in the recording."""
    features = features + CHROMA_FLOOR * max(float(features.max()), 1e-9)
    return features / np.linalg.norm(features, axis=0, keepdims=True)


def _compressed(energy: np.ndarray, gain: float) -> np.ndarray:
    return np.log1p(gain * energy / max(float(energy.max()), 1e-12))


def recording_chroma(audio: Audio, tuning_cents: float) -> np.ndarray:
    """(12, T) chroma of the recording at 50 Hz, frames of unit length."""
    import librosa

    basis = librosa.filters.chroma(sr=audio.sample_rate, n_fft=CHROMA_FFT, tuning=tuning_cents / 100.0)
    energy = filterbank_power(audio.samples, basis, hop=FEATURE_HOP, n_fft=CHROMA_FFT)
    return _unit_frames(_compressed(energy.astype(np.float64), CHROMA_GAIN))


def nominal_seconds(score: Score, q: np.ndarray) -> np.ndarray:
    """Seconds at score positions `q` played at the score's tempo marks (the first mark, or DEFAULT_QUARTER_BPM,
    before any)."""
    marks = [m for m in score.tempo_marks if m[1] > 0]
    if not marks or marks[0][0] > 0:
        marks = [(0.0, marks[0][1] if marks else DEFAULT_QUARTER_BPM), *marks]
    starts = np.array([m[0] for m in marks])
    seconds_per_q = 60.0 / np.array([m[1] for m in marks])
    at_start = np.concatenate([[0.0], np.cumsum(np.diff(starts) * seconds_per_q[:-1])])
    index = np.clip(np.searchsorted(starts, q, side="right") - 1, 0, len(starts) - 1)
    return at_start[index] + (q - starts[index]) * seconds_per_q[index]


def score_chroma(score: Score, frame_q: np.ndarray, transposition: int = 0) -> np.ndarray:
    """(12, len(frame_q)) chroma of the score at positions `frame_q` (quarter notes, increasing), like
    `recording_chroma`.

    A note sounds from its onset frame to its end with a fading attack (strings sustain, pianos and plucks fade: the
    middle of the two matches both), its partials folded into their pitch classes.
    """
    n = len(frame_q)
    chroma = np.zeros((12, n))
    notes = score.notes
    starts = np.searchsorted(frame_q, notes["onset"] - 1e-9)
    stops = np.maximum(np.searchsorted(frame_q, notes["onset"] + notes["duration"] - 1e-9), starts + 1)
    seconds = nominal_seconds(score, frame_q)
    for start, stop, pitch, velocity in zip(starts, stops, notes["pitch"], notes["velocity"]):
        if start >= n:
            continue
        stop = min(stop, n)
        fade = 0.4 + 0.6 * np.exp(-(seconds[start:stop] - seconds[start]) / 2.0)
        weight = 0.3 + 0.7 * float(velocity)
        for interval, partial in PARTIALS:
            chroma[(int(pitch) + interval + transposition) % 12, start:stop] += weight * partial * fade
    return _unit_frames(_compressed(chroma, CHROMA_GAIN))


def _attack_strength(audio: Audio, tuning_cents: float) -> np.ndarray:
    """(12, T) attacks of each pitch class at 100 Hz: the rise of its log energy, scaled to the loudest attack
    within two seconds either side, so that quiet passages count as much as loud ones."""
    import librosa
    from scipy.ndimage import maximum_filter1d

    basis = librosa.filters.chroma(sr=audio.sample_rate, n_fft=ATTACK_FFT, tuning=tuning_cents / 100.0)
    level = _compressed(filterbank_power(audio.samples, basis, hop=ATTACK_HOP, n_fft=ATTACK_FFT), 100.0)
    rise = np.maximum(0.0, np.diff(level, axis=1, prepend=level[:, :1]))
    peak = maximum_filter1d(rise.max(axis=0), int(4 * audio.sample_rate / ATTACK_HOP))
    return rise / np.maximum(peak, 1e-9)


# ---------------------------------------------------------------------------------------------------------------
# DTW


def _pooled(features: np.ndarray, step: int) -> np.ndarray:
    n = features.shape[1] // step * step
    pooled = features[:, :n].reshape(features.shape[0], -1, step).mean(axis=2)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=0, keepdims=True), 1e-12)


def _coarse_path(cost: np.ndarray) -> tuple[np.ndarray, float]:
    """Subsequence DTW, the whole score against any stretch of the recording: (path (L, 2) of (score, audio)
    coarse frames in order, mean cost along it)."""
    import librosa

    _, path = librosa.sequence.dtw(C=cost, subseq=True, backtrack=True,
                                   weights_mul=np.array([1.0, COARSE_SIDE_WEIGHT, COARSE_SIDE_WEIGHT]))
    # librosa's subsequence backtracking can step one column past the matrix at the end it starts from.
    path = np.minimum(path[::-1], np.array(cost.shape) - 1)
    return path, float(cost[path[:, 0], path[:, 1]].mean())


def _band(path: np.ndarray, n_score: int, n_audio: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """(first, last) fine audio frame each fine score frame may match: BAND_S around the coarse path, monotonic and
    connected."""
    coarse_score, coarse_audio = path[:, 0], path[:, 1]
    centre = (np.interp((np.arange(n_score) + 0.5) / COARSE_STEP - 0.5, coarse_score, coarse_audio) + 0.5) \
        * COARSE_STEP - 0.5
    half = int(BAND_S * rate)
    first = np.clip(np.round(centre - half), 0, n_audio - 1).astype(np.int64)
    last = np.clip(np.round(centre + half), 0, n_audio - 1).astype(np.int64)
    # The fine path starts and ends close to where the coarse one does: free ends would let it shorten the music,
    # as its cost grows with the frames it crosses.
    start, end = coarse_audio[0] * COARSE_STEP, (coarse_audio[-1] + 1) * COARSE_STEP - 1
    first[0], last[0] = max(first[0], start - END_SLACK), min(last[0], start + END_SLACK)
    first[-1], last[-1] = max(first[-1], end - END_SLACK), min(last[-1], end + END_SLACK)
    first = np.maximum.accumulate(np.minimum(first, last))
    last = np.maximum(last, first)
    last[:-1] = np.maximum(last[:-1], first[1:])
    return first, last


def _fine_path(score_chroma_: np.ndarray, audio_chroma: np.ndarray, first: np.ndarray,
               last: np.ndarray) -> np.ndarray:
    """(L, 2) path of (score, audio) fine frames through the band."""
    from ._banded_dtw import banded_dtw

    width = int((last - first).max()) + 1
    columns = np.minimum(first[:, None] + np.arange(width)[None, :], audio_chroma.shape[1] - 1)
    cost = 1.0 - np.einsum("ci,ciw->iw", score_chroma_, audio_chroma[:, columns], optimize=True)
    return banded_dtw(cost, first, last - first + 1)


# ---------------------------------------------------------------------------------------------------------------
# The alignment


def align_score(score: Score, audio: Audio, progress: Progress | None = None,
                spectral: Spectral | None = None) -> ScoreAlignment:
    """Where every position of `score` falls in `audio`. AlignmentError when they do not match. `spectral`: the
    recording's spectral features (core.analysis.compute_spectral) when the caller has them already."""
    import librosa

    report = progress or (lambda fraction, message: None)
    report(0.0, "Reading the recording's harmony")
    tuning = float(librosa.estimate_tuning(y=audio.samples[: int(120 * audio.sample_rate)],
                                           sr=audio.sample_rate)) * 100.0
    audio_chroma = recording_chroma(audio, tuning)
    n_audio = audio_chroma.shape[1]
    rate = audio.sample_rate / FEATURE_HOP

    # Only the score's sounding music is matched, from its first note to the end of its last: rests around it have
    # nothing to match, and the recording may have anything there. Its nominal time axis is rescaled so it lasts
    # about as long as the sound in the recording: the DTW's steps then have room on either side of the real tempo.
    notes = score.notes
    music = np.array([notes["onset"].min(), (notes["onset"] + notes["duration"]).max()])
    nominal = nominal_seconds(score, music)
    nominal_length = max(float(nominal[1] - nominal[0]), 1e-6)
    sounding = float(np.count_nonzero(audio_chroma.std(axis=0) > 1e-3)) / rate
    stretch = float(np.clip(sounding / nominal_length, 1 / MAX_TEMPO_RATIO, MAX_TEMPO_RATIO))
    n_score = max(COARSE_STEP, int(np.ceil(nominal_length * stretch * rate)))
    frame_nominal = nominal[0] + np.arange(n_score) / (rate * stretch)
    q_grid = np.linspace(music[0], music[1], 4 * n_score + 1)
    frame_q = np.interp(frame_nominal, nominal_seconds(score, q_grid), q_grid)

    report(0.3, "Matching the score to the recording")
    audio_coarse = _pooled(audio_chroma, COARSE_STEP)
    best = None
    for transposition in _likely_transpositions(score, frame_q, audio_chroma):
        chroma = score_chroma(score, frame_q, transposition)
        cost = 1.0 - _pooled(chroma, COARSE_STEP).T @ audio_coarse
        path, path_cost = _coarse_path(cost)
        # The score as written unless another key fits clearly better: near-equal fits are the same harmony heard
        # through another tuning or timbre, not a transposed performance.
        if best is None or path_cost < best[1] * (TRANSPOSITION_MARGIN if best[0] == 0 else 1.0):
            best = (transposition, path_cost, path, chroma)
    transposition, path_cost, path, chroma = best
    # How much cheaper the path is than the best path for the same score a tritone away, which keeps its rhythm and
    # texture but not its harmony: near 1 for a score of this music, near 0 for one of other music, which the DTW
    # can follow as cheaply (as badly) in any key.
    tritone = 1.0 - _pooled(score_chroma(score, frame_q, transposition + 6), COARSE_STEP).T @ audio_coarse
    null_cost = _coarse_path(tritone)[1]
    confidence = float(np.clip(1.0 - path_cost / max(null_cost, 1e-9), 0.0, 1.0))
    if confidence < MIN_CONFIDENCE:
        raise AlignmentError(
            f"{score.source} does not match {audio.name} (alignment confidence {confidence:.2f}, at least "
            f"{MIN_CONFIDENCE:.2f} needed): check that the score is of this recording, or conduct without it.")

    report(0.6, "Placing every chord")
    first, last = _band(path, n_score, n_audio, rate)
    fine = _fine_path(chroma, audio_chroma, first, last)
    # Each score frame at the first recording frame matched to it: a held chord's run of frames keeps the next
    # change where it starts.
    frames, starts = np.unique(fine[:, 0], return_index=True)
    knots_q, knots_s = frame_q[frames], np.maximum.accumulate(fine[starts, 1] / rate)
    report(0.9, "Placing the beats on their attacks")
    knots_q, knots_s = _beats_on_attacks(score, knots_q, knots_s, _attack_strength(audio, tuning), transposition,
                                         _beat_activation(audio, spectral))
    report(1.0, "Score aligned")
    return ScoreAlignment(score, knots_q, knots_s, confidence, int(transposition), tuning)


def _likely_transpositions(score: Score, frame_q: np.ndarray, audio_chroma: np.ndarray, keep: int = 3) -> list[int]:
    """The transpositions (-5 … 6 semitones) whose overall pitch-class profile best matches the recording's, with
    the score as written among them."""
    profile = audio_chroma.mean(axis=1)
    score_profile = score_chroma(score, frame_q).mean(axis=1)
    fits = {t: float(np.dot(np.roll(score_profile, t), profile)) for t in range(-5, 7)}
    ranked = sorted(fits, key=fits.get, reverse=True)[:keep]
    return ranked if 0 in ranked else [0, *ranked]


def _beat_activation(audio: Audio, spectral: Spectral | None) -> np.ndarray | None:
    """The beat tracker's beat activation (0 … 1) at ATTACK_HOP, or None where its weights are not installed."""
    from .analysis import ANALYSIS_RATE, compute_spectral
    from .tracker import beat_activation, shipped_weights

    weights = shipped_weights()
    if weights is None:
        return None
    activation = beat_activation((spectral or compute_spectral(audio)).log_mel, weights)
    times = np.arange(int(len(audio.samples) / ATTACK_HOP) + 1) * ATTACK_HOP / audio.sample_rate
    return np.interp(times, np.arange(len(activation)) / ANALYSIS_RATE, activation)


def _beats_on_attacks(score: Score, knots_q: np.ndarray, knots_s: np.ndarray, attacks: np.ndarray,
                      transposition: int, activation: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Every beat inside the matched music moved from where the DTW put it onto the recording's attacks: each may
    move up to REFINE_S, scored by the attacks there of the pitch classes the score starts on it (weighted by how
    many notes start) and by the beat tracker's `activation`, against moving from the DTW's time and against
    changing the beat's length from the DTW's tempo over a few beats (Viterbi over the beats). These beats become
    the knots."""
    from scipy.ndimage import median_filter

    rate = 22050.0 / ATTACK_HOP
    beat_q = score.beat_times()[0]
    beat_q = beat_q[(beat_q >= knots_q[0]) & (beat_q <= knots_q[-1])]
    if len(beat_q) < 3:
        return knots_q, knots_s
    estimate = np.interp(beat_q, knots_q, knots_s)
    notes = score.notes
    classes = np.zeros((len(beat_q), 12))
    for k, q in enumerate(beat_q):
        starting = np.abs(notes["onset"] - q) < 1e-3
        np.add.at(classes[k], (notes["pitch"][starting].astype(int) + transposition) % 12, notes["velocity"][starting])
    weight = np.log1p(classes.sum(axis=1))
    weight /= max(float(weight.max()), 1e-9)
    classes /= np.maximum(classes.sum(axis=1, keepdims=True), 1e-9)

    offsets = np.arange(-REFINE_S, REFINE_S + 1e-9, 1.0 / rate)
    times = estimate[:, None] + offsets[None, :]
    frames = np.clip(np.round(times * rate).astype(int), 0, attacks.shape[1] - 1)
    gain = weight[:, None] * np.einsum("kc,ckw->kw", classes, attacks[:, frames])
    if activation is not None:
        gain += BEAT_ACTIVATION_WEIGHT * activation[np.clip(frames, 0, len(activation) - 1)]
    gain -= DTW_TRUST * (offsets / REFINE_S)[None, :] ** 2
    # The beat lengths the DTW implies, smoothed over a few beats: its single beats are what is being corrected.
    seconds_per_q = median_filter(np.diff(estimate) / np.maximum(np.diff(beat_q), 1e-6), size=5, mode="nearest")
    total = gain[0].copy()
    came = np.zeros(times.shape, dtype=np.int64)
    for k in range(1, len(beat_q)):
        expected = max(seconds_per_q[k - 1] * (beat_q[k] - beat_q[k - 1]), 1e-3)
        length = times[k][:, None] - times[k - 1][None, :]
        score_from = total[None, :] - TEMPO_CHANGE_COST * np.log(np.maximum(length, 1e-3) / expected) ** 2
        score_from[length < 0.3 * expected] = -np.inf
        came[k] = np.argmax(score_from, axis=1)
        total = score_from[np.arange(len(offsets)), came[k]] + gain[k]
    choice = np.empty(len(beat_q), dtype=np.int64)
    choice[-1] = int(np.argmax(total))
    for k in range(len(beat_q) - 1, 0, -1):
        choice[k - 1] = came[k, choice[k]]
    placed = times[np.arange(len(beat_q)), choice]
    # A beat on which nothing starts (a held chord, a rest) has no attack of its own: it goes where the beats
    # around it that have one say, in proportion to the score.
    heard = weight > 0
    if heard.sum() >= 2:
        placed = np.where(heard, placed, np.interp(beat_q, beat_q[heard], placed[heard]))
    return beat_q, np.maximum.accumulate(placed)
