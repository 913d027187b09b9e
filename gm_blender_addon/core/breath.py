"""The conductor's breath: in on the preparation that brings the music in, out as it enters (no bpy).

A conductor breathes in with the upbeat before an entry, and the players breathe with them: the chest lifts and the
shoulders rise to the top of the preparation, then settle as the sound starts. Every motion gets this from the
music's analysis, whichever generator made its keypoints: before the first beat, before each beat that follows a
long break, and, with a score, a smaller breath before each section's entrance. The rig's chest and collarbones show
it (core.retarget).
"""

from __future__ import annotations

import numpy as np

from .analysis import MusicAnalysis
from .hands import ramp, section_event_weights
from .motion import FPS

# A break between beats longer than this many typical beats ends a section: the music stops and enters again.
SECTION_BREAK_BEATS = 2.2
# The breath in fills the preparatory beat and a little before it (beats), peaking just before the ictus that brings
# the music in; the breath out settles this long after it (seconds).
INHALE_FROM_BEATS, INHALE_PEAK_BEATS = 1.4, 0.1
EXHALE_S = 0.9
# A section's entrance within the music is cued with a smaller breath than the orchestra's entry.
CUE_BREATH = 0.5


def beat_sections(analysis: MusicAnalysis) -> list[np.ndarray]:
    """Runs of beats without a long break; each is entered with its own preparation and ends with a cut-off."""
    beats = analysis.beats
    if len(beats) < 2:
        return [beats]
    breaks = np.flatnonzero(np.diff(beats) > SECTION_BREAK_BEATS * np.median(np.diff(beats))) + 1
    return [s for s in np.split(beats, breaks) if len(s)]


def breathing(analysis: MusicAnalysis) -> np.ndarray:
    """(T,) how full the conductor's breath is, 0 at rest to 1 at the top of an entry's preparation."""
    t = np.arange(analysis.n_frames) / FPS
    breath = np.zeros(analysis.n_frames)
    fallback_beat = 60.0 / analysis.tempo_bpm
    for section in beat_sections(analysis):
        if not len(section):
            continue
        entry = float(section[0])
        beat = float(section[1] - section[0]) if len(section) > 1 else fallback_beat
        rise = ramp(t, entry - INHALE_FROM_BEATS * beat, entry - INHALE_PEAK_BEATS * beat)
        fall = 1.0 - ramp(t, entry, entry + EXHALE_S)
        breath = np.maximum(breath, np.minimum(rise, fall))
    guide = analysis.score
    if guide is not None:
        for weight, _ in section_event_weights(analysis, guide.cues, INHALE_PEAK_BEATS, INHALE_FROM_BEATS,
                                               EXHALE_S / fallback_beat):
            breath = np.maximum(breath, CUE_BREATH * weight)
    return breath.astype(np.float32)
