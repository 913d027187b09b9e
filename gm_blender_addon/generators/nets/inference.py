"""What the learned generators share at inference: loading weights for a request, the mel at the right length,
chunked music encoding and the ConductorMotion100 re-centring of the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...core.motion import HIP_MIDPOINT, JOINT, SHOULDER_WIDTH, normalise
from ..registry import GeneratorError
from .checkpoints import CheckpointError
from .music_encoder import MusicEncoder
from .windows import Progress, fit_frames, overlap_save

MEL_PER_MOTION_FRAME = 3
# The music encoder reaches ±18 mel frames (6 motion frames); a second of context leaves a wide safety margin.
ENCODER_CHUNK = 900
ENCODER_CONTEXT = 30


def load_weights(loader: Callable[[Path], torch.nn.Module], checkpoint: Path | None, label: str) -> torch.nn.Module:
    """Run a checkpoint loader, turning a missing or wrong file into a GeneratorError the caller can report."""
    if checkpoint is None:
        raise GeneratorError(f"The {label} generator needs a checkpoint: pass --checkpoint PATH.")
    try:
        return loader(Path(checkpoint))
    except CheckpointError as exc:
        raise GeneratorError(str(exc)) from exc


def mel_for_frames(mel: np.ndarray, n_frames: int) -> np.ndarray:
    """The (3·n_frames, 128) mel for a motion of n_frames: cropped, or extended by mirroring its end.

    `official_mel` has floor(duration·90) frames while the analysis (and so the motion) has ceil(duration·30).
    """
    return fit_frames(np.asarray(mel, dtype=np.float32), MEL_PER_MOTION_FRAME * n_frames)


@torch.inference_mode()
def encode_music(
    encoder: MusicEncoder, mel: np.ndarray, progress: Progress | None = None, chunk: int = ENCODER_CHUNK
) -> np.ndarray:
    """Music features (L, 64) for a mel (3L, 128) of any length, in chunks of `chunk` motion frames.

    The encoder is local, so chunks with ENCODER_CONTEXT frames of context on each side give the same features
    as one pass (checked by the tests) in bounded memory: one pass over an hour would need gigabytes.
    """
    encoder.eval()
    n_frames = mel.shape[0] // MEL_PER_MOTION_FRAME

    def run(lo: int, hi: int) -> np.ndarray:
        window = torch.from_numpy(np.array(mel[MEL_PER_MOTION_FRAME * lo : MEL_PER_MOTION_FRAME * hi], np.float32))
        return encoder(window[None])[0].numpy()

    return overlap_save(n_frames, run, chunk, ENCODER_CONTEXT, progress)


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
