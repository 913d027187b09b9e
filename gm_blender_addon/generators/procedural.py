"""A rule-based conductor: textbook beat patterns driven by the analysed beats, meter and dynamics.

The body is posed in a small 3D space in ConductorMotion100 units (x right, y down, z towards the camera), arms are
solved with two-bone IK and the result is projected to the 2D keypoints, so depth cues stay consistent for lifting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.analysis import MusicAnalysis
from ..core.breath import beat_sections
from ..core.hands import conducted_loudness, loudness_trend, ramp, section_event_weights
from ..core.motion import FPS, JOINT, N_JOINTS, Motion, gaussian_smooth
from .registry import GeneratorSpec, Request

UPPER_ARM = 0.15
FOREARM = 0.14
SHOULDER_L = np.array([0.60, 0.49, 0.0])
SHOULDER_R = np.array([0.40, 0.49, 0.0])
HIP_L = np.array([0.55, 0.75])
HIP_R = np.array([0.45, 0.75])
HEAD_CENTRE = np.array([0.50, 0.405])
# Face points relative to the ear midpoint, in the head's own frame (x right, y down, z towards the camera).
FACE = {
    "nose": (0.0, 0.005, 0.052),
    "left_eye": (0.018, -0.008, 0.042),
    "right_eye": (-0.018, -0.008, 0.042),
    "left_ear": (0.040, 0.0, 0.0),
    "right_ear": (-0.040, 0.0, 0.0),
}
# Where each beat of the bar lands for the right hand, in units of the pattern size: +x is towards the performer's
# left (image right), +y is down. The downbeat is always the lowest point.
PATTERNS = {
    1: [(0.0, 1.0)],
    2: [(0.0, 1.0), (-0.35, 0.72)],
    3: [(0.0, 1.0), (-0.9, 0.8), (-0.25, 0.6)],
    4: [(0.0, 1.0), (0.7, 0.84), (-0.95, 0.84), (-0.2, 0.66)],
}
# Rebound height after each beat, relative to the pattern size: high before the downbeat (the preparation),
# moderate after it, small on the inner beats.
REBOUND_LAST, REBOUND_FIRST, REBOUND_INNER = 1.5, 0.9, 0.55
RIGHT_REST = np.array([0.37, 0.75, 0.03])
# Beats slower than this (seconds; under 50 per minute) are subdivided into the meter's two or three parts: each tap
# moves this far (a fraction of the way to the next beat) and sits this much higher than the beat it follows, with a
# small rebound of its own (all in units of the pattern size).
SUBDIVIDE_ABOVE_S = 1.2
SUBDIVISION_TRAVEL = 0.25
SUBDIVISION_LIFT = 0.25
SUBDIVISION_REBOUND = 0.35
CUE_PEAK_BEATS = 0.35  # a cue's gesture peaks this many beats before the entrance
CUE_REACH = 0.24  # how far from the shoulder the cueing hand reaches
MAX_HEAD_TURN = np.radians(50.0)
LEFT_REST = np.array([0.63, 0.75, 0.03])
# The weight moves between the feet by this many times the seed's sway (keypoint units; its sway is 0.002-0.006), and
# the upper body follows the hips by this share; the knees give by up to this much (keypoint units, about 1 cm) into
# each downbeat.
WEIGHT_SHIFT = 2.5
UPPER_BODY_WEIGHT = 0.4
KNEE_GIVE = 0.004
# The raised left hand shapes the phrase in a slow loop (out and up, then in and down) every LOOP_BEATS beats, of
# these half-widths (x, y, z) at full size.
LOOP_BEATS = 2.0
LOOP_SIZE = np.array([0.018, 0.022, 0.012])


@dataclass
class Style:
    """Per-seed personality: how big, wide, high and lively this conductor beats."""

    size: float
    width: float
    plane_height: float
    reach: float
    bounce_skew: float
    mirror_threshold: float
    nod: float
    sway: float
    sway_bars: int
    gaze: np.ndarray  # (3, 2) amplitude/phase pairs for slow head turns

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Style":
        return cls(
            size=rng.uniform(0.85, 1.2),
            width=rng.uniform(0.8, 1.2),
            plane_height=rng.uniform(-0.02, 0.02),
            reach=rng.uniform(0.13, 0.19),
            bounce_skew=rng.uniform(0.5, 0.7),
            mirror_threshold=rng.uniform(0.58, 0.7),
            nod=rng.uniform(0.08, 0.16),
            sway=rng.uniform(0.002, 0.006),
            sway_bars=int(rng.choice([2, 4])),
            gaze=np.stack([rng.uniform(0.05, 0.15, 3), rng.uniform(0, 2 * np.pi, 3)], axis=1),
        )


def _shown_dynamics(analysis: MusicAnalysis) -> np.ndarray:
    """Loudness as the conductor shows it: half absolute, half relative to this piece's own soft and loud.

    A piece that stays forte still gets smaller gestures in its softer bars, as a conductor would shape it.
    """
    loud = gaussian_smooth(conducted_loudness(analysis), 0.5 * FPS)
    sounding = loud[~analysis.silent]
    if len(sounding) < FPS:
        return loud
    soft, strong = np.percentile(sounding, [5, 95])
    relative = np.clip((loud - soft) / max(strong - soft, 0.05), 0.0, 1.0)
    return 0.5 * loud + 0.5 * relative


def _bar_positions(analysis: MusicAnalysis, per_bar: int) -> dict[float, tuple[int, int]]:
    """Each beat's (place in its pattern, 0 the downbeat; the pattern's number of beats), from the bar lines.

    A bar of 1 to 4 beats between two bar lines is beaten in its own pattern (a 3/4 bar among 4/4 ones in three).
    A longer one keeps the `per_bar` pattern: its last beat is the up-beat into the next downbeat, the others count
    from the downbeat. Beats before the first bar line count back from it and those after the last run on in bars
    of `per_bar`.
    """
    beats = analysis.beats
    bar_lines = np.unique(np.searchsorted(beats, analysis.downbeats - 1e-6))
    if not len(bar_lines):
        bar_lines = np.array([0])
    positions = np.empty(len(beats), dtype=int)
    lengths = np.full(len(beats), per_bar)
    positions[: bar_lines[0]] = (np.arange(bar_lines[0]) - bar_lines[0]) % per_bar
    for start, stop in zip(bar_lines, [*bar_lines[1:], len(beats)]):
        count = np.arange(stop - start)
        if stop == len(beats):
            positions[start:stop] = count % per_bar
        elif stop - start in PATTERNS:
            positions[start:stop] = count
            lengths[start:stop] = stop - start
        else:
            positions[start:stop] = np.minimum(count, max(per_bar - 2, 0))
            positions[stop - 1] = per_bar - 1
    return {float(b): (int(p), int(n)) for b, p, n in zip(beats, positions, lengths)}


class _Track:
    """A per-frame 3D path filled piece by piece; frame k is at k / FPS seconds."""

    def __init__(self, n_frames: int, start: np.ndarray):
        self.t = np.arange(n_frames) / FPS
        self.xyz = np.tile(start, (n_frames, 1)).astype(np.float64)

    def span(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        idx = np.flatnonzero((self.t >= t0) & (self.t < t1))
        if t1 <= t0:
            return idx, np.zeros(0)
        return idx, (self.t[idx] - t0) / max(t1 - t0, 1e-6)

    def beat(self, t0, t1, p0, p1, height, skew):
        """Travel from ictus p0 to ictus p1: quick rebound up after p0, float, then fall into p1.

        Both ends have zero velocity and high acceleration, so the ictus is the lowest point and a speed minimum.
        """
        idx, u = self.span(t0, t1)
        ease = ramp(u, 0.0, 1.0)[:, None]
        bump = np.sin(np.pi * u**skew) ** 2
        path = p0 + (p1 - p0) * ease
        path[:, 1] -= height * bump
        self.xyz[idx] = path

    def glide(self, t0, t1, p0, p1):
        idx, u = self.span(t0, t1)
        self.xyz[idx] = p0 + (p1 - p0) * ramp(u, 0.0, 1.0)[:, None]

    def hold(self, t0, t1, p):
        idx, _ = self.span(t0, t1)
        self.xyz[idx] = p


def _right_hand(analysis: MusicAnalysis, style: Style, rng: np.random.Generator, n_frames: int) -> tuple:
    """The beating hand, plus a per-frame weight that is 1 around cut-offs (the left hand joins them)."""
    per_bar = analysis.beats_per_bar if analysis.beats_per_bar in PATTERNS else 4
    places = _bar_positions(analysis, per_bar)
    centre = np.array([0.40, 0.52 + style.plane_height, style.reach])
    loud = _shown_dynamics(analysis)
    held = gaussian_smooth(analysis.held.astype(np.float64), 0.3 * FPS)
    beats = analysis.beats
    typical_ibi = float(np.median(np.diff(beats))) if len(beats) > 1 else 60.0 / analysis.tempo_bpm

    def size_at(t):
        # Conductors show dynamics slightly ahead of the sound, and a hurried beat has less room than a broad one.
        k = min(n_frames - 1, max(0, int((t + 0.15) * FPS)))
        i = int(np.clip(np.searchsorted(beats, t), 1, max(1, len(beats) - 1)))
        ibi = beats[i] - beats[i - 1] if len(beats) > 1 else typical_ibi
        room = np.clip(ibi / typical_ibi, 0.7, 1.3) ** 0.5
        return style.size * (0.03 + 0.09 * loud[k]) * (1.0 - 0.4 * held[k]) * room

    def ictus(t, place, jitter=True):
        position, length = place
        offset = np.array(PATTERNS[length][position]) * (style.width, 1.0)
        if jitter:
            offset = offset + rng.normal(0.0, 0.05, 2)
        a = size_at(t)
        return centre + np.array([offset[0] * a, offset[1] * a, 0.15 * a])

    def rebound(place):
        position, length = place
        if position == length - 1:
            return REBOUND_LAST
        return REBOUND_FIRST if position == 0 else REBOUND_INNER

    def before(place):
        return (place[0] - 1) % place[1], place[1]

    guide = analysis.score
    # A beat the score holds (a fermata) stops the hand until one beat before the next; the beat into a marked tempo
    # change is a full preparation in the new tempo.
    fermatas = set(guide.fermatas) if guide is not None else set()
    changes = np.array([t for t, _ in guide.tempo_changes]) if guide is not None else np.zeros(0)
    articulation = dict(guide.articulation) if guide is not None else {}

    def skew_into(t):
        """The rebound's shape into the beat at `t`: it peaks early and falls long into a sharp ictus for staccato
        and accents, and swings evenly, rounded, through slurred beats."""
        marked = articulation.get(t, 0.0)
        return style.bounce_skew * (1.0 - 0.3 * max(marked, 0.0)) + (1.0 - style.bounce_skew) * max(-marked, 0.0)

    sections = beat_sections(analysis)
    ready = ictus(0.0, (per_bar - 1, per_bar), jitter=False)
    track = _Track(n_frames, ready)
    cutoff_weight = np.zeros(n_frames)
    previous_end = None
    for number, beats in enumerate(sections):
        ibi = float(np.median(np.diff(beats))) if len(beats) > 1 else 60.0 / analysis.tempo_bpm
        first_place = places[float(beats[0])]
        prep_time = beats[0] - ibi
        prep = ictus(prep_time, before(first_place), jitter=False)
        if previous_end is None:
            track.hold(track.t[0], prep_time, prep)
        else:
            end_time, end_point = previous_end
            # Wait after the cut-off, then lift into the preparation in the last part of the break.
            lift = max(end_time, prep_time - max(0.6, 0.5 * (prep_time - end_time)))
            track.hold(end_time, lift, end_point)
            track.glide(lift, prep_time, end_point, prep)
        points = [prep] + [ictus(b, places[float(b)]) for b in beats]
        times = [prep_time] + list(beats)
        heights = [rebound(before(first_place))] + [rebound(places[float(b)]) for b in beats]
        for i in range(len(points) - 1):
            t0, t1 = times[i], times[i + 1]
            h = heights[i] * size_at(t0) * rng.uniform(0.85, 1.15)
            if np.any(np.abs(changes - t1) < 0.5 * (t1 - t0)):
                h = max(h, REBOUND_LAST * size_at(t1))
            start = points[i]
            if t0 in fermatas and t1 - t0 > 1.5 * ibi:
                track.hold(t0, t1 - ibi, start)
                t0, h = t1 - ibi, REBOUND_LAST * size_at(t1)
            elif i > 0 and t1 - t0 > SUBDIVIDE_ABOVE_S:
                # A slow beat is subdivided: small taps on the way, each a little further along, keep the players
                # together; the beat itself still falls deepest.
                parts, beat_start, size = analysis.subdivision, t0, size_at(t0)
                for k in range(1, parts):
                    tap = points[i] + SUBDIVISION_TRAVEL * k * (points[i + 1] - points[i])
                    tap[1] -= SUBDIVISION_LIFT * size
                    tk = beat_start + (t1 - beat_start) * k / parts
                    track.beat(t0, tk, start, tap, SUBDIVISION_REBOUND * size, skew_into(t1))
                    t0, start = tk, tap
            track.beat(t0, t1, start, points[i + 1], h, skew_into(t1))

        # Cut-off: one last small click where the sound of this section stops.
        last = beats[-1]
        next_start = sections[number + 1][0] if number + 1 < len(sections) else n_frames / FPS
        sounding = (~analysis.silent).astype(bool)
        frames_after = np.arange(int(last * FPS), min(n_frames, int(next_start * FPS)))
        sound_stop = frames_after[sounding[frames_after]].max() / FPS if np.any(sounding[frames_after]) else last
        cut_time = max(sound_stop, last + 0.5 * ibi)
        cut_point = centre + np.array([-0.1, -0.2, 0.1]) * size_at(last)
        track.beat(last, cut_time, points[-1], cut_point, 0.8 * size_at(last), style.bounce_skew)
        window = (track.t > last - ibi) & (track.t < cut_time + 0.4)
        cutoff_weight[window] = 1.0
        previous_end = (cut_time, cut_point)

    end_time, end_point = previous_end
    track.hold(end_time, end_time + 0.6, end_point)
    track.glide(end_time + 0.6, end_time + 2.1, end_point, RIGHT_REST)
    track.hold(end_time + 2.1, n_frames / FPS + 1.0, RIGHT_REST)
    return track.xyz, gaussian_smooth(cutoff_weight, 0.15 * FPS)


def _left_hand(analysis: MusicAnalysis, style: Style, right: np.ndarray, cutoff: np.ndarray, n_frames: int):
    """Mirrors in loud passages, lifts through crescendos, presses down in diminuendos, rests when quiet."""
    t = np.arange(n_frames) / FPS
    loud = gaussian_smooth(conducted_loudness(analysis), 0.6 * FPS)
    change = loudness_trend(analysis)

    mirror = right.copy()
    mirror[:, 0] = 1.0 - mirror[:, 0]
    express = np.tile([0.61, 0.62, 0.15], (n_frames, 1))
    express[:, 1] -= 0.11 * np.maximum(change, 0)
    express[:, 1] += 0.07 * np.maximum(-change, 0)
    sustain = np.array([0.62, 0.55, 0.18])
    idle = LEFT_REST + (np.array([0.60, 0.66, 0.08]) - LEFT_REST) * ramp(loud, 0.2, 0.5)[:, None]

    w_mirror = np.maximum(ramp(loud, style.mirror_threshold, style.mirror_threshold + 0.2), cutoff)
    w_express = (1 - w_mirror) * np.clip(np.abs(change) * 2.0, 0, 1)
    w_sustain = (1 - w_mirror - w_express) * gaussian_smooth(analysis.held.astype(np.float64), 0.4 * FPS)
    w_idle = 1 - w_mirror - w_express - w_sustain
    weights = [gaussian_smooth(w, 0.25 * FPS) for w in (w_mirror, w_express, w_sustain, w_idle)]
    total = sum(weights)
    left = (weights[0][:, None] * mirror + weights[1][:, None] * express + weights[2][:, None] * sustain
            + weights[3][:, None] * idle) / total[:, None]
    # A raised hand that only glided between these places would move in straight lines and stop dead, which no
    # living hand does; looping at an even pace it follows the two-thirds power law of human movement, as the beating
    # hand does. Mirroring, it already moves with the right hand; at rest by the side it keeps still.
    raised = (weights[1] + weights[2] + weights[3] * ramp(loud, 0.2, 0.5)) / total
    left += raised[:, None] * LOOP_SIZE * _loop(_beat_count(analysis, t) / LOOP_BEATS)
    # A cue: the open hand rises and reaches towards the entering section, peaking just before the entrance; a
    # release reaches there as the section's phrase ends (core.hands closes the hand). Sections to the conductor's
    # right are reached across only as far as the middle; the head turns the rest of the way.
    guide = analysis.score
    reaches = [] if guide is None else (section_event_weights(analysis, guide.cues, CUE_PEAK_BEATS, 1.2, 0.6)
                                        + section_event_weights(analysis, guide.releases, 0.0, 1.0, 0.5))
    for weight, angle in reaches:
        reach = np.array([max(-np.sin(angle), (0.52 - SHOULDER_L[0]) / CUE_REACH), -0.1, np.cos(angle)])
        target = SHOULDER_L + CUE_REACH * reach
        left = left * (1 - weight[:, None]) + target * weight[:, None]
    # After the final cut-off both hands come down together.
    after_end = ramp(t, analysis.sound_end + 0.6, analysis.sound_end + 2.1)[:, None]
    return left * (1 - after_end) + LEFT_REST * after_end


def _beat_count(analysis: MusicAnalysis, t: np.ndarray) -> np.ndarray:
    """Beats elapsed at each time, counting on at the typical beat length before the first and after the last."""
    beats = analysis.beats
    if len(beats) < 2:
        return t * analysis.tempo_bpm / 60.0
    period = float(np.median(np.diff(beats)))
    count = np.interp(t, beats, np.arange(len(beats), dtype=np.float64))
    count[t < beats[0]] = (t[t < beats[0]] - beats[0]) / period
    count[t > beats[-1]] = len(beats) - 1 + (t[t > beats[-1]] - beats[-1]) / period
    return count


def _loop(turns: np.ndarray) -> np.ndarray:
    """(T, 3) a unit loop, `turns` times round: out (+x, the performer's left) on the way up, in on the way down."""
    angle = 2 * np.pi * turns
    return np.stack([np.sin(angle), np.cos(angle), 0.5 * np.sin(2 * angle)], axis=1)


def _elbows(shoulder: np.ndarray, wrist: np.ndarray, pole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-bone IK: the elbow bends towards `pole`; unreachable wrists are pulled in to 98 % of the arm's reach."""
    reach = 0.98 * (UPPER_ARM + FOREARM)
    span = wrist - shoulder
    dist = np.linalg.norm(span, axis=1, keepdims=True)
    wrist = shoulder + span * np.minimum(1.0, reach / np.maximum(dist, 1e-9))
    dist = np.clip(dist, 1e-6, reach)
    axis = (wrist - shoulder) / dist
    along = (UPPER_ARM**2 - FOREARM**2 + dist**2) / (2 * dist)
    height = np.sqrt(np.maximum(UPPER_ARM**2 - along**2, 0.0))
    bend = pole - np.sum(pole * axis, axis=1, keepdims=True) * axis
    bend /= np.maximum(np.linalg.norm(bend, axis=1, keepdims=True), 1e-9)
    return shoulder + along * axis + height * bend, wrist


def _pulses(times: np.ndarray, t: np.ndarray, delay: float, width: float) -> np.ndarray:
    out = np.zeros_like(t)
    for time in times:
        near = np.abs(t - time) < 4 * width + delay
        out[near] += np.exp(-(((t[near] - time - delay) / width) ** 2))
    return out


def conduct(analysis: MusicAnalysis, seed: int) -> np.ndarray:
    """Keypoints (T, 13, 2) conducting the analysed music, varied by `seed`."""
    rng = np.random.default_rng(seed)
    style = Style.sample(rng)
    n = analysis.n_frames
    t = np.arange(n) / FPS
    right, cutoff = _right_hand(analysis, style, rng, n)
    left = _left_hand(analysis, style, right, cutoff, n)

    loud = gaussian_smooth(analysis.loudness.astype(np.float64), 1.0 * FPS)
    bar_seconds = analysis.beats_per_bar * 60.0 / analysis.tempo_bpm
    sway_x = style.sway * np.sin(2 * np.pi * t / (style.sway_bars * bar_seconds) + rng.uniform(0, 2 * np.pi))
    lean_y = 0.012 * loud + 0.003 * _pulses(analysis.downbeats, t, 0.05, 0.1)
    # The weight rests on one foot through a phrase and moves to the other at the next (the hips travel, the upper
    # body less); the knees give a little into each downbeat, lowering the whole body, more when it is loud.
    phrase = 2 * style.sway_bars * bar_seconds
    weight_x = WEIGHT_SHIFT * style.sway * np.tanh(3.0 * np.sin(np.pi * t / phrase + style.gaze[0, 1]))
    give = KNEE_GIVE * (0.5 + loud) * _pulses(analysis.downbeats, t, 0.04, 0.12)
    shift = np.stack([sway_x + UPPER_BODY_WEIGHT * weight_x, lean_y + give, np.zeros(n)], axis=1)

    shoulder_l, shoulder_r = SHOULDER_L + shift, SHOULDER_R + shift
    elbow_r, wrist_r = _elbows(shoulder_r, right + shift, np.array([-0.5, 1.0, 0.1]))
    elbow_l, wrist_l = _elbows(shoulder_l, left + shift, np.array([0.5, 1.0, 0.1]))

    pitch = style.nod * (0.5 + loud) * _pulses(analysis.downbeats, t, 0.06, 0.09)
    yaw = sum(a * np.sin(2 * np.pi * t / (8.0 + 5.0 * i) + p) for i, (a, p) in enumerate(style.gaze))
    # The head turns to a section before its cue or release and stays with it through it (positive yaw looks to the
    # conductor's left, a section's positive angle is to the right).
    guide = analysis.score
    looks = [] if guide is None else (section_event_weights(analysis, guide.cues, CUE_PEAK_BEATS, 2.0, 1.5)
                                      + section_event_weights(analysis, guide.releases, 0.0, 1.5, 0.8))
    for weight, angle in looks:
        yaw = yaw * (1 - weight) - np.clip(angle, -MAX_HEAD_TURN, MAX_HEAD_TURN) * weight
    head = HEAD_CENTRE + shift[:, :2] * 1.3

    keypoints = np.zeros((n, N_JOINTS, 2))
    for name, (fx, fy, fz) in FACE.items():
        # Pitch (chin down) turns z into +y; yaw turns z into +x.
        y = fy * np.cos(pitch) + fz * np.sin(pitch)
        z = -fy * np.sin(pitch) + fz * np.cos(pitch)
        x = fx * np.cos(yaw) + z * np.sin(yaw)
        keypoints[:, JOINT[name]] = head + np.stack([x, y], axis=1)
    for name, points in (
        ("left_shoulder", shoulder_l), ("right_shoulder", shoulder_r), ("left_elbow", elbow_l),
        ("right_elbow", elbow_r), ("left_wrist", wrist_l), ("right_wrist", wrist_r),
    ):
        keypoints[:, JOINT[name]] = points[:, :2]
    hips_travel = np.stack([0.3 * sway_x + weight_x, give], axis=1)
    keypoints[:, JOINT["left_hip"]] = HIP_L + hips_travel
    keypoints[:, JOINT["right_hip"]] = HIP_R + hips_travel
    # ConductorMotion100 places the hips' mean on the frame's hip point.
    keypoints -= hips_travel.mean(axis=0)
    return keypoints.astype(np.float32)


def _generate(request: Request) -> Motion:
    request.report(0.0, "Conducting")
    motion = Motion(conduct(request.analysis, request.seed))
    request.report(1.0, "Motion ready")
    return motion


GENERATOR = GeneratorSpec(
    name="procedural",
    label="Procedural",
    description="Classic beat patterns from the detected beats, meter and dynamics; needs no weights",
    generate=_generate,
    needs_audio=False,
)
