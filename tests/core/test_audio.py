import numpy as np
import pytest
import soundfile

from gm_blender_addon.core.audio import SAMPLE_RATE, AudioError, load_audio, official_mel
from helpers import click_music, write_click_music


def test_official_mel_matches_the_reference(shared_reference):
    audio = load_audio(shared_reference / "parity" / "clicks_112bpm_3-4.wav")
    reference = np.load(shared_reference / "parity" / "mel_official.npy")
    mel = official_mel(audio)
    assert mel.shape == reference.shape
    assert np.abs(mel - reference).max() <= 1e-3


@pytest.mark.parametrize(
    "name, rate, stereo, kwargs",
    [
        ("stereo 44k.wav", 44100, True, {}),
        ("mono.flac", 48000, False, {}),
        ("vorbis.ogg", 22050, True, {"format": "OGG", "subtype": "VORBIS"}),
        ("layer3.mp3", 44100, True, {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
        ("Dvořák – Slavonic dance.wav", 16000, False, {}),
    ],
)
def test_any_format_rate_and_channel_count_loads_as_mono_22050(tmp_path, name, rate, stereo, kwargs):
    path = write_click_music(tmp_path / name, seconds=3.0, sample_rate=rate, stereo=stereo, **kwargs)
    audio = load_audio(path)
    assert audio.sample_rate == SAMPLE_RATE and audio.samples.ndim == 1
    assert audio.duration == pytest.approx(3.0, abs=0.06)
    assert len(audio.sha256) == 64


def test_resampling_matches_an_independent_resampler(tmp_path):
    from scipy.signal import resample_poly

    original = click_music(3.0, 120.0, 3, sample_rate=44100)
    soundfile.write(str(tmp_path / "a.wav"), original, 44100, subtype="FLOAT")
    expected = resample_poly(original, 1, 2)
    loaded = load_audio(tmp_path / "a.wav").samples
    n = min(len(expected), len(loaded))
    assert np.corrcoef(expected[:n], loaded[:n])[0, 1] > 0.999


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nothing here.wav")


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    with pytest.raises(AudioError, match="corrupt"):
        load_audio(path)


def test_zero_length_and_short_files(tmp_path):
    empty = tmp_path / "empty.wav"
    soundfile.write(str(empty), np.zeros(0, np.float32), 22050)
    with pytest.raises(AudioError, match="at least 2 s"):
        load_audio(empty)
    short = write_click_music(tmp_path / "short.wav", seconds=1.5)
    with pytest.raises(AudioError, match="1.50 s long"):
        load_audio(short)


def test_silence(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(str(path), np.zeros(22050 * 5, np.float32), 22050)
    with pytest.raises(AudioError, match="silent"):
        load_audio(path)


def test_a_folder_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path)
