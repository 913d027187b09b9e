"""The m2sgan and diffusion generators: registry and CLI wiring, checkpoints, any length, seams, seeds, beat-lock.

Most tests use randomly initialised networks saved in the project checkpoint format (their output layer starts at a
plausible body, as training does). Tests against the official M2S-GAN read it from ../shared and skip without it;
tests of the project-trained weights skip when weights/ has none.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import click_music, steady_analysis
from test_analysis import f_measure
from gm_blender_addon import cli, weights
from gm_blender_addon.core.audio import Audio, load_audio, official_mel
from gm_blender_addon.core.motion import HIP_MIDPOINT, JOINT, SHOULDER_WIDTH
from gm_blender_addon.generators import registry
from gm_blender_addon.generators.diffusion import sample_piece
from gm_blender_addon.generators.m2sgan import generate_keypoints as generate_gan
from gm_blender_addon.generators.m2sgan import smoothed_keypoints as smoothed_gan
from gm_blender_addon.core.metrics import ictus_times, seed_variation
from gm_blender_addon.generators.nets import Generator, M2SNet, MotionTransformer, load_generator, save_checkpoint
from gm_blender_addon.generators.nets.inference import TorchM2SGAN, TorchNetwork
from gm_blender_addon.generators.networks import (
    BEAT_LOCK, beat_features, encode_music, open_denoiser, open_m2sgan, to_cm100,
)
from gm_blender_addon.generators.procedural import conduct
from gm_blender_addon.resources import demo_audio_file
from gm_blender_addon.generators.windows import WindowPlan, frame_jumps, join_windows, seam_report, stitch

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "virtualconductor"
OFFICIAL_GAN = REFERENCE / "M2SGAN_official_pretrained.pt"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference file not available: {path}")
    return path


def _audio(seconds: float, bpm: float = 120.0) -> Audio:
    return Audio(click_music(seconds, bpm, 4), 22050, Path(f"clicks_{seconds:g}s.wav"), "0" * 64)


def _request(seconds: float, checkpoint=None, seed: int = 0, **options) -> registry.Request:
    return registry.Request(audio=_audio(seconds), analysis=steady_analysis(seconds, start=0.25), seed=seed,
                            checkpoint=checkpoint, options=options)


MEAN_POSE = conduct(steady_analysis(12.0), seed=0).mean(axis=0).reshape(-1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gan_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    generator = Generator()
    with torch.no_grad():
        generator.pose_head[4].bias.copy_(torch.logit(torch.from_numpy(MEAN_POSE)))
    return save_checkpoint(generator, tmp_path_factory.mktemp("ckpt") / "gan.pt", "m2sgan")


@pytest.fixture(scope="module")
def diffusion_checkpoint(tmp_path_factory) -> Path:
    """A small denoiser whose windows are 10 s, so a 15 s piece needs two."""
    torch.manual_seed(0)
    denoiser = MotionTransformer(num_layers=2, latent_dim=32, num_frames=300)
    with torch.no_grad():
        denoiser.out.weight.normal_(0, 0.02)  # not zero, so the sampled motion depends on the noise
        denoiser.out.bias.copy_(torch.from_numpy(MEAN_POSE))
    return save_checkpoint(denoiser, tmp_path_factory.mktemp("ckpt") / "denoiser.pt", "diffusion")


def _assert_cm100(keypoints: np.ndarray) -> None:
    width = keypoints[:, JOINT["left_shoulder"], 0] - keypoints[:, JOINT["right_shoulder"], 0]
    hips = 0.5 * (keypoints[:, JOINT["left_hip"]] + keypoints[:, JOINT["right_hip"]])
    assert width.mean() == pytest.approx(SHOULDER_WIDTH, abs=1e-5)
    assert hips.mean(axis=0) == pytest.approx(HIP_MIDPOINT, abs=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Registry, CLI, checkpoints
# ---------------------------------------------------------------------------------------------------------------


def test_registered_with_their_options():
    assert {"m2sgan", "diffusion", "procedural"} <= set(registry.names())
    gan, diffusion = registry.get("m2sgan"), registry.get("diffusion")
    assert gan.needs_checkpoint and diffusion.needs_checkpoint and gan.options == (BEAT_LOCK,)
    options = {o.name: o for o in diffusion.options}
    assert options["steps"].type is int and 1 <= options["steps"].default <= 50
    assert options["guidance"].type is float
    assert options["beat_lock"] is BEAT_LOCK and BEAT_LOCK.type is bool and BEAT_LOCK.default is True


def test_cli_flags_reach_the_generator():
    parser = cli._build_parser()
    args = parser.parse_args(["generate", "a.wav", "--out", "o.blend", "--generator", "diffusion", "--steps", "7",
                              "--guidance", "2.5", "--checkpoint", "my.pt", "--seed", "4"])
    assert cli._validate(args) == {"steps": 7, "guidance": 2.5}
    assert args.checkpoint == Path("my.pt") and args.seed == 4
    args = parser.parse_args(["generate", "a.wav", "--out", "o.blend", "--generator", "m2sgan", "--steps", "7"])
    with pytest.raises(cli.UsageError, match="--steps does not apply to the m2sgan generator"):
        cli._validate(args)
    for flags, options in (([], {}), (["--no-beat-lock"], {"beat_lock": False}),
                           (["--beat-lock"], {"beat_lock": True})):
        args = parser.parse_args(["generate", "a.wav", "--out", "o.blend", "--generator", "m2sgan", *flags])
        assert cli._validate(args) == options
    args = parser.parse_args(["generate", "a.wav", "--out", "o.blend", "--no-beat-lock"])
    with pytest.raises(cli.UsageError, match="--beat-lock does not apply to the procedural generator"):
        cli._validate(args)


def test_wrong_files_are_generator_errors(tmp_path, gan_checkpoint, diffusion_checkpoint):
    sync_net = save_checkpoint(M2SNet(), tmp_path / "sync.pt", "m2snet")
    with pytest.raises(registry.GeneratorError, match="not an M2S-GAN generator checkpoint.*looks like an M2S-Net"):
        registry.generate("m2sgan", _request(6.0, sync_net))
    with pytest.raises(registry.GeneratorError, match="not a Diffusion-Conductor denoiser.*looks like an M2S-GAN"):
        registry.generate("diffusion", _request(6.0, gan_checkpoint))
    with pytest.raises(registry.GeneratorError, match="not found"):
        registry.generate("m2sgan", _request(6.0, tmp_path / "missing.pt"))
    with pytest.raises(registry.GeneratorError, match="--steps must be between 1 and 1000"):
        registry.generate("diffusion", _request(6.0, diffusion_checkpoint, steps=0))
    with pytest.raises(registry.GeneratorError, match="--beat-lock is on or off .True or False., got 'false'"):
        registry.generate("m2sgan", _request(6.0, gan_checkpoint, beat_lock="false"))


def test_project_weights_are_the_default(tmp_path, monkeypatch, gan_checkpoint):
    """The shipped weights run as their ONNX export (all the extension carries), checked against the manifest."""
    pytest.importorskip("onnx")
    from gm_blender_addon.generators.nets.onnx_export import export_m2sgan

    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(weights, "weights_dir", lambda: folder)
    with pytest.raises(registry.GeneratorError, match="pass --checkpoint PATH .no project-trained M2S-GAN"):
        registry.generate("m2sgan", _request(6.0))
    installed = folder / "m2sgan.pt"
    installed.write_bytes(gan_checkpoint.read_bytes())
    bundle = export_m2sgan(load_generator(installed), folder / "m2sgan.onnx.zip")
    weights.write_entry("m2sgan", installed, folder, recipe={"test": True}, epochs=0,
                        onnx=weights.file_entry(bundle, folder))
    motion = registry.generate("m2sgan", _request(6.0))
    assert motion.meta["checkpoint"] == "m2sgan.onnx.zip" and motion.meta["generator"] == "m2sgan"
    bundle.write_bytes(bundle.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(registry.GeneratorError, match="damaged or was replaced"):
        registry.generate("m2sgan", _request(6.0))


# ---------------------------------------------------------------------------------------------------------------
# Any length, one pass, no seams
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [2.5, 4.0, 13.37])
def test_m2sgan_any_length(gan_checkpoint, seconds):
    request = _request(seconds, gan_checkpoint, seed=3)
    motion = registry.generate("m2sgan", request)
    assert motion.keypoints.shape == (request.analysis.n_frames, 13, 2)
    assert np.isfinite(motion.keypoints).all() and np.ptp(motion.keypoints[:, JOINT["right_wrist"]]) > 0
    _assert_cm100(motion.keypoints)


def test_chunked_music_encoding_equals_one_pass(gan_checkpoint):
    generator = load_generator(gan_checkpoint)
    encoder = TorchNetwork(generator)
    mel = official_mel(_audio(20.0))[:1800]
    with torch.no_grad():
        whole = generator.music_encoder(torch.from_numpy(mel)[None])[0].numpy()
    chunked = encode_music(encoder, mel, chunk=70)  # 9 chunks with borders at odd places
    assert chunked.shape == whole.shape == (600, 64)
    assert np.abs(chunked - whole).max() < 1e-4


def test_official_m2sgan_through_the_chunked_path_matches_its_output():
    generator = load_generator(_need(OFFICIAL_GAN))
    mel = np.load(_need(REFERENCE / "parity" / "mel_official.npy"))[:2700]
    noise = torch.from_numpy(np.load(REFERENCE / "parity" / "noise.npy"))
    music = encode_music(TorchNetwork(generator), mel, chunk=200)
    with torch.no_grad():
        motion = generator.decode(torch.from_numpy(music)[None], noise)[0].numpy()
    assert np.abs(motion - np.load(REFERENCE / "parity" / "motion_official.npy")).max() < 1e-4


def test_official_m2sgan_long_piece_is_one_seamless_pass():
    generator = load_generator(_need(OFFICIAL_GAN))
    mel = official_mel(_audio(64.0, bpm=96.0))
    motion = generate_gan(TorchM2SGAN(generator), mel, 1920, seed=0)
    # The music encoder ran in 900-frame chunks; the result equals one pass over the whole piece, so the chunk
    # borders (and the 60 s mark where the official script started an independent chunk) cannot show.
    noise = np.random.default_rng(0).standard_normal((1, 64, 8)).astype(np.float32)
    with torch.no_grad():
        single = generator(torch.from_numpy(mel[:5760])[None], torch.from_numpy(noise))[0].numpy()
    assert np.abs(single - motion).max() < 1e-4
    assert seam_report(motion, [900, 1800])["ratio"] <= 2.0


@pytest.mark.parametrize("seconds", [2.5, 15.0])
def test_diffusion_any_length_and_seeds(diffusion_checkpoint, seconds):
    first = registry.generate("diffusion", _request(seconds, diffusion_checkpoint, seed=1, steps=4))
    again = registry.generate("diffusion", _request(seconds, diffusion_checkpoint, seed=1, steps=4))
    other = registry.generate("diffusion", _request(seconds, diffusion_checkpoint, seed=2, steps=4))
    assert first.keypoints.shape == (steady_analysis(seconds).n_frames, 13, 2)
    assert np.array_equal(first.keypoints, again.keypoints)
    assert not np.allclose(first.keypoints, other.keypoints, atol=1e-4)
    assert first.meta["steps"] == 4 and first.meta["guidance"] == registry.get("diffusion").options[1].default
    _assert_cm100(first.keypoints)


def test_window_plan_covers_and_hands_over():
    plan = WindowPlan.cover(2000, 600, overlap=150, margin=15)
    starts = list(plan.starts)
    assert starts[0] == 0 and starts[-1] + 600 == 2000
    assert all(600 - (b - a) >= 150 for a, b in zip(starts, starts[1:]))  # every overlap ≥ 150 frames
    assert all(b - a >= 300 for a, b in zip(starts, starts[1:]))  # only neighbours overlap
    joined = join_windows(plan, lambda start, stop, known, weight: np.ones((stop - start, 13, 2)), blend=30)
    assert np.allclose(joined.motion, 1.0)  # windows that agree are joined unchanged
    assert len(joined.seams) == len(starts) - 1
    assert all(plan.handover(k)[0] <= seam < plan.handover(k)[1] for k, seam in enumerate(joined.seams, start=1))
    assert WindowPlan.cover(200, 600, overlap=150).windows == [(0, 200)]


def test_stitch_keeps_position_and_velocity_and_settles_on_the_new_motion():
    t = np.arange(200)[:, None] / 30.0
    previous = np.sin(2 * np.pi * 1.3 * t) + 0.4
    new = np.cos(2 * np.pi * 1.1 * t) - 0.2
    out = stitch(previous, new, cut=80, blend=30)
    assert np.array_equal(out[:81], previous[:81])  # the new window takes over from the old one's frame 80
    assert np.array_equal(out[111:], new[111:])  # the offset has died away after the blend
    # No kink anywhere: the velocity changes from frame to frame no more than the two motions' own velocities do.
    natural = max(np.abs(np.diff(previous, 2, axis=0)).max(), np.abs(np.diff(new, 2, axis=0)).max())
    assert np.abs(np.diff(out, 2, axis=0)).max() <= 1.1 * natural


def test_joined_windows_show_no_seam():
    """Windows that disagree (each its own phase and offset) joined by a hard cut and by offset blending."""
    rng = np.random.default_rng(0)
    plan = WindowPlan.cover(2400, 900, overlap=150, margin=15)
    styles = {start: (rng.uniform(0, 2 * np.pi, 26), rng.normal(0, 0.03, 26)) for start in plan.starts}

    def window(start, stop, known=None, weight=None):
        phase, offset = styles[start]
        t = np.arange(start, stop)[:, None] / 30.0
        return (0.05 * np.sin(2 * np.pi * 1.7 * t + phase) + offset).reshape(-1, 13, 2)

    joined = join_windows(plan, window, blend=30)
    seams = joined.seams
    cut = np.zeros_like(joined.motion)
    bounds = [0] + seams + [2400]
    for start, (a, b) in zip(plan.starts, zip(bounds, bounds[1:])):
        cut[a:b] = window(start, start + 900)[a - start : b - start]
    assert seam_report(cut, seams)["ratio"] > 2.0  # the check sees a seam when there is one
    assert seam_report(joined.motion, seams, radius=3)["ratio"] <= 2.0
    # Over the whole blend after each seam the joined motion moves no faster than the windows themselves do.
    for seam in seams:
        assert frame_jumps(joined.motion[seam - 1 : seam + 32]).max() <= 1.1 * frame_jumps(joined.motion).max()


# ---------------------------------------------------------------------------------------------------------------
# Beat-lock
# ---------------------------------------------------------------------------------------------------------------


def test_beat_features_give_the_phase_in_the_beat_and_the_bar():
    beats = np.arange(1.0, 9.0, 0.5)  # 120 bpm from 1 s; 3 beats to the bar after a one-beat pickup
    downbeats = beats[1::3]
    features = beat_features(beats, downbeats, 300)
    on_beats = np.round(beats[:-1] * 30).astype(int)
    np.testing.assert_allclose(features[on_beats, :2], [[0.0, 1.0]] * len(on_beats), atol=1e-6)
    np.testing.assert_allclose(features[np.round(downbeats * 30).astype(int), 2:4], [[0.0, 1.0]] * len(downbeats),
                               atol=1e-6)
    # The pickup is the last beat of a bar, a third of the bar before the first downbeat.
    assert np.arctan2(*features[30, 2:4]) == pytest.approx(-2 * np.pi / 3)
    assert np.all(features[on_beats, 4] == 0.0)  # log2 of the beat's length over half a second
    # No beat before the first or after the last: nothing said.
    assert not features[:30].any() and not features[int(8.5 * 30):].any()
    assert not beat_features(beats[:1], [], 300).any()


def test_without_beat_lock_the_network_output_is_keyed_as_it_is(gan_checkpoint, diffusion_checkpoint):
    """--no-beat-lock gives exactly the smoothed, re-centred network output, for research parity."""
    audio, n = _audio(12.0), steady_analysis(12.0).n_frames
    mel = official_mel(audio)
    expected = {
        "m2sgan": to_cm100(smoothed_gan(open_m2sgan(gan_checkpoint), mel, n, 3))[0],
        "diffusion": to_cm100(sample_piece(open_denoiser(diffusion_checkpoint), mel, n, 3, steps=4).motion)[0],
    }
    for name, checkpoint, options in (("m2sgan", gan_checkpoint, {}),
                                      ("diffusion", diffusion_checkpoint, {"steps": 4})):
        motion = registry.generate(name, _request(12.0, checkpoint, seed=3, beat_lock=False, **options))
        assert np.array_equal(motion.keypoints, expected[name]) and "beat_lock" not in motion.meta


@pytest.fixture(scope="module")
def demo_request() -> registry.Request:
    """The bundled demo (6/8, 100 BPM, where the networks strike off the beat) with its exact beats."""
    audio = load_audio(demo_audio_file())
    labels = json.loads((demo_audio_file().parent / "demo_labels.json").read_text())
    beats = np.array(labels["beats"])
    analysis = replace(steady_analysis(audio.duration), beats=beats, downbeats=beats[::2], beats_per_bar=2)
    return registry.Request(audio=audio, analysis=analysis)


@pytest.mark.parametrize("name, options", [("m2sgan", {}), ("diffusion", {"steps": 5})])
def test_beat_lock_puts_the_project_networks_on_the_beat(demo_request, name, options):
    if weights.default_checkpoint(name, onnx=True) is None:
        pytest.skip(f"no project-trained {name} weights in weights/")
    beats = demo_request.analysis.beats
    free = registry.generate(name, replace(demo_request, options={**options, "beat_lock": False}))
    locked = registry.generate(name, replace(demo_request, options=options))
    before, after = f_measure(ictus_times(free.keypoints), beats), f_measure(ictus_times(locked.keypoints), beats)
    assert after >= before + 0.2
    report = locked.meta["beat_lock"]
    assert report["beats"] == len(beats) and report["locked_share"] >= 0.6
    assert report["speed_change_max"] <= 0.4
    _assert_cm100(locked.keypoints)


# ---------------------------------------------------------------------------------------------------------------
# The project-trained diffusion weights (skipped when weights/ has none)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project_denoiser():
    path = weights.default_checkpoint("diffusion")
    if path is None:
        pytest.skip("no project-trained diffusion weights in weights/")
    return open_denoiser(path)


def test_project_diffusion_varies_with_the_seed_without_seams(project_denoiser):
    seconds, frames = 40.0, 1200  # two 30 s windows joined over a 5 s overlap
    mel = official_mel(_audio(seconds, bpm=100.0))
    pieces = [sample_piece(project_denoiser, mel, frames, seed, steps=10) for seed in (0, 1)]
    assert seed_variation([to_cm100(piece.motion)[0] for piece in pieces]) >= 10.0
    for piece in pieces:
        assert len(piece.seams) == 1 and seam_report(piece.motion, piece.seams)["ratio"] <= 2.0
    # Beat-locked, the seam is where the keyed motion shows it, and still does not show.
    locked = registry.generate("diffusion", registry.Request(
        audio=_audio(seconds, bpm=100.0), analysis=steady_analysis(seconds, bpm=100.0, start=0.25),
        options={"steps": 10}))
    assert locked.meta["beat_lock"]["locked"] and len(locked.meta["window_seams"]) == 1
    assert seam_report(locked.keypoints, locked.meta["window_seams"])["ratio"] <= 2.0
