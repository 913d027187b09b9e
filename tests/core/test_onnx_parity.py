"""The ONNX bundles that Blender runs give what the PyTorch networks give (to 1e-4), for every part and the sampler."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")  # the exporter needs it
pytest.importorskip("onnxruntime")

from gm_blender_addon.generators import onnx_runtime  # noqa: E402
from gm_blender_addon.generators.nets import ConductorDiffusion, Generator, MotionTransformer  # noqa: E402
from gm_blender_addon.generators.nets.onnx_export import export_diffusion, export_m2sgan  # noqa: E402

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


def test_ddim_sampling_matches_torch(diffusion):
    network, exported = diffusion
    rng = np.random.default_rng(5)
    mel = rng.standard_normal((1, 3 * 90, 128)).astype(np.float32)
    noise = rng.standard_normal((1, 90, 26)).astype(np.float32)
    known = rng.standard_normal((1, 90, 26)).astype(np.float32)
    weight = np.clip(1 - np.arange(90) / 30, 0, 1).astype(np.float32)
    with torch.no_grad():
        music = network.encode_music(torch.from_numpy(mel))
        expected = ConductorDiffusion().ddim_sample(
            network, music, steps=4, guidance_scale=1.5, noise=torch.from_numpy(noise),
            known=torch.from_numpy(known), known_weight=torch.from_numpy(weight),
        ).numpy()
    steps_seen = []
    sampled = onnx_runtime.ddim_sample(
        exported, exported.encode_music(mel), noise, steps=4, guidance_scale=1.5, known=known, known_weight=weight,
        progress=lambda i, n: steps_seen.append((i, n)),
    )
    np.testing.assert_allclose(sampled, expected, atol=TOLERANCE, rtol=0)
    assert steps_seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert onnx_runtime.ddim_timesteps(7) == ConductorDiffusion().ddim_timesteps(7)


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
