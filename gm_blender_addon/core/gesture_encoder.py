"""The gesture vocabulary's networks in numpy, with hand-written backward passes and Adam, so that training and
inference run the same from the command line and inside Blender (which has numpy but no PyTorch).

A gesture window (keypoints → per-token features) passes a small pre-LayerNorm Transformer, is pooled over its
valid tokens (their mean, and how the second half differs from the first) and projected to the joint space; a
description's or a meaning's stored sentence embedding is projected there by its own head. Every output is
L2-normalised, and the three modalities are pulled together by a symmetric InfoNCE loss between each pair:
L = L(g, d) + α·L(g, m) + β·L(d, m).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .motion import FPS, JOINT, N_JOINTS, SHOULDER_WIDTH

Progress = Callable[[float, str], None]
Weights = dict[str, np.ndarray]

# Velocities in shoulder widths per second are doubled to spread about as widely as the positions.
VELOCITY_SCALE = 2.0
N_FEATURES = 5 * N_JOINTS
_MASKED = -1e9
_LN_EPS = 1e-5
_GELU_C = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class Architecture:
    """Sizes of the networks; kept with the trained weights. Chosen on the development performances: 128 wide
    matched 256 there at a third of the time a training step takes on the CPU."""

    token_fps: int = 10
    window_s: float = 4.0
    width: int = 128
    layers: int = 2
    heads: int = 4
    mlp: int = 256
    joint_size: int = 128
    text_size: int = 384

    @property
    def window_tokens(self) -> int:
        return int(round(self.window_s * self.token_fps))

    @property
    def window_frames(self) -> int:
        return int(round(self.window_s * FPS))

    def record(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainingSettings:
    """The loss weights, temperature and optimiser settings. The steps suit a vocabulary of a few gestures (5
    gestures × 10 s train in under 2 minutes on 2 cores); the evaluation's 11 gestures take more
    (`gesture_set.EVALUATION_STEPS`)."""

    steps: int = 600
    batch: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 40
    temperature: float = 0.1
    alpha: float = 1.0  # weight of L(gesture, meaning)
    beta: float = 0.5  # weight of L(description, meaning)
    clip_norm: float = 1.0

    def record(self) -> dict:
        return asdict(self)


# --- features ------------------------------------------------------------------------------------------------------

def token_features(keypoints: np.ndarray, fps: float, token_fps: int) -> np.ndarray:
    """Per-token features (n, 65) float32 of keypoints (T, 13, 2): each joint relative to the shoulder midpoint in
    shoulder widths, its velocity and its speed, each the mean over the frames of a token (`token_fps` a second).

    Relative positions make the features blind to where the performer stands in the picture. The speed is averaged
    at the full frame rate, so a quick beat still shows as movement where its back and forth cancels in a token.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if abs(fps - FPS) > 1e-6:
        t_src = np.arange(len(kp)) / fps
        t_dst = np.arange(int(np.floor(t_src[-1] * FPS)) + 1) / FPS
        kp = np.stack([np.interp(t_dst, t_src, kp[:, j, c]) for j in range(N_JOINTS) for c in range(2)],
                      axis=1).reshape(len(t_dst), N_JOINTS, 2)
    centre = 0.5 * (kp[:, JOINT["left_shoulder"]] + kp[:, JOINT["right_shoulder"]])
    relative = (kp - centre[:, None]) / SHOULDER_WIDTH
    velocity = (np.gradient(relative, axis=0) * FPS * VELOCITY_SCALE if len(kp) > 1
                else np.zeros_like(relative))
    frames = np.concatenate([relative.reshape(len(kp), -1), velocity.reshape(len(kp), -1),
                             np.linalg.norm(velocity, axis=-1)], axis=1)
    step = FPS // token_fps
    n = len(frames) // step
    return frames[: n * step].reshape(n, step, N_FEATURES).mean(axis=1).astype(np.float32)


def batch_tokens(windows: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of token features stacked to (B, length, F), zero-padded, with the mask (B, length) of real tokens."""
    tokens = np.zeros((len(windows), length, N_FEATURES), dtype=windows[0].dtype)
    mask = np.zeros((len(windows), length), dtype=bool)
    for i, window in enumerate(windows):
        tokens[i, : len(window)] = window[:length]
        mask[i, : len(window)] = True
    return tokens, mask


# --- weights -------------------------------------------------------------------------------------------------------

def init_weights(arch: Architecture, seed: int = 0, dtype=np.float32) -> Weights:
    rng = np.random.default_rng(seed)

    def dense(n_in: int, n_out: int) -> np.ndarray:
        return rng.normal(0.0, 1.0 / math.sqrt(n_in), (n_in, n_out))

    d = arch.width
    w = {"embed.w": dense(N_FEATURES, d), "embed.b": np.zeros(d)}
    for i in range(arch.layers):
        p = f"layer{i}."
        # Residual branches start small so that the untrained stack is close to the identity.
        w.update({
            p + "ln1.g": np.ones(d), p + "ln1.b": np.zeros(d),
            p + "qkv.w": dense(d, 3 * d), p + "qkv.b": np.zeros(3 * d),
            p + "out.w": dense(d, d) / math.sqrt(2 * arch.layers), p + "out.b": np.zeros(d),
            p + "ln2.g": np.ones(d), p + "ln2.b": np.zeros(d),
            p + "mlp1.w": dense(d, arch.mlp), p + "mlp1.b": np.zeros(arch.mlp),
            p + "mlp2.w": dense(arch.mlp, d) / math.sqrt(2 * arch.layers), p + "mlp2.b": np.zeros(d),
        })
    w.update({"final.g": np.ones(d), "final.b": np.zeros(d)})
    for head, n_in in (("gesture", 2 * d), ("description", arch.text_size), ("meaning", arch.text_size)):
        w.update({f"{head}.w1": dense(n_in, d), f"{head}.b1": np.zeros(d),
                  f"{head}.w2": dense(d, arch.joint_size), f"{head}.b2": np.zeros(arch.joint_size)})
    return {name: value.astype(dtype) for name, value in w.items()}


def sinusoids(length: int, width: int, dtype=np.float32) -> np.ndarray:
    """Fixed sinusoidal positions (length, width), as in the original Transformer."""
    position = np.arange(length)[:, None]
    rate = np.exp(-math.log(10000.0) * np.arange(0, width, 2) / width)
    table = np.zeros((length, width))
    table[:, 0::2] = np.sin(position * rate)
    table[:, 1::2] = np.cos(position * rate)
    return table.astype(dtype)


# --- layers: each forward returns (output, cache); each backward returns the input's gradient ------------------

def _layer_norm(x, g, b):
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    inv = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + _LN_EPS)
    normed = centred * inv
    return normed * g + b, (normed, inv, g)


def _layer_norm_backward(cache, dy, grads, name):
    normed, inv, g = cache
    axes = tuple(range(dy.ndim - 1))
    grads[name + ".g"] = (dy * normed).sum(axis=axes)
    grads[name + ".b"] = dy.sum(axis=axes)
    dn = dy * g
    return inv * (dn - dn.mean(axis=-1, keepdims=True) - normed * (dn * normed).mean(axis=-1, keepdims=True))


def _dense(x, w, b):
    return x @ w + b, x


def _dense_backward(x, dy, w, grads, weight_name, bias_name):
    grads[weight_name] = x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
    grads[bias_name] = dy.reshape(-1, dy.shape[-1]).sum(axis=0)
    return dy @ w.T


def _gelu(x):
    inner = _GELU_C * (x + 0.044715 * x**3)
    tanh = np.tanh(inner)
    return 0.5 * x * (1.0 + tanh), (x, tanh)


def _gelu_backward(cache, dy):
    x, tanh = cache
    d_inner = _GELU_C * (1.0 + 3 * 0.044715 * x * x)
    return dy * (0.5 * (1.0 + tanh) + 0.5 * x * (1.0 - tanh * tanh) * d_inner)


def _attention(x, w, p, heads, key_bias):
    batch, length, width = x.shape
    size = width // heads
    qkv, qkv_cache = _dense(x, w[p + "qkv.w"], w[p + "qkv.b"])
    q, k, v = (qkv[..., i * width:(i + 1) * width].reshape(batch, length, heads, size).transpose(0, 2, 1, 3)
               for i in range(3))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + key_bias
    scores -= scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(axis=-1, keepdims=True)
    mixed = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
    out, out_cache = _dense(mixed, w[p + "out.w"], w[p + "out.b"])
    return out, (qkv_cache, q, k, v, weights, out_cache)


def _attention_backward(cache, dy, w, p, heads, grads):
    qkv_cache, q, k, v, weights, out_cache = cache
    batch, length, width = dy.shape
    size = width // heads
    d_mixed = _dense_backward(out_cache, dy, w[p + "out.w"], grads, p + "out.w", p + "out.b")
    d_mixed = d_mixed.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)
    d_weights = d_mixed @ v.transpose(0, 1, 3, 2)
    dv = weights.transpose(0, 1, 3, 2) @ d_mixed
    d_scores = weights * (d_weights - (d_weights * weights).sum(axis=-1, keepdims=True)) / math.sqrt(size)
    dq = d_scores @ k
    dk = d_scores.transpose(0, 1, 3, 2) @ q
    d_qkv = np.concatenate([d.transpose(0, 2, 1, 3).reshape(batch, length, width) for d in (dq, dk, dv)], axis=-1)
    return _dense_backward(qkv_cache, d_qkv, w[p + "qkv.w"], grads, p + "qkv.w", p + "qkv.b")


def _head(x, w, name):
    hidden, c1 = _dense(x, w[name + ".w1"], w[name + ".b1"])
    active = np.maximum(hidden, 0.0)
    z, c2 = _dense(active, w[name + ".w2"], w[name + ".b2"])
    norm = np.sqrt((z * z).sum(axis=-1, keepdims=True))
    e = z / norm
    return e, (c1, hidden > 0, c2, e, norm)


def _head_backward(cache, de, w, name, grads):
    c1, positive, c2, e, norm = cache
    dz = (de - e * (de * e).sum(axis=-1, keepdims=True)) / norm
    d_active = _dense_backward(c2, dz, w[name + ".w2"], grads, name + ".w2", name + ".b2")
    return _dense_backward(c1, d_active * positive, w[name + ".w1"], grads, name + ".w1", name + ".b1")


# --- encoders ------------------------------------------------------------------------------------------------------

def pooling_shares(mask: np.ndarray) -> np.ndarray:
    """(2, B, T) weights over each window's real tokens: the mean, and the second half's mean less the first's.

    The difference shows how a window changes (a beat quickening, a pattern growing) without the network having to
    learn to compare its own positions.
    """
    count = mask.sum(axis=1, keepdims=True)
    order = np.cumsum(mask, axis=1)
    half = np.maximum(count // 2, 1)
    first = mask & (order <= half)
    second = mask & (order > count - half)
    return np.stack([mask / count, second / half - first / half])


def encode_gestures(w: Weights, arch: Architecture, tokens: np.ndarray, mask: np.ndarray):
    """Unit embeddings (B, joint_size) of token windows (B, T, F) with their masks (B, T); and the backward cache."""
    dtype = w["embed.w"].dtype
    tokens = tokens.astype(dtype, copy=False)
    length = tokens.shape[1]
    key_bias = np.where(mask, 0.0, _MASKED).astype(dtype)[:, None, None, :]
    h, embed_cache = _dense(tokens, w["embed.w"], w["embed.b"])
    h = h + sinusoids(length, arch.width, dtype)
    caches = []
    for i in range(arch.layers):
        p = f"layer{i}."
        a, ln1 = _layer_norm(h, w[p + "ln1.g"], w[p + "ln1.b"])
        attended, att = _attention(a, w, p, arch.heads, key_bias)
        h = h + attended
        c, ln2 = _layer_norm(h, w[p + "ln2.g"], w[p + "ln2.b"])
        u, mlp1 = _dense(c, w[p + "mlp1.w"], w[p + "mlp1.b"])
        activated, gelu = _gelu(u)
        out, mlp2 = _dense(activated, w[p + "mlp2.w"], w[p + "mlp2.b"])
        h = h + out
        caches.append((ln1, att, ln2, mlp1, gelu, mlp2))
    f, final = _layer_norm(h, w["final.g"], w["final.b"])
    shares = pooling_shares(mask).astype(dtype)
    pooled = np.einsum("btd,kbt->bkd", f, shares).reshape(len(f), -1)
    e, head = _head(pooled, w, "gesture")
    return e, (embed_cache, caches, final, shares, head)


def encode_gestures_backward(w: Weights, arch: Architecture, cache, de: np.ndarray) -> Weights:
    embed_cache, caches, final, shares, head = cache
    grads: Weights = {}
    d_pooled = _head_backward(head, de, w, "gesture", grads).reshape(len(de), len(shares), -1)
    dh = _layer_norm_backward(final, np.einsum("bkd,kbt->btd", d_pooled, shares), grads, "final")
    for i in reversed(range(arch.layers)):
        p = f"layer{i}."
        ln1, att, ln2, mlp1, gelu, mlp2 = caches[i]
        d_act = _dense_backward(mlp2, dh, w[p + "mlp2.w"], grads, p + "mlp2.w", p + "mlp2.b")
        dc = _dense_backward(mlp1, _gelu_backward(gelu, d_act), w[p + "mlp1.w"], grads, p + "mlp1.w",
                             p + "mlp1.b")
        dh = dh + _layer_norm_backward(ln2, dc, grads, p + "ln2")
        da = _attention_backward(att, dh, w, p, arch.heads, grads)
        dh = dh + _layer_norm_backward(ln1, da, grads, p + "ln1")
    _dense_backward(embed_cache, dh, w["embed.w"], grads, "embed.w", "embed.b")
    return grads


def encode_texts(w: Weights, head: str, sentence_embeddings: np.ndarray):
    """Unit embeddings in the joint space of stored sentence embeddings, through the `head` ("description" or
    "meaning") projection; and the backward cache."""
    return _head(sentence_embeddings.astype(w[head + ".w1"].dtype, copy=False), w, head)


def encode_texts_backward(w: Weights, head: str, cache, de: np.ndarray) -> Weights:
    grads: Weights = {}
    _head_backward(cache, de, w, head, grads)
    return grads


# --- loss ----------------------------------------------------------------------------------------------------------

def info_nce(a: np.ndarray, b: np.ndarray, positive: np.ndarray, temperature: float):
    """Symmetric InfoNCE between unit embeddings a (N, D) and b (M, D): (loss, d loss/da, d loss/db).

    `positive` (N, M) marks the matching pairs; a row or column may have several (every performance of a gesture
    matches its one description), and the target is then spread evenly over them. Rows or columns without any
    positive only serve as negatives.
    """
    logits = a @ b.T / temperature
    d_logits = np.zeros_like(logits)
    loss = 0.0
    for axis in (1, 0):
        counts = positive.sum(axis=axis, keepdims=True)
        valid = counts > 0
        n_valid = int(valid.sum())
        if not n_valid:
            continue
        target = np.where(valid, positive / np.maximum(counts, 1), 0.0)
        shifted = logits - logits.max(axis=axis, keepdims=True)
        log_prob = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        loss += 0.5 * float(-(target * log_prob).sum()) / n_valid
        d_logits += 0.5 * (np.exp(log_prob) * valid - target) / n_valid
    d_logits /= temperature
    return loss, (d_logits @ b).astype(a.dtype), (d_logits.T @ a).astype(b.dtype)


# --- optimiser -----------------------------------------------------------------------------------------------------

class Adam:
    def __init__(self, weights: Weights, learning_rate: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.learning_rate, self.betas, self.eps = learning_rate, betas, eps
        self.first = {k: np.zeros_like(v) for k, v in weights.items()}
        self.second = {k: np.zeros_like(v) for k, v in weights.items()}
        self.steps = 0

    def step(self, weights: Weights, grads: Weights, learning_rate: float | None = None) -> None:
        self.steps += 1
        b1, b2 = self.betas
        rate = self.learning_rate if learning_rate is None else learning_rate
        step_size, root_correction = rate / (1 - b1**self.steps), math.sqrt(1 - b2**self.steps)
        for name, grad in grads.items():
            m, v = self.first[name], self.second[name]
            m *= b1
            m += (1 - b1) * grad
            v *= b2
            v += (1 - b2) * grad * grad
            weights[name] -= (step_size * m / (np.sqrt(v) / root_correction + self.eps)).astype(weights[name].dtype)


# --- training ------------------------------------------------------------------------------------------------------

@dataclass
class TrainingSet:
    """What training reads from a vocabulary: each clip's token features, and which description and meaning each
    clip has, as indices into the stored sentence embeddings of the distinct texts."""

    clip_tokens: list[np.ndarray]
    description_of: np.ndarray  # (N,) int
    meaning_of: np.ndarray  # (N,) int
    descriptions: np.ndarray  # (D, 384) sentence embeddings
    meanings: np.ndarray  # (M, 384)


@dataclass
class TrainingResult:
    weights: Weights
    losses: list[float]
    seconds: float


def total_loss(w: Weights, arch: Architecture, settings: TrainingSettings, tokens, mask, description_of,
               meaning_of, descriptions, meanings, with_grads: bool = True):
    """L = L(g, d) + α·L(g, m) + β·L(d, m) on one batch of windows and all the vocabulary's texts; and its
    gradients."""
    g, g_cache = encode_gestures(w, arch, tokens, mask)
    d, d_cache = encode_texts(w, "description", descriptions)
    m, m_cache = encode_texts(w, "meaning", meanings)
    gd = description_of[:, None] == np.arange(len(d))[None, :]
    gm = meaning_of[:, None] == np.arange(len(m))[None, :]
    dm = np.zeros((len(d), len(m)), dtype=bool)
    dm[description_of, meaning_of] = True
    tau = settings.temperature
    loss_gd, dg1, dd1 = info_nce(g, d, gd, tau)
    loss_gm, dg2, dm2 = info_nce(g, m, gm, tau)
    loss_dm, dd3, dm3 = info_nce(d, m, dm, tau)
    loss = loss_gd + settings.alpha * loss_gm + settings.beta * loss_dm
    if not with_grads:
        return loss, None
    grads = encode_gestures_backward(w, arch, g_cache, dg1 + settings.alpha * dg2)
    grads.update(encode_texts_backward(w, "description", d_cache, dd1 + settings.beta * dd3))
    grads.update(encode_texts_backward(w, "meaning", m_cache, settings.alpha * dm2 + settings.beta * dm3))
    return loss, grads


def random_windows(clip_tokens: list[np.ndarray], chosen: np.ndarray, length: int, rng) -> list[np.ndarray]:
    """A random window of `length` tokens from each chosen clip (the whole clip where it is shorter)."""
    out = []
    for index in chosen:
        clip = clip_tokens[index]
        start = int(rng.integers(0, len(clip) - length + 1)) if len(clip) > length else 0
        out.append(clip[start:start + length])
    return out


def train(data: TrainingSet, arch: Architecture, settings: TrainingSettings, seed: int = 0,
          progress: Progress | None = None) -> TrainingResult:
    """Weights trained on `data` by Adam on random windows of the clips, drawn evenly over the descriptions.

    `progress(fraction, message)` is called every few steps; an exception it raises (a cancelled job) stops
    training and propagates.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    w = init_weights(arch, seed)
    optimiser = Adam(w, settings.learning_rate)
    descriptions = data.descriptions.astype(np.float32)
    meanings = data.meanings.astype(np.float32)
    # Clips are drawn so that each description is equally likely, however many performances it has.
    per_description = np.bincount(data.description_of, minlength=len(descriptions))
    draw = 1.0 / per_description[data.description_of]
    draw /= draw.sum()
    losses = []
    for step in range(settings.steps):
        if progress is not None and step % 10 == 0:
            recent = f", loss {np.mean(losses[-10:]):.3f}" if losses else ""
            progress(step / settings.steps, f"Training step {step}/{settings.steps}{recent}")
        chosen = rng.choice(len(data.clip_tokens), size=settings.batch, p=draw)
        tokens, mask = batch_tokens(random_windows(data.clip_tokens, chosen, arch.window_tokens, rng),
                                    arch.window_tokens)
        loss, grads = total_loss(w, arch, settings, tokens, mask, data.description_of[chosen],
                                 data.meaning_of[chosen], descriptions, meanings)
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        if norm > settings.clip_norm:
            grads = {k: g * (settings.clip_norm / norm) for k, g in grads.items()}
        warm = min(1.0, (step + 1) / max(settings.warmup_steps, 1))
        # Linear warm-up, then a cosine decay to a tenth of the rate.
        decay = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / settings.steps))
        optimiser.step(w, grads, settings.learning_rate * warm * decay)
        losses.append(loss)
    if progress is not None:
        progress(1.0, f"Trained {settings.steps} steps, loss {np.mean(losses[-10:]):.3f}")
    return TrainingResult(weights=w, losses=losses, seconds=time.perf_counter() - started)


def embed_windows(w: Weights, arch: Architecture, windows: list[np.ndarray], batch: int = 64) -> np.ndarray:
    """Unit gesture embeddings (N, joint_size) of token windows, in batches."""
    out = []
    for start in range(0, len(windows), batch):
        tokens, mask = batch_tokens(windows[start:start + batch], arch.window_tokens)
        out.append(encode_gestures(w, arch, tokens, mask)[0])
    return np.concatenate(out) if out else np.zeros((0, arch.joint_size), dtype=np.float32)
