"""The add-on on real recordings: its beat trackers and every generator against madmom's beats, excerpt by excerpt.

    .venv/bin/python benchmarks/real_music.py [--limit N] [--json OUT.json] [--trackers tcn,librosa]
        [--generators procedural,m2sgan,diffusion] [--option NAME=VALUE ...] [--checkpoint GENERATOR=PATH ...]
        [--packages data/real_music]
        [--references benchmarks/real_music/references.json]

The excerpts (60 s of game and film-style soundtracks from Debian packages, orchestral first) and their reference,
madmom's RNN + DBN beats, downbeats and beats per bar, are those `real_music_reference.py` chose and computed once
in madmom's own environment. The audio is not in the repository: a package missing from `--packages` is fetched
with `apt-get download` and unpacked there, and every music file must have the sha256 the references were made on.
Each excerpt is cut from its file at the file's own rate and decoded by the add-on's loader.

Per tracker (`core.analysis.analyse`): beat F-measure (±70 ms, one-to-one) against the reference beats at their own
level, and at any metrical level (the best of the reference's level, double tempo, half tempo on the odd or the
even beats, and the off-beat; which one won is reported); downbeat F against madmom's downbeats; whether the beats
per bar agree with madmom's; CPU seconds per minute of audio, after one untimed analysis per tracker has paid for
imports, JIT compilation and weights. Per generator (`pipeline.perform` with the default tracker): F of the right
hand's ictus (the wrist's lowest points, found as `benchmarks/tracker.py` finds them) against the reference beats,
at their level and at any level. `--option NAME=VALUE` is given to every generator that has the option (for
instance `--option beat_lock=false`); a generator without it runs as it is, with a warning. `--checkpoint
GENERATOR=PATH` runs that generator with other weights than the project's (a training run's, an official file).

Prints a line per excerpt and means over all excerpts and per package; asserts nothing. This set is for choosing
models and constants, beside the synthetic validation split.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gm_blender_addon.core.analysis import TRACKERS, AnalysisError, analyse  # noqa: E402
from gm_blender_addon.core.audio import load_audio  # noqa: E402
from gm_blender_addon.generators import registry  # noqa: E402
from gm_blender_addon.pipeline import perform  # noqa: E402
from gm_blender_addon.training.tracker_train import f_measure, f_measure_any_level  # noqa: E402
from real_music_sources import (  # noqa: E402
    PACKAGES, REFERENCES, MusicFile, SourceError, cut, decode, ensure_package, sha256, write_excerpt,
)
from tracker import ictus_times  # noqa: E402

TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def option_value(option: registry.Option, text: str):
    if option.type is bool:
        if text.lower() in TRUE_WORDS + FALSE_WORDS:
            return text.lower() in TRUE_WORDS
        raise ValueError(f"--option {option.name} takes true or false, not {text!r}")
    try:
        return option.type(text)
    except ValueError:
        raise ValueError(f"--option {option.name} takes a number ({option.type.__name__}), not {text!r}") from None


def generator_options(generator: str, given: dict[str, str]) -> dict:
    """The options in `given` that `generator` has, typed as it declares them."""
    spec = registry.get(generator)
    declared = {option.name: option for option in spec.options}
    chosen = {}
    for name, text in given.items():
        if name in declared:
            chosen[name] = option_value(declared[name], text)
        else:
            print(f"warning: {spec.label} has no option {name}; it runs without it", file=sys.stderr)
    return chosen


def beat_scores(estimated: np.ndarray, reference: np.ndarray) -> dict:
    any_level, level = f_measure_any_level(estimated, reference)
    return {"f": f_measure(estimated, reference), "f_any": any_level, "level": level}


def score_tracker(audio, tracker: str, excerpt: dict) -> dict:
    started = time.process_time()
    try:
        analysis = analyse(audio, tracker=tracker)
    except AnalysisError as exc:  # no steady beat found: nothing is conducted, so nothing scores
        return {"f": 0.0, "f_any": 0.0, "level": "none", "downbeat_f": 0.0, "bpb_agree": False,
                "cpu_s_per_min": (time.process_time() - started) / (audio.duration / 60.0), "error": str(exc)}
    cpu = time.process_time() - started
    return {**beat_scores(analysis.beats, np.asarray(excerpt["beats"])),
            "downbeat_f": f_measure(analysis.downbeats, excerpt["downbeats"]),
            "bpb_agree": analysis.beats_per_bar == excerpt["beats_per_bar"],
            "beats_per_bar": analysis.beats_per_bar, "tempo_bpm": round(analysis.tempo_bpm, 1),
            "cpu_s_per_min": cpu / (audio.duration / 60.0)}


def score_generator(path: Path, generator: str, options: dict, checkpoint: Path | None, excerpt: dict) -> dict:
    try:
        keypoints = perform(path, generator, checkpoint=checkpoint, options=options).motion.keypoints
    except AnalysisError as exc:
        return {"f": 0.0, "f_any": 0.0, "level": "none", "error": str(exc)}
    return beat_scores(ictus_times(keypoints), np.asarray(excerpt["beats"]))


def mean(rows: list[dict], group: str, name: str, key: str) -> float:
    return float(np.mean([row[group][name][key] for row in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--references", type=Path, default=REFERENCES)
    parser.add_argument("--packages", type=Path, default=PACKAGES,
                        help="folder with each package unpacked as <package>/ (fetched with apt-get if missing)")
    parser.add_argument("--limit", type=int, help="only the first N excerpts")
    parser.add_argument("--trackers", default="tcn,librosa", help="comma-separated trackers to analyse with")
    parser.add_argument("--generators", default=",".join(registry.names()), help="comma-separated generators")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a generator option, given to each generator that has it (repeatable)")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="GENERATOR=PATH",
                        help="weights for a generator instead of the project's (repeatable)")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()

    trackers = [name for name in args.trackers.split(",") if name]
    generators = [name for name in args.generators.split(",") if name]
    unknown = set(trackers) - set(TRACKERS)
    if unknown:
        parser.error(f"unknown tracker(s) {', '.join(sorted(unknown))}; available: {', '.join(TRACKERS)}")
    given = {}
    for text in args.option:
        name, equals, value = text.partition("=")
        if not equals:
            parser.error(f"--option takes NAME=VALUE, not {text!r}")
        given[name.strip().replace("-", "_")] = value.strip()
    try:
        options = {generator: generator_options(generator, given) for generator in generators}
    except (registry.GeneratorError, ValueError) as exc:
        parser.error(str(exc))
    checkpoints = {}
    for text in args.checkpoint:
        name, equals, value = text.partition("=")
        if not equals or name.strip() not in generators:
            parser.error(f"--checkpoint takes GENERATOR=PATH for one of --generators, not {text!r}")
        checkpoints[name.strip()] = Path(value.strip())
    references = json.loads(args.references.read_text())
    excerpts = references["excerpts"][: args.limit]

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for excerpt in excerpts:
            source = MusicFile(excerpt["package"], excerpt["path"], excerpt["member"])
            try:
                ensure_package(args.packages, source.package, excerpt["version"])
            except SourceError as exc:
                sys.exit(str(exc))
            data = source.read(args.packages)
            if sha256(data) != excerpt["sha256"]:
                sys.exit(f"{source.package}: {source.member or source.path} is not the file the references were "
                         f"made on (sha256 differs; they were made on version {excerpt['version']}).")
            samples, rate = decode(data)
            path = write_excerpt(Path(scratch) / f"{source.name}@{excerpt['start']:g}.wav",
                                 cut(samples, rate, excerpt["start"], excerpt["duration"]), rate)
            audio = load_audio(path)
            if not rows:
                for name in trackers:
                    analyse(audio, tracker=name)
            row = {"id": excerpt["id"], "package": excerpt["package"], "minutes": audio.duration / 60.0,
                   "reference_bpm": excerpt["tempo_bpm"], "reference_beats_per_bar": excerpt["beats_per_bar"],
                   "trackers": {name: score_tracker(audio, name, excerpt) for name in trackers},
                   "generators": {name: score_generator(path, name, options[name], checkpoints.get(name), excerpt)
                                  for name in generators}}
            rows.append(row)
            print(f"{row['id'][:44]:44s} {row['reference_bpm']:5.0f} BPM "
                  + " ".join(f"{name} {s['f']:.2f}/{s['f_any']:.2f} {s['level']:9s}"
                             for name, s in row["trackers"].items())
                  + " | " + " ".join(f"{name} {s['f']:.2f}/{s['f_any']:.2f}" for name, s in row["generators"].items()),
                  flush=True)

    packages = list(dict.fromkeys(row["package"] for row in rows))
    groups = [("all", rows)] + [(package, [row for row in rows if row["package"] == package]) for package in packages]
    print(f"\nReal recordings: {len(rows)} excerpts from {len(packages)} packages, "
          f"{sum(row['minutes'] for row in rows):.0f} min; reference madmom RNN + DBN; F at ±70 ms")
    summary = {"trackers": {}, "generators": {}, "levels": {}}
    print(f"{'subset':15s} {'n':>3s} {'tracker':9s} {'beat F':>7s} {'any level':>9s} {'downbeat F':>10s} "
          f"{'bpb agree':>9s} {'CPU s/min':>9s}")
    for label, subset in groups:
        for name in trackers:
            stats = {key: mean(subset, "trackers", name, key)
                     for key in ("f", "f_any", "downbeat_f", "bpb_agree", "cpu_s_per_min")}
            summary["trackers"][f"{label}/{name}"] = stats
            print(f"{label:15s} {len(subset):3d} {name:9s} {stats['f']:7.3f} {stats['f_any']:9.3f} "
                  f"{stats['downbeat_f']:10.3f} {100 * stats['bpb_agree']:8.0f}% {stats['cpu_s_per_min']:9.2f}")
    print(f"\n{'subset':15s} {'n':>3s} {'generator':11s} {'ictus F':>7s} {'any level':>9s}")
    for label, subset in groups:
        for name in generators:
            stats = {key: mean(subset, "generators", name, key) for key in ("f", "f_any")}
            summary["generators"][f"{label}/{name}"] = stats
            print(f"{label:15s} {len(subset):3d} {name:11s} {stats['f']:7.3f} {stats['f_any']:9.3f}")
    print("\nLevel that gave the any-level F (excerpts):")
    for group, names in (("trackers", trackers), ("generators", generators)):
        for name in names:
            summary["levels"][name] = dict(Counter(row[group][name]["level"] for row in rows).most_common())
            print(f"  {name:11s} " + ", ".join(f"{level} {n}" for level, n in summary["levels"][name].items()))
    if given:
        applied = "; ".join(f"{name} {chosen}" for name, chosen in options.items() if chosen)
        print(f"Generator options: {applied or 'no generator has the ones given'}")
    for name, path in checkpoints.items():
        print(f"{name} ran {path}")
    if args.json:
        args.json.write_text(json.dumps({"references": str(args.references), "options": options,
                                         "checkpoints": {name: str(path) for name, path in checkpoints.items()},
                                         "summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
