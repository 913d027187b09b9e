"""Diffusion-Conductor: a transformer denoiser sampled with DDIM and classifier-free guidance (nets/diffusion.py).

Long pieces are generated window after window (WINDOW_FRAMES, the training clip length, or less if the model is
smaller). Consecutive windows overlap by OVERLAP_FRAMES: at every sampling step a window's x0 predictions are
pulled towards the motion already made for the overlap, so it continues that gesture. (An earlier version stopped
pulling for the last 40 % of the steps, which helped while windows were joined by a cross-fade; with offset blending,
pulling throughout gives calmer seams: on a 5-minute piece the largest seam jump was 0.62-0.72x the median jump for
seeds 0-3 against 0.80-1.09x, with the same beat consistency.) Each window is smoothed as the official renderer
smoothed its output (networks.smooth_network_output), and the new window takes over at the calmest frame of the
handover, its remaining offset from the old one dying away over BLEND_FRAMES (windows.join_windows). Music shorter
than one window is extended by mirroring its end and cropped again. The joined motion is then beat-locked unless
`beat_lock` is off (networks.keyed_keypoints), and the motion's meta gives the seams where the keyed motion shows them.

Differences from the official sampler: a configurable number of DDIM steps instead of all 1000, classifier-free
guidance (the official code had none), training lengths counted in frames (the official mask bug), and no 60 s limit.
"""

from __future__ import annotations

import numpy as np

from ..core.motion import Motion
from .networks import BEAT_LOCK
from .registry import GeneratorSpec, Option, Request

# The clip length the denoisers were trained on (30 s). The official positional table has 1800 rows, but rows past
# 900 never saw training data, so windows stay at 900 frames for official weights too.
WINDOW_FRAMES = 900
OVERLAP_FRAMES = 150
HANDOVER_MARGIN = 15
# After a cut the new window's offset from the old one dies away over this many frames (windows.stitch). On a
# 5-minute piece 30, 45 and 60 frames gave the same seams to within 0.01 of the ratio; the shortest leaves the new
# window's own motion soonest.
BLEND_FRAMES = 30
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 1.5


def generate_keypoints(
    denoiser, mel: np.ndarray, n_frames: int, seed: int, steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE, progress=None, beats: np.ndarray = (), downbeats: np.ndarray = (),
) -> np.ndarray:
    """Sampled motion (n_frames, 13, 2) at 30 fps for a 90 Hz mel (T, 128) of any length (see `sample_piece`)."""
    return sample_piece(denoiser, mel, n_frames, seed, steps, guidance, progress, beats, downbeats).motion


def sample_piece(
    denoiser, mel: np.ndarray, n_frames: int, seed: int, steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE, progress=None, beats: np.ndarray = (), downbeats: np.ndarray = (),
):
    """Sampled, smoothed motion (n_frames, 13, 2) at 30 fps for a 90 Hz mel (T, 128), and where its windows were
    joined.

    `denoiser` is a denoiser of generators/networks.py; the initial noise of every window comes from `seed`, the
    same for every backend. A denoiser with the beats as input is given `beats` and `downbeats` (seconds); others
    ignore them. Returns a windows.Joined.
    """
    from .ddim import ddim_sample
    from .networks import encode_music, mel_for_frames, smooth_network_output, with_beats
    from .windows import Joined, WindowPlan, join_windows

    length = min(denoiser.num_frames, WINDOW_FRAMES)
    total = max(n_frames, length)
    report = progress or (lambda fraction, message: None)
    music = encode_music(denoiser, mel_for_frames(mel, total), lambda f, m: report(0.1 * f, m))
    music = with_beats(denoiser, music, beats, downbeats)
    plan = WindowPlan.cover(total, length, min(OVERLAP_FRAMES, length // 2), HANDOVER_MARGIN)
    rng = np.random.default_rng(seed)
    windows = len(plan.starts)

    def run(start: int, stop: int, known, weight) -> np.ndarray:
        number = plan.starts.index(start)
        noise = rng.standard_normal((1, stop - start, denoiser.input_feats)).astype(np.float32)
        x0 = ddim_sample(
            denoiser,
            music[None, start:stop],
            noise,
            steps=steps,
            guidance_scale=guidance,
            known=None if known is None else denoiser.normalise(known.reshape(1, stop - start, -1)),
            known_weight=weight,
            progress=lambda i, n: report(
                0.1 + 0.9 * (number + i / n) / windows, f"Sampling window {number + 1}/{windows}, step {i}/{n}"
            ),
        )
        return smooth_network_output(denoiser.denormalise(x0)[0].reshape(stop - start, 13, 2))

    joined = join_windows(plan, run, BLEND_FRAMES)
    return Joined(joined.motion[:n_frames], [seam for seam in joined.seams if seam < n_frames])


def _generate(request: Request) -> Motion:
    from ..core.audio import official_mel
    from .networks import keyed_keypoints, open_denoiser

    steps, guidance = request.options["steps"], request.options["guidance"]
    request.report(0.0, "Loading the diffusion weights")
    denoiser = open_denoiser(request.checkpoint, GENERATOR.label)
    request.report(0.03, "Computing the mel spectrogram")
    mel = official_mel(request.audio)
    sampled = sample_piece(
        denoiser, mel, request.analysis.n_frames, request.seed, steps, guidance,
        progress=lambda fraction, message: request.report(0.1 + 0.88 * fraction, message),
        beats=request.analysis.beats, downbeats=request.analysis.downbeats,
    )
    keypoints, warp, meta = keyed_keypoints(sampled.motion, request)
    # The frames at which the windows were joined, where the keyed (beat-locked) motion shows them.
    seams = [int(frame) for frame in np.searchsorted(warp, sampled.seams)]
    request.report(1.0, "Motion ready")
    return Motion(keypoints, meta={"checkpoint": request.checkpoint.name, "steps": steps, "guidance": guidance,
                                   "window_seams": seams, **meta})


GENERATOR = GeneratorSpec(
    name="diffusion",
    label="Diffusion",
    description="Diffusion-Conductor: varied motion for the same music (change the seed); project-trained weights "
    "unless a checkpoint is given",
    generate=_generate,
    needs_checkpoint=True,
    options=(
        Option("steps", int, DEFAULT_STEPS, "DDIM sampling steps, 1-1000 (time grows linearly)", 1, 1000),
        Option("guidance", float, DEFAULT_GUIDANCE, "classifier-free guidance scale: 1 = none, higher follows the "
               "music more strictly", 0.0, 20.0),
        BEAT_LOCK,
    ),
)
