"""Running the learned generators' networks with onnxruntime: what Blender uses, since the extension has no PyTorch.

Networks are exported from PyTorch by nets/onnx_export.py into an ONNX bundle: a zip holding one ONNX graph per
part of the network and a manifest (format, kind, the constructor settings inference needs). Parts per kind:

  m2sgan     music_encoder: mel (N, 3L, 128) → music (N, L, 64)
             decoder: music (N, 30S, 64), noise (N, S, 8) → motion (N, 30S, 13, 2)
  diffusion  music_encoder: mel (N, 3L, 128) → music (N, L, 64)
             denoiser: x_t (N, T, 26), timesteps (N,) int64, music (N, T or 1, 64) → predicted x0 (N, T, 26)

The classes below offer the same calls as the PyTorch modules (`encode_music`, `decode`, calling the denoiser) on
numpy arrays, and `ddim_sample` is the diffusion sampler of nets/diffusion.py in numpy. Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from .registry import GeneratorError

BUNDLE_FORMAT = "gesture-maestro-onnx"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
PARTS = {"m2sgan": ("music_encoder", "decoder"), "diffusion": ("music_encoder", "denoiser")}
# The diffusion schedule the denoisers were trained with: 1000 steps, β linear from 1e-4 to 0.02.
DIFFUSION_STEPS = 1000
BETA_START, BETA_END = 1e-4, 0.02


class OnnxBundleError(GeneratorError):
    """A file that is not a readable ONNX bundle of the expected kind."""


class OnnxBundle:
    """The parts of one exported network, each as an onnxruntime session."""

    def __init__(self, kind: str, config: dict, graphs: dict[str, bytes]):
        import onnxruntime

        self.kind = kind
        self.config = config
        self.sessions = {
            part: onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
            for part, graph in graphs.items()
        }

    @classmethod
    def load(cls, path: str | Path, kind: str) -> "OnnxBundle":
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as archive:
                manifest = json.loads(archive.read(MANIFEST))
                if manifest.get("format") != BUNDLE_FORMAT or manifest.get("version") != BUNDLE_VERSION:
                    raise OnnxBundleError(f"{path.name} is not a Gesture Maestro ONNX bundle (version {BUNDLE_VERSION}).")
                if manifest.get("kind") != kind:
                    raise OnnxBundleError(f"{path.name} holds a {manifest.get('kind')} network, not {kind}.")
                graphs = {part: archive.read(f"{part}.onnx") for part in PARTS[kind]}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise OnnxBundleError(f"{path.name} is not a readable ONNX bundle ({exc}).") from exc
        return cls(kind, manifest.get("config", {}), graphs)

    def run(self, part: str, **inputs: np.ndarray) -> np.ndarray:
        return self.sessions[part].run(None, inputs)[0]


def save_bundle(path: str | Path, kind: str, config: dict, graphs: dict[str, bytes]) -> Path:
    """Write an ONNX bundle; `graphs` maps each of the kind's parts to its serialised ONNX model."""
    path = Path(path)
    if set(graphs) != set(PARTS[kind]):
        raise ValueError(f"a {kind} bundle needs exactly the parts {PARTS[kind]}, got {sorted(graphs)}")
    manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "kind": kind, "config": config}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2))
        for part, graph in graphs.items():
            archive.writestr(f"{part}.onnx", graph)
    return path


def _float32(array) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float32)


class M2SGAN:
    """The M2S-GAN generator: `encode_music` then `decode`, as nets.m2sgan.Generator."""

    def __init__(self, path: str | Path):
        self.bundle = OnnxBundle.load(path, "m2sgan")

    def encode_music(self, mel: np.ndarray) -> np.ndarray:
        return self.bundle.run("music_encoder", mel=_float32(mel))

    def decode(self, music: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return self.bundle.run("decoder", music=_float32(music), noise=_float32(noise))


class Denoiser:
    """The Diffusion-Conductor denoiser: `encode_music`, and called as nets.diffusion.MotionTransformer."""

    def __init__(self, path: str | Path):
        self.bundle = OnnxBundle.load(path, "diffusion")
        self.num_frames = int(self.bundle.config["num_frames"])
        self.input_feats = int(self.bundle.config["input_feats"])

    def encode_music(self, mel: np.ndarray) -> np.ndarray:
        return self.bundle.run("music_encoder", mel=_float32(mel))

    def __call__(self, x_t: np.ndarray, timesteps: np.ndarray, music: np.ndarray) -> np.ndarray:
        if x_t.shape[1] > self.num_frames:
            raise ValueError(f"{x_t.shape[1]} frames exceed this model's maximum of {self.num_frames}")
        return self.bundle.run(
            "denoiser", x_t=_float32(x_t), timesteps=np.asarray(timesteps, dtype=np.int64), music=_float32(music)
        )


def alphas_cumprod(num_steps: int = DIFFUSION_STEPS) -> np.ndarray:
    # Scaled so other step counts keep the same overall noise level, as in nets/diffusion.py.
    scale = DIFFUSION_STEPS / num_steps
    betas = np.linspace(BETA_START * scale, BETA_END * scale, num_steps, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def ddim_timesteps(steps: int, num_steps: int = DIFFUSION_STEPS) -> list[int]:
    """`steps` timesteps spread evenly over [0, num_steps-1], descending."""
    if not 1 <= steps <= num_steps:
        raise ValueError(f"steps must be in 1…{num_steps}, got {steps}")
    return sorted({int(round(v)) for v in np.linspace(0, num_steps - 1, steps)}, reverse=True)


def ddim_sample(
    denoiser: Denoiser,
    music: np.ndarray,
    noise: np.ndarray,
    steps: int,
    guidance_scale: float | None = None,
    known: np.ndarray | None = None,
    known_weight: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Deterministic DDIM (η = 0) from x_T = `noise` (N, T, 26) → x0 (N, T, 26), for music features (N, T, 64).

    Guidance mixes uncond + w·(cond − uncond), the unconditional prediction having silent music. `known` (N, T, 26)
    with `known_weight` (T,) pulls every x0 prediction towards given motion. `progress(i, n)` follows each step.
    """
    abar_table = alphas_cumprod()
    schedule = ddim_timesteps(steps)
    x = _float32(noise)
    n = x.shape[0]
    silence = np.zeros((n, 1, music.shape[2]), dtype=np.float32)
    for i, step in enumerate(schedule):
        t = np.full(n, step, dtype=np.int64)
        x0 = denoiser(x, t, music)
        if guidance_scale is not None and guidance_scale != 1.0:
            uncond = denoiser(x, t, silence)
            x0 = uncond + np.float32(guidance_scale) * (x0 - uncond)
        if known is not None:
            weight = np.asarray(known_weight, dtype=np.float32).reshape(1, -1, 1)
            x0 = x0 + weight * (_float32(known) - x0)
        abar = float(abar_table[step])
        abar_next = float(abar_table[schedule[i + 1]]) if i + 1 < len(schedule) else 1.0
        eps = (x - np.float32(math.sqrt(abar)) * x0) / np.float32(math.sqrt(1.0 - abar))
        x = np.float32(math.sqrt(abar_next)) * x0 + np.float32(math.sqrt(1.0 - abar_next)) * eps
        if progress is not None:
            progress(i + 1, len(schedule))
    return x
