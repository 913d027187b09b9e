"""Metrics for generated conducting motion, as defined by VirtualConductor (VC) and Diffusion-Conductor (DC).

One implementation for training logs, evaluation scripts and the comparison UI. numpy/scipy only; torch is imported
lazily by `motion_features_fn`, the only helper that needs a network (the M2S-Net motion encoder behind SE, FGD
and diversity).

Shapes and conventions
----------------------
- A motion is an array (T, 13, 2) at 30 fps in ConductorMotion100 coordinates (see core/motion.py).
- "Motions" is a single motion, a batch array (N, T, 13, 2), or a list of motions. Paired metrics take two such
  collections of the same length, matched item by item (real_i with fake_i).
- Features are the motion encoder's (64, T) output per motion (channels first, as the official code used them).
- Every value is a Python float.

Values are comparable with published numbers where the formula is reproduced exactly: MSE, SDP, W-dis, RDE, SCE
(VC M2S-GAN evaluator), SE (VC: L1; DC "old metrics": squared), FGD, diversity and `beat_consistency_official`
(DC). `beat_consistency` is the corrected BC (music and motion beats on the same 30 fps frame grid).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from scipy import linalg, signal

from .motion import JOINT

MOTION_FPS = 30
MEL_FPS = 90

# RDE: Welch PSD bins 6…25 inclusive (Δf = 30/256 Hz ≈ 0.117 Hz, so 0.70–2.93 Hz, ≈ 42–176 BPM).
RDE_BINS = slice(6, 26)
RDE_MIN_FRAMES = 256  # one full Welch segment; shorter input would change the bin frequencies
# SCE: the strength contour is averaged over 2 s windows every 1 s.
SCE_WINDOW, SCE_STRIDE = 60, 30
LOG_GAIN = 1e7  # RDE and SCE are reported as log(x·1e7 + 1)

# BC, music side: the official code runs librosa on the 90 Hz mel as if it were an STFT with hop 512 at
# sr = 90·512 = 46080, so that one envelope frame is one mel frame.
BC_SR, BC_HOP = MEL_FPS * 512, 512
BC_TIGHTNESS = 100
BC_MINIMA_ORDER = 10  # a motion beat is a speed minimum lower than the 10 frames on each side
BC_SIGMA = 3.0  # tolerance in frames of the Gaussian beat-matching score

FGD_FAILED = 1e10  # what the official evaluator reports when the matrix square root fails

# Ictus F: an ictus is a lowest point of the right wrist that stands out from the motion around it by at least this
# much (1/50 of the shoulder width), so that a hand held still does not beat.
ICTUS_PROMINENCE = 0.004


# --------------------------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------------------------


def _motion(motion) -> np.ndarray:
    m = np.asarray(motion, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (13, 2):
        raise ValueError(f"a motion must have shape (T, 13, 2), got {m.shape}")
    return m


def _motions(motions) -> list[np.ndarray]:
    """A single motion, an (N, T, 13, 2) batch or a list of motions → list of (T, 13, 2) float64 arrays."""
    if isinstance(motions, np.ndarray) or not isinstance(motions, (list, tuple)):
        array = np.asarray(motions, dtype=np.float64)
        if array.ndim == 3:
            return [_motion(array)]
        if array.ndim == 4:
            return [_motion(m) for m in array]
        raise ValueError(f"expected (T, 13, 2) or (N, T, 13, 2) motion, got shape {array.shape}")
    return [_motion(m) for m in motions]


def _pairs(real, fake) -> list[tuple[np.ndarray, np.ndarray]]:
    real, fake = _motions(real), _motions(fake)
    if len(real) != len(fake):
        raise ValueError(f"{len(real)} real motions but {len(fake)} generated ones: they are compared pairwise")
    for i, (r, f) in enumerate(zip(real, fake)):
        if r.shape != f.shape:
            raise ValueError(f"pair {i}: real {r.shape} and generated {f.shape} differ in length")
    if not real:
        raise ValueError("no motions given")
    return list(zip(real, fake))


def _series(motion: np.ndarray) -> np.ndarray:
    """(T, 13, 2) → (T, 26), column 2·joint + coordinate."""
    return motion.reshape(motion.shape[0], -1)


def _features(features) -> list[np.ndarray]:
    """One (64, T) array, an (N, 64, T) batch or a list of them → list of 2-D float64 arrays."""
    if isinstance(features, np.ndarray) or not isinstance(features, (list, tuple)):
        array = np.asarray(features, dtype=np.float64)
        if array.ndim == 2:
            return [array]
        if array.ndim == 3:
            return list(array)
        raise ValueError(f"expected (64, T) or (N, 64, T) features, got shape {array.shape}")
    out = [np.asarray(f, dtype=np.float64) for f in features]
    if any(f.ndim != 2 for f in out):
        raise ValueError("every feature array must be 2-D (64, T)")
    return out


# --------------------------------------------------------------------------------------------------------------
# VC M2S-GAN evaluator metrics
# --------------------------------------------------------------------------------------------------------------


def mse(real, fake) -> float:
    """Mean squared error over all joints, coordinates and frames; averaged over pairs."""
    return float(np.mean([np.mean((f - r) ** 2) for r, f in _pairs(real, fake)]))


def motion_sd(motion) -> float:
    """SD of one motion: the mean over the 26 (joint, coordinate) series of their unbiased std over time."""
    return float(np.mean(np.std(_series(_motion(motion)), axis=0, ddof=1)))


def sdp(real, fake) -> float:
    """SD percentage: mean SD of generated motions / mean SD of real motions × 100 (100 = same liveliness)."""
    sd_real = np.mean([motion_sd(m) for m in _motions(real)])
    sd_fake = np.mean([motion_sd(m) for m in _motions(fake)])
    return float(100.0 * sd_fake / sd_real)


def w_distance(real_scores, fake_scores) -> float:
    """Wasserstein estimate from critic scores: mean(D(real) − D(fake)).

    Scores are arrays of the discriminator outputs for matched real/generated windows, e.g. (N,) or (N, 1).
    """
    real_scores = np.asarray(real_scores, dtype=np.float64)
    fake_scores = np.asarray(fake_scores, dtype=np.float64)
    if real_scores.shape != fake_scores.shape:
        raise ValueError(f"score shapes differ: {real_scores.shape} vs {fake_scores.shape}")
    return float(np.mean(real_scores - fake_scores))


def mean_psd(motion) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD (scipy defaults at 30 Hz: Hann, 256-sample segments, 50 % overlap, constant detrend, density)
    of each of the 26 series, averaged over the series → (frequencies (129,), psd (129,))."""
    m = _motion(motion)
    if m.shape[0] < RDE_MIN_FRAMES:
        raise ValueError(
            f"RDE needs at least {RDE_MIN_FRAMES} frames ({RDE_MIN_FRAMES / MOTION_FPS:.1f} s), got {m.shape[0]}"
        )
    freqs, psd = signal.welch(_series(m), fs=MOTION_FPS, axis=0)
    return freqs, psd.mean(axis=1)


def rde(real, fake) -> float:
    """Rhythm Density Error: how differently the motions distribute energy over 0.7–2.9 Hz (beat rates).

    Per pair: mean over Welch bins 6…25 of (PSD_real − PSD_fake)²; then log(mean over pairs × 1e7 + 1).
    """
    errors = []
    for r, f in _pairs(real, fake):
        diff = mean_psd(r)[1][RDE_BINS] - mean_psd(f)[1][RDE_BINS]
        errors.append(np.mean(diff**2))
    return float(np.log(np.mean(errors) * LOG_GAIN + 1.0))


def strength_contour(motion) -> np.ndarray:
    """(T, 13, 2) → (floor((T − 60)/30) + 1,): |signed mean frame-to-frame displacement| averaged over 2 s windows.

    Displacement v_t = m_{t−1} − m_t (v_0 = 0) is averaged over the 26 series *with sign*, then made absolute, as
    in the official code; so opposite movements of two hands cancel.
    """
    m = _series(_motion(motion))
    if m.shape[0] < SCE_WINDOW:
        raise ValueError(f"SCE needs at least {SCE_WINDOW} frames, got {m.shape[0]}")
    velocity = np.zeros_like(m)
    velocity[1:] = m[:-1] - m[1:]
    strength = np.abs(velocity.mean(axis=1))
    starts = range(0, len(strength) - SCE_WINDOW + 1, SCE_STRIDE)
    return np.array([strength[s : s + SCE_WINDOW].mean() for s in starts])


def sce(real, fake) -> float:
    """Strength Contour Error: log(mean over pairs of MSE(contour_fake, contour_real) × 1e7 + 1)."""
    errors = [np.mean((strength_contour(f) - strength_contour(r)) ** 2) for r, f in _pairs(real, fake)]
    return float(np.log(np.mean(errors) * LOG_GAIN + 1.0))


# --------------------------------------------------------------------------------------------------------------
# Feature-based metrics (M2S-Net motion encoder)
# --------------------------------------------------------------------------------------------------------------


def motion_features_fn(encoder) -> Callable[[np.ndarray], np.ndarray]:
    """A function motion (T, 13, 2) → features (64, T) from a MotionEncoder or an M2S-Net checkpoint path.

    Imports torch (lazily). Use the same encoder for every number you want to compare: VC computed SE with the
    M2S-Net trained on the train split; DC used its own M2S-Net for FGD/diversity.
    """
    import torch

    if isinstance(encoder, (str, Path)):
        from ..generators.nets.checkpoints import load_motion_encoder

        encoder = load_motion_encoder(encoder)
    encoder.eval()

    def features(motion) -> np.ndarray:
        x = torch.as_tensor(np.asarray(motion, dtype=np.float32))[None]
        with torch.no_grad():
            return encoder.features(x)[0].cpu().numpy()

    return features


def sync_error(real, fake, features: Callable[[np.ndarray], np.ndarray], squared: bool = False) -> float:
    """SE: mean |F(real) − F(fake)| over the (64, T) motion features, averaged over pairs.

    `features` maps a motion to (64, T), e.g. `motion_features_fn(encoder)`. squared=True gives DC's "old metrics"
    variant (mean squared difference). VC printed this as MPE / "Sync Loss".
    """
    values = []
    for r, f in _pairs(real, fake):
        diff = np.asarray(features(f), dtype=np.float64) - np.asarray(features(r), dtype=np.float64)
        values.append(np.mean(diff**2) if squared else np.mean(np.abs(diff)))
    return float(np.mean(values))


def stack_features(features) -> np.ndarray:
    """List of (64, T) → (64·N, T): each channel of each clip is one observation of a T-dimensional vector.

    This is DC's convention: the FGD "feature dimension" is time, not channels. All clips need the same T.
    """
    feats = _features(features)
    lengths = {f.shape[1] for f in feats}
    if len(lengths) != 1:
        raise ValueError(f"all feature arrays need the same length to be stacked, got {sorted(lengths)}")
    return np.concatenate(feats, axis=0)


class FrechetDistanceError(ValueError):
    """sqrtm(Σ₁Σ₂) kept a significant imaginary part, so the Fréchet distance is undefined."""


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2·sqrtm(Σ₁Σ₂)).

    As in the official code: if sqrtm gives non-finite values, retry with eps added to both diagonals; drop the
    imaginary part if every diagonal imaginary part is below 1e-3, else raise FrechetDistanceError.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            worst = np.max(np.abs(np.diagonal(covmean).imag))
            raise FrechetDistanceError(f"sqrtm has imaginary component {worst:.3g}")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _feature_statistics(stacked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return stacked.mean(axis=0), np.cov(stacked, rowvar=False)


def fgd(real_features, fake_features, per_window: bool = False, official_fallback: bool = False) -> float:
    """Fréchet Gesture Distance between real and generated motion-encoder features.

    real_features / fake_features: lists of (64, T) arrays (or (N, 64, T)); all with the same T.
    per_window=False (DC diffusion evaluation): stack all clips (see stack_features) and compare once.
    per_window=True (DC's M2S-GAN evaluation): compute FGD pair by pair and average.
    official_fallback=True returns 1e10 instead of raising FrechetDistanceError, as the official evaluator did.
    Cost grows as T³ (a T×T matrix square root): about a second for T = 900.
    """
    real, fake = _features(real_features), _features(fake_features)
    groups = list(zip(real, fake)) if per_window else [(real, fake)]
    values = []
    for r, f in groups:
        try:
            values.append(
                frechet_distance(*_feature_statistics(stack_features(r)), *_feature_statistics(stack_features(f)))
            )
        except FrechetDistanceError:
            if not official_fallback:
                raise
            values.append(FGD_FAILED)
    return float(np.mean(values))


def feature_distance(real_features, fake_features) -> float:
    """DC's "feat_dist": mean over stacked rows of the L1 distance (sum over T) between paired rows."""
    r, f = stack_features(real_features), stack_features(fake_features)
    if r.shape != f.shape:
        raise ValueError(f"stacked feature shapes differ: {r.shape} vs {f.shape}")
    return float(np.mean(np.sum(np.abs(r - f), axis=1)))


def diversity(features, max_items: int = 500, seed: int | None = None) -> float:
    """DC diversity of generated motions: mean over stacked rows of the L1 distance (sum over T) between the
    features of the first ≤ max_items clips and the same clips in a random order (a clip may meet itself)."""
    feats = _features(features)[:max_items]
    order = np.random.default_rng(seed).permutation(len(feats))
    first = stack_features(feats)
    shuffled = stack_features([feats[i] for i in order])
    return float(np.mean(np.sum(np.abs(first - shuffled), axis=1)))


# --------------------------------------------------------------------------------------------------------------
# Beat consistency
# --------------------------------------------------------------------------------------------------------------


def seed_variation(motions: list[np.ndarray]) -> float:
    """How much seeds change the motion, in %: 100 × the mean std across seeds (per frame and coordinate) / the
    mean temporal std (per coordinate, per seed)."""
    stack = np.stack([np.asarray(m, dtype=np.float64).reshape(len(m), -1) for m in motions])  # (seeds, T, 26)
    across = stack.std(axis=0).mean()
    temporal = stack.std(axis=1).mean()
    return float(100.0 * across / temporal) if temporal > 0 else 0.0


def music_beat_frames_90hz(mel) -> np.ndarray:
    """Beat indices on the 90 Hz mel frame grid, found exactly as DC's evaluation did.

    mel: (T90, 128), the official-compatible normalised mel (core/audio.py). librosa onset strength on the mel
    (as if it were a spectrogram at sr 46080, hop 512), then librosa's dynamic-programming beat tracker
    (tightness 100, starting tempo 120 BPM).
    """
    import librosa  # heavy import; only BC needs it

    mel = np.asarray(mel, dtype=np.float64)
    if mel.ndim != 2 or mel.shape[1] != 128:
        raise ValueError(f"mel must have shape (T, 128), got {mel.shape}")
    envelope = librosa.onset.onset_strength(S=mel.T, sr=BC_SR)
    _, beats = librosa.beat.beat_track(
        onset_envelope=envelope, sr=BC_SR, hop_length=BC_HOP, tightness=BC_TIGHTNESS
    )
    return np.unique(np.asarray(beats, dtype=np.int64))


def music_beat_times(mel) -> np.ndarray:
    """Beat times in seconds from the mel (same tracker as music_beat_frames_90hz)."""
    return music_beat_frames_90hz(mel) / MEL_FPS


def motion_speed(motion) -> np.ndarray:
    """(T, 13, 2) → (T,): per-joint speed ‖x_t − x_{t−1}‖ summed over the 13 joints (0 at t = 0)."""
    m = _motion(motion)
    velocity = np.zeros_like(m)
    velocity[1:] = m[1:] - m[:-1]
    return np.linalg.norm(velocity, axis=2).sum(axis=1)


def motion_beat_frames(motion, order: int = BC_MINIMA_ORDER) -> np.ndarray:
    """Motion beats: frames (30 fps) where the summed joint speed is a strict local minimum within ±order frames
    (a conductor's hand briefly stops at the ictus)."""
    return signal.argrelextrema(motion_speed(motion), np.less, order=order)[0]


def ictus_frames(motion, prominence: float = ICTUS_PROMINENCE) -> tuple[np.ndarray, np.ndarray]:
    """The right hand's ictus, its lowest points (image y grows downwards): (frames, prominences)."""
    frames, properties = signal.find_peaks(_motion(motion)[:, JOINT["right_wrist"], 1], prominence=prominence)
    return frames, properties["prominences"]


def ictus_times(motion) -> np.ndarray:
    """Times in seconds of the right hand's ictus (`ictus_frames`), to score against music beats (ictus F)."""
    return ictus_frames(motion)[0] / MOTION_FPS


def beat_alignment_score(music_beats, motion_beats, sigma: float = BC_SIGMA) -> float:
    """Mean over music beats b of exp(−min_m (b − m)² / (2σ²)), beats on one frame grid.

    0 when there are no motion beats; NaN when there are no music beats (undefined; the official code divided by 0).
    """
    music_beats = np.asarray(music_beats, dtype=np.float64).ravel()
    motion_beats = np.asarray(motion_beats, dtype=np.float64).ravel()
    if music_beats.size == 0:
        return float("nan")
    if motion_beats.size == 0:
        return 0.0
    nearest = np.min(np.abs(music_beats[:, None] - motion_beats[None, :]), axis=1)
    return float(np.mean(np.exp(-(nearest**2) / (2.0 * sigma**2))))


def beat_consistency(motion, music_beats, unit: str = "seconds", sigma: float = BC_SIGMA) -> float:
    """Beat consistency of one motion with given music beats, both on the 30 fps frame grid (the corrected BC).

    music_beats: times in seconds (unit="seconds") or 30 fps frame numbers (unit="frames"); e.g. from
    music_beat_times(mel) or from the project's own beat tracker. σ is in 30 fps frames (3 → 0.1 s).
    Average over clips for a data-set score.
    """
    beats = np.asarray(music_beats, dtype=np.float64)
    if unit == "seconds":
        beats = beats * MOTION_FPS
    elif unit != "frames":
        raise ValueError(f"unit must be 'seconds' or 'frames', got {unit!r}")
    return beat_alignment_score(beats, motion_beat_frames(motion), sigma)


def beat_consistency_from_mel(motion, mel, sigma: float = BC_SIGMA) -> float:
    """Corrected BC with music beats tracked on the mel (music_beat_times)."""
    return beat_consistency(motion, music_beat_times(mel), unit="seconds", sigma=sigma)


def beat_consistency_official(motion, mel, sigma: float = BC_SIGMA) -> float:
    """BC exactly as DC's evaluation computed it, to reproduce published numbers.

    It compares music beat indices on the 90 Hz mel grid with motion beat indices on the 30 fps grid without
    rescaling, so music beats land at 3× their true time relative to motion; the numbers are not a measure of
    synchronisation. Use beat_consistency for real comparisons.
    """
    return beat_alignment_score(music_beat_frames_90hz(mel), motion_beat_frames(motion), sigma)


def mean_over(values: Iterable[float]) -> float:
    """Average of per-clip scores ignoring NaN (clips where a metric is undefined)."""
    values = np.asarray(list(values), dtype=np.float64)
    return float(np.nanmean(values)) if values.size and not np.all(np.isnan(values)) else float("nan")


__all__ = [
    "mse", "motion_sd", "sdp", "w_distance", "mean_psd", "rde", "strength_contour", "sce",
    "motion_features_fn", "sync_error", "stack_features", "frechet_distance", "FrechetDistanceError", "fgd",
    "feature_distance", "diversity", "music_beat_frames_90hz", "music_beat_times", "motion_speed",
    "motion_beat_frames", "ictus_frames", "ictus_times", "beat_alignment_score", "beat_consistency",
    "beat_consistency_from_mel", "beat_consistency_official", "mean_over",
]


# --------------------------------------------------------------------------------------------------------------
# Human-likeness
# --------------------------------------------------------------------------------------------------------------

# The power law is fitted where the path moves: still moments (the speed under this share of its 95th percentile)
# have no defined direction and their curvature is noise.
POWER_LAW_MIN_SPEED = 0.05


def power_law(path: np.ndarray, fps: float = MOTION_FPS) -> tuple[float, float]:
    """The two-thirds power law of hand movement (Lacquaniti, Terzuolo and Viviani, 1983): speed ∝ curvature^-β, with
    β near 1/3 in human drawing and gesture.  `path` (T, 2 or 3): a point's positions.  Returns (β, R²) of the
    least-squares line through log speed against log curvature over the frames where the point moves."""
    p = np.asarray(path, dtype=np.float64)
    velocity = np.gradient(p, axis=0) * fps
    acceleration = np.gradient(velocity, axis=0) * fps
    speed = np.linalg.norm(velocity, axis=1)
    # |v × a| in any dimension, from |v|²|a|² − (v·a)².
    cross = np.sqrt(np.maximum(0.0, (speed**2) * np.sum(acceleration**2, axis=1)
                               - np.sum(velocity * acceleration, axis=1) ** 2))
    moving = speed > POWER_LAW_MIN_SPEED * np.percentile(speed, 95)
    curvature = cross[moving] / speed[moving] ** 3
    keep = curvature > 0
    if keep.sum() < 3:
        return float("nan"), float("nan")
    x, y = np.log(curvature[keep]), np.log(speed[moving][keep])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    return float(-slope), float(1.0 - residual.var() / y.var())
