"""The ONNX bundles that Blender runs give what the PyTorch networks give (to 1e-4), for every part and for whole
generations."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")  # the exporter needs it
pytest.importorskip("onnxruntime")

from gm_blender_addon.generators import onnx_runtime  # noqa: E402
from gm_blender_addon.generators.nets import Generator, MotionTransformer  # noqa: E402
from gm_blender_addon.generators.nets.onnx_export import EXPORTERS, export_diffusion, export_m2sgan  # noqa: E402

TOLERANCE = 1e-4


def _randomise(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere, zero-initialised layers and batch-norm statistics included, in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
        for bn in (m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)):
            bn.running_var.uniform_(0.5, 2.0, generator=generator)
    return module.eval()


@pytest.fixture(scope="module")
def m2sgan(tmp_path_factory):
    network = _randomise(Generator(), seed=1)
    path = export_m2sgan(network, tmp_path_factory.mktemp("onnx") / "m2sgan.onnx.zip")
    return network, onnx_runtime.M2SGAN(path), path


@pytest.fixture(scope="module")
def diffusion(tmp_path_factory):
    network = _randomise(MotionTransformer(num_frames=240, num_layers=2), seed=2)
    path = export_diffusion(network, tmp_path_factory.mktemp("onnx") / "diffusion.onnx.zip")
    return network, onnx_runtime.Denoiser(path)


@pytest.mark.parametrize("seconds", [5, 7])
def test_m2sgan_parts_match_torch_at_any_length(m2sgan, seconds):
    network, exported, _ = m2sgan
    rng = np.random.default_rng(seconds)
    mel = rng.standard_normal((1, 90 * seconds, 128)).astype(np.float32)
    noise = rng.standard_normal((1, seconds, 8)).astype(np.float32)
    with torch.no_grad():
        music = network.music_encoder(torch.from_numpy(mel))
        motion = network(torch.from_numpy(mel), torch.from_numpy(noise)).numpy()
    exported_music = exported.encode_music(mel)
    np.testing.assert_allclose(exported_music, music.numpy(), atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(exported.decode(exported_music, noise), motion, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("frames, music_frames", [(120, 120), (75, 75), (120, 1)])
def test_denoiser_matches_torch(diffusion, frames, music_frames):
    network, exported = diffusion
    rng = np.random.default_rng(frames + music_frames)
    x_t = rng.standard_normal((2, frames, 26)).astype(np.float32)
    music = rng.standard_normal((2, music_frames, 64)).astype(np.float32)
    timesteps = np.array([999, 3])
    with torch.no_grad():
        expected = network(torch.from_numpy(x_t), torch.from_numpy(timesteps), torch.from_numpy(music)).numpy()
    np.testing.assert_allclose(exported(x_t, timesteps, music), expected, atol=TOLERANCE, rtol=0)
    assert np.abs(expected).max() > 0.1  # the random weights make a network that does something


def test_generation_from_the_bundle_equals_generation_from_the_checkpoint(tmp_path):
    """The whole generator path (chunked encoding, the beats as input, noise, windows, guided DDIM, beat-lock,
    re-centring) gives the same motion from a PyTorch checkpoint and from its ONNX bundle."""
    from helpers import click_music, steady_analysis
    from gm_blender_addon.core.audio import Audio
    from gm_blender_addon.core.motion import JOINT
    from gm_blender_addon.generators import registry
    from gm_blender_addon.generators.nets import save_checkpoint
    from gm_blender_addon.generators.networks import BEAT_FEATURES
    from gm_blender_addon.generators.procedural import conduct

    mean_pose = torch.from_numpy(conduct(steady_analysis(12.0), seed=0).mean(axis=0).reshape(-1))
    torch.manual_seed(0)
    generator = Generator(beat_features=BEAT_FEATURES)
    denoiser = MotionTransformer(num_layers=2, latent_dim=32, num_frames=300, motion_mean=mean_pose.tolist(),
                                 motion_std=[0.05] * 26, beat_features=BEAT_FEATURES)
    with torch.no_grad():
        generator.pose_head[4].bias.copy_(torch.logit(mean_pose))
        for parameter in denoiser.parameters():  # layers that start at zero would hide the music and the beats
            if not parameter.any():
                parameter.normal_(0, 0.1)
        for network in (generator, denoiser):
            network.beat_projection.weight.normal_(0, 1.0)
    seconds = 12.0  # two diffusion windows of 10 s
    audio = Audio(click_music(seconds, 120.0, 4), 22050, Path("clicks.wav"), "0" * 64)
    for kind, network, options in (("m2sgan", generator, {}), ("diffusion", denoiser, {"steps": 3})):
        checkpoint = save_checkpoint(network, tmp_path / f"{kind}.pt", kind)
        bundle = EXPORTERS[kind](network.eval(), tmp_path / f"{kind}.onnx.zip")
        motions = [
            registry.generate(kind, registry.Request(audio=audio, analysis=steady_analysis(seconds), seed=7,
                                                     checkpoint=path, options=options)).keypoints
            for path in (checkpoint, bundle)
        ]
        np.testing.assert_allclose(motions[1], motions[0], atol=TOLERANCE, rtol=0)
        assert np.ptp(motions[0][:, JOINT["right_wrist"]]) > 0
        # The beats reach the network: other beats, other motion (beat-lock off, so that only the input differs).
        raw = [registry.generate(kind, registry.Request(audio=audio, analysis=steady_analysis(seconds, bpm), seed=7,
                                                        checkpoint=bundle, options={**options, "beat_lock": False}))
               for bpm in (120.0, 90.0)]
        assert np.abs(raw[0].keypoints - raw[1].keypoints).max() > 1e-3, kind


def test_official_m2sgan_weights_export_exactly(shared_reference, tmp_path):
    from gm_blender_addon.generators.nets import load_generator

    network = load_generator(shared_reference / "M2SGAN_official_pretrained.pt")
    exported = onnx_runtime.M2SGAN(export_m2sgan(network, tmp_path / "official.onnx.zip"))
    mel = np.load(shared_reference / "parity" / "mel_official.npy")[None, :900].astype(np.float32)
    noise = np.load(shared_reference / "parity" / "noise.npy")[:, :10].astype(np.float32)
    with torch.no_grad():
        expected = network(torch.from_numpy(mel), torch.from_numpy(noise)).numpy()
    np.testing.assert_allclose(exported.decode(exported.encode_music(mel), noise), expected, atol=TOLERANCE, rtol=0)


def test_a_bundle_of_another_kind_or_no_bundle_is_refused(m2sgan, tmp_path):
    _, _, path = m2sgan
    with pytest.raises(onnx_runtime.OnnxBundleError, match="m2sgan network, not diffusion"):
        onnx_runtime.Denoiser(path)
    garbage = tmp_path / "garbage.onnx.zip"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(onnx_runtime.OnnxBundleError, match="not a readable ONNX bundle"):
        onnx_runtime.M2SGAN(garbage)
