"""Running the learned generators' networks with onnxruntime: what Blender uses, since the extension has no PyTorch.

Networks are exported from PyTorch by nets/onnx_export.py into an ONNX bundle: a zip holding one ONNX graph per
part of the network and a manifest (format, kind, the constructor settings inference needs). Parts per kind:

  m2sgan     music_encoder: mel (N, 3L, 128) → music (N, L, 64)
             decoder: music (N, 30S, 64), noise (N, S, 8) → motion (N, 30S, 13, 2)
  diffusion  music_encoder: mel (N, 3L, 128) → music (N, L, 64)
             denoiser: x_t (N, T, 26), timesteps (N,) int64, music (N, T or 1, 64) → predicted x0 (N, T, 26)

The manifest's config carries what inference needs beyond the graphs: the noise size of M2S-GAN, for the denoiser
its longest clip and the statistics of its motion space (`motion_mean`, `motion_std`), and for a network that takes
the beats as input its `beat_projection` (applied in numpy by generators/networks.with_beats). The classes below
offer the numpy interface of generators/networks.py; the sampler is generators/ddim.py. Nothing here imports torch.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .registry import GeneratorError

BUNDLE_FORMAT = "gesture-maestro-onnx"
BUNDLE_VERSION = 1
MANIFEST = "manifest.json"
PARTS = {"m2sgan": ("music_encoder", "decoder"), "diffusion": ("music_encoder", "denoiser")}


class OnnxBundleError(GeneratorError):
    """A file that is not a readable ONNX bundle of the expected kind."""


class OnnxBundle:
    """The parts of one exported network, each as an onnxruntime session."""

    def __init__(self, kind: str, config: dict, graphs: dict[str, bytes]):
        import onnxruntime

        self.kind = kind
        self.config = config
        projection = config.get("beat_projection")
        self.beat_projection = None if projection is None else np.asarray(projection, dtype=np.float32)
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
        self.beat_projection = self.bundle.beat_projection
        self.noise_dim = int(self.bundle.config.get("noise_dim", 8))

    def encode_music(self, mel: np.ndarray) -> np.ndarray:
        return self.bundle.run("music_encoder", mel=_float32(mel))

    def decode(self, music: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return self.bundle.run("decoder", music=_float32(music), noise=_float32(noise))


class Denoiser:
    """The Diffusion-Conductor denoiser: `encode_music`, and called as nets.diffusion.MotionTransformer."""

    def __init__(self, path: str | Path):
        self.bundle = OnnxBundle.load(path, "diffusion")
        self.beat_projection = self.bundle.beat_projection
        config = self.bundle.config
        self.num_frames = int(config["num_frames"])
        self.input_feats = int(config["input_feats"])
        self.motion_mean = np.asarray(config.get("motion_mean", np.zeros(self.input_feats)), np.float32)
        self.motion_std = np.asarray(config.get("motion_std", np.ones(self.input_feats)), np.float32)

    def encode_music(self, mel: np.ndarray) -> np.ndarray:
        return self.bundle.run("music_encoder", mel=_float32(mel))

    def __call__(self, x_t: np.ndarray, timesteps: np.ndarray, music: np.ndarray) -> np.ndarray:
        if x_t.shape[1] > self.num_frames:
            raise ValueError(f"{x_t.shape[1]} frames exceed this model's maximum of {self.num_frames}")
        return self.bundle.run(
            "denoiser", x_t=_float32(x_t), timesteps=np.asarray(timesteps, dtype=np.int64), music=_float32(music)
        )

    def normalise(self, motion: np.ndarray) -> np.ndarray:
        """Flattened ConductorMotion100 motion (..., 26) → the space diffusion runs in (see MotionTransformer)."""
        return ((motion - self.motion_mean) / self.motion_std).astype(np.float32)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        return (x * self.motion_std + self.motion_mean).astype(np.float32)
