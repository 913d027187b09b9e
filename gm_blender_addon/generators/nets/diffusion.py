"""Diffusion-Conductor: a transformer denoiser that predicts clean motion x0, and its training noise schedule.

Denoiser (`MotionTransformer`, after MotionDiffuse as adapted by Diffusion-Conductor):
  x_t (N, T, 26) noisy flattened motion, timesteps (N,), music features (N, T, 64) → predicted x0 (N, T, 26).
  Music conditions every frame twice: as a per-frame FiLM term added to the timestep embedding (scale/shift in the
  stylisation blocks), and as keys/values of a cross-attention. All attention is linear ("efficient") attention:
  softmax over the head dimension for queries and over time for keys, so cost is O(T), not O(T²).

Diffusion (`ConductorDiffusion`): the 1000-step linear β schedule (1e-4 → 0.02) and q_sample for training; the
DDIM sampler with classifier-free guidance is generators/ddim.py, shared with inference.

Diffusion runs in the denoiser's motion space: ConductorMotion100 coordinates standardised per coordinate with the
statistics stored in the model's config (`motion_mean`, `motion_std`; see MotionTransformer.normalise). Official
files carry none, so for them the space is the raw coordinates (≈ [0, 1]), as in the original.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..ddim import DIFFUSION_STEPS, alphas_cumprod
from .music_encoder import MusicEncoder, beat_projection


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (N,) → (N, dim): [cos(t·f_i), sin(t·f_i)], f_i = max_period^(-i/(dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _zero_init(layer: nn.Linear) -> nn.Linear:
    # Residual branches start as exact no-ops, so the untrained network is the identity plus the input embedding.
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class StylizationBlock(nn.Module):
    """Output projection of every sub-block, modulated per frame by the (timestep + music) embedding.

    h (N, T, D), emb (N, T, E) → (N, T, D): LayerNorm(h)·(1 + scale) + shift, then SiLU → dropout → zero-init linear.
    """

    def __init__(self, latent_dim: int, embed_dim: int, dropout: float):
        super().__init__()
        self.film = nn.Linear(embed_dim, 2 * latent_dim)
        self.norm = nn.LayerNorm(latent_dim)
        self.dropout = nn.Dropout(dropout)
        self.out = _zero_init(nn.Linear(latent_dim, latent_dim))

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(F.silu(emb)).chunk(2, dim=-1)
        h = self.norm(h) * (1 + scale) + shift
        return self.out(self.dropout(F.silu(h)))


def _linear_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: int) -> torch.Tensor:
    """Efficient attention: q (N, T, D), k/v (N, S, D) → (N, T, D) via per-head (d × d) context kᵀv."""
    n, t, d = query.shape
    s = key.shape[1]
    q = F.softmax(query.view(n, t, heads, -1), dim=-1)
    k = F.softmax(key.view(n, s, heads, -1), dim=1)
    v = value.view(n, s, heads, -1)
    context = torch.einsum("nshd,nshl->nhdl", k, v)
    return torch.einsum("nthd,nhdl->nthl", q, context).reshape(n, t, d)


class LinearTemporalSelfAttention(nn.Module):
    def __init__(self, latent_dim: int, heads: int, embed_dim: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(latent_dim)
        self.query = nn.Linear(latent_dim, latent_dim)
        self.key = nn.Linear(latent_dim, latent_dim)
        self.value = nn.Linear(latent_dim, latent_dim)
        self.proj_out = StylizationBlock(latent_dim, embed_dim, dropout)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """frame_mask (N, T, 1): 1 for real frames, 0 for padding, which is kept out of keys and values."""
        h = self.norm(x)
        key = self.key(h) + (1 - frame_mask) * -1e6  # padded frames get ~0 weight in the softmax over time
        value = self.value(h) * frame_mask
        y = _linear_attention(self.query(h), key, value, self.heads)
        return x + self.proj_out(y, emb)


class LinearTemporalCrossAttention(nn.Module):
    """Motion frames attend to the per-frame music embedding (N, T, E)."""

    def __init__(self, latent_dim: int, music_dim: int, heads: int, embed_dim: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(latent_dim)
        self.music_norm = nn.LayerNorm(music_dim)
        self.query = nn.Linear(latent_dim, latent_dim)
        self.key = nn.Linear(music_dim, latent_dim)
        self.value = nn.Linear(music_dim, latent_dim)
        self.proj_out = StylizationBlock(latent_dim, embed_dim, dropout)

    def forward(self, x: torch.Tensor, music: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        m = self.music_norm(music)
        y = _linear_attention(self.query(self.norm(x)), self.key(m), self.value(m), self.heads)
        return x + self.proj_out(y, emb)


class FeedForward(nn.Module):
    def __init__(self, latent_dim: int, ff_size: int, embed_dim: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(latent_dim, ff_size)
        self.linear2 = _zero_init(nn.Linear(ff_size, latent_dim))
        self.dropout = nn.Dropout(dropout)
        self.proj_out = StylizationBlock(latent_dim, embed_dim, dropout)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        y = self.linear2(self.dropout(F.gelu(self.linear1(x))))
        return x + self.proj_out(y, emb)


class DecoderLayer(nn.Module):
    def __init__(self, latent_dim: int, music_dim: int, heads: int, ff_size: int, embed_dim: int, dropout: float):
        super().__init__()
        self.sa_block = LinearTemporalSelfAttention(latent_dim, heads, embed_dim, dropout)
        self.ca_block = LinearTemporalCrossAttention(latent_dim, music_dim, heads, embed_dim, dropout)
        self.ffn = FeedForward(latent_dim, ff_size, embed_dim, dropout)

    def forward(self, x, music, emb, frame_mask):
        x = self.sa_block(x, emb, frame_mask)
        x = self.ca_block(x, music, emb)
        return self.ffn(x, emb)


class MotionTransformer(nn.Module):
    """x0-predicting denoiser. Defaults are Diffusion-Conductor's training options.

    num_frames bounds T (learned positional table); 1800 = 60 s at 30 fps.
    """

    def __init__(
        self,
        input_feats: int = 26,
        num_frames: int = 1800,
        latent_dim: int = 128,
        num_layers: int = 8,
        num_heads: int = 8,
        ff_size: int = 64,
        dropout: float = 0.0,
        cond_mask_prob: float = 0.1,
        motion_mean: list[float] | None = None,
        motion_std: list[float] | None = None,
        beat_features: int = 0,
    ):
        super().__init__()
        self.config = dict(
            input_feats=input_feats, num_frames=num_frames, latent_dim=latent_dim, num_layers=num_layers,
            num_heads=num_heads, ff_size=ff_size, dropout=dropout, cond_mask_prob=cond_mask_prob,
        )
        if beat_features:
            self.config["beat_features"] = beat_features
        if motion_mean is not None or motion_std is not None:
            self.config.update(motion_mean=list(motion_mean), motion_std=list(motion_std))
        # Kept in the config (saved with project checkpoints), not in the state dict, so that official files,
        # which have no statistics, still match the state dict exactly.
        mean = torch.zeros(input_feats) if motion_mean is None else torch.tensor(motion_mean, dtype=torch.float32)
        std = torch.ones(input_feats) if motion_std is None else torch.tensor(motion_std, dtype=torch.float32)
        if mean.shape != (input_feats,) or std.shape != (input_feats,) or not bool((std > 0).all()):
            raise ValueError(f"motion_mean and motion_std need {input_feats} values each, std > 0")
        self.register_buffer("motion_mean", mean, persistent=False)
        self.register_buffer("motion_std", std, persistent=False)
        self.input_feats = input_feats
        self.num_frames = num_frames
        self.latent_dim = latent_dim
        self.cond_mask_prob = cond_mask_prob
        embed_dim = 4 * latent_dim
        music_dim = MusicEncoder.out_dim

        # The music encoder is a frozen, pre-trained M2S-Net encoder. It is kept in eval mode even while the rest
        # trains: the original let its BatchNorm statistics drift in train mode although its weights were frozen.
        self.music_encoder = MusicEncoder()
        self.music_encoder.requires_grad_(False)
        # With beat_features > 0 the beats are an input too, added to the music features (networks.with_beats).
        self.beat_projection = beat_projection(beat_features) if beat_features else None
        self.music_proj = nn.Linear(music_dim, music_dim)  # music → FiLM path (then music_embed)
        self.music_embed = nn.Linear(music_dim, embed_dim)  # shared by the FiLM and the cross-attention paths

        self.joint_embed = nn.Linear(input_feats, latent_dim)
        self.sequence_embedding = nn.Parameter(torch.randn(num_frames, latent_dim))
        self.time_embed = nn.Sequential(nn.Linear(latent_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.blocks = nn.ModuleList(
            [DecoderLayer(latent_dim, embed_dim, num_heads, ff_size, embed_dim, dropout) for _ in range(num_layers)]
        )
        self.out = _zero_init(nn.Linear(latent_dim, input_feats))

    def train(self, mode: bool = True):
        super().train(mode)
        self.music_encoder.eval()
        return self

    @torch.no_grad()
    def encode_music(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (N, 3T, 128) → music features (N, T, 64). Run once per clip; the sampler reuses them every step."""
        return self.music_encoder(mel)

    def drop_music_frames(self, music: torch.Tensor) -> torch.Tensor:
        """Training-time condition dropout: zero each music frame with probability `cond_mask_prob`.

        This is what teaches the unconditional model used by classifier-free guidance (all frames zeroed).
        """
        if not self.training or self.cond_mask_prob <= 0:
            return music
        keep = torch.rand(music.shape[:2] + (1,), device=music.device) >= self.cond_mask_prob
        return music * keep

    def normalise(self, motion: torch.Tensor) -> torch.Tensor:
        """Flattened motion (..., 26) in ConductorMotion100 coordinates → the space diffusion runs in.

        The project standardises each coordinate over its training data: in raw coordinates the motion (wrists
        move by a few hundredths) is tiny against unit noise, and a short training then learns only the mean pose.
        """
        return (motion - self.motion_mean) / self.motion_std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `normalise`: diffusion space → flattened ConductorMotion100 coordinates."""
        return x * self.motion_std + self.motion_mean

    def frame_mask(self, n: int, t: int, lengths: torch.Tensor | None, device) -> torch.Tensor:
        """(N, T, 1) mask of real frames from per-clip lengths *in motion frames*.

        The original passed the clip length in seconds (60) as if it were frames, so in training only frames 0-59
        of each 900-frame window counted in the loss and self-attention saw no other frames' keys and values; at
        inference it used all frames, so training and sampling disagreed. Here lengths are frames, and None means
        every frame is real.
        """
        if lengths is None:
            return torch.ones(n, t, 1, device=device)
        lengths = torch.as_tensor(lengths, device=device).reshape(-1, 1)
        return (torch.arange(t, device=device)[None] < lengths).float().unsqueeze(-1)

    def forward(
        self,
        x_t: torch.Tensor,
        timesteps: torch.Tensor,
        music: torch.Tensor,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x_t (N, T, 26), timesteps (N,), music features (N, T, 64) → predicted x0 (N, T, 26).

        In training mode music frames are randomly zeroed (see drop_music_frames). Pass zeros for an
        unconditional prediction; music of shape (N, 1, 64) stands for the same features at every frame, which
        gives exactly the same result as repeating them (the linear cross-attention of T identical keys equals
        that of one key) at a fraction of the cost, so the unconditional half of guidance is cheap.
        """
        n, t = x_t.shape[:2]
        if t > self.num_frames:
            raise ValueError(f"{t} frames exceed this model's maximum of {self.num_frames}")
        if music.shape[0] != n or music.shape[1] not in (1, t):
            raise ValueError(f"music features {tuple(music.shape)} do not match motion {(n, t)}")
        music = self.drop_music_frames(music)
        music_tokens = self.music_embed(music)  # (N, T, E): cross-attention keys/values
        # Per-frame conditioning: timestep embedding (same for all frames) + the music of that frame.
        emb = self.time_embed(timestep_embedding(timesteps, self.latent_dim))[:, None] + self.music_embed(
            self.music_proj(music)
        )
        h = self.joint_embed(x_t) + self.sequence_embedding[None, :t]
        mask = self.frame_mask(n, t, lengths, x_t.device)
        for block in self.blocks:
            h = block(h, music_tokens, emb, mask)
        return self.out(h)


class ConductorDiffusion:
    """The forward (noising) process for training: the schedule of generators/ddim.py as torch tensors.

    Sampling is generators/ddim.ddim_sample, in numpy, for every backend (wrap the network in
    nets.inference.TorchDenoiser).
    """

    def __init__(self, num_steps: int = DIFFUSION_STEPS):
        self.num_steps = num_steps
        self.alphas_cumprod = alphas_cumprod(num_steps)
        self.betas = 1.0 - self.alphas_cumprod / np.concatenate([[1.0], self.alphas_cumprod[:-1]])

    def _abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        values = torch.as_tensor(self.alphas_cumprod, dtype=torch.float64, device=like.device)[t]
        return values.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Sample x_t ~ q(x_t | x0) = N(√ᾱ_t x0, (1 − ᾱ_t) I)."""
        noise = torch.randn_like(x0) if noise is None else noise
        abar = self._abar(t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise
