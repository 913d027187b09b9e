"""The sound of a recording around rendered sections: a hall, microphones, mastering and delivery.

A recorded orchestra differs from a SoundFont render in where it was played and how it reached the file: each
section is heard from its place on the stage through a hall's early reflections and reverberant tail, from
microphones close to or far from the players; the mix is compressed, limited and brought to a loudness; the hall
has its own noise (air handling, an audience); and the file went through a lossy codec at some sample rate.  A
:class:`Production` holds one draw of all of that (`sample_production`), and `produce` applies it to the stems of
`score_render.render_stems`.  None of it moves a note, so the score's beat labels stay exact (a lossy codec's
encoder delay is removed by the decoder; the tests check it).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

# Lossy delivery formats as soundfile writes them.
CODECS = {"ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}
DELIVERY_RATES = (22050, 32000, 44100, 48000)
ENCODE_BLOCK = 65536  # frames handed to a lossy encoder at a time


@dataclass(frozen=True)
class Production:
    """One recording's room, microphones, mastering and delivery (see the module docstring)."""

    rt60_s: float  # reverberation time of the hall (mid frequencies)
    predelay_s: float  # from the direct sound to the first reflection
    brightness: float  # high-frequency decay relative to mid (1 as long, 0.3 much shorter)
    mic_distance: float  # 0 close microphones … 1 far in the hall: how much of the room each section brings
    width: float  # stereo width of the mix (0 mono … 1 as placed)
    compression_db: float  # gain reduction the bus compressor aims for on the loudest passages
    limit_dbfs: float  # peak ceiling of the limiter
    loudness_dbfs: float  # RMS level the master is brought to before the limiter
    noise_dbfs: float | None  # hall noise level (air handling and audience), None for a silent studio
    coughs_per_minute: float
    codec: str | None  # a key of CODECS, or None for a lossless file
    codec_quality: float  # soundfile's compression level: 0 best … 1 smallest
    delivery_rate: int

    def to_json(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def sample_production(rng: np.random.Generator) -> Production:
    """A recording drawn from the ranges the issue asks for: RT60 1-3 s, pre-delay, microphone distance,
    compression and limiting, loudness, hall and audience noise, lossy codecs and sample rates."""
    codec = [None, "ogg", "mp3"][int(rng.choice(3, p=[0.3, 0.35, 0.35]))]
    return Production(
        rt60_s=float(rng.uniform(1.0, 3.0)),
        predelay_s=float(rng.uniform(0.008, 0.04)),
        brightness=float(rng.uniform(0.3, 0.9)),
        mic_distance=float(rng.uniform(0.0, 1.0)),
        width=float(rng.uniform(0.5, 1.0)),
        compression_db=float(rng.uniform(0.0, 8.0)) if rng.random() < 0.7 else 0.0,
        limit_dbfs=float(rng.uniform(-1.5, -0.1)),
        loudness_dbfs=float(rng.uniform(-26.0, -14.0)),
        noise_dbfs=float(rng.uniform(-75.0, -48.0)) if rng.random() < 0.7 else None,
        coughs_per_minute=float(rng.uniform(0.0, 3.0)) if rng.random() < 0.4 else 0.0,
        codec=codec,
        codec_quality=float(rng.uniform(0.0, 0.9)),
        delivery_rate=int(rng.choice(DELIVERY_RATES)),
    )


def hall_impulse_response(rt60_s: float, predelay_s: float, brightness: float, rate: int,
                          rng: np.random.Generator) -> np.ndarray:
    """A stereo impulse response (n, 2) of a hall without the direct sound, unit energy per channel.

    Early reflections: a dozen or two sparse taps over the 80 ms after the pre-delay, each from a side.  Late tail:
    decorrelated noise per ear that builds up over 30 ms and decays by 60 dB in `rt60_s` at mid frequencies, longer
    in the bass and shorter (by `brightness`) in the treble, as air and walls absorb the highs first.
    """
    from scipy.signal import butter, sosfilt

    n = int((predelay_s + 1.2 * rt60_s) * rate)
    t = np.arange(n) / rate
    ir = np.zeros((n, 2))
    start = int(predelay_s * rate)
    for _ in range(int(rng.integers(12, 25))):
        tap = start + int(rng.uniform(0.0, 0.08) * rate)
        gain = rng.uniform(0.2, 1.0) * math.exp(-6.91 * (tap - start) / rate / rt60_s)
        side = rng.uniform(0.2, 1.0)
        ir[tap] += gain * np.array([side, 1.0 - side]) * 2.0
    late = np.zeros((n, 2))
    noise = rng.standard_normal((n, 2))
    bands = ((butter(2, 500, "lowpass", fs=rate, output="sos"), 1.25),
             (butter(2, [500, 4000], "bandpass", fs=rate, output="sos"), 1.0),
             (butter(2, 4000, "highpass", fs=rate, output="sos"), brightness))
    for sos, scale in bands:
        late += sosfilt(sos, noise, axis=0) * np.exp(-6.91 * t / (rt60_s * scale))[:, None]
    onset = np.clip((t - predelay_s) / 0.03, 0.0, 1.0)
    late *= onset[:, None] * (t >= predelay_s)[:, None]
    late /= np.sqrt(np.sum(late**2, axis=0)) + 1e-12
    ir /= np.sqrt(np.sum(ir**2, axis=0)) + 1e-12
    combined = 0.6 * ir + late
    return combined / (np.sqrt(np.sum(combined**2, axis=0)) + 1e-12)


def place_stems(stems: Sequence, production: Production, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The stems (`score_render.Stem`, at `rate`) as a stereo pair of microphones in the hall hears them.

    Each section's direct sound falls off with its depth on the stage and darkens a little with distance; its share
    of reverberation grows with depth and with the microphones' distance (direct-to-reverberant ratio from about
    +12 dB for a close front desk to -10 dB for distant percussion).  One convolution carries every section's
    reverberant share.
    """
    from scipy.signal import butter, oaconvolve, sosfilt

    n = max(len(stem.audio) for stem in stems)
    direct = np.zeros((n, 2))
    send = np.zeros((n, 2))
    for stem in stems:
        distance = 0.6 * stem.depth + 0.8 * production.mic_distance
        audio = stem.audio.astype(np.float64)
        cutoff = 16000.0 * 10 ** (-0.6 * distance)
        if cutoff < 0.45 * rate:
            audio = sosfilt(butter(1, cutoff, "lowpass", fs=rate, output="sos"), audio, axis=0)
        drr_db = 6.0 - 14.0 * distance
        direct[: len(audio)] += audio / (1.0 + distance)
        send[: len(audio)] += audio / (1.0 + distance) * 10 ** (-drr_db / 20)
    ir = hall_impulse_response(production.rt60_s, production.predelay_s, production.brightness, rate, rng)
    wet = np.stack([oaconvolve(send[:, 0], ir[:, 0])[:n], oaconvolve(send[:, 1], ir[:, 1])[:n]], axis=1)
    # Reverberation arrives from everywhere: spread it to both sides.
    wet = 0.75 * wet + 0.25 * wet[:, ::-1]
    mix = direct + wet
    mid, side = mix.mean(axis=1, keepdims=True), 0.5 * (mix[:, :1] - mix[:, 1:])
    return mid + production.width * np.concatenate([side, -side], axis=1)


def compress(audio: np.ndarray, rate: int, reduction_db: float) -> np.ndarray:
    """A bus compressor: gain follows the 300 ms RMS level so that the loudest passages lose `reduction_db`
    (ratio 3:1 above the level that gives it)."""
    from scipy.signal import lfilter

    if reduction_db <= 0:
        return audio
    power = np.mean(audio**2, axis=1)
    pole = math.exp(-1.0 / (0.3 * rate))
    envelope_db = 10 * np.log10(lfilter([1 - pole], [1, -pole], power) + 1e-12)
    ratio = 3.0
    threshold = np.percentile(envelope_db, 99) - reduction_db * ratio / (ratio - 1)
    gain_db = -np.maximum(0.0, envelope_db - threshold) * (1 - 1 / ratio)
    return audio * 10 ** (gain_db / 20)[:, None]


def limit(audio: np.ndarray, rate: int, ceiling_dbfs: float) -> np.ndarray:
    """A look-ahead peak limiter: the gain needed to keep each peak under the ceiling, held over 5 ms around it and
    eased in and out over 5 ms, so that no sample passes the ceiling and nothing clicks."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_dbfs / 20)
    peak = np.max(np.abs(audio), axis=1)
    needed = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    width = max(1, int(0.005 * rate))
    gain = uniform_filter1d(minimum_filter1d(needed, 2 * width + 1), width)
    gain = np.minimum(gain, needed)
    return audio * gain[:, None]


def hall_noise(n: int, rate: int, level_dbfs: float, coughs_per_minute: float,
               rng: np.random.Generator) -> np.ndarray:
    """Stereo background of a hall at `level_dbfs` RMS: low rumble of air handling, a faint audience rustle, and
    now and then a cough (a band of noise a few hundred milliseconds long, about 25 dB above the rest)."""
    from scipy.signal import butter, sosfilt

    rumble = sosfilt(butter(2, 150, "lowpass", fs=rate, output="sos"), rng.standard_normal((n, 2)), axis=0)
    rustle = sosfilt(butter(2, [800, 6000], "bandpass", fs=rate, output="sos"), rng.standard_normal((n, 2)), axis=0)
    rustle *= 1.0 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * np.arange(n) / rate + rng.uniform(0, 6))[:, None]
    noise = rumble / (np.std(rumble) + 1e-12) + 0.3 * rustle / (np.std(rustle) + 1e-12)
    noise *= 10 ** (level_dbfs / 20) / (np.sqrt(np.mean(noise**2)) + 1e-12)
    cough_band = butter(2, [250, 2500], "bandpass", fs=rate, output="sos")
    for _ in range(int(rng.poisson(coughs_per_minute * n / rate / 60.0))):
        length = int(rng.uniform(0.15, 0.5) * rate)
        at = int(rng.integers(0, max(1, n - length)))
        burst = sosfilt(cough_band, rng.standard_normal(length)) * np.exp(-np.arange(length) / (0.08 * rate))
        burst *= 10 ** ((level_dbfs + 25) / 20) / (np.sqrt(np.mean(burst**2)) + 1e-12)
        side = rng.uniform(0.2, 0.8)
        noise[at : at + length] += burst[:, None] * np.array([side, 1 - side])
    return noise


def lossy_roundtrip(audio: np.ndarray, rate: int, codec: str, quality: float) -> np.ndarray:
    """`audio` encoded with a lossy `codec` (a key of CODECS) at soundfile's compression `quality` and decoded
    again, the same length and time alignment (the decoders remove the encoders' delay and padding)."""
    import soundfile as sf

    file_format, subtype = CODECS[codec]
    buffer = io.BytesIO()
    clipped = np.clip(audio, -1.0, 1.0)
    with sf.SoundFile(buffer, "w", rate, clipped.shape[1] if clipped.ndim == 2 else 1, subtype, format=file_format,
                      compression_level=float(quality)) as encoder:
        # In blocks: libsndfile's Vorbis encoder overflows the stack on one large write of a long stereo file.
        for start in range(0, len(clipped), ENCODE_BLOCK):
            encoder.write(clipped[start : start + ENCODE_BLOCK])
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float64", always_2d=True)
    out = np.zeros_like(audio)
    n = min(len(out), len(decoded))
    out[:n] = decoded[:n].reshape(n, *audio.shape[1:])
    return out


def produce(stems: Sequence, rate: int, production: Production, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The stems (at `rate`) as the delivered recording: (stereo float64 audio, its sample rate)."""
    import soxr

    mix = place_stems(stems, production, rate, rng)
    mix = compress(mix, rate, production.compression_db)
    if production.noise_dbfs is not None:
        # Relative to the music's level, so that the master's loudness sets both.
        music_dbfs = 10 * np.log10(np.mean(mix**2) + 1e-20)
        mix = mix + hall_noise(len(mix), rate, music_dbfs + production.noise_dbfs - production.loudness_dbfs,
                               production.coughs_per_minute, rng)
    mix *= 10 ** (production.loudness_dbfs / 20) / (np.sqrt(np.mean(mix**2)) + 1e-12)
    mix = limit(mix, rate, production.limit_dbfs)
    if production.delivery_rate != rate:
        mix = soxr.resample(mix, rate, production.delivery_rate, "HQ")
    if production.codec is not None:
        mix = lossy_roundtrip(mix, production.delivery_rate, production.codec, production.codec_quality)
    return mix, production.delivery_rate
