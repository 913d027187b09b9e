"""Exporting the generators' networks from PyTorch to ONNX bundles, which generators/onnx_runtime.py runs without
PyTorch (inside Blender). Training and exporting need torch; inference does not.

    python -m gm_blender_addon.generators.nets.onnx_export m2sgan CHECKPOINT OUT.onnx.zip
    python -m gm_blender_addon.generators.nets.onnx_export diffusion CHECKPOINT OUT.onnx.zip

CHECKPOINT is anything the checkpoint loaders accept (the official files or project-trained weights). Official
weights are for research use only: never ship a bundle exported from them.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from ..onnx_runtime import save_bundle
from .checkpoints import GENERATOR_LOADERS, CheckpointError
from .diffusion import MotionTransformer
from .m2sgan import NOISE_DIM, Generator

OPSET = 17
# Example lengths for tracing; every time axis is exported as dynamic. They must be long enough for the widest
# reflect padding of the M2S-GAN decoder (2·32 frames on each side).
TRACE_SECONDS = 5
MEL_PER_SECOND = 90
FRAMES_PER_SECOND = 30


class _Decoder(nn.Module):
    """Generator.decode as a module's forward, which is what the exporter traces."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, music: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.generator.decode(music, noise)


def _to_onnx(module: nn.Module, example: tuple, inputs: dict[str, dict[int, str]], output: str, out_axes) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The exporter warns that the networks' shape checks become constants of the trace: they pass for the
        # example and are re-done by onnx_runtime before each call.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(), example, buffer, dynamo=False, opset_version=OPSET, input_names=list(inputs),
            output_names=[output], dynamic_axes={**inputs, output: out_axes},
        )
    return buffer.getvalue()


def _music_encoder_graph(encoder: nn.Module) -> bytes:
    mel = torch.randn(1, MEL_PER_SECOND * TRACE_SECONDS, 128)
    return _to_onnx(encoder, (mel,), {"mel": {0: "batch", 1: "mel_frames"}}, "music", {0: "batch", 1: "frames"})


def _beat_config(network: nn.Module) -> dict:
    """The beat input's projection, (BEAT_FEATURES, 64) as nested lists, for a network that has one: it is applied
    outside the graphs (generators/networks.with_beats)."""
    if network.beat_projection is None:
        return {}
    return {"beat_projection": network.beat_projection.weight.detach().cpu().T.tolist()}


@torch.no_grad()
def export_m2sgan(generator: Generator, path: str | Path) -> Path:
    frames = FRAMES_PER_SECOND * TRACE_SECONDS
    decoder = _to_onnx(
        _Decoder(generator),
        (torch.randn(1, frames, 64), torch.randn(1, TRACE_SECONDS, NOISE_DIM)),
        {"music": {0: "batch", 1: "frames"}, "noise": {0: "batch", 1: "seconds"}},
        "motion",
        {0: "batch", 1: "frames"},
    )
    graphs = {"music_encoder": _music_encoder_graph(generator.music_encoder), "decoder": decoder}
    return save_bundle(path, "m2sgan", {"noise_dim": NOISE_DIM, **_beat_config(generator)}, graphs)


@torch.no_grad()
def export_diffusion(denoiser: MotionTransformer, path: str | Path) -> Path:
    frames = min(denoiser.num_frames, FRAMES_PER_SECOND * TRACE_SECONDS)
    example = (
        torch.randn(1, frames, denoiser.input_feats),
        torch.tensor([500]),
        torch.randn(1, frames, 64),
    )
    graph = _to_onnx(
        denoiser,
        example,
        # Music has its own length axis: one frame of silence stands for all frames in the guidance's
        # unconditional prediction.
        {"x_t": {0: "batch", 1: "frames"}, "timesteps": {0: "batch"}, "music": {0: "batch", 1: "music_frames"}},
        "x0",
        {0: "batch", 1: "frames"},
    )
    config = {"num_frames": denoiser.num_frames, "input_feats": denoiser.input_feats,
              "motion_mean": denoiser.motion_mean.tolist(), "motion_std": denoiser.motion_std.tolist(),
              **_beat_config(denoiser)}
    graphs = {"music_encoder": _music_encoder_graph(denoiser.music_encoder), "denoiser": graph}
    return save_bundle(path, "diffusion", config, graphs)


EXPORTERS = {"m2sgan": export_m2sgan, "diffusion": export_diffusion}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gm_blender_addon.generators.nets.onnx_export")
    parser.add_argument("kind", choices=sorted(EXPORTERS))
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path, help="the ONNX bundle to write (.onnx.zip)")
    args = parser.parse_args(argv)
    try:
        network = GENERATOR_LOADERS[args.kind](args.checkpoint)
    except CheckpointError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(EXPORTERS[args.kind](network.eval(), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
