"""Music encoder shared by M2S-Net, M2S-GAN and the diffusion denoiser.

A small 2-D CNN over the (time, mel-bin) image of a 90 Hz, 128-bin mel spectrogram (see core/audio.py for the
official-compatible preprocessing). It keeps the time axis almost intact, divides it by 3 exactly once, and
squeezes the frequency axis 128 → 16, so every output frame is a 64-d description of the music around one 30 fps
motion frame.

Shapes: mel (N, T, 128) → features (N, T/3, 64). T should be a multiple of 3; otherwise the output has
ceil(T/3) frames.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualConv2d(nn.Module):
    """3×3 conv → BN → ReLU, plus a shortcut added *after* the ReLU (there is no activation after the sum).

    `shortcut` is one of:
      - "none": nothing is added (first block, whose input is the 1-channel mel image);
      - "identity": the input itself (cin == cout);
      - "projection": a 1×1 conv + BN (cin != cout).
    The 3×3 conv pads with reflection so that the spectrogram edges are not pulled towards zero.
    """

    def __init__(self, in_channels: int, out_channels: int, shortcut: str = "identity"):
        super().__init__()
        if shortcut not in ("none", "identity", "projection"):
            raise ValueError(f"unknown shortcut {shortcut!r}")
        if shortcut == "identity" and in_channels != out_channels:
            raise ValueError("an identity shortcut needs in_channels == out_channels")
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, padding_mode="reflect")
        self.bn = nn.BatchNorm2d(out_channels)
        self.shortcut = shortcut
        if shortcut == "projection":
            self.shortcut_conv = nn.Conv2d(in_channels, out_channels, 1)
            self.shortcut_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.conv(x)))
        if self.shortcut == "identity":
            y = y + x
        elif self.shortcut == "projection":
            y = y + self.shortcut_bn(self.shortcut_conv(x))
        return y


class MusicEncoder(nn.Module):
    """(N, T, 128) mel at 90 Hz → (N, T/3, 64) features at 30 Hz.

    The 2-D feature maps are laid out (time, frequency). Each stage halves the frequency axis in its pooling; only
    stage 2 also pools time, with stride 3, kernel 5 and padding 2, so output frame j covers mel frames
    3j-2 … 3j+2 and is centred on the mel frame at the same instant as motion frame j.
    """

    out_dim = 64

    def __init__(self):
        super().__init__()
        self.stage1 = nn.ModuleList(
            [ResidualConv2d(1, 16, "none"), ResidualConv2d(16, 16), ResidualConv2d(16, 16)]
        )
        self.pool1 = nn.MaxPool2d(5, stride=(1, 2), padding=2)  # (T, 128) → (T, 64)
        self.stage2 = nn.ModuleList([ResidualConv2d(16, 32, "projection"), ResidualConv2d(32, 32)])
        self.pool2 = nn.MaxPool2d(5, stride=(3, 2), padding=2)  # (T, 64) → (T/3, 32): the only time reduction
        self.stage3 = nn.ModuleList([ResidualConv2d(32, 32), ResidualConv2d(32, 32)])
        self.pool3 = nn.MaxPool2d(3, stride=(1, 2), padding=1)  # (T/3, 32) → (T/3, 16)
        # Per-frame projection of the 32 channels × 16 frequency bins to 64 features; no activation after it.
        self.frame_conv = nn.Conv1d(32 * 16, 64, 1)
        self.frame_bn = nn.BatchNorm1d(64)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[-1] != 128:
            raise ValueError(f"mel must have shape (N, T, 128), got {tuple(mel.shape)}")
        x = mel.unsqueeze(1)  # (N, 1, T, 128)
        for stage, pool in ((self.stage1, self.pool1), (self.stage2, self.pool2), (self.stage3, self.pool3)):
            for block in stage:
                x = block(x)
            # CPU max pooling is ~6x faster on channels-last tensors, and the pools were half of the encoder's time
            # (the values are unchanged; only the memory layout differs).
            x = pool(x.contiguous(memory_format=torch.channels_last))
        n, c, t, f = x.shape  # (N, 32, T/3, 16)
        # Flatten channel-major: feature index = channel * 16 + frequency bin.
        x = x.permute(0, 2, 1, 3).reshape(n, t, c * f).transpose(1, 2)  # (N, 512, T/3)
        x = self.frame_bn(self.frame_conv(x))
        return x.transpose(1, 2)  # (N, T/3, 64)


def beat_projection(beat_features: int) -> nn.Linear:
    """The layer through which a generator with the beats as input adds them to its music features
    (generators/networks.with_beats). It starts at zero, so a network fine-tuned from weights without it starts out
    exactly as those weights."""
    layer = nn.Linear(beat_features, MusicEncoder.out_dim, bias=False)
    nn.init.zeros_(layer.weight)
    return layer
