"""M2S-GAN (stage 2 of VirtualConductor): a music-conditioned TCN generator and its 1-D CNN critic.

Generator: mel (N, 90·S, 128) at 90 Hz + noise (N, S, 8) at 1 Hz → motion (N, 30·S, 13, 2) at 30 fps, in (0, 1)
(ConductorMotion100 coordinates). S is a whole number of seconds.

Discriminator: motion (N, L, 13, 2) → a Wasserstein critic score per clip (N, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .music_encoder import MusicEncoder, beat_projection

MEL_FPS = 90
MOTION_FPS = 30
NOISE_DIM = 8


class WeightNormConv1d(nn.Module):
    """Conv1d with weight = g · v / ‖v‖ (Salimans & Kingma), centred, "same" length, reflect-padded.

    Parameters are stored as `weight_g` (C_out, 1, 1) and `weight_v` (C_out, C_in, k), the names PyTorch's old
    `weight_norm` used, so official checkpoints load without conversion. The norm is over everything but the
    output channel.

    The original TCN block pads 4d on both sides (reflect) and then "chomps" 4d samples, which with an even pad
    trims 2d from each end. Output sample t then sees inputs t-2d … t+2d, and the reflected samples it can reach
    are only the first 2d, exactly those a 2d reflect pad produces. So it is the same as a centred dilated conv
    with reflect padding 2d = dilation·(k-1)/2, which is what we compute. It also works for shorter inputs: the
    original needed more than 4d frames (> 128 at d = 32, i.e. ≥ 5 s), this needs more than 2d.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("a centred convolution needs an odd kernel size")
        self.dilation = dilation
        self.padding = dilation * (kernel_size - 1) // 2
        reference = nn.Conv1d(in_channels, out_channels, kernel_size)  # borrow PyTorch's default initialisation
        self.weight_v = nn.Parameter(reference.weight.detach().clone())
        self.weight_g = nn.Parameter(self.weight_v.detach().norm(dim=(1, 2), keepdim=True))
        self.bias = nn.Parameter(reference.bias.detach().clone())

    @property
    def weight(self) -> torch.Tensor:
        """The effective convolution weight g · v / ‖v‖ (C_out, C_in, k)."""
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=(1, 2), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] <= self.padding:
            raise ValueError(
                f"sequence of {x.shape[-1]} frames is too short for reflect padding {self.padding}"
            )
        x = F.pad(x, (self.padding, self.padding), mode="reflect")
        return F.conv1d(x, self.weight, self.bias, dilation=self.dilation)


class TemporalBlock(nn.Module):
    """Two dilated weight-normalised convs with BN and ReLU, a 3-frame average, and a residual.

    (N, C_in, L) → (N, C_out, L). Dropout was 0 in the released model, so it is left out.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv1 = WeightNormConv1d(in_channels, out_channels, kernel_size, dilation)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = WeightNormConv1d(out_channels, out_channels, kernel_size, dilation)
        self.bn2 = nn.BatchNorm1d(out_channels)
        # Light temporal smoothing; zero padding is counted, so the first/last frames are damped by 2/3.
        self.smooth = nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=True)
        self.shortcut = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.smooth(y)
        residual = x if self.shortcut is None else self.shortcut(x)
        return torch.relu(y + residual)


class TemporalDecoder(nn.Module):
    """Stack of TemporalBlocks with dilations 1, 2, 4, … then a per-frame linear layer.

    (N, L, C_in) → (N, L, hidden). With kernel 5 and 6 levels an output frame sees ±258 input frames
    (two convs reaching ±2d per level, 2·2·(1+…+32) = 252, plus ±1 per average pool), ≈ ±8.6 s at 30 fps.
    """

    def __init__(self, in_channels: int = 128, hidden: int = 64, levels: int = 6, kernel_size: int = 5):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                TemporalBlock(in_channels if i == 0 else hidden, hidden, kernel_size, dilation=2**i)
                for i in range(levels)
            ]
        )
        self.out_linear = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.out_linear(x.transpose(1, 2))


class Generator(nn.Module):
    """mel (N, 90·S, 128) + noise (N, S, 8) → motion (N, 30·S, 13, 2) in (0, 1)."""

    def __init__(self, beat_features: int = 0):
        super().__init__()
        self.music_encoder = MusicEncoder()
        # With beat_features > 0 the beats are an input too, added to the music features (networks.with_beats).
        self.config = {"beat_features": beat_features} if beat_features else {}
        self.beat_projection = beat_projection(beat_features) if beat_features else None
        # 1 Hz noise → 30 Hz, 64 channels, upsampling ×1, ×5, ×3, ×2 (lengths S → S → 5S → 15S → 30S).
        self.noise_upsampler = nn.Sequential(
            nn.ConvTranspose1d(NOISE_DIM, 16, 3, stride=1, padding=1), nn.ReLU(),
            nn.ConvTranspose1d(16, 16, 11, stride=5, padding=3), nn.ReLU(),
            nn.ConvTranspose1d(16, 32, 5, stride=3, padding=1), nn.ReLU(),
            nn.ConvTranspose1d(32, 64, 6, stride=2, padding=2), nn.ReLU(),
        )
        self.noise_bn = nn.BatchNorm1d(64)
        self.decoder = TemporalDecoder(in_channels=128, hidden=64)
        self.pose_head = nn.Sequential(
            nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 26), nn.Sigmoid()
        )

    @staticmethod
    def sample_noise(batch: int, seconds: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, seconds, NOISE_DIM, generator=generator)

    def forward(self, mel: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        mel_frames = mel.shape[1]
        seconds = noise.shape[1]
        if mel_frames != MEL_FPS * seconds:
            raise ValueError(
                f"mel has {mel_frames} frames but noise covers {seconds} s: the generator needs exactly "
                f"{MEL_FPS} mel frames per noise step (whole seconds)"
            )
        return self.decode(self.music_encoder(mel), noise)

    def decode(self, music: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Music features (N, 30S, 64) from `music_encoder` + noise (N, S, 8) → motion (N, 30S, 13, 2).

        Split from `forward` so that long pieces can run the encoder in chunks (it is the costly, memory-hungry part)
        and the decoder over the whole piece at once.
        """
        n, frames = music.shape[:2]
        if frames != MOTION_FPS * noise.shape[1]:
            raise ValueError(
                f"{frames} music frames but noise covers {noise.shape[1]} s: need {MOTION_FPS} frames per noise step"
            )
        noise = self.noise_bn(self.noise_upsampler(noise.transpose(1, 2))).transpose(1, 2)  # (N, 30S, 64)
        hidden = self.decoder(torch.cat([music, noise], dim=2))  # (N, 30S, 64)
        return self.pose_head(hidden).reshape(n, -1, 13, 2)


class Discriminator(nn.Module):
    """Wasserstein critic: motion (N, L, 13, 2) → score (N, 1), the mean of per-step scores.

    Three conv + max-pool stages shrink time (900 → 299 → 148 → 72 for 30 s), then a per-step MLP.
    Called Discriminator_1DCNN in VirtualConductor; no official weights were released.
    """

    def __init__(self):
        super().__init__()
        self.conv_stack = nn.Sequential(
            nn.Conv1d(26, 64, 5, padding=2), nn.ReLU(), nn.MaxPool1d(5, stride=3),
            nn.Conv1d(64, 64, 5, padding=2), nn.ReLU(), nn.MaxPool1d(5, stride=2),
            nn.Conv1d(64, 64, 5, padding=2), nn.ReLU(), nn.MaxPool1d(5, stride=2),
        )
        self.score_head = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        n, length = motion.shape[:2]
        x = motion.reshape(n, length, 26).transpose(1, 2)  # channel index = 2 * joint + coordinate
        x = self.conv_stack(x).transpose(1, 2)  # (N, L', 64)
        return self.score_head(x).mean(dim=1)  # (N, 1)
