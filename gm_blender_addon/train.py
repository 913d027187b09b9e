"""Training and evaluation command line (needs torch; not used inside Blender).

    python -m gm_blender_addon.train {m2snet,m2sgan,diffusion} --data DIR --out DIR
        [--epochs N] [--batch-size N] [--device cpu|cuda] [--resume] [--seed N] [--window S] [--limit-hours H]
        [--steps-per-epoch N] [--time-limit MIN] [--threads N] [--m2snet PATH] [--init PATH] [--set KEY=VALUE ...]
    python -m gm_blender_addon.train evaluate --data DIR [--split val|test] [--models NAME[=CHECKPOINT] ...]
        [--m2snet PATH] [--seeds N] [--steps N] [--guidance X] [--window S] [--max-windows N] [--json OUT]
    python -m gm_blender_addon.train publish {m2snet,m2sgan,diffusion} --run DIR [--metrics EVAL.json]
        [--data-note TEXT]

DIR for --data is in the ConductorMotion100 layout: <DIR>/{train,val,test}/<k>/{mel.npy,motion.npy}.
M2S-GAN and diffusion build on a trained M2S-Net (--m2snet, default: the project's weights/m2snet.pt), so train
m2snet first. `publish` copies a run's network into weights/ and lists it in weights/manifest.json.

Exit codes: 0 done, 1 the run failed on bad data or settings (one line saying why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import sys
from pathlib import Path

from .training.dataset import SPLITS, DatasetError

MODEL_KINDS = ("m2snet", "m2sgan", "diffusion")
# The research-only official checkpoints (VirtualConductor). Networks trained from them (e.g. an M2S-GAN built on
# the official M2S-Net's music encoder) are derived works and must never be published into weights/.
OFFICIAL_SHA256 = {
    "a535e0f46b132e45355ebde9d98861bb3d0b537cd5d5432980e5e3dd51839e0a": "M2SGAN_official_pretrained.pt",
    "83245d2693e4412947bef29d1754c5c400ef852cbcabe55c2a110871eaf55526": "M2SNet_official_pretrained.pt",
    "3791a1f774a7d8d6672c2e8b3fd585f5c894be7d14e1b17b656678cc09ee9592": "M2SNet_test_official_pretrained.pt",
}


class UsageError(ValueError):
    pass


class ProgressBar:
    """A one-line bar on stderr, redrawn in place on a terminal, one line per 5 % otherwise."""

    def __init__(self, width: int = 30):
        self.width = width
        self.tty = sys.stderr.isatty()
        self.last_step = -1

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(round(self.width * fraction))
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:5.1f}% {message}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        elif int(fraction * 20) != self.last_step:
            self.last_step = int(fraction * 20)
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def _recipe_entry(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value  # a bare word, e.g. negatives=super-hard


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gm_blender_addon.train", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for kind in MODEL_KINDS:
        sub = commands.add_parser(kind, help=f"train {kind}")
        sub.add_argument("--data", type=Path, required=True, help="root of the ConductorMotion100-layout data")
        sub.add_argument("--out", type=Path, required=True, help="run folder (logs, training state, network)")
        sub.add_argument("--epochs", type=int, default=10, help="total epochs, counting those before --resume")
        sub.add_argument("--batch-size", type=int, default=8)
        sub.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
        sub.add_argument("--resume", action="store_true", help="continue the run in --out")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--window", type=int, default=30, help="training window in seconds (official: 30)")
        sub.add_argument("--limit-hours", type=float, help="use only the first H hours of the train split")
        sub.add_argument("--steps-per-epoch", type=int, help="cap on batches per epoch")
        sub.add_argument("--time-limit", type=float, help="stop after the epoch that passes this many minutes")
        sub.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
        sub.add_argument("--log-every", type=int, default=10, help="log every N steps")
        sub.add_argument("--set", dest="recipe", type=_recipe_entry, action="append", default=[],
                         metavar="KEY=VALUE", help="override a recipe entry (see log.jsonl 'start' for the list)")
        if kind != "m2snet":
            sub.add_argument("--m2snet", type=Path, help="trained M2S-Net (default: weights/m2snet.pt)")
            sub.add_argument("--init", type=Path, help="fine-tune these weights (a checkpoint trained on the same "
                                                       "M2S-Net) instead of starting from scratch")

    evaluate = commands.add_parser("evaluate", help="print the metrics table for a split")
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--split", default="test", choices=SPLITS)
    evaluate.add_argument("--models", nargs="+", default=["procedural", "m2sgan", "diffusion"],
                          help="procedural, m2sgan or diffusion, each optionally =CHECKPOINT (default: project "
                               "weights)")
    evaluate.add_argument("--m2snet", type=Path, help="M2S-Net for the diversity features (default: project weights)")
    evaluate.add_argument("--seeds", type=int, default=2, help="seeds per window for the seed variation")
    evaluate.add_argument("--steps", type=int, help="diffusion DDIM steps (default: the generator's default)")
    evaluate.add_argument("--guidance", type=float, help="diffusion guidance (default: the generator's default)")
    evaluate.add_argument("--window", type=int, default=30, help="window length in seconds")
    evaluate.add_argument("--max-windows", type=int, help="evaluate at most N windows")
    evaluate.add_argument("--threads", type=int)
    evaluate.add_argument("--json", type=Path, help="also write the scores as JSON")

    publish = commands.add_parser("publish", help="copy a run's network into weights/ with a manifest entry")
    publish.add_argument("kind", choices=MODEL_KINDS)
    publish.add_argument("--run", type=Path, required=True, help="the training run folder")
    publish.add_argument("--metrics", type=Path, help="evaluate --json output whose scores to record")
    publish.add_argument("--metrics-row", help="row of that JSON to record (default: the one naming this file)")
    publish.add_argument("--data-note", default="", help="what the data was, for the manifest")
    publish.add_argument("--weights-dir", type=Path, help="default: the add-on's weights/ folder")
    return parser


def _train(args) -> int:
    import torch

    from .training.trainers import TRAINERS, Settings

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings(
        data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
        seed=args.seed, resume=args.resume, window_seconds=args.window, limit_hours=args.limit_hours,
        steps_per_epoch=args.steps_per_epoch, time_limit_minutes=args.time_limit, log_every=args.log_every,
        m2snet=getattr(args, "m2snet", None), init=getattr(args, "init", None), recipe=dict(args.recipe),
    )
    bar = ProgressBar()
    trainer = TRAINERS[args.command](settings, progress=bar)
    record = trainer.run()
    bar.close()
    print(json.dumps({"epochs": trainer.epoch, "steps": trainer.step, "train": record.get("train"),
                      "val": record.get("val"), "network": str(args.out / f"{args.command}.pt")}))
    return 0


def _evaluate(args) -> int:
    import torch

    from .core.metrics import motion_features_fn
    from .generators import diffusion as diffusion_generator
    from .training import evaluation
    from .training.dataset import WindowDataset, read_split
    from .weights import default_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = WindowDataset(read_split(args.data, args.split), args.window)
    candidates = []
    for entry in args.models:
        name, _, path = entry.partition("=")
        if name == "procedural":
            candidates.append(evaluation.procedural_candidate())
            continue
        if name not in ("m2sgan", "diffusion"):
            raise UsageError(f"unknown model {name!r}; use procedural, m2sgan[=PATH] or diffusion[=PATH]")
        checkpoint = Path(path) if path else default_checkpoint(name)
        if checkpoint is None:
            print(f"skipping {name}: no project weights installed and no checkpoint given", file=sys.stderr)
            continue
        if name == "m2sgan":
            candidates.append(evaluation.m2sgan_candidate(checkpoint))
        else:
            steps = args.steps or diffusion_generator.DEFAULT_STEPS
            guidance = args.guidance if args.guidance is not None else diffusion_generator.DEFAULT_GUIDANCE
            candidates.append(evaluation.diffusion_candidate(checkpoint, steps, guidance))
    m2snet = args.m2snet or default_checkpoint("m2snet")
    features = motion_features_fn(m2snet) if m2snet else None
    bar = ProgressBar()
    results = evaluation.evaluate(dataset, candidates, tuple(range(max(1, args.seeds))), features,
                                  args.max_windows, progress=bar)
    bar.close()
    print(f"{args.split} split of {args.data}: {results['recorded motion']['windows']} windows of {args.window} s"
          f"{'' if features else ' (no M2S-Net: diversity n/a)'}")
    print(evaluation.format_table(results))
    sync = evaluation.m2snet_sync_accuracy(m2snet, dataset) if m2snet else None
    if sync:
        print(f"M2S-Net ({Path(m2snet).name}) sync accuracy on {args.split}, 0.5 = chance: "
              + ", ".join(f"{mode.replace('_', '-')} {sync['accuracy_' + mode]:.3f}"
                          for mode in ("easy", "hard", "super_hard") if f"accuracy_{mode}" in sync))
    if args.json:
        args.json.write_text(json.dumps({"data": str(args.data), "split": args.split, "window_seconds": args.window,
                                         "m2snet": str(m2snet) if m2snet else None, "m2snet_sync": sync,
                                         "results": results}, indent=1))
    return 0


# The generators' networks, which run as ONNX bundles (m2snet only serves training and the SE/FGD metrics).
ONNX_KINDS = ("m2sgan", "diffusion")


def _export_onnx(kind: str, checkpoint: Path) -> Path:
    from .generators.nets.checkpoints import GENERATOR_LOADERS
    from .generators.nets.onnx_export import EXPORTERS

    return EXPORTERS[kind](GENERATOR_LOADERS[kind](checkpoint).eval(), checkpoint.with_name(f"{kind}.onnx.zip"))


def _publish(args) -> int:
    import torch

    from .core.audio import file_sha256
    from .weights import file_entry, weights_dir, write_entry

    source = args.run / f"{args.kind}.pt"
    if not source.is_file():
        raise DatasetError(f"{source} does not exist: is {args.run} a finished {args.kind} run?")
    meta = torch.load(source, map_location="cpu", weights_only=True).get("meta", {})
    derived = [p["file"] for p in meta.get("provenance", {}).values() if p.get("sha256") in OFFICIAL_SHA256]
    if derived:
        raise DatasetError(
            f"{source} was trained from research-only official weights ({', '.join(derived)}) and may not be "
            f"published into the add-on; train on project weights instead"
        )
    folder = args.weights_dir or weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{args.kind}.pt"
    shutil.copyfile(source, target)
    held_out = None
    if args.metrics:
        report = json.loads(args.metrics.read_text())
        if args.kind == "m2snet":
            held_out = {"split": report["split"], "window_seconds": report["window_seconds"],
                        "network": report.get("m2snet"), "sync": report.get("m2snet_sync")}
        else:
            rows = report["results"]
            row = args.metrics_row or next((label for label in rows if label.startswith(args.kind)), None)
            held_out = {"split": report["split"], "window_seconds": report["window_seconds"], "row": row,
                        "scores": rows.get(row), "recorded_motion": rows.get("recorded motion")}
    entry = write_entry(
        args.kind, target, folder,
        recipe=meta.get("recipe"), epochs=meta.get("epochs"), steps=meta.get("steps"), seed=meta.get("seed"),
        data={"note": args.data_note, "train_hours": meta.get("train_hours"), "path": meta.get("data"),
              "window_seconds": meta.get("window_seconds")},
        provenance=meta.get("provenance"), validation=meta.get("val"), held_out_metrics=held_out,
        **({"onnx": file_entry(_export_onnx(args.kind, target), folder)} if args.kind in ONNX_KINDS else {}),
    )
    print(f"{target} ({entry['bytes'] / 1e6:.2f} MB, sha256 {file_sha256(target)[:12]}…) listed in the manifest")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    from .generators.nets.checkpoints import CheckpointError
    from .training.trainers import TrainingError
    from .weights import WeightsError

    try:
        if args.command in MODEL_KINDS:
            return _train(args)
        if args.command == "evaluate":
            return _evaluate(args)
        return _publish(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except (DatasetError, TrainingError, CheckpointError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
