"""Recording production of the corpus: the hall, the microphones, mastering and delivery change the sound, never
the time of a note, so the score's beat labels stay exact."""

import numpy as np
import pytest

from gm_blender_addon.training import production as prod
from gm_blender_addon.training import score_render as sr

RATE = 22050


def _clicks(times, seconds=4.0, rate=RATE):
    audio = np.zeros((int(seconds * rate), 2))
    for t in times:
        audio[int(t * rate)] = 0.8
    return audio


def _peak_time(mono, rate, around, width=0.05):
    lo, hi = int((around - width) * rate), int((around + width) * rate)
    return (lo + int(np.argmax(np.abs(mono[lo:hi])))) / rate


@pytest.mark.parametrize("codec", sorted(prod.CODECS))
@pytest.mark.parametrize("rate", [22050, 44100])
def test_lossy_codecs_keep_the_timing(codec, rate):
    clicks = _clicks([1.0, 2.3333], rate=rate)
    decoded = prod.lossy_roundtrip(clicks, rate, codec, 0.7)
    assert decoded.shape == clicks.shape
    for t in (1.0, 2.3333):
        assert _peak_time(decoded.mean(axis=1), rate, t) == pytest.approx(t, abs=1.5 / rate)


def test_hall_response_decays_at_its_reverberation_time():
    rng = np.random.default_rng(0)
    ir = prod.hall_impulse_response(2.0, 0.02, 0.6, RATE, rng)
    assert ir.shape[1] == 2 and np.allclose(np.sum(ir**2, axis=0), 1.0)
    assert np.all(ir[: int(0.019 * RATE)] == 0)  # nothing before the pre-delay
    energy = (ir**2).mean(axis=1)
    # Schroeder backward integration: the decay from -5 to -25 dB, doubled, approximates the 60 dB time.
    curve = 10 * np.log10(np.cumsum(energy[::-1])[::-1] / energy.sum())
    t5, t25 = np.argmax(curve < -5) / RATE, np.argmax(curve < -25) / RATE
    assert 3 * (t25 - t5) == pytest.approx(2.0, rel=0.35)


def test_placed_stems_keep_the_attacks_on_time():
    rng = np.random.default_rng(1)
    production = prod.Production(
        rt60_s=2.5, predelay_s=0.02, brightness=0.5, mic_distance=1.0, width=0.8, compression_db=6.0,
        limit_dbfs=-1.0, loudness_dbfs=-18.0, noise_dbfs=-55.0, coughs_per_minute=2.0, codec="mp3",
        codec_quality=0.5, delivery_rate=44100)
    beats = [0.5, 1.25, 2.0, 2.75]
    stems = [sr.Stem(_clicks(beats).astype(np.float32), 48, "melody", 0.2),
             sr.Stem(_clicks(beats).astype(np.float32), 0, "percussion", 0.95)]
    audio, rate = prod.produce(stems, RATE, production, rng)
    assert rate == 44100 and audio.shape[1] == 2
    mono = audio.mean(axis=1)
    for t in beats:
        assert _peak_time(mono, rate, t) == pytest.approx(t, abs=0.002)


def test_limiter_holds_the_ceiling_and_leaves_quiet_audio_alone():
    rng = np.random.default_rng(2)
    loud = rng.uniform(-1.0, 1.0, (RATE, 2))
    assert np.max(np.abs(prod.limit(loud, RATE, -3.0))) <= 10 ** (-3 / 20) + 1e-9
    quiet = 0.1 * loud
    assert np.array_equal(prod.limit(quiet, RATE, -3.0), quiet)


def test_sampled_productions_cover_the_asked_ranges():
    draws = [prod.sample_production(np.random.default_rng(i)) for i in range(200)]
    rt60 = [d.rt60_s for d in draws]
    assert 1.0 <= min(rt60) < 1.3 and 2.7 < max(rt60) <= 3.0
    assert {d.codec for d in draws} == {None, "ogg", "mp3"}
    assert {d.delivery_rate for d in draws} == set(prod.DELIVERY_RATES)
    assert any(d.noise_dbfs is None for d in draws) and any(d.noise_dbfs is not None for d in draws)
