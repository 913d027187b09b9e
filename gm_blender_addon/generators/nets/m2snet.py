"""M2S-Net: a music–motion synchronisation classifier (stage 1 of VirtualConductor).

It encodes a mel window and a motion window separately and predicts, for every 30 fps frame, the probability that
the two belong together (same piece, same instant). It is trained contrastively; afterwards its motion encoder is
the feature extractor for the sync loss and the SE/FGD metrics, and its music encoder seeds the M2S-GAN generator.

Shapes: mel (N, 3L, 128), motion (N, L, 13, 2) → sync probability (N, L, 1).
"""

from __future__ import annotations

import torch
from torch import nn

from .motion_encoder import MotionEncoder
from .music_encoder import MusicEncoder


class M2SNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.music_encoder = MusicEncoder()
        self.motion_encoder = MotionEncoder()
        # Per-frame MLP (as 1×1 convs over time) on the concatenated [music 64, motion 64] features.
        self.sync_head = nn.Sequential(
            nn.Conv1d(128, 64, 1), nn.ReLU(), nn.Conv1d(64, 64, 1), nn.ReLU(), nn.Conv1d(64, 1, 1), nn.Sigmoid()
        )

    def init_weights(self) -> None:
        """Kaiming-normal (fan_out, ReLU) on every conv/linear weight, as the original training did."""
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, mel: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        return self.sync_probability(self.music_encoder(mel), self.motion_encoder(motion))

    def sync_probability(self, music: torch.Tensor, moves: torch.Tensor) -> torch.Tensor:
        """Encoded music (N, L, 64) and motion (N, L, 64) → per-frame sync probability (N, L, 1).

        Separate from `forward` so that training can encode each segment once and score every pairing of them.
        """
        if music.shape[1] != moves.shape[1]:
            raise ValueError(
                f"mel gives {music.shape[1]} frames but motion has {moves.shape[1]}: mel must be 3× the motion length"
            )
        fused = torch.cat([music, moves], dim=2).transpose(1, 2)  # (N, 128, L)
        return self.sync_head(fused).transpose(1, 2)  # (N, L, 1)
