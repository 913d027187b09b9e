"""PyTorch networks behind the numpy interface of generators/networks.py, for checkpoints that are not ONNX
bundles (the official files, training runs) and for training validation. Arrays go in and come out as numpy; the
network may sit on any device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..registry import GeneratorError
from .checkpoints import GENERATOR_LOADERS, CheckpointError
from .diffusion import MotionTransformer
from .m2sgan import NOISE_DIM, Generator


class TorchNetwork:
    """Any of the networks with a `music_encoder` (M2S-Net, M2S-GAN, the denoiser), called on numpy arrays."""

    def __init__(self, network: torch.nn.Module):
        self.network = network.eval()
        parameter = next(network.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        projection = getattr(network, "beat_projection", None)
        # (BEAT_FEATURES, 64), as generators/networks.with_beats applies it; None: the mel is the only input.
        self.beat_projection = None if projection is None else projection.weight.detach().float().cpu().numpy().T

    def _in(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), device=self.device).to(self.dtype)

    @torch.inference_mode()
    def encode_music(self, mel: np.ndarray) -> np.ndarray:
        return self.network.music_encoder(self._in(mel)).float().cpu().numpy()


class TorchM2SGAN(TorchNetwork):
    noise_dim = NOISE_DIM

    @torch.inference_mode()
    def decode(self, music: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return self.network.decode(self._in(music), self._in(noise)).float().cpu().numpy()


class TorchDenoiser(TorchNetwork):
    def __init__(self, network: MotionTransformer):
        super().__init__(network)
        self.num_frames = network.num_frames
        self.input_feats = network.input_feats
        self.motion_mean = network.motion_mean.cpu().numpy()
        self.motion_std = network.motion_std.cpu().numpy()

    @torch.inference_mode()
    def __call__(self, x_t: np.ndarray, timesteps: np.ndarray, music: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(timesteps), dtype=torch.long, device=self.device)
        return self.network(self._in(x_t), t, self._in(music)).float().cpu().numpy()

    def normalise(self, motion: np.ndarray) -> np.ndarray:
        return ((motion - self.motion_mean) / self.motion_std).astype(np.float32)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        return (x * self.motion_std + self.motion_mean).astype(np.float32)


def wrap(network: torch.nn.Module) -> TorchM2SGAN | TorchDenoiser:
    if isinstance(network, Generator):
        return TorchM2SGAN(network)
    if isinstance(network, MotionTransformer):
        return TorchDenoiser(network)
    raise TypeError(f"no inference wrapper for {type(network).__name__}")


def open_checkpoint(kind: str, path: Path) -> TorchM2SGAN | TorchDenoiser:
    """Load a PyTorch checkpoint of `kind` ("m2sgan" or "diffusion") for inference on the CPU."""
    try:
        return wrap(GENERATOR_LOADERS[kind](Path(path)))
    except CheckpointError as exc:
        raise GeneratorError(str(exc)) from exc
