"""Training and evaluation on a tiny data set in the ConductorMotion100 layout, made here (nothing is committed).

Seven 10 s clips of click music at different tempi and meters with procedural conducting on the same beats; windows of
8 s. Each model trains for a few steps: the point is that the loop, logs, checkpoints and resuming work and that the
loss falls, not the quality of the result.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import click_music, steady_analysis
from gm_blender_addon.core.audio import Audio, official_mel
from gm_blender_addon.generators.nets import Generator, load_diffusion_denoiser, load_generator, save_checkpoint
from gm_blender_addon.generators.procedural import conduct
from gm_blender_addon.train import OFFICIAL_SHA256, main
from gm_blender_addon.training.dataset import (
    DatasetError,
    WindowDataset,
    read_split,
    sync_pairs,
)
from gm_blender_addon.weights import default_checkpoint, read_manifest

CLIP_SECONDS = 10.0
WINDOW = "8"
# Quick runs: small batches, short segments for M2S-Net, a 2-layer denoiser.
COMMON = ["--window", WINDOW, "--batch-size", "2", "--log-every", "1", "--threads", "1"]
DIFFUSION_RECIPE = ["--set", "layers=2", "--set", "latent=32", "--set", "lr=2e-3", "--set", "val_windows=1",
                    "--set", "val_steps=2"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cm100")
    layout = {"train": [(90, 4), (120, 3), (140, 4), (100, 3)], "val": [(110, 4), (80, 3)], "test": [(130, 3)]}
    for split, clips in layout.items():
        for k, (bpm, per_bar) in enumerate(clips):
            mel = official_mel(Audio(click_music(CLIP_SECONDS, bpm, per_bar), 22050, Path(f"{split}{k}.wav"), ""))
            analysis = steady_analysis(CLIP_SECONDS, bpm, per_bar, start=0.25, tail=0.2)
            motion = conduct(analysis, seed=k)
            folder = root / split / str(k)
            folder.mkdir(parents=True)
            np.save(folder / "mel.npy", mel)
            np.save(folder / "motion.npy", motion)
            np.save(folder / "beats.npy", analysis.beats)
            np.save(folder / "downbeats.npy", analysis.downbeats)
    return root


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _steps(run: Path, key: str = "loss") -> list[float]:
    return [r[key] for r in _log(run) if r["event"] == "step"]


@pytest.fixture(scope="module")
def m2snet_run(data_root, tmp_path_factory, one_torch_thread) -> Path:
    run = tmp_path_factory.mktemp("runs") / "m2snet"
    # Easy negatives throughout, so that every step has the same task and the losses are comparable.
    code = main(["m2snet", "--data", str(data_root), "--out", str(run), "--epochs", "5", *COMMON,
                 "--set", "clip_seconds=3.0", "--set", "negatives='easy'", "--set", "lr=3e-3"])
    assert code == 0
    return run


# ---------------------------------------------------------------------------------------------------------------
# Reading the layout
# ---------------------------------------------------------------------------------------------------------------


def test_layout_is_read_into_aligned_windows(data_root):
    clips = read_split(data_root, "train")
    assert len(clips) == 4 and all(clip.n_frames == 300 for clip in clips)
    windows = WindowDataset(clips, window_seconds=4)
    assert len(windows) == 4 * 2  # two whole 4 s windows per 10 s clip, remainder dropped
    mel, motion = windows.window(3)
    assert mel.shape == (360, 128) and motion.shape == (120, 13, 2) and mel.dtype == np.float32
    # Window 3 is the second window of clip 1: frames 120-239 of its motion, mel frames 360-719.
    assert np.array_equal(motion, np.load(data_root / "train" / "1" / "motion.npy")[120:240])
    assert np.array_equal(mel, np.load(data_root / "train" / "1" / "mel.npy")[360:720])
    jittered = WindowDataset(clips, window_seconds=4, random_start=True)
    starts = {jittered.locate(0, np.random.default_rng(s))[1] for s in range(20)}
    assert starts <= {0, 30, 60, 90, 120, 150, 180} and len(starts) > 2  # whole seconds, inside the clip


def test_bad_layouts_are_named(data_root, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_split(tmp_path, "train")
    with pytest.raises(DatasetError, match="unknown split"):
        read_split(data_root, "training")
    broken = tmp_path / "train" / "0"
    broken.mkdir(parents=True)
    np.save(broken / "mel.npy", np.zeros((270, 128), np.float32))
    with pytest.raises(DatasetError, match="no motion.npy"):
        read_split(tmp_path, "train")
    np.save(broken / "motion.npy", np.zeros((90, 17, 2), np.float32))
    with pytest.raises(DatasetError, match=r"expected \(frames at 30 fps, 13, 2\)"):
        read_split(tmp_path, "train")
    np.save(broken / "motion.npy", np.zeros((60, 13, 2), np.float32))
    with pytest.raises(DatasetError, match="must be 3x"):
        read_split(tmp_path, "train")
    np.save(broken / "motion.npy", np.zeros((90, 13, 2), np.float32))
    with pytest.raises(DatasetError, match="longest 3.0 s"):
        WindowDataset(read_split(tmp_path, "train"), window_seconds=8)


def test_negatives_are_what_they_claim():
    # Encode (window, frame) in the data itself so the cut segments reveal where they came from.
    batch, frames = 4, 450
    motion = np.zeros((batch, frames, 13, 2), np.float32)
    motion[..., 0] = np.arange(frames)[None, :, None]
    motion[..., 1] = np.arange(batch)[:, None, None]
    mel = np.repeat(motion[:, :, :1, 0], 3, axis=1).repeat(128, axis=2)  # mel frame 3t holds t
    rng = np.random.default_rng(0)
    clip = 90  # 3 s segments
    for _ in range(20):
        pairs = sync_pairs(mel, motion, "easy", 3.0, rng)
        assert np.array_equal(pairs.mel_a[:, ::3, 0], pairs.motion_a[:, :, 0, 0])  # aligned to the frame
        assert np.all(pairs.motion_a[:, 0, 0, 1] != pairs.motion_b[:, 0, 0, 1])  # never the same window
        assert np.all(pairs.motion_a[:, 0, 0, 0] == pairs.motion_b[:, 0, 0, 0])  # same place in it
        hard = sync_pairs(mel, motion, "hard", 3.0, rng)
        gap = hard.motion_b[:, 0, 0, 0] - hard.motion_a[:, 0, 0, 0]
        assert np.all(gap >= clip) and np.all(hard.motion_b[:, -1, 0, 0] < frames)  # no overlap, inside
        assert np.all(hard.motion_a[:, 0, 0, 1] == hard.motion_b[:, 0, 0, 1])  # same window
        superhard = sync_pairs(mel, motion, "super-hard", 3.0, rng)
        shift = superhard.motion_b[:, 0, 0, 0] - superhard.motion_a[:, 0, 0, 0]
        assert np.all((shift >= 15) & (shift < 150))  # 0.5-5 s, never 0
        assert np.array_equal(superhard.mel_b[:, ::3, 0], superhard.motion_b[:, :, 0, 0])


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------


def test_m2snet_trains_logs_and_exports(m2snet_run):
    losses = _steps(m2snet_run)
    assert len(losses) == 5 * 2  # 4 windows / batch 2 = 2 steps per epoch
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    events = [r["event"] for r in _log(m2snet_run)]
    assert events[0] == "start" and events[-1] == "end" and events.count("epoch") == 5
    epoch = [r for r in _log(m2snet_run) if r["event"] == "epoch"][-1]
    assert {"accuracy_easy", "accuracy_hard", "accuracy_super_hard"} <= set(epoch["val"])
    checkpoint = torch.load(m2snet_run / "m2snet.pt", weights_only=True)
    assert checkpoint["kind"] == "m2snet" and checkpoint["meta"]["epochs"] == 5


def test_m2sgan_critic_learns(data_root, m2snet_run, tmp_path):
    run = tmp_path / "gan"
    code = main(["m2sgan", "--data", str(data_root), "--out", str(run), "--epochs", "4", *COMMON,
                 "--m2snet", str(m2snet_run / "m2snet.pt"), "--set", "critic_steps=3"])
    assert code == 0
    # A Wasserstein GAN's generator loss need not fall; its critic's must while it learns to tell real from fake.
    critic = _steps(run, "critic")
    assert np.mean(critic[-3:]) < np.mean(critic[:3])
    generator = load_generator(run / "m2sgan.pt")
    # The music encoder came from the M2S-Net and stayed frozen.
    m2snet_state = torch.load(m2snet_run / "m2snet.pt", weights_only=True)["state_dict"]
    for name, tensor in generator.music_encoder.state_dict().items():
        assert torch.equal(tensor, m2snet_state[f"music_encoder.{name}"]), name
    assert {"mse", "sdp", "sce", "bc", "sync"} <= set(_log(run)[-2]["val"])


def test_diffusion_loss_falls_and_resume_continues_exactly(data_root, m2snet_run, tmp_path):
    args = ["--data", str(data_root), *COMMON, "--m2snet", str(m2snet_run / "m2snet.pt"), *DIFFUSION_RECIPE]
    straight = tmp_path / "straight"
    assert main(["diffusion", "--out", str(straight), "--epochs", "6", *args]) == 0
    losses = _steps(straight)
    assert np.mean(losses[-4:]) < np.mean(losses[:4])

    interrupted = tmp_path / "interrupted"
    assert main(["diffusion", "--out", str(interrupted), "--epochs", "3", *args]) == 0
    assert main(["diffusion", "--out", str(interrupted), "--epochs", "6", *args]) == 1  # refuses to overwrite
    assert main(["diffusion", "--out", str(interrupted), "--epochs", "6", "--resume", *args]) == 0
    assert _steps(interrupted) == losses
    a = load_diffusion_denoiser(straight / "diffusion.pt").state_dict()
    b = load_diffusion_denoiser(interrupted / "diffusion.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["event"] for r in _log(interrupted)].count("start") == 2


def test_generators_fine_tune_with_the_beats_as_input(data_root, m2snet_run, tmp_path):
    from gm_blender_addon.generators.networks import BEAT_FEATURES, with_beats
    from gm_blender_addon.generators.nets.inference import open_checkpoint

    m2snet = ["--m2snet", str(m2snet_run / "m2snet.pt")]
    plain = tmp_path / "plain"
    assert main(["m2sgan", "--data", str(data_root), "--out", str(plain), "--epochs", "1", *COMMON, *m2snet,
                 "--set", "critic_steps=1"]) == 0
    beat = tmp_path / "beat"
    assert main(["m2sgan", "--data", str(data_root), "--out", str(beat), "--epochs", "2", *COMMON, *m2snet,
                 "--set", "critic_steps=1", "--set", "w_mse=100.0", "--set", "beat_input=true",
                 "--init", str(plain / "m2sgan.pt")]) == 0
    start = _log(beat)[0]
    assert start["provenance"]["init"]["file"] == "m2sgan.pt" and start["recipe"]["beat_input"] is True
    generator = load_generator(beat / "m2sgan.pt")
    projection = generator.beat_projection.weight
    assert projection.shape == (64, BEAT_FEATURES) and projection.abs().sum() > 0  # trained away from its zero start
    # Inference adds the beats to the music features; a network without the beat input ignores them.
    network, without = open_checkpoint("m2sgan", beat / "m2sgan.pt"), open_checkpoint("m2sgan", plain / "m2sgan.pt")
    music, beats = np.zeros((300, 64), np.float32), np.arange(0.5, 10.0, 0.5)
    assert not np.allclose(with_beats(network, music, beats, beats[::4]), music)
    assert without.beat_projection is None and with_beats(without, music, beats, beats[::4]) is music

    denoiser = tmp_path / "denoiser"
    diffusion = ["diffusion", "--data", str(data_root), *COMMON, *m2snet, *DIFFUSION_RECIPE]
    assert main([*diffusion, "--out", str(denoiser), "--epochs", "1"]) == 0
    assert main([*diffusion, "--out", str(tmp_path / "beat_denoiser"), "--epochs", "1", "--set", "beat_input=true",
                 "--init", str(denoiser / "diffusion.pt")]) == 0
    tuned = load_diffusion_denoiser(tmp_path / "beat_denoiser" / "diffusion.pt")
    assert tuned.config["beat_features"] == BEAT_FEATURES and tuned.beat_projection is not None


def test_beat_input_needs_the_beats_of_every_clip(data_root, m2snet_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data_root, copy)
    (copy / "train" / "1" / "beats.npy").unlink()
    assert main(["m2sgan", "--data", str(copy), "--out", str(tmp_path / "run"), *COMMON, "--set", "beat_input=true",
                 "--m2snet", str(m2snet_run / "m2snet.pt")]) == 1
    assert "has no beats.npy" in capsys.readouterr().err


def test_gan_without_m2snet_says_what_to_do(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("gm_blender_addon.weights.weights_dir", lambda: tmp_path / "no_weights")
    assert main(["m2sgan", "--data", str(data_root), "--out", str(tmp_path / "x"), *COMMON]) == 1
    assert "needs a trained M2S-Net: pass --m2snet PATH" in capsys.readouterr().err


def test_recipe_overrides_take_the_type_of_their_default(data_root, tmp_path, capsys):
    from gm_blender_addon.training.trainers import _recipe_value

    assert _recipe_value("normalise", "false", True) is False and _recipe_value("normalise", "True", True) is True
    assert _recipe_value("lr", 1, 2e-4) == 1.0 and isinstance(_recipe_value("lr", 1, 2e-4), float)
    run = ["diffusion", "--data", str(data_root), "--out", str(tmp_path / "x"), *COMMON]
    assert main([*run, "--set", "normalise=maybe"]) == 1
    assert "recipe entry normalise must be of type bool (default True), not 'maybe'" in capsys.readouterr().err
    assert main([*run, "--set", "layers=2.5"]) == 1
    assert "recipe entry layers must be of type int (default 8), not 2.5" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Evaluation and publishing
# ---------------------------------------------------------------------------------------------------------------


def test_evaluate_prints_the_table(data_root, m2snet_run, tmp_path, capsys):
    generator = Generator()
    mean_pose = np.load(data_root / "train" / "0" / "motion.npy").mean(axis=0).reshape(-1)
    with torch.no_grad():
        generator.pose_head[4].bias.copy_(torch.logit(torch.from_numpy(mean_pose)))
    gan = save_checkpoint(generator, tmp_path / "gan.pt", "m2sgan")
    report = tmp_path / "scores.json"
    code = main(["evaluate", "--data", str(data_root), "--split", "test", "--window", WINDOW, "--models",
                 "procedural", f"m2sgan={gan}", "--m2snet", str(m2snet_run / "m2snet.pt"), "--json", str(report)])
    assert code == 0
    table = capsys.readouterr().out
    for row in ("recorded motion", "procedural", "m2sgan (gan.pt)"):
        assert row in table
    for column in ("RDE", "SCE", "SDP %", "BC", "Div", "Seed var %"):
        assert column in table
    assert "M2S-Net (m2snet.pt) sync accuracy on test, 0.5 = chance: hard " in table  # one window: no easy pairs
    written = json.loads(report.read_text())
    scores = written["results"]
    assert scores["recorded motion"]["sdp"] == pytest.approx(100.0)
    assert scores["procedural"]["seed_var_pct"] > 10  # the procedural style changes with the seed
    assert np.isfinite(scores["m2sgan (gan.pt)"]["diversity"])
    assert 0.0 <= written["m2snet_sync"]["accuracy_hard"] <= 1.0

    weights = tmp_path / "weights"
    assert main(["publish", "m2snet", "--run", str(m2snet_run), "--weights-dir", str(weights),
                 "--metrics", str(report)]) == 0
    assert read_manifest(weights)["m2snet"]["held_out_metrics"]["sync"] == written["m2snet_sync"]


def test_publish_lists_weights_and_refuses_official_derivatives(m2snet_run, tmp_path):
    weights = tmp_path / "weights"
    assert main(["publish", "m2snet", "--run", str(m2snet_run), "--weights-dir", str(weights),
                 "--data-note", "tiny click fixture"]) == 0
    entry = read_manifest(weights)["m2snet"]
    assert entry["epochs"] == 5 and entry["data"]["note"] == "tiny click fixture" and entry["recipe"]["lr"] == 3e-3
    assert default_checkpoint("m2snet", weights) == weights / "m2snet.pt"

    derived = tmp_path / "derived"
    derived.mkdir()
    official = next(iter(OFFICIAL_SHA256))
    save_checkpoint(Generator(), derived / "m2sgan.pt", "m2sgan",
                    provenance={"m2snet": {"file": "M2SNet_official_pretrained.pt", "sha256": official}})
    assert main(["publish", "m2sgan", "--run", str(derived), "--weights-dir", str(weights)]) == 1
    assert "m2sgan" not in read_manifest(weights)
