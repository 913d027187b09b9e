"""Our networks against the official VirtualConductor code, plus checkpoint handling and a diffusion smoke test.

The official checkpoints and parity outputs are research-only and live outside the repository, in
../shared/reference/ next to the repo root; tests that need them skip when they are absent.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from gm_blender_addon.generators.nets import (
    CheckpointError,
    ConductorDiffusion,
    Discriminator,
    Generator,
    M2SNet,
    MotionTransformer,
    load_diffusion_denoiser,
    load_generator,
    load_m2snet,
    load_motion_encoder,
    load_music_encoder,
    save_checkpoint,
)
from gm_blender_addon.generators.nets.checkpoints import load_state
from gm_blender_addon.generators import ddim
from gm_blender_addon.generators.nets.inference import TorchDenoiser

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = REPO_ROOT.parent / "shared" / "reference"
VC = REFERENCE / "virtualconductor"
PARITY = VC / "parity"

TOLERANCE = 1e-4


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference file not available: {path}")
    return path


@pytest.fixture(scope="module")
def parity():
    _need(PARITY)
    return {
        "mel": np.load(_need(PARITY / "mel_official.npy"))[:2700],
        "noise": np.load(_need(PARITY / "noise.npy")),
        "motion": np.load(_need(PARITY / "motion_official.npy")),
        "features": np.load(_need(PARITY / "motion_features_official.npy")),
        "sync": np.load(_need(PARITY / "sync_prob_official.npy")),
    }


@pytest.fixture(scope="module")
def m2snet():
    return load_m2snet(_need(VC / "M2SNet_official_pretrained.pt"))


# ---------------------------------------------------------------------------------------------------------------
# Parity with the official outputs
# ---------------------------------------------------------------------------------------------------------------


def test_m2sgan_generator_matches_official_output(parity):
    generator = load_generator(_need(VC / "M2SGAN_official_pretrained.pt"))
    assert not generator.training
    with torch.no_grad():
        motion = generator(torch.from_numpy(parity["mel"])[None], torch.from_numpy(parity["noise"]))[0].numpy()
    assert motion.shape == parity["motion"].shape == (900, 13, 2)
    diff = np.abs(motion - parity["motion"]).max()
    print(f"M2S-GAN max |Δ| = {diff:.3g}")
    assert diff <= TOLERANCE


def test_motion_encoder_features_match_official(parity, m2snet):
    with torch.no_grad():
        features = m2snet.motion_encoder.features(torch.from_numpy(parity["motion"])[None])[0].numpy()
    assert features.shape == parity["features"].shape == (64, 900)
    diff = np.abs(features - parity["features"]).max()
    print(f"motion encoder max |Δ| = {diff:.3g}")
    assert diff <= TOLERANCE


def test_m2snet_sync_probability_matches_official(parity, m2snet):
    official = parity["sync"]
    assert official.shape == (900, 1)  # per motion frame, one probability
    mel, motion = torch.from_numpy(parity["mel"])[None], torch.from_numpy(parity["motion"])[None]
    # Capture the pre-sigmoid logits too, to compare where probabilities are too small to differ in absolute terms.
    captured = {}
    hook = m2snet.sync_head[-2].register_forward_hook(lambda module, args, output: captured.update(logits=output))
    try:
        with torch.no_grad():
            probability = m2snet(mel, motion)[0].numpy()
    finally:
        hook.remove()
    logits = captured["logits"][0].T.numpy()
    assert probability.shape == official.shape
    diff = np.abs(probability - official).max()
    print(f"M2S-Net sync probability max |Δ| = {diff:.3g}")
    assert diff <= TOLERANCE
    # The official values are ≈ 0 everywhere (the network calls this pair out of sync): check the log-odds where the
    # official float32 probability did not underflow to 0, and that it underflows where ours does.
    nonzero = official[:, 0] > 0
    assert np.array_equal(nonzero, probability[:, 0] > 0)
    if nonzero.any():
        log_diff = np.abs(logits[nonzero, 0] - np.log(official[nonzero, 0].astype(np.float64))).max()
        print(f"M2S-Net log-probability max |Δ| on {nonzero.sum()} non-underflowed frames = {log_diff:.3g}")
        assert log_diff <= 1e-3


def test_official_files_fill_every_parameter_and_use_every_tensor():
    # 278 official keys = 182 distinct tensors + 96 duplicate registrations of the TCN layers (net.0/2/5/7).
    kind, state, _ = load_state(_need(VC / "M2SGAN_official_pretrained.pt"), "m2sgan")
    assert kind == "m2sgan" and set(state) == set(Generator().state_dict()) and len(state) == 278 - 96
    # 234 official keys = ours + the constant graph A + the unused ST-GCN fcn weight and bias.
    kind, state, _ = load_state(_need(VC / "M2SNet_official_pretrained.pt"), "m2snet")
    assert kind == "m2snet" and set(state) == set(M2SNet().state_dict()) and len(state) == 234 - 3
    # The music encoder loads from either kind of file.
    for name in ("M2SGAN_official_pretrained.pt", "M2SNet_official_pretrained.pt"):
        assert load_music_encoder(VC / name) is not None
    assert load_motion_encoder(VC / "M2SNet_test_official_pretrained.pt").features is not None


# ---------------------------------------------------------------------------------------------------------------
# Wrong files
# ---------------------------------------------------------------------------------------------------------------


def test_m2snet_file_given_to_generator_loader_is_named():
    with pytest.raises(CheckpointError) as info:
        load_generator(_need(VC / "M2SNet_official_pretrained.pt"))
    message = str(info.value)
    assert "not an M2S-GAN generator checkpoint" in message
    assert "looks like an M2S-Net" in message
    assert "M2SGAN_official_pretrained.pt" in message  # the fix


def test_generator_file_given_to_m2snet_loader_is_named():
    with pytest.raises(CheckpointError, match="looks like an M2S-GAN generator"):
        load_motion_encoder(_need(VC / "M2SGAN_official_pretrained.pt"))


def test_garbage_files_raise_checkpoint_error(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_generator(garbage)

    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_m2snet(text)

    random_weights = tmp_path / "random.pt"
    torch.save({"layer.weight": torch.zeros(3, 3)}, random_weights)
    with pytest.raises(CheckpointError, match="unrecognised state dict"):
        load_generator(random_weights)

    pickled_module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), pickled_module)
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_generator(pickled_module)

    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "missing.pt")


def test_truncated_official_file_is_refused(tmp_path):
    source = _need(VC / "M2SGAN_official_pretrained.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(source.read_bytes()[:200_000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_generator(truncated)


def test_incomplete_state_dict_lists_the_missing_tensors(tmp_path):
    state = Generator().state_dict()
    state.pop("pose_head.4.bias")
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="missing.*pose_head.4.bias"):
        load_generator(path)


# ---------------------------------------------------------------------------------------------------------------
# Project checkpoints and the Diffusion-Conductor layout
# ---------------------------------------------------------------------------------------------------------------


def test_project_checkpoint_round_trip_and_kind_check(tmp_path):
    torch.manual_seed(0)
    generator = Generator()
    path = save_checkpoint(generator, tmp_path / "gan.pt", "m2sgan", epochs=3)
    loaded = load_generator(path)
    for name, tensor in generator.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    # A bare state dict in our names works too.
    torch.save(generator.state_dict(), tmp_path / "bare.pt")
    load_generator(tmp_path / "bare.pt")

    save_checkpoint(Discriminator(), tmp_path / "critic.pt", "discriminator")
    with pytest.raises(CheckpointError, match="looks like an M2S-GAN discriminator"):
        load_generator(tmp_path / "critic.pt")


def _official_diffusion_state() -> dict[str, torch.Tensor]:
    """A random state dict with the official Diffusion-Conductor names and shapes (from the key listing)."""
    state = {}
    for line in _need(REFERENCE / "diffusion_conductor_keys.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")[:3]
        dims = tuple(int(d) for d in re.findall(r"\d+", shape))
        state[key] = torch.randn(dims) if dtype == "float32" else torch.tensor(0)
    return state


def test_official_diffusion_layout_loads(tmp_path):
    state = _official_diffusion_state()
    # As the DC trainer saves it: DataParallel prefix inside {"encoder": ..., "opt_encoder": ..., "ep", "total_it"}.
    wrapped = {"encoder": {"module." + k: v for k, v in state.items()}, "ep": 5, "total_it": 1000}
    torch.save(wrapped, tmp_path / "latest.tar")
    model = load_diffusion_denoiser(tmp_path / "latest.tar")
    assert torch.equal(model.music_embed.weight, state["linear.weight"])
    official_name = "temporal_decoder_blocks.7.ca_block.text_norm.weight"
    assert torch.equal(model.blocks[7].ca_block.music_norm.weight, state[official_name])
    assert model.config["num_layers"] == 8 and model.config["num_frames"] == 1800


# ---------------------------------------------------------------------------------------------------------------
# Shapes and the diffusion sampler (no reference files needed)
# ---------------------------------------------------------------------------------------------------------------


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Replace all weights (including the zero-initialised output layers) so the network is not trivially 0."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model.eval()


def test_generator_and_discriminator_shapes():
    generator = Generator().eval()
    with torch.no_grad():
        motion = generator(torch.rand(2, 270, 128), torch.randn(2, 3, 8))
    assert motion.shape == (2, 90, 13, 2)
    assert ((motion > 0) & (motion < 1)).all()
    with pytest.raises(ValueError, match="whole seconds"):
        generator(torch.rand(1, 200, 128), torch.randn(1, 3, 8))
    assert Discriminator()(torch.rand(2, 900, 13, 2)).shape == (2, 1)


@pytest.fixture(scope="module")
def denoiser():
    """Diffusion-Conductor's configuration (8 layers, up to 1800 frames), random weights."""
    torch.manual_seed(0)
    return _randomised(MotionTransformer())


@pytest.fixture(scope="module")
def small_denoiser():
    """A 2-layer denoiser: the sampler tests run it dozens of times."""
    torch.manual_seed(1)
    return _randomised(MotionTransformer(num_layers=2, num_frames=90))


def test_motion_transformer_forward_shapes(denoiser):
    with torch.no_grad():
        music = denoiser.encode_music(torch.rand(1, 270, 128))
        assert music.shape == (1, 90, 64)
        for frames, features in ((90, music), (900, torch.randn(1, 900, 64))):
            x0 = denoiser(torch.randn(1, frames, 26), torch.tensor([999]), features)
            assert x0.shape == (1, frames, 26)
            assert torch.isfinite(x0).all()
        with pytest.raises(ValueError, match="exceed"):
            denoiser(torch.randn(1, 1801, 26), torch.tensor([0]), torch.randn(1, 1801, 64))


def test_frame_mask_uses_lengths_in_frames(small_denoiser):
    denoiser = small_denoiser
    # Frames at or beyond `length` must not influence the real frames through self-attention.
    frames, length = 90, 60
    music = torch.randn(1, frames, 64)
    x_t = torch.randn(1, frames, 26)
    changed = x_t.clone()
    changed[:, length:] += 5.0
    t = torch.tensor([400])
    with torch.no_grad():
        a = denoiser(x_t, t, music, lengths=torch.tensor([length]))
        b = denoiser(changed, t, music, lengths=torch.tensor([length]))
        c = denoiser(changed, t, music)
    assert torch.allclose(a[:, :length], b[:, :length], atol=1e-5)
    assert not torch.allclose(a[:, :length], c[:, :length], atol=1e-3)


def test_ddim_sampling_and_guidance(small_denoiser):
    denoiser = TorchDenoiser(small_denoiser)
    assert ddim.ddim_timesteps(5) == [999, 749, 500, 250, 0]
    assert len(ddim.ddim_timesteps(1000)) == 1000
    mel = np.random.default_rng(0).random((1, 270, 128)).astype(np.float32)
    music = denoiser.encode_music(mel)
    noise = np.random.default_rng(1).standard_normal((1, 90, 26)).astype(np.float32)
    steps = []
    conditional = ddim.ddim_sample(denoiser, music, noise, steps=5, progress=lambda i, n: steps.append((i, n)))
    assert conditional.shape == (1, 90, 26) and conditional.dtype == np.float32 and np.isfinite(conditional).all()
    assert steps == [(i, 5) for i in range(1, 6)]
    guided_1 = ddim.ddim_sample(denoiser, music, noise, steps=5, guidance_scale=1.0)
    np.testing.assert_allclose(guided_1, conditional, atol=1e-5)
    # w = 0 is the unconditional model: the music features zeroed.
    guided_0 = ddim.ddim_sample(denoiser, music, noise, steps=5, guidance_scale=0.0)
    unconditional = ddim.ddim_sample(denoiser, np.zeros_like(music), noise, steps=5)
    np.testing.assert_allclose(guided_0, unconditional, atol=1e-5)
    guided_3 = ddim.ddim_sample(denoiser, music, noise, steps=5, guidance_scale=3.0)
    assert not np.allclose(guided_3, conditional, atol=1e-4)
    # Known frames with full weight at every step come out exactly as given.
    known = np.random.default_rng(2).standard_normal((1, 90, 26)).astype(np.float32)
    weight = (np.arange(90) < 30).astype(np.float32)
    pinned = ddim.ddim_sample(denoiser, music, noise, steps=5, known=known, known_weight=weight)
    np.testing.assert_allclose(pinned[:, :30], known[:, :30], atol=1e-5)


def test_q_sample_matches_schedule():
    diffusion = ConductorDiffusion()
    assert diffusion.betas[0] == pytest.approx(1e-4) and diffusion.betas[-1] == pytest.approx(0.02)
    x0 = torch.ones(2, 4, 26)
    noise = torch.zeros_like(x0)
    xt = diffusion.q_sample(x0, torch.tensor([0, 999]), noise)
    abar = diffusion.alphas_cumprod
    assert torch.allclose(xt[0], torch.full((4, 26), float(np.sqrt(abar[0]))))
    assert torch.allclose(xt[1], torch.full((4, 26), float(np.sqrt(abar[999]))))
