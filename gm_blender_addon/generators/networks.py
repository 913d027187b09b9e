"""The learned generators' networks at inference, whatever file they come from, behind one numpy interface.

An ONNX bundle (`.onnx.zip`, written by nets/onnx_export.py) runs with onnxruntime: that is what the shipped weights
are and all that Blender can run, since the extension carries no PyTorch. A PyTorch checkpoint (the official
VirtualConductor files, a training run's network) runs through nets/inference.py where torch is installed; where it
is not, the error says how to convert the file once. Both give objects with the same numpy calls:

  M2S-GAN    encode_music(mel (N, 3L, 128)) → (N, L, 64); decode(music (N, 30S, 64), noise (N, S, noise_dim))
             → motion (N, 30S, 13, 2)
  denoiser   encode_music as above; called as (x_t (N, T, F), timesteps (N,), music (N, T or 1, 64)) → x0;
             normalise / denormalise between ConductorMotion100 coordinates (…, 26) and the diffusion space;
             num_frames, input_feats
  both       beat_projection: (BEAT_FEATURES, 64) or None. A network trained with the beats as input adds
             `beat_features` · beat_projection to its music features (`with_beats`); official networks have none
             and see the mel alone.

and the helpers here (mel length, chunked music encoding, smoothing, beat-locking and re-centring the result, and
the beat-lock option) serve both. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.motion import FPS, HIP_MIDPOINT, JOINT, SHOULDER_WIDTH, normalise
from .registry import GeneratorError, Option, Request
from .windows import Progress, fit_frames, overlap_save

ONNX_SUFFIX = ".onnx.zip"
MEL_PER_MOTION_FRAME = 3
# The music encoder reaches ±18 mel frames (6 motion frames); a second of context leaves a wide safety margin.
ENCODER_CHUNK = 900
ENCODER_CONTEXT = 30
# Both papers' renderers smooth generated motion with this Savitzky-Golay filter before showing it. The networks
# predict each frame with a small error of its own, and at 30 fps that error is most of the frame-to-frame change:
# above 6 Hz lie 88 % of the velocity power of the project diffusion model (at 25 and at 1000 DDIM steps alike) and
# 43 % of the official M2S-GAN's, against under 10 % in the training motion. The filter passes 93 % of a 2 Hz
# movement (a beat at 120 bpm) and 56 % at 3 Hz, and cuts everything above 4 Hz to under a quarter.
SMOOTHING_WINDOW = 19
SMOOTHING_ORDER = 5

# The networks see only the mel and strike where they guess; by default their motion is time-warped so that its
# ictus fall on the analysed beats (core/beatlock.py). Off gives the network's own timing, as the papers' code did.
BEAT_LOCK = Option("beat_lock", bool, True, "time-warp the motion smoothly so that the right hand strikes on the "
                   "analysed beats (on by default; off: the network's own timing)")


# The beats as a network input (a beat-phase input, as Beat-It gives its generator): per motion frame, the sine and
# cosine of the phase within the beat and within the bar, and the beat's length as log2(seconds / 0.5), 0 at 120 bpm.
# Before the first and after the last beat, where no beat says where the music is, all are 0.
BEAT_FEATURES = 5


def beat_features(beats: np.ndarray, downbeats: np.ndarray, n_frames: int, fps: float = FPS) -> np.ndarray:
    """(n_frames, BEAT_FEATURES) float32 phase features of the beats and downbeats (seconds) at `fps`."""
    features = np.zeros((n_frames, BEAT_FEATURES), np.float32)
    beats = np.asarray(beats, dtype=np.float64)
    if len(beats) < 2 or n_frames == 0:
        return features
    seconds = np.arange(n_frames) / fps
    inside = (seconds >= beats[0]) & (seconds < beats[-1])
    index = np.clip(np.searchsorted(beats, seconds, "right") - 1, 0, len(beats) - 2)
    length = beats[index + 1] - beats[index]
    beat_phase = (seconds - beats[index]) / length
    # The bar a beat is in: from the latest downbeat, as many beats long as up to the next one (the last bar, still
    # open at the end, as long as the bar before it; beats before the first downbeat, a pickup, count back from
    # it). Without downbeats every beat starts a bar.
    is_down = np.isin(np.round(beats, 4), np.round(np.asarray(downbeats, dtype=np.float64), 4))
    starts = np.flatnonzero(is_down) if is_down.any() else np.arange(len(beats))
    bar_beats = np.diff(starts)
    bar_beats = np.r_[bar_beats, bar_beats[-1] if len(bar_beats) else max(len(beats) - 1 - starts[-1], 1)]
    numbers = np.arange(len(beats))
    bar = np.maximum(np.searchsorted(starts, numbers, "right") - 1, 0)
    per_bar = bar_beats[bar]
    position = (numbers - starts[bar]) % per_bar
    bar_phase = (position[index] + beat_phase) / per_bar[index]
    for column, phase in ((0, beat_phase), (2, bar_phase)):
        features[:, column] = np.sin(2 * np.pi * phase)
        features[:, column + 1] = np.cos(2 * np.pi * phase)
    features[:, 4] = np.log2(length / 0.5)
    features[~inside] = 0.0
    return features


def with_beats(network, music: np.ndarray, beats: np.ndarray, downbeats: np.ndarray) -> np.ndarray:
    """Music features (L, 64) plus the network's projection of the beat features (unchanged for a network without
    beat input)."""
    projection = getattr(network, "beat_projection", None)
    if projection is None:
        return music
    return (music + beat_features(beats, downbeats, len(music)) @ projection).astype(np.float32)


def is_onnx_bundle(path: Path) -> bool:
    return Path(path).name.endswith(ONNX_SUFFIX)


def _open(kind: str, checkpoint: Path | None, label: str):
    if checkpoint is None:
        raise GeneratorError(f"The {label} generator needs a checkpoint: pass --checkpoint PATH.")
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise GeneratorError(f"{label} checkpoint {checkpoint} not found; check the path.")
    if is_onnx_bundle(checkpoint):
        from . import onnx_runtime

        opener = {"m2sgan": onnx_runtime.M2SGAN, "diffusion": onnx_runtime.Denoiser}[kind]
        return opener(checkpoint)
    try:
        from .nets import inference
    except ImportError as exc:
        raise GeneratorError(
            f"{checkpoint.name} is a PyTorch checkpoint and PyTorch is not installed here (Blender's add-on runs "
            f"ONNX bundles only). Convert it once where torch is installed: python -m "
            f"gm_blender_addon.generators.nets.onnx_export {kind} {checkpoint.name} {checkpoint.stem}{ONNX_SUFFIX} "
            f"and choose the {ONNX_SUFFIX} file instead."
        ) from exc
    return inference.open_checkpoint(kind, checkpoint)


def open_m2sgan(checkpoint: Path | None, label: str = "M2S-GAN"):
    """The M2S-GAN generator of an ONNX bundle or a PyTorch checkpoint; a GeneratorError for a wrong file."""
    return _open("m2sgan", checkpoint, label)


def open_denoiser(checkpoint: Path | None, label: str = "Diffusion"):
    """The Diffusion-Conductor denoiser of an ONNX bundle or a PyTorch checkpoint; a GeneratorError otherwise."""
    return _open("diffusion", checkpoint, label)


def mel_for_frames(mel: np.ndarray, n_frames: int) -> np.ndarray:
    """The (3·n_frames, 128) mel for a motion of n_frames: cropped, or extended by mirroring its end.

    `official_mel` has floor(duration·90) frames while the analysis (and so the motion) has ceil(duration·30).
    """
    return fit_frames(np.asarray(mel, dtype=np.float32), MEL_PER_MOTION_FRAME * n_frames)


def encode_music(network, mel: np.ndarray, progress: Progress | None = None, chunk: int = ENCODER_CHUNK) -> np.ndarray:
    """Music features (L, 64) for a mel (3L, 128) of any length, in chunks of `chunk` motion frames.

    The encoder is local, so chunks with ENCODER_CONTEXT frames of context on each side give the same features
    as one pass (checked by the tests) in bounded memory: one pass over an hour would need gigabytes.
    """
    n_frames = mel.shape[0] // MEL_PER_MOTION_FRAME

    def run(lo: int, hi: int) -> np.ndarray:
        window = np.array(mel[MEL_PER_MOTION_FRAME * lo : MEL_PER_MOTION_FRAME * hi], np.float32)
        return network.encode_music(window[None])[0]

    return overlap_save(n_frames, run, chunk, ENCODER_CONTEXT, progress)


def smooth_network_output(keypoints: np.ndarray) -> np.ndarray:
    """Generated motion (T, ...) smoothed along time as the official renderers do (see SMOOTHING_WINDOW)."""
    from scipy.signal import savgol_filter

    keypoints = np.asarray(keypoints)
    if len(keypoints) <= SMOOTHING_ORDER:
        return keypoints.copy()
    window = min(SMOOTHING_WINDOW, len(keypoints) - 1 + len(keypoints) % 2)  # odd and no longer than the clip
    order = min(SMOOTHING_ORDER, window - 1)
    return savgol_filter(keypoints, window, order, axis=0).astype(keypoints.dtype)


def keyed_keypoints(keypoints: np.ndarray, request: Request) -> tuple[np.ndarray, np.ndarray, dict]:
    """Smoothed network output (T, 13, 2) as the add-on keys it → (keypoints, warp, meta).

    Beat-locked to the request's analysed beats when its `beat_lock` option is on (warp: the generated frame shown
    at each frame, the identity when off), then re-centred (`to_cm100`). Locking comes first so that the keyed
    motion is exactly normalised; it does not depend on the motion's scale.
    """
    meta = {}
    warp = np.arange(len(keypoints), dtype=float)
    if request.options[BEAT_LOCK.name]:
        from ..core.beatlock import beat_lock

        locked = beat_lock(keypoints, request.analysis.beats)
        keypoints, warp, meta["beat_lock"] = locked.keypoints, locked.warp, locked.report()
    keypoints, placement = to_cm100(keypoints)
    return keypoints, warp, {**meta, **placement}


def to_cm100(keypoints: np.ndarray) -> tuple[np.ndarray, dict]:
    """Re-centre network output to the exact ConductorMotion100 normalisation → (keypoints, what was done).

    Network output is only approximately normalised (the training clips were normalised per 60 s clip, and a
    network reproduces their average). One scale about the origin and one shift for the whole piece make the
    clip-mean shoulder width exactly 0.2 and the clip-mean hip midpoint exactly (0.5, 0.75), as core.motion
    defines; being the same for every frame, this changes no movement, only where the body sits.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    width = float(np.mean(kp[:, JOINT["left_shoulder"], 0] - kp[:, JOINT["right_shoulder"], 0]))
    if not np.isfinite(width) or width < 0.25 * SHOULDER_WIDTH:
        # A trained network never does this; an untrained or broken checkpoint can.
        raise GeneratorError(
            f"The network's output has no plausible body (mean shoulder width {width:.3f}, expected about "
            f"{SHOULDER_WIDTH}): the checkpoint is untrained or not a conductor model."
        )
    hips = 0.5 * (kp[:, JOINT["left_hip"]] + kp[:, JOINT["right_hip"]]).mean(axis=0)
    scale = SHOULDER_WIDTH / width
    out = normalise(kp, frame_width=1.0)
    shift = np.asarray(HIP_MIDPOINT) - scale * hips
    return out, {"cm100_scale": round(scale, 5), "cm100_shift": [round(float(v), 5) for v in shift]}
