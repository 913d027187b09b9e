"""Train the beat / downbeat / meter TCN of `core.tracker` on the score corpus and export it as numpy weights.

    python -m gm_blender_addon.training.tracker_train --corpus data/corpus [data/corpus2 ...] \
        --out weights/tracker_tcn.npz --minutes 30

``--init WEIGHTS`` starts from earlier exported weights instead of from scratch, with their width and dilations.
Several corpus folders (builds with different seeds, made in parallel) train as one: their train splits are pooled,
and so are their validation splits.

Training runs for a wall-clock budget on one CPU thread, checkpoints every evaluation (``<out>.ckpt.pt``; a rerun
resumes from it) and keeps the weights that decode best on the validation split.  Augmentation on top of the
corpus's own (rendered rate, reverb, EQ, noise, level): time stretch of the spectrogram and labels (tempo), a
shift of a few mel bands (register), and now and then a percussion part on the beats (see `add_percussion`).  The
export is an .npz of float32 arrays named as `core.tracker.TCN` expects, added to ``weights/manifest.json`` under
`core.tracker.MANIFEST_KIND` with its recipe, data and validation scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core import tracker as tr
from ..core.analysis import ANALYSIS_RATE

DILATIONS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CHANNELS = 40
CROP_FRAMES = 1024
BATCH = 8
COMPOUND_WEIGHT = 1.0
TEMPO_WEIGHT = 0.3
TEMPO_SIGMA = 0.04  # relative width of the soft beat-period target (log scale)
STRETCH = (0.8, 1.25)
BAND_SHIFT = 2
EVAL_EVERY = 1000
LEARNING_RATE = 2e-3
# Share of training crops given a percussion part.  The rendered corpus has no drums, and a network trained on it
# alone heard a steady 120-180 BPM click with a bass note on each bar line at half tempo.
PERCUSSION_CHANCE = 0.15


class TrainingError(RuntimeError):
    """Training cannot start: no corpus, or an empty split."""


@dataclass
class Excerpt:
    log_mel: np.ndarray  # (N_BANDS, T) float32, dB re the excerpt maximum
    beats: np.ndarray  # seconds
    downbeats: np.ndarray
    compound: bool
    beats_per_bar: int


def load_split(folder: Path, loaded: dict[Path, Excerpt] | None = None) -> dict[Path, Excerpt]:
    """Every finished excerpt of a split folder (its .json is written last), adding to `loaded`."""
    out = dict(loaded or {})
    for record_path in sorted(folder.glob("*.json")):
        npz = record_path.with_suffix(".npz")
        if npz in out:
            continue
        record = json.loads(record_path.read_text())
        with np.load(npz) as data:
            out[npz] = Excerpt(data["log_mel"].T.astype(np.float32), data["beats"],
                               data["downbeats"], record["subdivision"] == 3, record["beats_per_bar"])
    return out


def _targets(times: np.ndarray, n: int, fps: float) -> np.ndarray:
    """1 on the nearest frame, 0.5 on its neighbours: a beat is rarely exactly on a frame."""
    target = np.zeros(n, np.float32)
    frames = np.round(np.asarray(times) * fps).astype(int)
    for offset, value in ((-1, 0.5), (1, 0.5), (0, 1.0)):
        f = frames + offset
        f = f[(f >= 0) & (f < n)]
        target[f] = np.maximum(target[f], value)
    return target


def tempo_targets(beats: np.ndarray, n: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(soft distribution over `tr.periods(fps)` per frame (P, n), mask (n,)) from the local beat period."""
    taus = tr.periods(fps)
    t = np.arange(n)
    mask = np.zeros(n, np.float32)
    target = np.zeros((len(taus), n), np.float32)
    if len(beats) < 2:
        return target, mask
    frames = np.asarray(beats) * fps
    inside = (t >= frames[0]) & (t < frames[-1])
    period = np.interp(t, frames[:-1], np.diff(frames))
    valid = inside & (period >= taus[0]) & (period <= taus[-1])
    logits = -0.5 * ((np.log(taus)[:, None] - np.log(np.maximum(period, 1.0))[None, :]) / TEMPO_SIGMA) ** 2
    dist = np.exp(logits - logits.max(axis=0, keepdims=True))
    target[:, valid] = (dist / dist.sum(axis=0, keepdims=True))[:, valid]
    mask[valid] = 1.0
    return target, mask


def add_percussion(log_mel: np.ndarray, beat_frames: np.ndarray, downbeat_frames: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """`log_mel` (bands, T; dB re its maximum) with a percussion part mixed in: a short noise burst of random colour on
    every beat, louder on downbeats, and sometimes a bass drum on the downbeats; renormalised to its new maximum."""
    bands, n = log_mel.shape
    level = rng.uniform(-30.0, -6.0)
    tilt = rng.uniform(-12.0, 12.0) * (np.arange(bands) / (bands - 1) - 0.5)
    decay = rng.uniform(6.0, 20.0)  # dB per frame
    downbeat_accent = rng.uniform(0.0, 8.0)
    bass_drum = rng.random() < 0.5
    power = 10.0 ** (log_mel / 10.0)
    downbeats = set(np.round(downbeat_frames).astype(int).tolist())
    for frame in np.round(beat_frames).astype(int):
        on_downbeat = frame in downbeats
        accent = downbeat_accent if on_downbeat else 0.0
        for k in range(6):
            if 0 <= frame + k < n:
                power[:, frame + k] += 10.0 ** ((level + accent + tilt - decay * k) / 10.0)
                if bass_drum and on_downbeat:
                    power[:10, frame + k] += 10.0 ** ((level + 6.0 - 0.5 * decay * k) / 10.0)
    out = 10.0 * np.log10(power)
    return np.maximum(out - out.max(), -80.0).astype(np.float32)


def sample_batch(excerpts: Sequence[Excerpt], rng: np.random.Generator, fps: float = ANALYSIS_RATE):
    """(features (B, N_INPUT, T), targets (B, 3, T), tempo targets (B, P, T), tempo mask (B, T)) crops with time
    stretch and band shift."""
    xs, ys, ts, ms = [], [], [], []
    for _ in range(BATCH):
        ex = excerpts[int(rng.integers(len(excerpts)))]
        stretch = float(np.exp(rng.uniform(np.log(STRETCH[0]), np.log(STRETCH[1]))))
        n_src = ex.log_mel.shape[1]
        n = max(1, int(n_src / stretch))
        src = np.minimum(np.arange(n) * stretch, n_src - 1)
        left = np.floor(src).astype(int)
        right = np.minimum(left + 1, n_src - 1)
        frac = (src - left).astype(np.float32)
        feats = ex.log_mel[:, left] * (1 - frac) + ex.log_mel[:, right] * frac
        shift = int(rng.integers(-BAND_SHIFT, BAND_SHIFT + 1))
        if shift:
            # The bands rolled round the edge are replaced by the nearest real band.
            feats = np.roll(feats, shift, axis=0)
            if shift > 0:
                feats[:shift] = feats[shift]
            else:
                feats[shift:] = feats[shift - 1]
        if rng.random() < PERCUSSION_CHANCE:
            feats = add_percussion(feats, ex.beats / stretch * fps, ex.downbeats / stretch * fps, rng)
        feats = tr.features(feats)
        beat = _targets(ex.beats / stretch, n, fps)
        down = _targets(ex.downbeats / stretch, n, fps)
        comp = np.full(n, float(ex.compound), np.float32)
        tempo, tempo_mask = tempo_targets(ex.beats / stretch, n, fps)
        start = int(rng.integers(0, max(1, n - CROP_FRAMES)))
        stop = min(n, start + CROP_FRAMES)
        x = np.zeros((tr.N_INPUT, CROP_FRAMES), np.float32)
        y = np.zeros((3, CROP_FRAMES), np.float32)
        tt = np.zeros((len(tempo), CROP_FRAMES), np.float32)
        m = np.zeros(CROP_FRAMES, np.float32)
        x[:, : stop - start] = feats[:, start:stop]
        y[:, : stop - start] = np.stack([beat, down, comp])[:, start:stop]
        tt[:, : stop - start] = tempo[:, start:stop]
        m[: stop - start] = tempo_mask[start:stop]
        xs.append(x)
        ys.append(y)
        ts.append(tt)
        ms.append(m)
    return np.stack(xs), np.stack(ys), np.stack(ts), np.stack(ms)


def build_model(channels: int = CHANNELS, dilations: Sequence[int] = DILATIONS):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.dilated = nn.Conv1d(channels, channels, 3, dilation=d, padding=d)
            self.mix = nn.Conv1d(channels, channels, 1)
            self.drop = nn.Dropout(0.1)

        def forward(self, x):
            return x + self.mix(self.drop(nn.functional.elu(self.dilated(x))))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.input = nn.Conv1d(tr.N_INPUT, channels, 3, padding=1)
            self.blocks = nn.ModuleList(Block(d) for d in dilations)
            self.head = nn.Conv1d(channels, len(tr.HEADS) + len(tr.periods(ANALYSIS_RATE)), 1)

        def forward(self, x):
            x = nn.functional.elu(self.input(x))
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    torch.manual_seed(0)
    return Net()


def export(model, path: Path, dilations: Sequence[int] = DILATIONS) -> None:
    arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    np.savez(path, dilations=np.asarray(dilations, np.int32), **arrays)


def f_measure(estimated, reference, tolerance: float = 0.07) -> float:
    """Beat F-measure with one-to-one matching inside ±tolerance (as mir_eval counts it)."""
    estimated, reference = np.sort(np.asarray(estimated)), np.sort(np.asarray(reference))
    if len(estimated) == 0 or len(reference) == 0:
        return 0.0
    used = np.zeros(len(estimated), bool)
    hits = 0
    for r in reference:
        candidates = np.flatnonzero(~used & (np.abs(estimated - r) <= tolerance))
        if len(candidates):
            used[candidates[np.argmin(np.abs(estimated[candidates] - r))]] = True
            hits += 1
    if hits == 0:
        return 0.0
    precision, recall = hits / len(estimated), hits / len(reference)
    return 2 * precision * recall / (precision + recall)


def metrical_levels(reference) -> dict[str, np.ndarray]:
    """The reference beats and the other beats a listener may tap to the same music: twice as fast (midpoints
    inserted), half as fast (the odd or the even beats) and between the beats (the midpoints alone)."""
    beats = np.sort(np.asarray(reference, float))
    midpoints = (beats[:-1] + beats[1:]) / 2
    return {"reference": beats, "double": np.sort(np.concatenate([beats, midpoints])), "half_odd": beats[0::2],
            "half_even": beats[1::2], "off_beat": midpoints}


def f_measure_any_level(estimated, reference, tolerance: float = 0.07) -> tuple[float, str]:
    """The best beat F-measure over the reference's metrical levels, and the level that gives it (the reference's
    own on a tie)."""
    scores = {level: f_measure(estimated, beats, tolerance) for level, beats in metrical_levels(reference).items()}
    best = max(scores, key=scores.get)
    return scores[best], best


def evaluate(network: tr.TCN, excerpts: Sequence[Excerpt], fps: float = ANALYSIS_RATE) -> dict:
    """Mean beat F, downbeat F and meter accuracy of the full decoder on whole excerpts."""
    beat_f, down_f, meter_ok = [], [], []
    for ex in excerpts:
        # The corpus keeps no chroma, so the bars are decoded without the beat accents the add-on also reads.
        decoded = tr.decode(network.logits(tr.features(ex.log_mel)), fps)
        beats = decoded.frames / fps
        beat_f.append(f_measure(beats, ex.beats))
        down_f.append(f_measure(beats[decoded.bar_starts], ex.downbeats))
        meter_ok.append(decoded.beats_per_bar == ex.beats_per_bar and (decoded.subdivision == 3) == ex.compound)
    return {"beat_f": float(np.mean(beat_f)), "downbeat_f": float(np.mean(down_f)),
            "meter_accuracy": float(np.mean(meter_ok))}


def _load_splits(corpora: Sequence[Path], split: str, loaded: dict[Path, Excerpt] | None = None) -> dict[Path, Excerpt]:
    for corpus in corpora:
        loaded = load_split(corpus / split, loaded)
    return loaded


def train(corpora: Sequence[Path], out: Path, minutes: float, log=print, init: Path | None = None,
          learning_rate: float = LEARNING_RATE) -> dict:
    """Train for `minutes` on the pooled corpus folders, from scratch or, with `init`, from earlier exported weights
    (fine-tuning)."""
    import torch

    torch.set_num_threads(1)
    train_loaded = _load_splits(corpora, "train")
    val_set = list(_load_splits(corpora, "val").values())
    if not train_loaded or not val_set:
        raise TrainingError(f"{', '.join(map(str, corpora))}: no train or val excerpts; build them with "
                            "training.corpus first")
    train_set = list(train_loaded.values())
    if init is None:
        dilations = DILATIONS
        model = build_model(CHANNELS, dilations)
    else:
        with np.load(init) as data:
            dilations = tuple(int(d) for d in data["dilations"])
            model = build_model(int(data["input.weight"].shape[0]), dilations)
            model.load_state_dict({k: torch.from_numpy(data[k]) for k in model.state_dict()})
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    checkpoint = out.with_suffix(".ckpt.pt")
    step, best, history = 0, None, []
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step, best, history = state["step"], state["best"], state["history"]
        log(f"resumed at step {step}")
    rng = np.random.default_rng(step)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    head_weights = torch.tensor([1.0, 1.0, COMPOUND_WEIGHT])[None, :, None]
    began = time.monotonic()
    deadline = began + 60.0 * minutes
    scratch = out.with_suffix(".candidate.npz")
    running = []
    while time.monotonic() < deadline:
        model.train()
        # Learning rate decays linearly with the time budget, to a tenth at the end.
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * (1.0 - 0.9 * (time.monotonic() - began) / (deadline - began))
        x, y, tempo, tempo_mask = sample_batch(train_set, rng)
        logits = model(torch.from_numpy(x))
        n_heads = len(tr.HEADS)
        loss = (loss_fn(logits[:, :n_heads], torch.from_numpy(y)) * head_weights).mean()
        log_p = torch.log_softmax(logits[:, n_heads:], dim=1)
        mask = torch.from_numpy(tempo_mask)
        tempo_loss = -(torch.from_numpy(tempo) * log_p).sum(dim=1)
        loss = loss + TEMPO_WEIGHT * (tempo_loss * mask).sum() / mask.sum().clamp(min=1.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        running.append(loss.item())
        step += 1
        if step % EVAL_EVERY == 0:
            # The corpus may still be building: new excerpts join at each evaluation.
            train_loaded = _load_splits(corpora, "train", train_loaded)
            train_set = list(train_loaded.values())
            model.eval()
            export(model, scratch, dilations)
            scores = evaluate(tr.TCN.load(scratch), val_set)
            scores.update(step=step, loss=float(np.mean(running)), train_excerpts=len(train_set),
                          train_hours=round(sum(e.log_mel.shape[1] for e in train_set) / ANALYSIS_RATE / 3600, 2))
            running = []
            history.append(scores)
            score = scores["beat_f"] + scores["downbeat_f"] + 0.5 * scores["meter_accuracy"]
            if best is None or score > best["score"]:
                best = {**scores, "score": score}
                scratch.replace(out)
            log(json.dumps(scores))
            torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                        "best": best, "history": history}, checkpoint)
    if scratch.exists():
        scratch.unlink()
    return {"best": best, "steps": step, "history": history, "channels": int(model.input.out_channels),
            "dilations": list(dilations), "train_excerpts": len(train_set), "val_excerpts": len(val_set)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gm_blender_addon.training.tracker_train",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, nargs="+", default=[Path("data/corpus")],
                        help="corpus folders, pooled")
    parser.add_argument("--out", type=Path, default=Path("weights/tracker_tcn.npz"))
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget")
    parser.add_argument("--init", type=Path, help="start from these exported weights instead of from scratch")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--no-manifest", action="store_true", help="do not list the result in the manifest")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(time.strftime("%H:%M:%S"), message, flush=True)

    try:
        result = train(args.corpus, args.out, args.minutes, log, args.init, args.learning_rate)
    except TrainingError as exc:
        print(f"tracker_train: {exc}", file=sys.stderr)
        return 1
    log(json.dumps(result["best"]))
    if not args.no_manifest and args.out.is_file():
        write_manifest_entry(args.corpus, args.out, result, args.init, args.learning_rate)
    return 0


def write_manifest_entry(corpora: Sequence[Path], path: Path, result: dict, init: Path | None = None,
                         learning_rate: float = LEARNING_RATE, **extra) -> dict:
    """List `path` in the weights manifest; it is not made the default tracker (see
    core.tracker.approved_as_default)."""
    from ..weights import write_entry

    training = (f"python -m gm_blender_addon.training.tracker_train --corpus {' '.join(map(str, corpora))} "
                f"--out {path}")
    if init is not None:
        training += f" --init {init}"
    if learning_rate != LEARNING_RATE:
        training += f" --learning-rate {learning_rate:g}"
    manifests = [json.loads((corpus / "corpus.json").read_text()) for corpus in corpora]

    def total(split: str, key: str):
        return round(sum(m["splits"][split][key] for m in manifests), 3)

    def works(split: str) -> list[str]:
        return sorted({w for m in manifests for w in m["splits"][split]["works"]})

    return write_entry(
        tr.MANIFEST_KIND, path,
        architecture={"network": "TCN", "channels": result["channels"], "dilations": result["dilations"],
                      "input": "core.analysis.compute_spectral log_mel, 64 bands at 22050/512 Hz",
                      "heads": list(tr.HEADS) + ["beat period (tempo) distribution"],
                      "decoder": "Viterbi over beat period/phase, then meter/bar position"},
        recipe={"corpus": [m["recipe"] for m in manifests], "training": training},
        data={"train_hours": total("train", "hours"), "val_hours": total("val", "hours"),
              "train_works": len(works("train")), "held_out_test_works": works("test"), "val_works": works("val"),
              "rights_tiers_trained_on": {t: sum(m["splits"]["train"]["rights_tiers"][t] for m in manifests)
                                          for t in ("stated", "unstated")},
              "excluded_corpus_folders": manifests[0]["excluded_corpus_folders"]},
        licence=("Weights trained by the project; offered for commercial use. Training scores: music21 corpus "
                 "encodings of public-domain compositions whose encodings state a permissive licence (public "
                 "domain, CC0, CC-BY) or state none ('unstated' tier: Bach chorales, Beethoven, Mozart and Haydn "
                 "quartets, Ryan's Mammoth Collection tunes). music21 says restrictions are embedded per file or "
                 "per folder; these files embed none. UNCERTAIN: the quartet and chorale encodings appear to come "
                 "from CCARH/Humdrum sources whose own terms are not stated in music21; the lead should confirm."),
        metrics={"val": result["best"], "steps": result["steps"]},
        default_tracker=False,
        **extra,
    )


if __name__ == "__main__":
    sys.exit(main())
