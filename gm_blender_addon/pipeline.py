"""The data path from an audio file to bone rotations, shared by the panel, the CLI and the tests (no bpy).

audio (+ its score, aligned) → analysis → generator → Motion → lift with the rig's proportions → per-bone solve →
quaternions.
Conducting again to beats the user corrected starts from a kept analysis instead (`perform_to_beats`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .core.analysis import (DEFAULT_TRACKER, GivenBeats, MusicAnalysis, MusicHints, Progress, analyse,
                            analysis_from_record, compute_spectral)
from .core.align import AlignmentError, align_score
from .core.audio import Audio, load_audio
from .core.breath import breathing
from .core.hands import hand_poses
from .core.lift import hip_travel, lift
from .core.motion import Motion
from .core.retarget import LEG_PARTS, Skeleton, hips_location, pelvis_offsets, proportions, solve, to_armature_space
from .core.score import Score
from .core.score_guide import score_analysis
from .core.score_synth import SAMPLE_RATE as SYNTH_RATE
from .core.score_synth import render_score
from .core.stage import SeatingPlan, default_plan
from .generators import registry


@dataclass
class Performance:
    audio: Audio | None  # None where the generator did not need the audio decoded (see perform_to_beats)
    analysis: MusicAnalysis
    motion: Motion
    # What the user should know though the job was done: a score that did not match (conducted from the audio).
    warnings: tuple[str, ...] = ()


def _scaled(progress: Progress | None, start: float, stop: float) -> Progress | None:
    if progress is None:
        return None
    return lambda fraction, message: progress(start + (stop - start) * fraction, message)


def perform(
    audio_path: str | Path,
    generator: str = "procedural",
    seed: int = 0,
    checkpoint: str | Path | None = None,
    options: dict[str, Any] | None = None,
    tracker: str = DEFAULT_TRACKER,
    progress: Progress | None = None,
    hints: MusicHints = MusicHints(),
    score: Score | None = None,
    plan: SeatingPlan | None = None,
) -> Performance:
    """Analyse the music, following what the user says of it in `hints` or, given a `score` of it (see
    core.score.load_score), by aligning the score to it; then generate the conductor's motion. A score that does not
    match the recording is left out with a warning. Raises AudioError, AnalysisError or GeneratorError."""
    registry.get(generator)  # fail on a bad name before spending time on the audio
    if progress:
        progress(0.0, "Loading audio")
    audio = load_audio(audio_path)
    warnings: tuple[str, ...] = ()
    analysis = None
    if score is not None:
        try:
            analysis = analyse_with_score(audio, score, plan or default_plan(), _scaled(progress, 0.05, 0.6))
        except AlignmentError as exc:
            warnings = (f"{exc} Conducted from the recording alone.",)
    if analysis is None:
        analysis = analyse(audio, tracker=tracker, progress=_scaled(progress, 0.05, 0.6), hints=hints)
    performance = _generate(generator, audio, analysis, seed, checkpoint, options, _scaled(progress, 0.6, 1.0))
    return replace(performance, warnings=warnings)


def perform_score(
    score: Score,
    audio_out: str | Path,
    generator: str = "procedural",
    seed: int = 0,
    checkpoint: str | Path | None = None,
    options: dict[str, Any] | None = None,
    progress: Progress | None = None,
    plan: SeatingPlan | None = None,
) -> Performance:
    """Conduct a score that has no recording: it is rendered (core.score_synth) into `audio_out`, a WAV file, and
    conducted on its own exact beats. Raises GeneratorError, or OSError when the file cannot be written."""
    import soundfile

    registry.get(generator)
    if progress:
        progress(0.0, "Rendering the score")
    samples, alignment = render_score(score)
    audio_out = Path(audio_out)
    audio_out.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(audio_out), samples, SYNTH_RATE, subtype="PCM_16")
    audio = load_audio(audio_out)
    if progress:
        progress(0.4, "Reading dynamics and cues from the score")
    analysis = score_analysis(audio, alignment, plan or default_plan())
    return _generate(generator, audio, analysis, seed, checkpoint, options, _scaled(progress, 0.6, 1.0))


def analyse_with_score(audio: Audio, score: Score, plan: SeatingPlan,
                       progress: Progress | None = None) -> MusicAnalysis:
    """The analysis of `audio` from its aligned score. AlignmentError when the score does not match it."""
    spectral = compute_spectral(audio)  # the aligner's beat activation and the analysis both read them
    alignment = align_score(score, audio, progress=_scaled(progress, 0.0, 0.8), spectral=spectral)
    if progress:
        progress(0.8, "Reading dynamics and cues from the score")
    return score_analysis(audio, alignment, plan, spectral)


def _generate(generator: str, audio: Audio | None, analysis: MusicAnalysis, seed: int,
              checkpoint: str | Path | None, options: dict[str, Any] | None, progress: Progress | None) -> Performance:
    request = registry.Request(
        audio=audio,
        analysis=analysis,
        seed=seed,
        checkpoint=Path(checkpoint) if checkpoint else None,
        options=dict(options or {}),
        progress=progress,
    )
    return Performance(audio=audio, analysis=analysis, motion=with_hands_and_breath(registry.generate(generator, request), analysis))


def with_hands_and_breath(motion: Motion, analysis: MusicAnalysis | None = None) -> Motion:
    """The motion with wrists and fingers, and breath when the music's analysis is given: its own where it has
    them, else the rules of core.hands (shaped by the music when it is given) and core.breath."""
    if not motion.has_hands:
        fingers, wrists = hand_poses(motion.keypoints, analysis)
        motion = replace(motion, fingers=fingers, wrists=wrists)
    if motion.breath is None and analysis is not None:
        motion = replace(motion, breath=breathing(analysis))
    return motion


def perform_to_beats(
    beats: GivenBeats,
    record: dict | None,
    audio_path: str | Path,
    generator: str = "procedural",
    seed: int = 0,
    checkpoint: str | Path | None = None,
    options: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> Performance:
    """The conductor's motion for beats the user gave, from the analysis kept of an earlier generation (`record`,
    see `analysis_record`): nothing is analysed again, and the audio is decoded only for generators that need it.
    Without a record the audio is analysed around the beats. Raises AudioError, AnalysisError or GeneratorError."""
    if record is None:
        return perform(audio_path, generator, seed=seed, checkpoint=checkpoint, options=options, progress=progress,
                       hints=MusicHints(beats=beats))
    spec = registry.get(generator)
    analysis = analysis_from_record(record, beats)
    audio = None
    if spec.needs_audio:
        if progress:
            progress(0.0, "Loading audio")
        audio = load_audio(audio_path)
    return _generate(generator, audio, analysis, seed, checkpoint, options, _scaled(progress, 0.1, 1.0))


@dataclass
class RigPose:
    """A motion solved for a rig: what to key and the joints it was solved from."""

    rotations: dict[str, np.ndarray]  # local quaternions (T, 4) by bone name
    locations: dict[str, np.ndarray]  # pose locations (T, 3) by bone name: the hips, on rigs whose legs are mapped
    joints: np.ndarray  # the lifted joints (T, 13, 3), armature space
    planted: frozenset[str] = frozenset()  # the leg bones that keep the feet planted, to key precisely


def solve_for_rig(motion: Motion, skeleton: Skeleton, parts: dict[str, str], smoothing: float) -> RigPose:
    """The motion solved for the rig described by `skeleton` and `parts`.

    Captured motion brings its measured depth, which decides whether arms reach in front of or behind the body.
    A motion without hands (captured before capture read them, or saved before motions had them) gets them from its
    arms alone. On a rig whose map names the legs, the hips move as the motion's do and the feet stay planted.
    """
    motion = with_hands_and_breath(motion)
    rig = proportions(skeleton, parts)
    joints = to_armature_space(lift(motion, rig, smoothing=smoothing, depth=motion.depth), skeleton, parts)
    pelvis = pelvis_offsets(hip_travel(motion, rig, smoothing=smoothing), skeleton, parts)
    rotations = solve(joints, skeleton, parts, motion.fingers, motion.wrists, motion.breath, pelvis)
    if pelvis is None:
        return RigPose(rotations, {}, joints)
    return RigPose(rotations, {parts["hips"]: hips_location(pelvis, skeleton, parts)}, joints,
                   frozenset(parts[part] for part in LEG_PARTS))
