"""A plain rendering of a score, so that a score with no recording can be conducted and heard.

Every part is a few harmonic partials with a short attack and release, at the score's tempo marks (fermatas held
twice their length), after a second of silence for the conductor's preparation. Not meant to sound like an
orchestra (the training corpus's renderer does that, with SoundFonts the add-on does not carry): only to let the
animator hear what the conductor beats, in the same place as the score's own timing.
"""

from __future__ import annotations

import numpy as np

from .align import ScoreAlignment, nominal_seconds
from .score import Score

SAMPLE_RATE = 22050
LEAD_IN_S = 1.0
TAIL_S = 1.5
PARTIALS = 5
ATTACK_S, RELEASE_S = 0.015, 0.12
FERMATA_STRETCH = 2.0  # a held note lasts this many times its written length
PEAK = 0.89  # -1 dBFS


def performance_seconds(score: Score, q: np.ndarray) -> np.ndarray:
    """Seconds of score positions in the rendering: the tempo marks, each fermata's beat held FERMATA_STRETCH times
    as long, after LEAD_IN_S."""
    q = np.asarray(q, dtype=np.float64)
    seconds = nominal_seconds(score, q)
    beat_q = score.beat_times()[0]
    for held in score.fermatas:
        following = beat_q[beat_q > held + 1e-6]
        end = following[0] if len(following) else score.end
        span = nominal_seconds(score, np.array([held, end]))
        extra = (FERMATA_STRETCH - 1.0) * float(span[1] - span[0])
        seconds = seconds + extra * np.clip((q - held) / max(end - held, 1e-6), 0.0, 1.0)
    return LEAD_IN_S + seconds


def render_score(score: Score) -> tuple[np.ndarray, ScoreAlignment]:
    """(mono float32 samples at SAMPLE_RATE, the alignment of the score to them, which is exact)."""
    notes = score.notes
    onsets = performance_seconds(score, notes["onset"])
    offsets = performance_seconds(score, notes["onset"] + notes["duration"])
    staccato = notes["staccato"]
    offsets = np.where(staccato, onsets + 0.5 * (offsets - onsets), offsets)
    length = int((offsets.max() + TAIL_S) * SAMPLE_RATE)
    out = np.zeros(length, dtype=np.float64)
    percussion = {i for i, part in enumerate(score.parts) if part.instrument.lower() == "percussion"}
    rng = np.random.default_rng(0)
    for start_s, stop_s, pitch, part, velocity in zip(onsets, offsets, notes["pitch"], notes["part"],
                                                      notes["velocity"]):
        start = int(start_s * SAMPLE_RATE)
        n = int((max(stop_s - start_s, 0.05) + RELEASE_S) * SAMPLE_RATE)
        n = min(n, length - start)
        if n <= 0:
            continue
        t = np.arange(n) / SAMPLE_RATE
        if int(part) in percussion:
            tone = rng.standard_normal(n) * np.exp(-t / 0.05)
        else:
            frequency = 440.0 * 2.0 ** ((int(pitch) - 69) / 12.0)
            tone = sum(np.sin(2 * np.pi * k * frequency * t) / k**1.5
                       for k in range(1, PARTIALS + 1) if k * frequency < 0.45 * SAMPLE_RATE)
            held = stop_s - start_s
            envelope = np.minimum(t / ATTACK_S, 1.0) * (0.7 + 0.3 * np.exp(-t / 0.2))
            envelope *= np.clip((held + RELEASE_S - t) / RELEASE_S, 0.0, 1.0)
            tone = tone * envelope
        out[start:start + n] += (0.2 + 0.8 * float(velocity)) ** 2 * tone
    out *= PEAK / max(float(np.abs(out).max()), 1e-9)
    beat_q = np.unique(np.concatenate([score.beat_times()[0], [0.0, score.end]]))
    alignment = ScoreAlignment(score, beat_q, performance_seconds(score, beat_q), 1.0, 0, 0.0)
    return out.astype(np.float32), alignment
