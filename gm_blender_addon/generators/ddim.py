"""Deterministic DDIM sampling for the Diffusion-Conductor denoiser, in numpy.

One sampler for every backend: the denoiser is anything called as `denoiser(x_t, timesteps, music) → x0` on numpy
arrays (the onnxruntime bundle inside Blender, or the PyTorch network behind nets.inference.TorchDenoiser when
training or evaluating), so Blender, the CLI and training validation sample the same way.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

# The schedule the denoisers are trained with (nets/diffusion.py builds the same one in torch for training).
DIFFUSION_STEPS = 1000
BETA_START, BETA_END = 1e-4, 0.02

Denoise = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def alphas_cumprod(num_steps: int = DIFFUSION_STEPS) -> np.ndarray:
    """ᾱ_t for t = 0 … num_steps − 1; β is scaled so other step counts keep the same overall noise level."""
    scale = DIFFUSION_STEPS / num_steps
    betas = np.linspace(BETA_START * scale, BETA_END * scale, num_steps, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def ddim_timesteps(steps: int, num_steps: int = DIFFUSION_STEPS) -> list[int]:
    """`steps` timesteps spread evenly over [0, num_steps − 1], descending."""
    if not 1 <= steps <= num_steps:
        raise ValueError(f"steps must be in 1…{num_steps}, got {steps}")
    return sorted({int(round(v)) for v in np.linspace(0, num_steps - 1, steps)}, reverse=True)


def _float32(array) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


def ddim_sample(
    denoiser: Denoise,
    music: np.ndarray,
    noise: np.ndarray,
    steps: int,
    guidance_scale: float | None = None,
    known: np.ndarray | None = None,
    known_weight: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """DDIM (η = 0) from x_T = `noise` (N, T, F) to x0 (N, T, F), for music features (N, T, 64).

    Everything is in the denoiser's (normalised) motion space. Each step predicts x0, recovers the implied noise
    ε = (x_t − √ᾱ_t·x0)/√(1 − ᾱ_t) and moves to the next timestep s with x_s = √ᾱ_s·x0 + √(1 − ᾱ_s)·ε; after the
    last step ᾱ = 1, so x0 is returned.

    Guidance mixes uncond + w·(cond − uncond), the unconditional prediction having one frame of silent music (the
    condition dropout of training); None or 1 runs the conditional model only. `known` (N, T, F) with
    `known_weight` (T,) in [0, 1] pulls each x0 prediction to known·w + x0·(1 − w), so the rest of the clip is
    sampled to fit around given frames (a long piece's previous window). `progress(i, n)` follows each of the n
    steps.
    """
    abar_table = alphas_cumprod()
    schedule = ddim_timesteps(steps)
    x = _float32(noise)
    music = _float32(music)
    n = x.shape[0]
    silence = np.zeros((n, 1, music.shape[2]), dtype=np.float32)
    weight = None if known is None else _float32(known_weight).reshape(1, -1, 1)
    for i, step in enumerate(schedule):
        t = np.full(n, step, dtype=np.int64)
        x0 = _float32(denoiser(x, t, music))
        if guidance_scale is not None and guidance_scale != 1.0:
            uncond = _float32(denoiser(x, t, silence))
            x0 = uncond + np.float32(guidance_scale) * (x0 - uncond)
        if known is not None:
            x0 = x0 + weight * (_float32(known) - x0)
        abar = float(abar_table[step])
        abar_next = float(abar_table[schedule[i + 1]]) if i + 1 < len(schedule) else 1.0
        eps = (x - np.float32(math.sqrt(abar)) * x0) / np.float32(math.sqrt(1.0 - abar))
        x = np.float32(math.sqrt(abar_next)) * x0 + np.float32(math.sqrt(1.0 - abar_next)) * eps
        if progress is not None:
            progress(i + 1, len(schedule))
    return x
