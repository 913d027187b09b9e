"""M2S-GAN (VirtualConductor): a music-conditioned convolutional generator (nets/m2sgan.py).

Any length of music in one consistent pass: the music encoder runs in overlapping chunks whose borders cannot be
told apart from a single pass (windows.overlap_save), and the temporal decoder, cheap even for an hour, then
runs over the whole piece with one noise sequence. So there are no windows to blend and no seams, unlike the
official inference script, which generated independent 60 s chunks, wrote zeros for a last chunk under 5 s and
crashed on whole pieces under 5 s. Here music shorter than MIN_SECONDS, or not a whole number of seconds, is
extended by mirroring its end and the extra frames are cropped from the motion.

The official generator is known to ignore its noise (about 0.3 % variation across seeds); the seed changes the
noise all the same, and weights trained to use it will vary.

`generate_keypoints` returns the network's own output (what the parity tests compare); `smoothed_keypoints`, what
evaluation scores, smooths it as the official renderer did (networks.smooth_network_output); the add-on keys that,
beat-locked unless `beat_lock` is off (networks.keyed_keypoints).
"""

from __future__ import annotations

import math

import numpy as np

from ..core.motion import FPS, Motion
from .networks import BEAT_LOCK
from .registry import GeneratorSpec, Request

# Shortest music the generator is run on (the official code needed more than 4 s); shorter music is mirrored.
MIN_SECONDS = 5
MEL_PER_SECOND = 90


def generate_keypoints(network, mel: np.ndarray, n_frames: int, seed: int, progress=None,
                       beats: np.ndarray = (), downbeats: np.ndarray = ()) -> np.ndarray:
    """Raw generator output (n_frames, 13, 2) at 30 fps for a 90 Hz mel (T, 128) of any length.

    `network` is an M2S-GAN of generators/networks.py; the noise (1 Hz, `network.noise_dim` values) comes from
    `seed`, the same for every backend. A network with the beats as input is given `beats` and `downbeats`
    (seconds); others ignore them.
    """
    from .networks import encode_music, with_beats
    from .windows import fit_frames

    seconds = max(MIN_SECONDS, math.ceil(n_frames / FPS))
    mel = fit_frames(np.asarray(mel, dtype=np.float32), MEL_PER_SECOND * seconds)
    encoding_progress = None if progress is None else (lambda f, m: progress(0.9 * f, m))
    music = with_beats(network, encode_music(network, mel, encoding_progress), beats, downbeats)
    noise = np.random.default_rng(seed).standard_normal((1, seconds, network.noise_dim)).astype(np.float32)
    if progress is not None:
        progress(0.9, "Generating the motion")
    return network.decode(music[None], noise)[0][:n_frames]


def smoothed_keypoints(network, mel: np.ndarray, n_frames: int, seed: int, progress=None,
                       beats: np.ndarray = (), downbeats: np.ndarray = ()) -> np.ndarray:
    """`generate_keypoints`, smoothed as the official renderer smoothed it before showing it."""
    from .networks import smooth_network_output

    return smooth_network_output(generate_keypoints(network, mel, n_frames, seed, progress, beats, downbeats))


def _generate(request: Request) -> Motion:
    from ..core.audio import official_mel
    from .networks import keyed_keypoints, open_m2sgan

    request.report(0.0, "Loading the M2S-GAN weights")
    network = open_m2sgan(request.checkpoint, GENERATOR.label)
    request.report(0.05, "Computing the mel spectrogram")
    mel = official_mel(request.audio)
    keypoints = smoothed_keypoints(
        network, mel, request.analysis.n_frames, request.seed,
        progress=lambda fraction, message: request.report(0.15 + 0.8 * fraction, message),
        beats=request.analysis.beats, downbeats=request.analysis.downbeats,
    )
    keypoints, _, meta = keyed_keypoints(keypoints, request)
    request.report(1.0, "Motion ready")
    return Motion(keypoints, meta={"checkpoint": request.checkpoint.name, **meta})


GENERATOR = GeneratorSpec(
    name="m2sgan",
    label="M2S-GAN",
    description="VirtualConductor's music-to-motion GAN; project-trained weights unless a checkpoint is given "
    "(an ONNX bundle, or a PyTorch file such as the official M2SGAN_official_pretrained.pt where torch is installed)",
    generate=_generate,
    needs_checkpoint=True,
    options=(BEAT_LOCK,),
)
