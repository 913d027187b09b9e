"""Training M2S-Net, M2S-GAN and Diffusion-Conductor on data in the ConductorMotion100 layout (torch; no bpy).

Each run writes into its output folder:
  log.jsonl           one JSON object per line: "start", "step" (every `log_every` steps), "epoch" (training means and
                      validation), "end"; a resumed run appends to it
  training_state.pt   what resuming needs (weights, optimiser states, epochs done, steps), rewritten after each epoch
  <kind>.pt           the trained network in the Gesture Maestro checkpoint format, which the generators load

Determinism: all randomness of epoch e (window order and starts, noise, timesteps, dropout) is seeded from
(seed, e), so a run resumed after epoch e continues exactly as an uninterrupted one (on the same device).

Recipes are the official ones (spec section 4) with these deliberate changes, each for a reason given where it is
made: M2S-Net negatives without the official sampling bugs; M2S-GAN and diffusion read cached features of the frozen
music encoder (so its BatchNorm statistics cannot drift as they did in the official runs); M2S-GAN's gradient
penalty is the standard per-sample one centred at 1; diffusion counts lengths in frames (the official mask bug) and
drops the music of whole clips so that classifier-free guidance has an unconditional model to use; output layers
start at the data's mean pose.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import metrics
from ..generators.nets import (
    CheckpointError,
    load_state,
    ConductorDiffusion,
    Discriminator,
    Generator,
    M2SNet,
    MotionTransformer,
    load_m2snet,
    save_checkpoint,
)
from ..generators.ddim import ddim_sample
from ..generators.nets.inference import TorchDenoiser, TorchNetwork
from ..generators.networks import BEAT_FEATURES, beat_features, encode_music
from ..core.audio import file_sha256
from .dataset import MOTION_FPS, NEGATIVE_MODES, WindowDataset, read_split, sync_pairs

STATE_FILE = "training_state.pt"
LOG_FILE = "log.jsonl"
STATE_FORMAT = "gesture-maestro-training-state"

Progress = Callable[[float, str], None]


class TrainingError(ValueError):
    """Settings or files that make a training run impossible, with what to do about it."""


@dataclass
class Settings:
    """What every trainer takes. `recipe` overrides entries of the trainer's RECIPE (model and loss choices)."""

    data: Path
    out: Path
    epochs: int = 10
    batch_size: int = 8
    device: str = "cpu"
    seed: int = 0
    resume: bool = False
    window_seconds: int = 30
    limit_hours: float | None = None
    steps_per_epoch: int | None = None  # cap, e.g. for quick runs; None = every window once
    time_limit_minutes: float | None = None  # stop after the epoch during which this is exceeded
    log_every: int = 10
    m2snet: Path | None = None  # M2S-GAN and diffusion: the trained M2S-Net (music encoder, sync features)
    init: Path | None = None  # M2S-GAN and diffusion: fine-tune these weights (trained on the same M2S-Net)
    recipe: dict = field(default_factory=dict)

    def as_record(self) -> dict:
        record = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in record.items()}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.02, 0.98)
    return np.log(p / (1 - p))


def _recipe_value(key: str, value, default):
    """`value` for recipe entry `key` as the type of its default; a command line's true/false are booleans and its
    whole numbers are floats where the default is one."""
    if isinstance(default, bool) and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(default, float) and type(value) is int:
        return float(value)
    if type(value) is type(default):
        return value
    raise TrainingError(
        f"recipe entry {key} must be of type {type(default).__name__} (default {default!r}), not {value!r}"
    )


class Trainer:
    """The loop shared by the three models: epochs of batches, logs, validation, checkpoints and resuming."""

    kind = ""
    RECIPE: dict = {}

    def __init__(self, settings: Settings, progress: Progress | None = None):
        unknown = set(settings.recipe) - set(self.RECIPE)
        if unknown:
            raise TrainingError(f"{self.kind} has no recipe entries {sorted(unknown)}; known: {sorted(self.RECIPE)}")
        self.settings = settings
        self.recipe = {**self.RECIPE, **{key: _recipe_value(key, value, self.RECIPE[key])
                                         for key, value in settings.recipe.items()}}
        self.progress = progress or (lambda fraction, message: None)
        if settings.device.startswith("cuda") and not torch.cuda.is_available():
            raise TrainingError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
        self.device = torch.device(settings.device)
        if settings.epochs < 1 or settings.batch_size < 1:
            raise TrainingError("--epochs and --batch-size must be at least 1")
        self.out = Path(settings.out)
        self.train_set = WindowDataset(
            read_split(settings.data, "train", settings.limit_hours), settings.window_seconds, random_start=True
        )
        if len(self.train_set) < settings.batch_size:
            raise TrainingError(
                f"the training split has {len(self.train_set)} windows of {settings.window_seconds} s, fewer than one "
                f"batch of {settings.batch_size}; lower --batch-size or --window"
            )
        has_val = (Path(settings.data) / "val").is_dir()
        self.val_set = WindowDataset(read_split(settings.data, "val"), settings.window_seconds) if has_val else None
        torch.manual_seed(settings.seed)
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.provenance: dict = {}
        self.build()
        self.epoch = 0  # epochs completed
        self.step = 0

    # ---- to be provided by each model ------------------------------------------------------------------------

    def build(self) -> None:
        raise NotImplementedError

    def train_step(self, places, mel: np.ndarray, motion: np.ndarray, epoch: int, rng: np.random.Generator,
                   noise: torch.Generator) -> dict:
        """One optimisation step on a batch → plain floats to log, "loss" among them. `rng` and `noise` are the
        epoch's seeded numpy and torch generators."""
        raise NotImplementedError

    def validate(self) -> dict:
        raise NotImplementedError

    def export(self, path: Path, meta: dict) -> Path:
        raise NotImplementedError

    # ---- shared -----------------------------------------------------------------------------------------------

    def _load_m2snet(self) -> M2SNet:
        path = self.settings.m2snet
        if path is None:
            from ..weights import default_checkpoint

            path = default_checkpoint("m2snet")
        if path is None:
            raise TrainingError(
                f"{self.kind} needs a trained M2S-Net: pass --m2snet PATH (train one first with "
                f"`python -m gm_blender_addon.train m2snet ...`)"
            )
        try:
            m2snet = load_m2snet(path)
        except CheckpointError as exc:
            raise TrainingError(str(exc)) from exc
        self.provenance["m2snet"] = {"file": Path(path).name, "sha256": file_sha256(Path(path))}
        return m2snet.to(self.device).eval().requires_grad_(False)

    def _music_cache(self, m2snet) -> dict[str, list[np.ndarray]]:
        """Music features (L, 64) of every clip, from the frozen encoder: computed once instead of every step."""
        cache = {}
        encoder = TorchNetwork(m2snet)
        for name, dataset in (("train", self.train_set), ("val", self.val_set)):
            if dataset is None:
                continue
            cache[name] = []
            for number, clip in enumerate(dataset.clips):
                mel = np.asarray(clip.mel[: 3 * clip.n_frames], dtype=np.float32)
                cache[name].append(encode_music(encoder, mel))
                self.progress(0.0, f"Encoding the {name} music {number + 1}/{len(dataset.clips)}")
        return cache

    def _beat_cache(self) -> dict[str, list[np.ndarray]]:
        """Beat features (L, BEAT_FEATURES) of every clip, for a network with the beats as input."""
        cache = {}
        for name, dataset in (("train", self.train_set), ("val", self.val_set)):
            if dataset is None:
                continue
            missing = [clip.folder for clip in dataset.clips if clip.beats is None]
            if missing:
                raise TrainingError(
                    f"beat_input needs the beats of every clip, and {missing[0]} (and {len(missing) - 1} more) has no "
                    f"beats.npy; build the data with `python -m gm_blender_addon.training.corpus` or train without "
                    f"--set beat_input=true")
            cache[name] = [beat_features(clip.beats, clip.downbeats, clip.n_frames) for clip in dataset.clips]
        return cache

    def _start_from_init(self, model: nn.Module) -> None:
        """Copy --init's weights into `model`, all but the music encoder (the M2S-Net's, whose features are cached)
        and a beat projection the file does not have (it starts at zero)."""
        path = self.settings.init
        try:
            _, state, _ = load_state(path, self.kind)
        except CheckpointError as exc:
            raise TrainingError(str(exc)) from exc
        wanted = {k: v for k, v in model.state_dict().items() if not k.startswith("music_encoder.")}
        missing = [k for k in wanted if k not in state and not k.startswith("beat_projection.")]
        mismatched = [k for k in wanted if k in state and state[k].shape != wanted[k].shape]
        if missing or mismatched:
            raise TrainingError(f"--init {Path(path).name} does not fit this {self.kind} network ("
                                f"{len(missing)} missing, {len(mismatched)} with another shape, e.g. "
                                f"{(missing + mismatched)[0]}); check the recipe's sizes")
        model.load_state_dict({k: state[k] for k in wanted if k in state}, strict=False)
        self.provenance["init"] = {"file": Path(path).name, "sha256": file_sha256(Path(path))}

    def _music_window(self, split: str, places) -> torch.Tensor:
        """The music features of windows at `places`, plus the conditioned network's projection of their beats
        where it has the beats as input."""
        frames = self.train_set.frames
        music = torch.from_numpy(np.stack([self.music[split][c][s : s + frames] for c, s in places])).to(self.device)
        projection = getattr(self, "beat_projection", None)
        if projection is None:
            return music
        beats = np.stack([self.beats[split][c][s : s + frames] for c, s in places])
        return music + projection(torch.from_numpy(beats).to(self.device))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def _log(self, record: dict) -> None:
        with open(self.out / LOG_FILE, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def _steps_per_epoch(self) -> int:
        full = len(self.train_set) // self.settings.batch_size
        cap = self.settings.steps_per_epoch
        return max(1, min(full, cap) if cap else full)

    def save_state(self) -> None:
        state = {
            "format": STATE_FORMAT,
            "kind": self.kind,
            "epoch": self.epoch,
            "step": self.step,
            "seed": self.settings.seed,
            "recipe": self.recipe,
            "modules": {name: module.state_dict() for name, module in self.modules.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
        }
        temporary = self.out / (STATE_FILE + ".tmp")
        torch.save(state, temporary)
        temporary.replace(self.out / STATE_FILE)  # never leave a half-written state behind

    def load_state(self) -> None:
        path = self.out / STATE_FILE
        if not path.is_file():
            raise TrainingError(f"--resume: {path} does not exist; start without --resume")
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("format") != STATE_FORMAT or state.get("kind") != self.kind:
            raise TrainingError(f"{path} is not a {self.kind} training state (kind {state.get('kind')!r})")
        if state["recipe"] != self.recipe or state["seed"] != self.settings.seed:
            raise TrainingError(
                f"{path} was trained with seed {state['seed']} and recipe {state['recipe']}; resume with the same "
                f"settings (now seed {self.settings.seed}, recipe {self.recipe})"
            )
        for name, module in self.modules.items():
            module.load_state_dict(state["modules"][name])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])

    def run(self) -> dict:
        """Train up to `epochs` epochs in total (counting those before a resume); returns the last epoch record."""
        settings = self.settings
        self.out.mkdir(parents=True, exist_ok=True)
        if settings.resume:
            self.load_state()
        elif (self.out / STATE_FILE).exists():
            raise TrainingError(f"{self.out} already holds a training run; pass --resume or choose another --out")
        self._log({"event": "start", "kind": self.kind, "epoch": self.epoch, "step": self.step,
                   "settings": settings.as_record(), "recipe": self.recipe, "provenance": self.provenance,
                   "train_windows": len(self.train_set), "train_hours": round(self.train_set.hours, 4),
                   "val_windows": len(self.val_set) if self.val_set else 0})
        started = time.perf_counter()
        per_epoch = self._steps_per_epoch()
        record: dict = {}
        while self.epoch < settings.epochs:
            epoch = self.epoch
            rng = np.random.default_rng([settings.seed, epoch])
            torch.manual_seed(settings.seed * 100003 + epoch)
            noise = torch.Generator().manual_seed(settings.seed * 100003 + epoch)
            totals: dict[str, float] = {}
            batches = self.train_set.batches(settings.batch_size, rng)
            for number in range(per_epoch):
                places, mel, motion = next(batches)
                losses = self.train_step(places, mel, motion, epoch, rng, noise)
                self.step += 1
                for key, value in losses.items():
                    totals[key] = totals.get(key, 0.0) + value
                if self.step % settings.log_every == 0 or number == 0:
                    self._log({"event": "step", "epoch": epoch, "step": self.step, **losses,
                               "seconds": round(time.perf_counter() - started, 2)})
                done = (epoch + (number + 1) / per_epoch) / settings.epochs
                self.progress(done, f"epoch {epoch + 1}/{settings.epochs} step {number + 1}/{per_epoch} "
                                    f"loss {losses['loss']:.4f}")
            self.epoch += 1
            validation = self.validate() if self.val_set is not None else {}
            record = {"event": "epoch", "epoch": epoch, "step": self.step,
                      "train": {k: v / per_epoch for k, v in totals.items()}, "val": validation,
                      "seconds": round(time.perf_counter() - started, 2)}
            self._log(record)
            self.save_state()
            self.export(self.out / f"{self.kind}.pt", self._meta(validation))
            limit = settings.time_limit_minutes
            if limit is not None and time.perf_counter() - started > 60 * limit and self.epoch < settings.epochs:
                self._log({"event": "stopped", "reason": f"time limit of {limit} min", "epoch": self.epoch})
                break
        self._log({"event": "end", "epochs": self.epoch, "step": self.step,
                   "seconds": round(time.perf_counter() - started, 2)})
        return record

    def _meta(self, validation: dict) -> dict:
        return {"epochs": self.epoch, "steps": self.step, "recipe": self.recipe, "seed": self.settings.seed,
                "window_seconds": self.settings.window_seconds, "batch_size": self.settings.batch_size,
                "train_hours": round(self.train_set.hours, 4), "data": str(self.settings.data),
                "provenance": self.provenance, "val": validation}


# --------------------------------------------------------------------------------------------------------------
# M2S-Net: contrastive music-motion sync classifier
# --------------------------------------------------------------------------------------------------------------


def _sync_scores(model: M2SNet, pairs, tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame probabilities (4, N, L) for (a,a) (a,b) (b,b) (b,a), and the targets (4,) 1/0/1/0.

    Each segment is encoded once and the four pairings share the encodings (the official code ran four full
    forward passes).
    """
    music_a, music_b = model.music_encoder(tensor(np.concatenate([pairs.mel_a, pairs.mel_b]))).chunk(2)
    moves_a, moves_b = model.motion_encoder(tensor(np.concatenate([pairs.motion_a, pairs.motion_b]))).chunk(2)
    music = torch.cat([music_a, music_a, music_b, music_b])
    moves = torch.cat([moves_a, moves_b, moves_b, moves_a])
    probability = model.sync_probability(music, moves)[..., 0].reshape(4, music_a.shape[0], -1)
    return probability, torch.tensor([1.0, 0.0, 1.0, 0.0], device=probability.device)


def _sync_loss(model: M2SNet, pairs, tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(binary cross-entropy of the clip-mean probabilities, per-frame accuracy) over the four pairings."""
    probability, target = _sync_scores(model, pairs, tensor)
    clip_probability = probability.mean(dim=2).clamp(1e-6, 1 - 1e-6)  # official: mean over frames, then BCE
    loss = sum(F.binary_cross_entropy(clip_probability[k], target[k].expand_as(clip_probability[k])) for k in range(4))
    correct = ((probability > 0.5).float() == target[:, None, None]).float().mean()
    return loss, correct


@torch.no_grad()
def sync_accuracy(model: M2SNet, dataset: WindowDataset, clip_seconds: float, tensor) -> dict:
    """M2S-Net's loss and accuracy against each kind of negative over `dataset`'s windows, with fixed draws:
    {"loss_easy", "accuracy_easy", …, "accuracy_super_hard"} (0.5 is chance)."""
    model.eval()
    result = {}
    for mode in NEGATIVE_MODES:
        rng = np.random.default_rng(12345)
        losses, accuracies = [], []
        for _, mel, motion in dataset.batches(2, rng, shuffle=False):
            try:
                pairs = sync_pairs(mel, motion, mode, clip_seconds, rng)
            except ValueError:
                break  # windows too short for this mode
            loss, accuracy = _sync_loss(model, pairs, tensor)
            losses.append(loss.item())
            accuracies.append(accuracy.item())
        if losses:
            key = mode.replace("-", "_")
            result[f"loss_{key}"] = float(np.mean(losses))
            result[f"accuracy_{key}"] = float(np.mean(accuracies))
    return result


class M2SNetTrainer(Trainer):
    kind = "m2snet"
    RECIPE = {
        "lr": 1e-3,  # Adam, as the official stage 1
        "clip_seconds": 10.0,  # segment length of a pair
        "negatives": "hard",  # after the first epoch, which always uses easy negatives (official)
    }

    def build(self) -> None:
        if self.recipe["negatives"] not in NEGATIVE_MODES:
            raise TrainingError(f"negatives must be one of {', '.join(NEGATIVE_MODES)}")
        model = M2SNet()
        model.init_weights()
        self.model = model.to(self.device)
        self.modules = {"m2snet": self.model}
        self.optimizers = {"adam": torch.optim.Adam(self.model.parameters(), lr=self.recipe["lr"])}

    def train_step(self, places, mel, motion, epoch, rng, noise) -> dict:
        mode = "easy" if epoch == 0 else self.recipe["negatives"]
        pairs = sync_pairs(mel, motion, mode, self.recipe["clip_seconds"], rng)
        self.model.train()
        loss, accuracy = _sync_loss(self.model, pairs, self._tensor)
        optimizer = self.optimizers["adam"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "accuracy": accuracy.item(), "mode": NEGATIVE_MODES.index(mode)}

    def validate(self) -> dict:
        return sync_accuracy(self.model, self.val_set, self.recipe["clip_seconds"], self._tensor)

    def export(self, path: Path, meta: dict) -> Path:
        return save_checkpoint(self.model, path, "m2snet", **meta)


# --------------------------------------------------------------------------------------------------------------
# M2S-GAN: generator against a Wasserstein critic, with the M2S-Net sync loss
# --------------------------------------------------------------------------------------------------------------


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: mean over samples of (‖∇D(x̂)‖ − 1)² at random points between real and generated motion.

    The official code took one norm over the whole batch and centred it at 0, which penalises the critic's
    slope everywhere instead of holding it near 1 per sample as the Lipschitz argument of WGAN-GP asks.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    gradient, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((gradient.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def window_metrics(real: list[np.ndarray], fake: list[np.ndarray], mels: list[np.ndarray] | None = None) -> dict:
    """The cheap quality numbers for validation: MSE, SDP, and RDE/SCE/BC where windows are long enough."""
    result = {"mse": metrics.mse(real, fake), "sdp": metrics.sdp(real, fake)}
    if real[0].shape[0] >= metrics.RDE_MIN_FRAMES:
        result["rde"] = metrics.rde(real, fake)
    if real[0].shape[0] >= metrics.SCE_WINDOW:
        result["sce"] = metrics.sce(real, fake)
    if mels is not None:
        result["bc"] = metrics.mean_over(metrics.beat_consistency_from_mel(f, m) for f, m in zip(fake, mels))
    return result


class M2SGANTrainer(Trainer):
    kind = "m2sgan"
    RECIPE = {
        "lr": 5e-4,  # RMSprop for both networks (official)
        "critic_steps": 5,  # critic updates per generator update (official)
        "w_gp": 10.0,
        "w_adv": 1.0,
        "w_sync": 0.05,  # L1 between M2S-Net motion features of real and generated motion (official)
        "w_mse": 0.0,  # official 0; a small value steadies very short runs
        "beat_input": False,  # the beats as an input beside the mel (official: the mel only); needs beats.npy
    }

    def build(self) -> None:
        m2snet = self._load_m2snet()
        self.features = m2snet.motion_encoder
        generator = Generator(beat_features=BEAT_FEATURES if self.recipe["beat_input"] else 0)
        if self.settings.init is not None:
            self._start_from_init(generator)
        else:
            with torch.no_grad():
                mean_pose = self.train_set.motion_statistics()[0]
                generator.pose_head[4].bias.copy_(torch.from_numpy(_logit(mean_pose.reshape(-1))))
        # Stage 2 starts from the stage-1 music encoder and keeps it frozen (official); its features are cached,
        # so the encoder's BatchNorm statistics stay those of M2S-Net.
        generator.music_encoder.load_state_dict(m2snet.music_encoder.state_dict())
        generator.music_encoder.requires_grad_(False)
        self.generator = generator.to(self.device)
        self.beat_projection = self.generator.beat_projection
        self.critic = Discriminator().to(self.device)
        self.music = self._music_cache(m2snet)
        self.beats = self._beat_cache() if self.recipe["beat_input"] else None
        trainable = [p for p in self.generator.parameters() if p.requires_grad]
        self.modules = {"generator": self.generator, "critic": self.critic}
        self.optimizers = {
            "generator": torch.optim.RMSprop(trainable, lr=self.recipe["lr"]),
            "critic": torch.optim.RMSprop(self.critic.parameters(), lr=self.recipe["lr"]),
        }

    def _fake(self, music: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        seconds = music.shape[1] // MOTION_FPS
        return self.generator.decode(music, Generator.sample_noise(music.shape[0], seconds, noise).to(self.device))

    def train_step(self, places, mel, motion, epoch, rng, noise) -> dict:
        recipe = self.recipe
        real = self._tensor(motion)
        music = self._music_window("train", places)
        self.generator.train()
        self.critic.train()
        fake = self._fake(music, noise)

        critic_opt = self.optimizers["critic"]
        for _ in range(recipe["critic_steps"]):
            score_real, score_fake = self.critic(real).mean(), self.critic(fake.detach()).mean()
            penalty = gradient_penalty(self.critic, real, fake.detach())
            critic_loss = score_fake - score_real + recipe["w_gp"] * penalty
            critic_opt.zero_grad()
            critic_loss.backward()
            critic_opt.step()

        adversarial = -self.critic(fake).mean()
        # The sync loss runs the ST-GCN forward and backward, the dearest part of a step: skipped when unused.
        sync = (F.l1_loss(self.features.features(fake), self.features.features(real)) if recipe["w_sync"] > 0
                else torch.zeros((), device=self.device))
        mse = F.mse_loss(fake, real)
        loss = recipe["w_adv"] * adversarial + recipe["w_sync"] * sync + recipe["w_mse"] * mse
        generator_opt = self.optimizers["generator"]
        generator_opt.zero_grad()
        loss.backward()
        generator_opt.step()
        values = {"loss": loss, "critic": critic_loss, "w_distance": score_real - score_fake, "gp": penalty,
                  "adversarial": adversarial, "sync": sync, "mse": mse}
        return {key: value.item() for key, value in values.items()}

    @torch.no_grad()
    def validate(self) -> dict:
        self.generator.eval()
        noise = torch.Generator().manual_seed(12345)
        real, fake, mels, sync = [], [], [], []
        for i in range(len(self.val_set)):
            place = self.val_set.locate(i)
            mel, motion = self.val_set.cut(*place)
            generated = self._fake(self._music_window("val", [place]), noise)
            sync.append(float(F.l1_loss(self.features.features(generated),
                                        self.features.features(self._tensor(motion[None])))))
            real.append(motion)
            fake.append(generated[0].cpu().numpy())
            mels.append(mel)
        return {**window_metrics(real, fake, mels), "sync": float(np.mean(sync))}

    def export(self, path: Path, meta: dict) -> Path:
        return save_checkpoint(self.generator, path, "m2sgan", **meta)


# --------------------------------------------------------------------------------------------------------------
# Diffusion-Conductor: x0-predicting transformer denoiser
# --------------------------------------------------------------------------------------------------------------


class DiffusionTrainer(Trainer):
    kind = "diffusion"
    RECIPE = {
        "lr": 2e-4,  # Adam (official)
        "grad_clip": 0.5,  # official
        "layers": 8,  # official denoiser size: 8 layers, latent 128, 8 heads, feed-forward 64
        "latent": 128,
        "heads": 8,
        "ff_size": 64,
        "w_velocity": 0.1,  # official; its head-motion penalty and elbow "reward" terms are left out
        "normalise": True,  # standardise each coordinate (official: raw coordinates; see MotionTransformer.normalise)
        "frame_drop": 0.1,  # official per-frame music dropout
        "clip_drop": 0.1,  # whole-clip music dropout: trains the unconditional model guidance needs
        "val_steps": 10,  # DDIM steps for the validation samples
        "val_windows": 4,
        "beat_input": False,  # the beats as an input beside the mel (official: the mel only); needs beats.npy
    }

    def build(self) -> None:
        m2snet = self._load_m2snet()
        recipe = self.recipe
        mean, std = (s.reshape(-1) for s in self.train_set.motion_statistics())
        statistics = {"motion_mean": mean.tolist(), "motion_std": np.maximum(std, 1e-4).tolist()}
        config = dict(
            num_frames=self.train_set.frames, latent_dim=recipe["latent"], num_layers=recipe["layers"],
            num_heads=recipe["heads"], ff_size=recipe["ff_size"], **(statistics if recipe["normalise"] else {}),
        )
        if self.settings.init is not None:
            # Fine-tuning keeps the file's sizes and motion space (its x0 predictions are in that standardisation).
            try:
                config = load_state(self.settings.init, "diffusion")[2]
            except CheckpointError as exc:
                raise TrainingError(str(exc)) from exc
            # The recipe is what the log and the manifest record: it states the sizes the network has.
            recipe.update(latent=config["latent_dim"], layers=config["num_layers"], heads=config["num_heads"],
                          ff_size=config["ff_size"], normalise="motion_mean" in config)
        model = MotionTransformer(**{**config, "cond_mask_prob": recipe["frame_drop"],
                                     "beat_features": BEAT_FEATURES if recipe["beat_input"] else 0})
        if self.settings.init is not None:
            self._start_from_init(model)
        model.music_encoder.load_state_dict(m2snet.music_encoder.state_dict())
        if not recipe["normalise"] and self.settings.init is None:
            with torch.no_grad():  # in raw coordinates, start predicting the mean pose instead of the origin
                model.out.bias.copy_(torch.from_numpy(mean))
        self.model = model.to(self.device)
        self.beat_projection = self.model.beat_projection
        self.features = m2snet.motion_encoder
        self.diffusion = ConductorDiffusion()
        self.music = self._music_cache(m2snet)
        self.beats = self._beat_cache() if recipe["beat_input"] else None
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.modules = {"denoiser": self.model}
        self.optimizers = {"adam": torch.optim.Adam(trainable, lr=recipe["lr"])}

    def _losses(self, x0: torch.Tensor, music: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> dict:
        x_t = self.diffusion.q_sample(x0, t, noise)
        predicted = self.model(x_t, t, music)
        reconstruction = F.mse_loss(predicted, x0)
        velocity = F.mse_loss(predicted[:, 1:] - predicted[:, :-1], x0[:, 1:] - x0[:, :-1])
        return {"loss": reconstruction + self.recipe["w_velocity"] * velocity,
                "reconstruction": reconstruction, "velocity": velocity}

    def train_step(self, places, mel, motion, epoch, rng, noise) -> dict:
        x0 = self.model.normalise(self._tensor(motion).reshape(motion.shape[0], motion.shape[1], -1))
        music = self._music_window("train", places)
        keep = (torch.rand(music.shape[0], 1, 1, generator=noise) >= self.recipe["clip_drop"]).to(music)
        t = torch.randint(0, self.diffusion.num_steps, (x0.shape[0],), generator=noise).to(self.device)
        epsilon = torch.randn(x0.shape, generator=noise).to(self.device)
        self.model.train()
        losses = self._losses(x0, music * keep, t, epsilon)
        optimizer = self.optimizers["adam"]
        optimizer.zero_grad()
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe["grad_clip"])
        optimizer.step()
        return {key: value.item() for key, value in losses.items()}

    @torch.no_grad()
    def validate(self) -> dict:
        self.model.eval()
        noise = torch.Generator().manual_seed(12345)
        losses, real, fake, mels = [], [], [], []
        for i in range(len(self.val_set)):
            place = self.val_set.locate(i)
            mel, motion = self.val_set.cut(*place)
            x0 = self.model.normalise(self._tensor(motion[None]).reshape(1, motion.shape[0], -1))
            music = self._music_window("val", [place])
            # The denoising loss at fixed timesteps across the schedule: comparable from epoch to epoch.
            for step in (50, 250, 500, 750, 950):
                t = torch.tensor([step], device=self.device)
                epsilon = torch.randn(x0.shape, generator=noise).to(self.device)
                losses.append(float(self._losses(x0, music, t, epsilon)["reconstruction"]))
            if i < self.recipe["val_windows"]:
                denoiser = TorchDenoiser(self.model)
                start = torch.randn(x0.shape, generator=noise).numpy()
                sample = ddim_sample(denoiser, music.cpu().numpy(), start, steps=self.recipe["val_steps"])
                real.append(motion)
                fake.append(denoiser.denormalise(sample)[0].reshape(-1, 13, 2))
                mels.append(mel)
        return {"reconstruction": float(np.mean(losses)), **window_metrics(real, fake, mels)}

    def export(self, path: Path, meta: dict) -> Path:
        return save_checkpoint(self.model, path, "diffusion", **meta)


TRAINERS: dict[str, type[Trainer]] = {t.kind: t for t in (M2SNetTrainer, M2SGANTrainer, DiffusionTrainer)}

