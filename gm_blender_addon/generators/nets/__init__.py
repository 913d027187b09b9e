"""Network building blocks shared by the learned generators (PyTorch; no bpy).

- music_encoder: MusicEncoder, mel (N, 3L, 128) @90 Hz → (N, L, 64) @30 Hz
- motion_encoder: ST-GCN MotionEncoder, motion (N, L, 13, 2) → (N, L, 64); features() → (N, 64, L)
- m2snet: M2SNet sync classifier
- m2sgan: Generator (TCN) and Discriminator (1-D CNN critic)
- diffusion: MotionTransformer denoiser + ConductorDiffusion (training noise schedule)
- inference: the networks behind the numpy interface of generators/networks.py
- checkpoints: loading official and project weights, CheckpointError

Importing this package imports torch; import it lazily from code that must work without torch.
"""

from .checkpoints import (
    CheckpointError,
    describe_checkpoint,
    load_diffusion_denoiser,
    load_discriminator,
    load_generator,
    load_m2snet,
    load_motion_encoder,
    load_music_encoder,
    load_state,
    save_checkpoint,
)
from .diffusion import ConductorDiffusion, MotionTransformer
from .m2sgan import Discriminator, Generator
from .m2snet import M2SNet
from .motion_encoder import MotionEncoder
from .music_encoder import MusicEncoder

__all__ = [
    "CheckpointError",
    "ConductorDiffusion",
    "Discriminator",
    "Generator",
    "M2SNet",
    "MotionEncoder",
    "MotionTransformer",
    "MusicEncoder",
    "describe_checkpoint",
    "load_diffusion_denoiser",
    "load_discriminator",
    "load_generator",
    "load_m2snet",
    "load_motion_encoder",
    "load_music_encoder",
    "load_state",
    "save_checkpoint",
]
