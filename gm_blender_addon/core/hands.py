"""Wrists and fingers for any conducting motion, from its keypoints and the music (no bpy).

The generators speak 13 body keypoints, which say nothing about the hands. These rules give every motion, whatever
made it, the same hands: the right hand closed on the baton, its wrist flicking the tip
ahead of the hand into each ictus (more for sharp attacks, less in legato); the left hand relaxed while it rests and,
once raised, open and beating, palm up and cupped in a crescendo, palm down and flat in a diminuendo, palm to the
orchestra over held sound, pointing for a cue and closing at a cut-off, the whole orchestra's or a section's at the
end of its phrase.
"""

from __future__ import annotations

import numpy as np

from .analysis import MusicAnalysis
from .motion import FPS, HAND_SIDES, JOINT, N_FINGERS, SHOULDER_WIDTH, gaussian_smooth

LEFT, RIGHT = HAND_SIDES.index("left"), HAND_SIDES.index("right")


class Shape:
    """A hand shape: finger curls (thumb … little, 0 straight to 1 fist), wrist flexion and turn (radians, as in
    `Motion.wrists`)."""

    def __init__(self, curls, flexion: float, turn: float):
        self.values = np.array([*curls, flexion, turn], dtype=np.float64)


# Thumb on the cork and the baton's butt in the palm: the last fingers wrap the handle, the index lies along it; the
# wrist a little cocked back, so that the tip still points above level when it flicks down into an ictus.
BATON_GRIP = Shape((0.45, 0.35, 0.65, 0.75, 0.8), -0.2, 0.5)
RELAXED = Shape((0.3, 0.3, 0.4, 0.45, 0.5), 0.15, np.pi / 2)  # hanging by the side, thumb forward
OPEN = Shape((0.15, 0.1, 0.15, 0.2, 0.25), 0.0, 0.3)  # beating with the right hand
LIFT = Shape((0.2, 0.25, 0.3, 0.35, 0.4), -0.1, 2.8)  # crescendo: palm up, cupped, rising
PRESS = Shape((0.05, 0.0, 0.0, 0.05, 0.05), -0.4, 0.0)  # diminuendo: palm down and flat, pressing
HOLD = Shape((0.05, 0.0, 0.0, 0.0, 0.05), -1.1, 0.0)  # held sound: palm raised towards the orchestra
POINT = Shape((0.5, 0.0, 0.55, 0.7, 0.8), 0.0, np.pi / 2 - 0.3)  # a cue: the index leads towards the section
CLOSE = Shape((0.85, 0.8, 0.85, 0.9, 0.9), 0.2, 0.6)  # a cut-off: the hand closes as the sound stops

# The wrist's flick: flexion per shoulder width that the wrist lies below its own recent path, read this far ahead
# so that the tip reaches the ictus a little before the hand does.
FLICK_GAIN = 1.2
FLICK_LEAD_S = 0.07
MAX_FLICK = 0.6
# The left hand is raised (and shaped by the music) once the wrist is this far above the hips, in shoulder widths.
RAISED = (0.2, 0.6)
WRITTEN_DYNAMICS_LEAD_S = 0.3
CUT_OFF_S = (0.35, 0.25)  # the closing hand: from before the sound stops to after it


def ramp(x, lo, hi):
    """0 below lo, 1 above hi, a smooth step between."""
    x = np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _blend(base: np.ndarray, shape: Shape, weight: np.ndarray) -> np.ndarray:
    return base + (shape.values - base) * np.clip(weight, 0.0, 1.0)[:, None]


def _flick(keypoints: np.ndarray, side: str) -> np.ndarray:
    """Wrist flexion that follows the wrist's dips below its own slow path, ahead of them."""
    y = keypoints[:, JOINT[f"{side}_wrist"], 1].astype(np.float64)
    below = (y - gaussian_smooth(y, 0.5 * FPS)) / SHOULDER_WIDTH
    t = np.arange(len(y))
    ahead = np.interp(t + FLICK_LEAD_S * FPS, t, below)
    return np.clip(FLICK_GAIN * ahead, -MAX_FLICK, MAX_FLICK)


def conducted_loudness(analysis: MusicAnalysis) -> np.ndarray:
    """Loudness as the conductor reads it: as heard or, with a score, half heard and half written, the written
    dynamics read a little ahead, as a conductor shows a dynamic before the orchestra plays it."""
    heard = analysis.loudness.astype(np.float64)
    if analysis.score is None:
        return heard
    t = np.arange(analysis.n_frames) / FPS
    written = np.interp(t + WRITTEN_DYNAMICS_LEAD_S, t, analysis.score.dynamics)
    return 0.5 * heard + 0.5 * np.where(analysis.silent, 0.0, written)


def loudness_trend(analysis: MusicAnalysis) -> np.ndarray:
    """−1 (falling) … 1 (rising): where the loudness goes over the next second against the last half second."""
    t = np.arange(analysis.n_frames) / FPS
    loud = gaussian_smooth(conducted_loudness(analysis), 0.6 * FPS)
    return np.clip((np.interp(t + 1.0, t, loud) - np.interp(t - 0.5, t, loud)) / 0.25, -1.0, 1.0)


def _cut_offs(analysis: MusicAnalysis) -> np.ndarray:
    """1 around each moment the sound stops for at least half a second, rising into it."""
    t = np.arange(analysis.n_frames) / FPS
    sounding = ~analysis.silent.astype(bool)
    stops = np.flatnonzero(sounding[:-1] & ~sounding[1:]) + 1
    weight = np.zeros(len(t))
    for stop in stops:
        rest = sounding[stop:stop + FPS // 2]
        if rest.any():
            continue
        when = stop / FPS
        weight = np.maximum(weight, ramp(t, when - CUT_OFF_S[0], when) * (1 - ramp(t, when + CUT_OFF_S[1],
                                                                                      when + 2 * CUT_OFF_S[1])))
    return weight


def section_event_weights(analysis: MusicAnalysis, events, lead_beats: float, before_beats: float,
                          after_beats: float) -> list[tuple[np.ndarray, float]]:
    """(weight 0 … 1 over the frames, the section's angle in radians) of each of `events` (the score guide's cues or
    releases): rising from `before_beats` before the event to a peak `lead_beats` before it, gone `after_beats`
    after it, in the beats around it."""
    t = np.arange(analysis.n_frames) / FPS
    beats = analysis.beats
    out = []
    for event in events:
        i = int(np.clip(np.searchsorted(beats, event.time), 1, max(1, len(beats) - 1)))
        beat = float(beats[i] - beats[i - 1]) if len(beats) > 1 else 0.5
        peak = event.time - lead_beats * beat
        rise = ramp(t, event.time - before_beats * beat, peak)
        fall = 1.0 - ramp(t, peak, event.time + after_beats * beat)
        out.append((np.minimum(rise, fall), np.radians(event.angle)))
    return out


def _strongest(weights: list[tuple[np.ndarray, float]], n: int) -> np.ndarray:
    return np.max([w for w, _ in weights], axis=0) if weights else np.zeros(n)


def hand_poses(keypoints: np.ndarray, analysis: MusicAnalysis | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fingers (T, 2, 5), wrists (T, 2, 2)) for a motion's keypoints (T, 13, 2), shaped by the music when its
    analysis is given (a captured performer may come without one: the hands then only follow the arms)."""
    n = len(keypoints)
    if analysis is not None and analysis.n_frames != n:
        analysis = None  # a motion of another length than its music (an imported file): follow the arms only
    hips_y = 0.5 * (keypoints[:, JOINT["left_hip"], 1] + keypoints[:, JOINT["right_hip"], 1])

    right = np.tile(BATON_GRIP.values, (n, 1))
    left = np.tile(OPEN.values, (n, 1))
    sharpness = np.full(n, 0.5)
    if analysis is not None:
        sharpness = np.clip(gaussian_smooth(analysis.onset.astype(np.float64), 0.5 * FPS), 0.0, 1.0)
        trend = loudness_trend(analysis)
        held = gaussian_smooth(analysis.held.astype(np.float64), 0.4 * FPS)
        left = _blend(left, LIFT, 2.0 * np.maximum(trend, 0.0))
        left = _blend(left, PRESS, 2.0 * np.maximum(-trend, 0.0))
        left = _blend(left, HOLD, held * (1.0 - np.abs(trend)))
        guide = analysis.score
        left = _blend(left, CLOSE, _cut_offs(analysis))
        if guide is not None:
            left = _blend(left, CLOSE, _strongest(section_event_weights(analysis, guide.releases, 0.0, 1.0, 0.5), n))
            left = _blend(left, POINT, _strongest(section_event_weights(analysis, guide.cues, 0.5, 1.5, 0.8), n))
    # Marcato flicks harder than legato: the tip's path turns sharper corners.
    right[:, N_FINGERS] += (0.7 + 0.6 * sharpness) * _flick(keypoints, "right")
    left[:, N_FINGERS] += 0.5 * _flick(keypoints, "left")
    raised = ramp((hips_y - keypoints[:, JOINT["left_wrist"], 1]) / SHOULDER_WIDTH, *RAISED)
    left = RELAXED.values + (left - RELAXED.values) * raised[:, None]

    hands = np.stack([left, right], axis=1)
    hands = gaussian_smooth(hands, 0.08 * FPS)
    fingers = np.clip(hands[..., :N_FINGERS], 0.0, 1.0)
    return fingers.astype(np.float32), hands[..., N_FINGERS:].astype(np.float32)
