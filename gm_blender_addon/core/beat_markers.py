"""Beats as timeline markers, with no bpy: the names Generate writes, the user's markers read back as beats and bars,
and tapped beats snapped to the music's onsets and put among the others.

Generate names a marker on every beat: `Bar N` on downbeats, `N.k` (beat k of bar N, bar 0 a pickup) on the others;
conducted from a score, N is the bar's number in the score ("12a" too), and `Cue: <section>` and
`Cut-off: <section>` markers (not beats) mark the entrances it cues and the phrase ends it releases.
Reading them back, a beat marker is one of those names or a name Blender gives a new marker (`F_12` when added at
frame 12, or no name), so markers the user adds in the timeline are beats; `Bar N` markers start bars. Markers with
any other name are the user's own and never touched.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np

from .analysis import AnalysisError, GivenBeats, beat_positions

BAR = re.compile(r"^Bar \w+$")
_BEAT = re.compile(r"^\w+\.\d+$")
CUE_PREFIX = "Cue: "
RELEASE_PREFIX = "Cut-off: "
_NEW = re.compile(r"^(F_-?\d+)?$")
MARKERS = "the beat markers"
# How far a tap may be moved onto an onset: taps land within about a tenth of a second of the beat they mean.
SNAP_WINDOW = 0.1


def marker_name(bar: int, beat: int, bar_labels: Sequence[str] | None = None) -> str:
    """The name of beat `beat` of bar `bar` (1-based, 0 a pickup); `bar_labels` name bars 1, 2, … as a score
    numbers them."""
    label = bar_labels[bar - 1] if bar_labels and 0 < bar <= len(bar_labels) else bar
    return f"Bar {label}" if beat == 1 and bar else f"{label}.{beat}"


def is_beat_marker(name: str) -> bool:
    return bool(BAR.match(name) or _BEAT.match(name) or _NEW.match(name))


def marked_beats(markers: Iterable[tuple[str, float]], duration: float) -> tuple[np.ndarray, np.ndarray]:
    """(beats, downbeats) in seconds from (name, seconds) markers: beat markers within the music, several on one
    time counting once (as a downbeat if one of them is a `Bar` marker)."""
    downbeat_at: dict[float, bool] = {}
    for name, seconds in markers:
        if is_beat_marker(name) and 0.0 <= seconds <= duration:
            downbeat_at[seconds] = downbeat_at.get(seconds, False) or bool(BAR.match(name))
    beats = np.array(sorted(downbeat_at), dtype=np.float64)
    return beats, np.array([t for t in beats if downbeat_at[t]], dtype=np.float64)


def beats_from_markers(markers: Iterable[tuple[str, float]], duration: float) -> GivenBeats:
    """The beats and bars the markers give; AnalysisError saying what to do when there are fewer than two beats."""
    beats, downbeats = marked_beats(markers, duration)
    if len(beats) < 2:
        raise AnalysisError(
            f"Only {len(beats)} beat marker(s) within the music: Conduct to Markers needs at least two. Generate "
            "first (it marks every beat), add markers on the beats (M in the timeline) or tap them (Tap Beats)."
        )
    return GivenBeats(tuple(beats), tuple(downbeats) or None, source=MARKERS)


def snap_to_onsets(times: np.ndarray, onset: np.ndarray, rate: float, window: float = SNAP_WINDOW) -> np.ndarray:
    """Each time moved to the nearest clear onset within ±`window` seconds, or kept where there is none.

    An onset is a peak of the onset envelope (`onset`, sampled at `rate` Hz); a clear one is at least half as strong
    as the strongest peak in the window, so a small ripple next to a tap does not capture it. A time that lands on
    or before the one before it (two taps on one beat) is dropped.
    """
    onset = np.asarray(onset, dtype=np.float64)
    snapped: list[float] = []
    for time in np.asarray(times, dtype=np.float64):
        lo = max(1, int(np.ceil((time - window) * rate)))
        hi = min(len(onset) - 2, int(np.floor((time + window) * rate)))
        frames = np.arange(lo, hi + 1)
        peaks = frames[(onset[frames] >= onset[frames - 1]) & (onset[frames] > onset[frames + 1])
                       & (onset[frames] > 0)]
        if len(peaks):
            clear = peaks[onset[peaks] >= 0.5 * onset[peaks].max()]
            time = clear[np.argmin(np.abs(clear / rate - time))] / rate
        if not snapped or time > snapped[-1]:
            snapped.append(float(time))
    return np.array(snapped)


def with_taps(beats: np.ndarray, downbeats: np.ndarray, per_bar: int,
              taps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(beats, downbeats) with the beats of the tapped span replaced by the taps.

    The span reaches half a tap interval beyond the first and last taps. The taps continue the bars before them: a
    tap is a downbeat every `per_bar` beats counted on from the last beat before the span (the first tap is one if
    there is none).
    """
    taps = np.asarray(taps, dtype=np.float64)
    if len(taps) < 2:
        raise AnalysisError(f"{len(taps)} beat(s) tapped: tap at least two, pressing the key on each beat while the "
                            "music plays.")
    half = 0.5 * float(np.median(np.diff(taps)))
    before, after = beats < taps[0] - half, beats > taps[-1] + half
    counted = 0
    if before.any():
        kept_bars = downbeats[downbeats < taps[0] - half]
        counted = beat_positions(beats[before], kept_bars, per_bar)[-1][1]
    tapped_bars = taps[(counted + np.arange(len(taps))) % per_bar == 0]
    new_beats = np.concatenate([beats[before], taps, beats[after]])
    new_downbeats = np.concatenate([downbeats[downbeats < taps[0] - half], tapped_bars,
                                    downbeats[downbeats > taps[-1] + half]])
    return new_beats, new_downbeats
