"""ST-GCN motion encoder of M2S-Net: 13-joint 2-D keypoints at 30 fps → 64-d features per frame.

It is both half of the M2S-Net sync classifier and the feature extractor behind the sync loss and the SE / FGD /
diversity metrics (core/metrics.py), which all use `features()`: the (N, 64, L) channels-first output.

Shapes: motion (N, L, 13, 2) in ConductorMotion100 coordinates → forward (N, L, 64), features (N, 64, L).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

N_JOINTS = 13

# Undirected skeleton edges over the first 13 COCO keypoints (0 nose, 1/2 eyes, 3/4 ears, 5/6 shoulders,
# 7/8 elbows, 9/10 wrists, 11/12 hips). COCO has no neck joint, so the nose is linked straight to both shoulders.
SKELETON_EDGES = (
    (0, 1), (0, 2), (1, 3), (2, 4),
    (0, 5), (0, 6),
    (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (11, 12), (5, 11), (6, 12),
)


def conductor_adjacency() -> np.ndarray:
    """The (1, 13, 13) graph operator: neighbours within one hop (self included), column-normalised.

    Entry [i, j] = 1/deg(j) if i and j are adjacent or equal, so the aggregation x @ A averages, for every joint j,
    the features of j and its neighbours. The leading axis is the single partition of the "uniform" strategy.
    """
    adjacency = np.eye(N_JOINTS)
    for i, j in SKELETON_EDGES:
        adjacency[i, j] = adjacency[j, i] = 1.0
    degree = adjacency.sum(axis=0)
    return (adjacency / degree[None, :])[None].astype(np.float32)


class SpatialTemporalBlock(nn.Module):
    """One ST-GCN unit: graph convolution over joints, then a 3-frame temporal convolution, plus a residual.

    x (N, C, T, V) → (N, 32, T, V). `edge_importance` is a learned (1, V, V) mask multiplied into the fixed
    graph operator, so the network can re-weight individual edges (initialised to 1 = the plain graph).
    """

    def __init__(self, in_channels: int, out_channels: int = 32, residual: bool = True):
        super().__init__()
        self.spatial_conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)  # per-joint channel mixing
        self.edge_importance = nn.Parameter(torch.ones(1, N_JOINTS, N_JOINTS))
        self.temporal_bn_in = nn.BatchNorm2d(out_channels)
        self.temporal_conv = nn.Conv2d(out_channels, out_channels, kernel_size=(3, 1), padding=(1, 0))
        self.temporal_bn_out = nn.BatchNorm2d(out_channels)
        if residual and in_channels != out_channels:
            raise ValueError("only identity residuals are used here: in_channels must equal out_channels")
        self.residual = residual

    def forward(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.residual else 0.0
        x = self.spatial_conv(x)
        # Single partition (K = 1): out[n, c, t, w] = sum_v x[n, c, t, v] * (A * E)[0, v, w].
        x = torch.einsum("nctv,vw->nctw", x, (graph * self.edge_importance)[0])
        x = self.temporal_bn_out(self.temporal_conv(torch.relu(self.temporal_bn_in(x))))
        return torch.relu(x + shortcut)


class MotionEncoder(nn.Module):
    """(N, L, 13, 2) keypoints → (N, L, 64) features (the M2S-Net motion branch)."""

    out_dim = 64

    def __init__(self, num_blocks: int = 10, hidden: int = 32):
        super().__init__()
        # Fixed graph, rebuilt from SKELETON_EDGES rather than stored: the checkpoint loader checks that an
        # official file's copy matches it.
        self.register_buffer("graph", torch.from_numpy(conductor_adjacency()), persistent=False)
        # Normalises each (joint, coordinate) series; channel index = 2 * joint + coordinate.
        self.input_bn = nn.BatchNorm1d(N_JOINTS * 2)
        self.blocks = nn.ModuleList(
            [SpatialTemporalBlock(2, hidden, residual=False)]
            + [SpatialTemporalBlock(hidden, hidden) for _ in range(num_blocks - 1)]
        )
        # Per-frame projection of hidden channels × 13 joints to 64 features; no activation after it.
        self.head_conv = nn.Conv1d(hidden * N_JOINTS, 64, 1)
        self.head_bn = nn.BatchNorm1d(64)

    def features(self, motion: torch.Tensor) -> torch.Tensor:
        """(N, L, 13, 2) → (N, 64, L): the representation used by the sync loss and the SE/FGD metrics."""
        if motion.dim() != 4 or motion.shape[2:] != (N_JOINTS, 2):
            raise ValueError(f"motion must have shape (N, L, 13, 2), got {tuple(motion.shape)}")
        n, length = motion.shape[:2]
        x = self.input_bn(motion.reshape(n, length, N_JOINTS * 2).transpose(1, 2))  # (N, 26, L)
        x = x.reshape(n, N_JOINTS, 2, length).permute(0, 2, 3, 1)  # (N, C=2, L, V=13)
        for block in self.blocks:
            x = block(x, self.graph)
        # (N, 32, L, 13) → (N, 416, L), feature index = channel * 13 + joint.
        x = x.permute(0, 2, 1, 3).reshape(n, length, -1).transpose(1, 2)
        return self.head_bn(self.head_conv(x))

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        return self.features(motion).transpose(1, 2)  # (N, L, 64)
