"""Loading network weights: the official VirtualConductor / Diffusion-Conductor files and our own.

Every file is read with ``torch.load(path, map_location="cpu", weights_only=True)``: tensors and plain containers
only, never arbitrary pickled objects. A file is accepted only if it fits the requested network exactly: every
tensor in it is used (or is a documented alias / unused leftover of the official code), every parameter and buffer
of our module is filled, and every shape matches. Anything else raises `CheckpointError`, saying what was expected,
what the file looks like instead, and what to do.

Accepted layouts
----------------
Official (research-only licence; never bundle them or anything derived from them):
  - ``M2SGAN_official_pretrained.pt``: bare state dict of the M2S-GAN Generator (278 keys).
  - ``M2SNet_official_pretrained.pt`` / ``M2SNet_test_official_pretrained.pt``: bare M2S-Net state dicts (234 keys).
  - Diffusion-Conductor trainer files (``latest.tar``, ``ckpt_eXXX.tar``): {"encoder": state dict, "opt_encoder",
    "ep", "total_it"}; only "encoder" is read.
  A leading ``module.`` (from DataParallel) is stripped.

Gesture Maestro (project-trained weights; see `save_checkpoint`):
  {"format": "gesture-maestro-checkpoint", "version": 1, "kind": <kind>, "config": {...}, "state_dict": {...}}
  where "state_dict" uses exactly our modules' own ``state_dict()`` names (e.g. ``decoder.blocks.0.conv1.weight_v``),
  "kind" is one of KINDS and "config" holds constructor arguments (MotionTransformer's sizes, and for both
  generators `beat_features` when they take the beats as input). A bare state dict in our names is accepted too.

Name differences between official files and our modules are handled by the key map below: renames (our names say
what the layers are), aliases (the TCN blocks register conv1/bn1/conv2/bn2 twice, again as ``net.0/2/5/7``, and the
file stores both copies), ignored leftovers (the ST-GCN's unused ``fcn``), and constants that we rebuild instead of
loading (the ST-GCN graph ``A``, checked against ours).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .diffusion import MotionTransformer
from .m2sgan import Discriminator, Generator
from .m2snet import M2SNet
from .motion_encoder import MotionEncoder, conductor_adjacency
from .music_encoder import MusicEncoder

PROJECT_FORMAT = "gesture-maestro-checkpoint"
PROJECT_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A weights file that is missing, unreadable, or not the network that was asked for."""


# --------------------------------------------------------------------------------------------------------------
# Key map: official names → ours
# --------------------------------------------------------------------------------------------------------------

# Renames are applied in order with re.sub, so later rules see the result of earlier ones.
_MUSIC_ENCODER_RENAMES = [
    (r"(^|\.)music_encoder\.conv([123])\.(\d+)\.conv2d_layer\.0\.", r"\1music_encoder.stage\2.\3.conv."),
    (r"(^|\.)music_encoder\.conv([123])\.(\d+)\.conv2d_layer\.1\.", r"\1music_encoder.stage\2.\3.bn."),
    (r"(^|\.)music_encoder\.conv([123])\.(\d+)\.residual\.0\.", r"\1music_encoder.stage\2.\3.shortcut_conv."),
    (r"(^|\.)music_encoder\.conv([123])\.(\d+)\.residual\.1\.", r"\1music_encoder.stage\2.\3.shortcut_bn."),
    (r"(^|\.)music_encoder\.conv4\.0\.", r"\1music_encoder.frame_conv."),
    (r"(^|\.)music_encoder\.conv4\.1\.", r"\1music_encoder.frame_bn."),
]

_MOTION_ENCODER_RENAMES = [
    (r"^motion_encoder\.st_gcn\.data_bn\.", "motion_encoder.input_bn."),
    (r"^motion_encoder\.st_gcn\.st_gcn_networks\.(\d+)\.gcn\.conv\.", r"motion_encoder.blocks.\1.spatial_conv."),
    (r"^motion_encoder\.st_gcn\.st_gcn_networks\.(\d+)\.tcn\.0\.", r"motion_encoder.blocks.\1.temporal_bn_in."),
    (r"^motion_encoder\.st_gcn\.st_gcn_networks\.(\d+)\.tcn\.2\.", r"motion_encoder.blocks.\1.temporal_conv."),
    (r"^motion_encoder\.st_gcn\.st_gcn_networks\.(\d+)\.tcn\.3\.", r"motion_encoder.blocks.\1.temporal_bn_out."),
    (r"^motion_encoder\.st_gcn\.edge_importance\.(\d+)$", r"motion_encoder.blocks.\1.edge_importance"),
    (r"^motion_encoder\.fc\.0\.", "motion_encoder.head_conv."),
    (r"^motion_encoder\.fc\.1\.", "motion_encoder.head_bn."),
]

_TCN = r"^tcn\.TCN\.tcn\.tcn\.network\.(\d+)\."
_GENERATOR_RENAMES = _MUSIC_ENCODER_RENAMES + [
    (_TCN + r"(conv1|conv2|bn1|bn2)\.", r"decoder.blocks.\1.\2."),
    (_TCN + r"downsample\.", r"decoder.blocks.\1.shortcut."),
    (r"^tcn\.TCN\.tcn\.linear\.", "decoder.out_linear."),
    (r"^tcn\.fc\.", "pose_head."),
    (r"^noise_convTranspose\.", "noise_upsampler."),
    (r"^noise_BN\.", "noise_bn."),
]

_DISCRIMINATOR_RENAMES = [(r"^motion_encoder\.", "conv_stack."), (r"^fc\.", "score_head.")]

_DIFFUSION_RENAMES = _MUSIC_ENCODER_RENAMES + [
    (r"^temporal_decoder_blocks\.", "blocks."),
    (r"\.ca_block\.text_norm\.", ".ca_block.music_norm."),
    (r"\.proj_out\.emb_layers\.1\.", ".proj_out.film."),
    (r"\.proj_out\.out_layers\.2\.", ".proj_out.out."),
    (r"^linear\.", "music_embed."),
    (r"^proj\.", "music_proj."),
]


@dataclass(frozen=True)
class _Alias:
    """Keys matching `pattern` are a second registration of the tensor at `canonical` (official naming)."""

    pattern: str
    canonical: str


@dataclass(frozen=True)
class _Constant:
    """A tensor we rebuild instead of loading; the file's copy must equal `expected()`."""

    pattern: str
    expected: Callable[[], torch.Tensor]
    what: str


_TCN_ALIASES = [
    _Alias(_TCN + r"net\.0\.(.*)$", r"tcn.TCN.tcn.tcn.network.\1.conv1.\2"),
    _Alias(_TCN + r"net\.2\.(.*)$", r"tcn.TCN.tcn.tcn.network.\1.bn1.\2"),
    _Alias(_TCN + r"net\.5\.(.*)$", r"tcn.TCN.tcn.tcn.network.\1.conv2.\2"),
    _Alias(_TCN + r"net\.7\.(.*)$", r"tcn.TCN.tcn.tcn.network.\1.bn2.\2"),
]
# Constructed in the official ST-GCN but never called in its forward pass.
_STGCN_UNUSED = [r"^motion_encoder\.st_gcn\.fcn\.(weight|bias)$"]
_STGCN_CONSTANTS = [
    _Constant(
        r"^motion_encoder\.st_gcn\.A$",
        lambda: torch.from_numpy(conductor_adjacency()),
        "the ST-GCN graph (13-joint ConductorMotion skeleton, column-normalised)",
    )
]


@dataclass(frozen=True)
class _Layout:
    renames: list = field(default_factory=list)
    aliases: list = field(default_factory=list)
    ignored: list = field(default_factory=list)
    constants: list = field(default_factory=list)


_OFFICIAL_LAYOUTS = {
    "m2sgan": _Layout(renames=_GENERATOR_RENAMES, aliases=_TCN_ALIASES),
    "m2snet": _Layout(
        renames=_MUSIC_ENCODER_RENAMES + _MOTION_ENCODER_RENAMES + [(r"^fuse_layer\.", "sync_head.")],
        ignored=_STGCN_UNUSED,
        constants=_STGCN_CONSTANTS,
    ),
    "discriminator": _Layout(renames=_DISCRIMINATOR_RENAMES),
    "diffusion": _Layout(renames=_DIFFUSION_RENAMES),
}


# --------------------------------------------------------------------------------------------------------------
# What each kind of file is, and how to recognise it
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    label: str  # "an M2S-GAN generator checkpoint"
    expected_file: str  # what the user should pick
    loader: str  # the function that loads this kind


KINDS = {
    "m2sgan": _Kind(
        "an M2S-GAN generator checkpoint",
        "the official M2SGAN_official_pretrained.pt or a Gesture Maestro M2S-GAN checkpoint",
        "load_generator",
    ),
    "m2snet": _Kind(
        "an M2S-Net (music-motion sync network) checkpoint",
        "the official M2SNet_official_pretrained.pt / M2SNet_test_official_pretrained.pt or a Gesture Maestro "
        "M2S-Net checkpoint",
        "load_m2snet",
    ),
    "discriminator": _Kind(
        "an M2S-GAN discriminator checkpoint",
        "a discriminator saved by our trainer (no official one was released)",
        "load_discriminator",
    ),
    "diffusion": _Kind(
        "a Diffusion-Conductor denoiser (MotionTransformer) checkpoint",
        "a Diffusion-Conductor trainer file (latest.tar / ckpt_eXXX.tar) or a Gesture Maestro diffusion checkpoint",
        "load_diffusion_denoiser",
    ),
}

_BUILDERS: dict[str, Callable[[dict], nn.Module]] = {
    "m2sgan": lambda config: Generator(**config),
    "m2snet": lambda config: M2SNet(),
    "discriminator": lambda config: Discriminator(),
    "diffusion": lambda config: MotionTransformer(**config),
}


def _has_prefix(keys, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def identify(state_dict: Mapping[str, torch.Tensor]) -> tuple[str | None, str]:
    """Guess (kind, naming) of a state dict; naming is "official" or "project"; kind None if unrecognised.

    Partial networks that nothing here loads on their own are reported as kinds "music_encoder" /
    "motion_encoder", so error messages can still say what the file is.
    """
    keys = list(state_dict)
    if _has_prefix(keys, "tcn.TCN.") or _has_prefix(keys, "noise_convTranspose."):
        return "m2sgan", "official"
    if _has_prefix(keys, "decoder.blocks.") and _has_prefix(keys, "noise_upsampler."):
        return "m2sgan", "project"
    if "fuse_layer.0.weight" in state_dict or _has_prefix(keys, "motion_encoder.st_gcn."):
        return "m2snet", "official"
    if _has_prefix(keys, "sync_head."):
        return "m2snet", "project"
    if _has_prefix(keys, "temporal_decoder_blocks."):
        return "diffusion", "official"
    if _has_prefix(keys, "blocks.") and "joint_embed.weight" in state_dict:
        return "diffusion", "project"
    if "motion_encoder.0.weight" in state_dict and "fc.4.weight" in state_dict:
        return "discriminator", "official"
    if _has_prefix(keys, "conv_stack.") and _has_prefix(keys, "score_head."):
        return "discriminator", "project"
    if _has_prefix(keys, "st_gcn.") or _has_prefix(keys, "input_bn."):
        return "motion_encoder", "official" if _has_prefix(keys, "st_gcn.") else "project"
    if _has_prefix(keys, "conv1.0.conv2d_layer.") or _has_prefix(keys, "stage1.0.conv."):
        return "music_encoder", "official" if _has_prefix(keys, "conv1.") else "project"
    return None, "unknown"


def _describe(kind: str | None, state_dict: Mapping[str, torch.Tensor]) -> str:
    count = f"{len(state_dict)} tensor{'' if len(state_dict) == 1 else 's'}"
    if kind in KINDS:
        return f"{KINDS[kind].label} ({count})"
    if kind == "motion_encoder":
        return f"a bare ST-GCN motion-encoder state dict ({count}), not a whole network"
    if kind == "music_encoder":
        return f"a bare music-encoder state dict ({count}), not a whole network"
    sample = ", ".join(list(state_dict)[:3])
    return f"an unrecognised state dict ({count}; first keys: {sample or 'none'})"


# --------------------------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------------------------


def _expectation(expected: tuple[str, ...]) -> str:
    return " or ".join(KINDS[k].label for k in expected)


def _fix_hint(expected: tuple[str, ...]) -> str:
    return "; ".join(KINDS[k].expected_file for k in expected)


def _read_file(path: Path, expected: tuple[str, ...]) -> object:
    want = _expectation(expected)
    if not path.exists():
        raise CheckpointError(f"Checkpoint not found: {path}. Expected {want}. Fix: choose {_fix_hint(expected)}.")
    if not path.is_file():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file. Fix: choose {_fix_hint(expected)}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types (UnpicklingError, KeyError, RuntimeError, …) on junk
        message = str(exc)
        match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
        if match:
            # A genuine pickle that references Python classes (e.g. a whole nn.Module saved with torch.save).
            raise CheckpointError(
                f"{path.name} stores pickled Python objects ({match.group(1)}), not just tensors, and is not "
                f"loaded because that could run arbitrary code. Expected {want}. Fix: re-save it as a plain state "
                f"dict (torch.save(model.state_dict(), ...)) or choose {_fix_hint(expected)}."
            ) from exc
        inner = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", message)  # the useful line of a long message
        detail = (inner.group(1) if inner else message.strip().split("\n")[0] if message.strip() else "")[:120]
        raise CheckpointError(
            f"{path.name} is not a readable PyTorch checkpoint ({type(exc).__name__}{': ' + detail if detail else ''})."
            f" Expected {want}. Fix: choose {_fix_hint(expected)}; if it is one, it may be truncated or corrupted, "
            f"so copy it again."
        ) from exc


def _unwrap(raw: object, path: Path, expected: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], str | None, dict]:
    """→ (state dict, kind declared by a project file or None, config)."""
    declared, config = None, {}
    content = raw
    if isinstance(raw, Mapping) and raw.get("format") == PROJECT_FORMAT:
        declared = raw.get("kind")
        config = dict(raw.get("config") or {})
        content = raw.get("state_dict")
    elif isinstance(raw, Mapping) and isinstance(raw.get("encoder"), Mapping):
        content = raw["encoder"]  # Diffusion-Conductor trainer file
    elif isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        content = raw["state_dict"]
    if not isinstance(content, Mapping) or not content:
        found = type(content).__name__ if not isinstance(content, Mapping) else "an empty dict"
        raise CheckpointError(
            f"{path.name} holds {found}, not a state dict of tensors. Expected {_expectation(expected)}. "
            f"Fix: choose {_fix_hint(expected)}."
        )
    bad = [k for k, v in content.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path.name} is a dict but not a state dict: entries such as {bad[:3]!r} are not named tensors. "
            f"Expected {_expectation(expected)}. Fix: choose {_fix_hint(expected)}."
        )
    state = dict(content)
    if all(k.startswith("module.") for k in state):  # saved from a DataParallel wrapper
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, declared, config


def _convert_official(state: dict[str, torch.Tensor], layout: _Layout, path: Path) -> dict[str, torch.Tensor]:
    """Official names → ours. Every key must be renamed, an alias, a checked constant or a known leftover."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if any(re.fullmatch(p, key) for p in layout.ignored):
            continue
        constant = next((c for c in layout.constants if re.fullmatch(c.pattern, key)), None)
        if constant is not None:
            expected = constant.expected()
            if tensor.shape != expected.shape or not torch.allclose(tensor.float(), expected, atol=1e-6):
                raise CheckpointError(
                    f"{path.name}: '{key}' should be {constant.what}, but it differs. The file was made for a "
                    f"different skeleton or layout and cannot be used with this motion encoder."
                )
            continue
        alias = next((a for a in layout.aliases if re.fullmatch(a.pattern, key)), None)
        if alias is not None:
            canonical = re.sub(alias.pattern, alias.canonical, key)
            if canonical in state:
                if not torch.equal(state[canonical], tensor):
                    raise CheckpointError(
                        f"{path.name}: '{key}' should be the same tensor as '{canonical}' (the official TCN "
                        f"registers each layer twice) but differs. The file is corrupted or edited."
                    )
                continue
            key = canonical  # only the alias copy is present: load it under the canonical name
        name = key
        for pattern, replacement in layout.renames:
            name = re.sub(pattern, replacement, name)
        converted[name] = tensor
    return converted


def _fill(model: nn.Module, state: dict[str, torch.Tensor], path: Path, kind: str) -> None:
    """Copy `state` into `model`, insisting on an exact one-to-one match of names and shapes."""
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in state]
    unexpected = [k for k in state if k not in wanted]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(wanted[k].shape)}"
        for k in wanted
        if k in state and state[k].shape != wanted[k].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:4])})")
        if unexpected:
            problems.append(f"{len(unexpected)} unused (e.g. {', '.join(unexpected[:4])})")
        if mismatched:
            problems.append(f"{len(mismatched)} with the wrong shape (e.g. {'; '.join(mismatched[:3])})")
        raise CheckpointError(
            f"{path.name} looks like {KINDS[kind].label} but does not fit this network: {', '.join(problems)}. "
            f"Fix: use weights made for this exact architecture ({KINDS[kind].expected_file})."
        )
    model.load_state_dict(state, strict=True)


def _infer_diffusion_config(state: Mapping[str, torch.Tensor]) -> dict:
    """Constructor arguments recoverable from the tensor shapes of an official denoiser file."""
    config = {}
    if "sequence_embedding" in state:
        config["num_frames"], config["latent_dim"] = (int(s) for s in state["sequence_embedding"].shape)
    if "joint_embed.weight" in state:
        config["input_feats"] = int(state["joint_embed.weight"].shape[1])
    layers = {int(m.group(1)) for k in state if (m := re.match(r"(?:temporal_decoder_blocks|blocks)\.(\d+)\.", k))}
    if layers:
        config["num_layers"] = max(layers) + 1
    ffn = [v for k, v in state.items() if k.endswith("ffn.linear1.weight")]
    if ffn:
        config["ff_size"] = int(ffn[0].shape[0])
    return config


def load_state(path: str | Path, expected: str | tuple[str, ...]) -> tuple[str, dict[str, torch.Tensor], dict]:
    """Read a checkpoint of one of the `expected` kinds → (kind, state dict in our names, constructor config).

    Raises CheckpointError for a missing/unreadable file or a file of another kind.
    """
    expected = (expected,) if isinstance(expected, str) else tuple(expected)
    path = Path(path)
    raw = _read_file(path, expected)
    state, declared, config = _unwrap(raw, path, expected)
    kind, naming = identify(state)
    if declared is not None:
        if declared not in KINDS:
            raise CheckpointError(
                f"{path.name} declares an unknown kind {declared!r}. Expected {_expectation(expected)}. "
                f"Fix: choose {_fix_hint(expected)}."
            )
        kind, naming = declared, "project"
    if kind not in expected:
        found = _describe(kind, state)
        hint = f" That file is for {KINDS[kind].loader}()." if kind in KINDS else ""
        raise CheckpointError(
            f"{path.name} is not {_expectation(expected)}: it looks like {found}.{hint} "
            f"Fix: choose {_fix_hint(expected)}."
        )
    if naming == "official":
        if kind == "diffusion":
            config = {**_infer_diffusion_config(state), **config}
        state = _convert_official(state, _OFFICIAL_LAYOUTS[kind], path)
    elif kind == "diffusion" and not config:
        config = _infer_diffusion_config(state)
    return kind, state, config


def _load(path: str | Path, kind: str) -> nn.Module:
    kind, state, config = load_state(path, kind)
    try:
        model = _BUILDERS[kind](config)
    except TypeError as exc:
        raise CheckpointError(f"{Path(path).name}: bad network configuration {config!r} ({exc})") from exc
    _fill(model, state, Path(path), kind)
    return model.eval()


# --------------------------------------------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------------------------------------------


def load_generator(path: str | Path) -> Generator:
    """M2S-GAN generator in eval mode, from the official file or one of ours."""
    return _load(path, "m2sgan")


def load_m2snet(path: str | Path) -> M2SNet:
    """M2S-Net in eval mode, from an official M2SNet*.pt file or one of ours."""
    return _load(path, "m2snet")


def load_motion_encoder(path: str | Path) -> MotionEncoder:
    """The ST-GCN motion encoder (metric feature extractor) of a whole M2S-Net file, in eval mode.

    The whole file is checked as an M2S-Net first, so a wrong file is still rejected.
    """
    return load_m2snet(path).motion_encoder.eval()


def load_music_encoder(path: str | Path) -> MusicEncoder:
    """The music encoder of an M2S-Net, M2S-GAN or diffusion file (the whole file is checked first)."""
    kind, state, config = load_state(path, ("m2snet", "m2sgan", "diffusion"))
    model = _BUILDERS[kind](config)
    _fill(model, state, Path(path), kind)
    return model.music_encoder.eval()


def load_discriminator(path: str | Path) -> Discriminator:
    return _load(path, "discriminator")


def load_diffusion_denoiser(path: str | Path) -> MotionTransformer:
    """Diffusion-Conductor denoiser in eval mode; architecture sizes are taken from the file."""
    return _load(path, "diffusion")


# The networks the learned generators run, by generator name.
GENERATOR_LOADERS = {"m2sgan": load_generator, "diffusion": load_diffusion_denoiser}


def save_checkpoint(model: nn.Module, path: str | Path, kind: str, config: dict | None = None, **meta) -> Path:
    """Write project-trained weights in the Gesture Maestro layout (see the module docstring).

    `config` holds constructor arguments (the generators' `config` by default); `meta` adds plain values (str, int,
    float, lists, dicts of those) such as the training data or epoch, stored under "meta".
    """
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; expected one of {sorted(KINDS)}")
    if config is None and isinstance(model, (Generator, MotionTransformer)):
        config = model.config
    payload = {
        "format": PROJECT_FORMAT,
        "version": PROJECT_FORMAT_VERSION,
        "kind": kind,
        "config": dict(config or {}),
        "meta": dict(meta),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    torch.save(payload, path)
    return path


def describe_checkpoint(path: str | Path) -> str:
    """One line saying what a file appears to be (for a UI); never raises for a bad file."""
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        state, declared, _ = _unwrap(raw, path, tuple(KINDS))
    except Exception as exc:  # a description must not fail; say why instead
        return f"{path.name}: unreadable as a checkpoint ({type(exc).__name__})"
    kind, naming = (declared, "project") if declared in KINDS else identify(state)
    origin = {"official": ", official naming", "project": ", Gesture Maestro naming"}.get(naming, "")
    return f"{path.name}: {_describe(kind, state)}{origin}"
