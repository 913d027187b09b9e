"""Headless command line: the same functions the panel's operators call, one .blend per audio file.

    python -m gm_blender_addon generate AUDIO... --out OUT.blend [options]
    python -m gm_blender_addon generate [AUDIO] --score SCORE --out OUT.blend [options]
    python -m gm_blender_addon capture VIDEO --out OUT.npz [--smoothing S] [--audio-out OUT.wav | --no-audio]
    python -m gm_blender_addon compare GENERATED.npz CAPTURED.npz [--audio MUSIC] --out DIR [--m2snet PATH]
    python -m gm_blender_addon analyze AUDIO [--json OUT.json] [--tracker NAME] [--meter 3/4] [--tempo BPM]
        [--beats FILE] [--score SCORE]
    python -m gm_blender_addon vocabulary add VOCAB.npz MOTION.npz --frames A B --description TEXT --meaning TEXT
    python -m gm_blender_addon vocabulary train VOCAB.npz [--steps N]
    python -m gm_blender_addon vocabulary explain VOCAB.npz MOTION.npz [--json OUT.json]
    python -m gm_blender_addon vocabulary search VOCAB.npz MOTION.npz TEXT [--top K]
    python -m gm_blender_addon vocabulary map VOCAB.npz --out MAP.png
    python -m gm_blender_addon vocabulary evaluate --json OUT.json
    blender -b --factory-startup --python-exit-code 1 --python gm_blender_addon/run_headless.py -- generate ...

Exit codes: 0 everything done, 1 at least one input failed (the others are still done; a score that does not match
its recording is one: that recording is conducted without it), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from .core.analysis import METER_ALIASES, METER_NAMES, AnalysisError, GivenBeats, MusicHints
from .core.audio import SUPPORTED_SUFFIXES, AudioError
from .core.beats_file import BeatsFileError, read_beats
from .core.keys import DEFAULT_TOLERANCE_DEG, MAX_TOLERANCE_DEG, MIN_TOLERANCE_DEG
from .core.motion import MotionFileError
from .core.retarget import RigMapError
from .core.score import Score, ScoreError, load_score
from .generators import registry

# Errors that describe bad input: reported as one line, without a traceback.
INPUT_ERRORS = (AudioError, AnalysisError, BeatsFileError, registry.GeneratorError, RigMapError,
                MotionFileError, ScoreError)


class UsageError(ValueError):
    pass


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gm_blender_addon", description="Gesture Maestro: music → conductor")
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="audio file(s) → animated conductor .blend")
    gen.add_argument("audio", nargs="*", type=Path,
                     help="audio files or folders of them; none with --score: the score is rendered and conducted")
    gen.add_argument("--out", required=True, type=Path, help="output .blend (a folder when several inputs are given)")
    gen.add_argument("--generator", default="procedural", choices=registry.names())
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--smoothing", type=float, default=0.2, help="0 (none) … 1 (strong); default 0.2")
    gen.add_argument("--sparse-keys", type=float, nargs="?", const=DEFAULT_TOLERANCE_DEG, metavar="DEGREES",
                     help="key only where needed, as Bézier curves within DEGREES of the generated motion (default "
                     f"{DEFAULT_TOLERANCE_DEG}), played from an NLA track; without it every frame is keyed")
    gen.add_argument("--rig", default="bundled", help="'bundled' or a .blend holding one armature")
    gen.add_argument("--rig-map", help="rig map name or .json file (default: detected from the bone names)")
    gen.add_argument("--checkpoint", type=Path, help="weights file, for generators that need one")
    gen.add_argument("--keypoints", type=Path, help="also write the keypoints .npz (a folder for several inputs)")
    gen.add_argument("--render", type=Path, help="also render an .mp4 with the music (a folder for several inputs)")
    gen.add_argument("--render-seconds", type=float, help="render only the first N seconds")
    _add_hint_arguments(gen)
    _add_score_argument(gen)
    owners = {}  # option name → (option, the generators that have it)
    for name in registry.names():
        for option in registry.get(name).options:
            owners.setdefault(option.name, (option, []))[1].append(name)
    for option, generators in owners.values():
        # A bool option is a pair of flags, --name and --no-name; giving neither leaves the generator's default.
        kind = {"action": argparse.BooleanOptionalAction} if option.type is bool else {"type": option.type}
        gen.add_argument(f"--{option.name.replace('_', '-')}", dest=f"opt_{option.name}",
                         help=f"[{', '.join(generators)}] {option.help}", **kind)
    ana = commands.add_parser("analyze", help="audio file → beats, downbeats, meter and tempo as JSON")
    ana.add_argument("audio", type=Path)
    ana.add_argument("--json", type=Path, help="output file (default: standard output)")
    ana.add_argument("--tracker", default="auto", help="'auto' (trained tracker when installed), 'tcn' or 'librosa'")
    _add_hint_arguments(ana)
    _add_score_argument(ana)
    _add_capture_commands(commands)
    _add_vocabulary_commands(commands)
    return parser


def _tempo(text: str) -> float:
    try:
        return MusicHints(tempo_bpm=float(text)).tempo_bpm
    except ValueError as exc:  # not a number, or a tempo out of range (AnalysisError)
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _beats(text: str) -> GivenBeats:
    try:
        return read_beats(text)
    except BeatsFileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_hint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meter", choices=[*METER_NAMES, *METER_ALIASES], metavar="METER",
                        help=f"the music's meter when detection gets it wrong: {', '.join(METER_NAMES)} (or 2/2, "
                             "3/2); only the bar lines are then found")
    parser.add_argument("--tempo", type=_tempo, metavar="BPM",
                        help="the beat's tempo, roughly, when the detected beat runs at double, half or another "
                             "speed")
    parser.add_argument("--beats", type=_beats, metavar="FILE",
                        help="conduct these beats instead of tracking them: analyze --json output, an Audacity label "
                             "track, or text/CSV of times in seconds (second column: bar numbers, or 1 on downbeats)")


def _score(text: str) -> Score:
    try:
        return load_score(text)
    except ScoreError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_score_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--score", type=_score, metavar="SCORE",
                        help="the music's score (MusicXML .musicxml/.xml/.mxl or MIDI .mid): aligned to the recording "
                             "it gives the bars as numbered there, meter and tempo changes, fermatas, dynamics and "
                             "the entrances to cue")


def _hints(args) -> MusicHints:
    """What the user says of the music; a contradiction (a tempo with a beats file, a meter against its bars, either
    with a score, which says both) is a usage error, found before any work."""
    if args.score is not None and (args.meter or args.tempo or args.beats):
        raise UsageError("--score gives the beats, bars and meter: leave out --meter, --tempo and --beats.")
    try:
        return MusicHints(meter=args.meter, tempo_bpm=args.tempo, beats=args.beats)
    except AnalysisError as exc:
        raise UsageError(str(exc)) from exc


def _add_capture_commands(commands) -> None:
    cap = commands.add_parser("capture", help="video of a performer → keypoints .npz (+ its audio as .wav)")
    cap.add_argument("video", type=Path)
    cap.add_argument("--out", required=True, type=Path, help="output keypoints .npz")
    cap.add_argument("--smoothing", type=float, default=0.5, help="jitter filter strength, 0 (none) … 1; default 0.5")
    cap.add_argument("--audio-out", type=Path, help="where to write the video's audio (default: OUT with .wav)")
    cap.add_argument("--no-audio", action="store_true", help="do not extract the audio track")
    cap.add_argument("--progress", choices=("text", "json"), default="text", help="json: one JSON object per line on stdout")
    com = commands.add_parser("compare", help="generated vs captured keypoints → metrics (JSON, CSV) and plots (PNG)")
    com.add_argument("generated", type=Path, help="keypoints .npz of the generated conductor")
    com.add_argument("captured", type=Path, help="keypoints .npz of the captured performer")
    com.add_argument("--audio", type=Path, help="the music both perform (for BC, loudness and tempo)")
    com.add_argument("--out", required=True, type=Path, help="output folder")
    com.add_argument("--m2snet", type=Path, help="M2S-Net weights, for SE and FGD")
    com.add_argument("--video", type=Path, help="the captured video (default: the one named in CAPTURED.npz)")
    com.add_argument("--motiongram-seconds", type=float, default=10.0, help="length of the motiongrams; default 10")
    com.add_argument("--no-rig-renders", action="store_true", help="skip rendering the rigs for their motiongrams")


def _add_vocabulary_commands(commands) -> None:
    from .core.gesture_encoder import TrainingSettings

    voc = commands.add_parser("vocabulary", help="a gesture vocabulary: label, search and explain conducting")
    actions = voc.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a gesture clip (a frame range of a motion) with its description and "
                                         "meaning; creates the vocabulary file if missing")
    add.add_argument("vocabulary", type=Path, help="the vocabulary .npz")
    add.add_argument("motion", type=Path, help="keypoints .npz the clip is taken from")
    add.add_argument("--frames", type=int, nargs=2, required=True, metavar=("START", "END"),
                     help="the clip's frames, START included, END excluded")
    add.add_argument("--description", required=True, help="what the gesture looks like, in words")
    add.add_argument("--meaning", required=True, help="what the gesture asks of the orchestra, in words")
    add.add_argument("--text-model", type=Path, metavar="FOLDER", help="the sentence model's folder (default: the "
                                                                        "installed one)")
    train = actions.add_parser("train", help="train the vocabulary's joint embedding (on the CPU)")
    train.add_argument("vocabulary", type=Path)
    train.add_argument("--steps", type=int, default=TrainingSettings().steps,
                       help=f"training steps (default {TrainingSettings().steps})")
    train.add_argument("--seed", type=int, default=0)
    exp = actions.add_parser("explain", help="the nearest musical meanings along a motion")
    exp.add_argument("vocabulary", type=Path)
    exp.add_argument("motion", type=Path)
    exp.add_argument("--json", type=Path, help="output file (default: a table on standard output)")
    exp.add_argument("--top", type=int, default=3, help="meanings per moment (default 3)")
    sea = actions.add_parser("search", help="the moments of a motion that best match a description")
    sea.add_argument("vocabulary", type=Path)
    sea.add_argument("motion", type=Path)
    sea.add_argument("text", help="a description of the gesture to find")
    sea.add_argument("--top", type=int, default=5, help="moments to list (default 5)")
    sea.add_argument("--text-model", type=Path, metavar="FOLDER",
                     help="the sentence model's folder, for a description the vocabulary does not hold")
    mp = actions.add_parser("map", help="a 2-D map of the vocabulary's joint embedding as a PNG")
    mp.add_argument("vocabulary", type=Path)
    mp.add_argument("--out", type=Path, required=True, help="output .png")
    eva = actions.add_parser("evaluate", help="build, train and score the project's own gesture vocabulary on "
                                              "held-out performances")
    eva.add_argument("--json", type=Path, required=True, help="output file")
    eva.add_argument("--train-performances", type=int, default=30, metavar="N",
                     help="training performances per gesture (default 30)")
    eva.add_argument("--test-performances", type=int, default=10, metavar="N",
                     help="held-out performances per gesture (default 10)")
    eva.add_argument("--steps", type=int, help="training steps (default: the evaluation's own)")
    eva.add_argument("--keep", type=Path, metavar="VOCAB.npz",
                     help="also save the trained vocabulary, with 3 performances of each gesture, as a starter "
                          "(what gm_blender_addon/data/vocabulary/conducting.npz is)")
    eva.add_argument("--text-model", type=Path, metavar="FOLDER", help="the sentence model's folder")


def _run_vocabulary(args) -> int:
    import json

    from .core import gesture_vocabulary as gv
    from .core.motion import Motion
    from .core.text_embedding import TextModelError, text_encoder

    for name in ("steps", "top", "train_performances", "test_performances"):
        if getattr(args, name, None) is not None and getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1.")
    if args.action == "add":
        for name in ("description", "meaning"):
            if not getattr(args, name).strip():
                raise UsageError(f"--{name} is empty: say in words what the gesture "
                                 f"{'looks like' if name == 'description' else 'asks of the orchestra'}.")
        _writable_target(args.vocabulary, folder=False, what="vocabulary")
    if args.action == "search" and not args.text.strip():
        raise UsageError("The search text is empty: type a description of the gesture to find.")
    for name in ("json", "out", "keep"):
        if getattr(args, name, None) is not None:
            _writable_target(getattr(args, name), folder=False, what=name)
    label = f"vocabulary {args.action}:"
    try:
        if args.action == "evaluate":
            return _run_vocabulary_evaluate(args, text_encoder(args.text_model), label)
        vocabulary = (gv.Vocabulary() if args.action == "add" and not args.vocabulary.exists()
                      else gv.load_vocabulary(args.vocabulary))
        if args.action == "add":
            motion = Motion.load(args.motion)
            gv.add_entry(vocabulary, motion, *args.frames, args.description, args.meaning,
                         text_encoder(args.text_model), source=f"{args.motion.name} frames {args.frames[0]}-"
                                                              f"{args.frames[1]}")
            gv.save_vocabulary(vocabulary, args.vocabulary)
            print(f"{args.vocabulary}: {len(vocabulary.entries)} entries, {len(vocabulary.descriptions)} "
                  "descriptions, untrained (train it to use it)")
        elif args.action == "train":
            progress = _ProgressLine(label)
            model = gv.train_vocabulary(vocabulary, _settings(args.steps), progress=progress, seed=args.seed)
            progress.done()
            gv.save_vocabulary(vocabulary, args.vocabulary)
            print(f"{args.vocabulary}: trained on {len(vocabulary.entries)} entries in {model.seconds:.1f} s, final "
                  f"loss {model.final_loss:.3f}")
        elif args.action == "explain":
            found = gv.explain(vocabulary, Motion.load(args.motion), top=args.top)
            rows = [{"time": round(e.time, 3), "meanings": [{"meaning": m, "similarity": round(s, 4)}
                                                            for m, s in e.meanings]} for e in found]
            if args.json is not None:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(rows, indent=1) + "\n")
            else:
                for e in found:
                    print(f"{e.time:8.2f} s  " + "  |  ".join(f"{m} ({s:.2f})" for m, s in e.meanings))
        elif args.action == "search":
            embed = None if " ".join(args.text.split()) in vocabulary.sentences else text_encoder(args.text_model)
            for time_s, score in gv.search(vocabulary, Motion.load(args.motion), args.text, top=args.top,
                                           embed=embed):
                print(f"{time_s:8.2f} s  {score:.3f}")
        elif args.action == "map":
            from .core.plots import gesture_map

            print(gesture_map(gv.map_points(vocabulary), args.out))
    except INPUT_ERRORS + (gv.VocabularyError, TextModelError, OSError) as exc:
        print(f"{label} FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


def _settings(steps: int):
    from dataclasses import replace

    from .core.gesture_encoder import TrainingSettings

    return replace(TrainingSettings(), steps=steps)


def _run_vocabulary_evaluate(args, embed, label: str) -> int:
    import json

    from .training.gesture_set import evaluate

    progress = _ProgressLine(label)
    result = evaluate(embed, per_gesture_train=args.train_performances, per_gesture_test=args.test_performances,
                      settings=None if args.steps is None else _settings(args.steps), progress=progress,
                      keep=args.keep)
    progress.done()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    for name in ("retrieval_accuracy", "mrr", "alignment", "positive_cosine", "uniformity"):
        print(f"{name:<18}  " + "  ".join(f"{pair} {value:.3f}" for pair, value in result[name].items()))
    print(f"trained in {result['training_seconds']} s on {result['training_clips']} clips; "
          f"{result['held_out_clips']} held-out clips; {args.json}")
    return 0


def _run_capture(args) -> int:
    import json

    from .core.capture import CaptureError, capture

    if not 0.0 <= args.smoothing <= 1.0:
        raise UsageError(f"--smoothing must be between 0 and 1, got {args.smoothing}.")
    if args.no_audio and args.audio_out:
        raise UsageError("--no-audio and --audio-out contradict each other.")
    _writable_target(args.out, folder=False, what="out")
    audio_out = None if args.no_audio else (args.audio_out or args.out.with_suffix(".wav"))
    if args.progress == "json":
        def progress(fraction: float, message: str) -> None:
            print(json.dumps({"progress": round(fraction, 4), "message": message}), flush=True)
    else:
        progress = _ProgressLine(f"{args.video.name}:")
    try:
        result = capture(args.video, smoothing=args.smoothing, audio_out=audio_out, progress=progress)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result.motion.save(args.out)
    except (CaptureError, OSError) as exc:
        if args.progress == "text":
            progress.done()
        print(f"{args.video.name}: FAILED: {exc}", file=sys.stderr)
        return 1
    if args.progress == "json":
        print(json.dumps({"done": str(args.out), "summary": result.report.summary(), "warnings": result.report.warnings}))
    else:
        progress.done()
        print(f"{args.video.name}: {args.out} ({result.motion.n_frames} frames at 30 fps; {result.report.summary()})")
        for warning in result.report.warnings:
            print(f"  warning: {warning}", file=sys.stderr)
    return 0


def _run_compare(args) -> int:
    from .core.compare import CompareError, compare_files

    _writable_target(args.out, folder=True, what="out")
    if args.motiongram_seconds <= 0:
        raise UsageError("--motiongram-seconds must be positive.")
    renderer = None
    if not args.no_rig_renders:
        from .blender.performer import render_rig_motiongrams as renderer
    try:
        result = compare_files(
            args.generated, args.captured, args.out, audio=args.audio, m2snet=args.m2snet, video=args.video,
            motiongram_seconds=args.motiongram_seconds, rig_motiongrams=renderer, progress=_ProgressLine("compare:"),
        )
    except INPUT_ERRORS + (CompareError,) as exc:
        print(f"compare: FAILED: {exc}", file=sys.stderr)
        return 1
    width = max(len(name) for name, _ in result.comparison.rows())
    for name, value in result.comparison.rows():
        print(f"{name:<{width}}  {value}")
    for path in result.files:
        print(path)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _run_analyze(args) -> int:
    import json

    from .core.align import AlignmentError
    from .core.analysis import TRACKERS, analyse
    from .core.audio import load_audio
    from .core.score_guide import score_record
    from .core.stage import default_plan
    from .core.tracker import TrackerWeightsError
    from .pipeline import analyse_with_score
    from .weights import WeightsError

    if args.tracker != "auto" and args.tracker not in TRACKERS:
        raise UsageError(f"--tracker must be auto or one of {', '.join(TRACKERS)}; got {args.tracker!r}.")
    if args.json is not None:
        _writable_target(args.json, folder=False, what="json")
    hints = _hints(args)
    mismatch = None
    try:
        audio = load_audio(args.audio)
        analysis = None
        if args.score is not None:
            try:
                analysis = analyse_with_score(audio, args.score, default_plan())
            except AlignmentError as exc:
                mismatch = f"{exc} Analysed without it."
        if analysis is None:
            analysis = analyse(audio, tracker=args.tracker, hints=hints)
    except (AudioError, AnalysisError, TrackerWeightsError, WeightsError) as exc:
        print(f"{args.audio.name}: FAILED: {exc}", file=sys.stderr)
        return 1
    result = {
        "beats": [round(float(t), 4) for t in analysis.beats],
        "downbeats": [round(float(t), 4) for t in analysis.downbeats],
        "beats_per_bar": analysis.beats_per_bar,
        "tempo": round(analysis.tempo_bpm, 2),
        "meter": analysis.meter,
        "tracker": analysis.tracker,
    }
    if analysis.score is not None:
        result.update(score_record(analysis))
    text = json.dumps(result) + "\n"
    if args.json is None:
        sys.stdout.write(text)
    else:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    if mismatch:
        print(f"{args.audio.name}: {mismatch}", file=sys.stderr)
        return 1
    return 0


def _collect_audio(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
            if not found:
                raise UsageError(f"{path} contains no audio files ({', '.join(SUPPORTED_SUFFIXES)}).")
            files.extend(found)
        else:
            files.append(path)  # missing files are reported per file, so the rest still run
    return files


def _writable_target(path: Path, folder: bool, what: str) -> None:
    directory = path if folder else path.parent
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise UsageError(f"Cannot write {what} to {directory}: the folder is not writable. Choose another --{what}.")


def _outputs(args, audio: Path | None, several: bool) -> dict[str, Path | None]:
    def place(target: Path | None, suffix: str) -> Path | None:
        if target is None:
            return None
        return target / f"{audio.stem}{suffix}" if several else target

    return {"out": place(args.out, ".blend"), "keypoints": place(args.keypoints, ".npz"), "render": place(args.render, ".mp4")}


def _validate(args) -> dict:
    if not 0.0 <= args.smoothing <= 1.0:
        raise UsageError(f"--smoothing must be between 0 and 1, got {args.smoothing}.")
    if args.sparse_keys is not None and not MIN_TOLERANCE_DEG <= args.sparse_keys <= MAX_TOLERANCE_DEG:
        raise UsageError(f"--sparse-keys must be between {MIN_TOLERANCE_DEG} and {MAX_TOLERANCE_DEG} degrees, got "
                         f"{args.sparse_keys}.")
    if args.render_seconds is not None and args.render_seconds <= 0:
        raise UsageError("--render-seconds must be positive.")
    if args.render_seconds is not None and args.render is None:
        raise UsageError("--render-seconds needs --render OUT.mp4.")
    spec = registry.get(args.generator)
    own = {o.name for o in spec.options}
    options = {}
    for key, value in vars(args).items():
        if key.startswith("opt_") and value is not None:
            if key[4:] not in own:
                raise UsageError(f"--{key[4:].replace('_', '-')} does not apply to the {args.generator} generator.")
            options[key[4:]] = value
    return options


class _ProgressLine:
    """One status line per input on stderr, redrawn in place on a terminal."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.tty = sys.stderr.isatty()
        self.last = ""

    def __call__(self, fraction: float, message: str) -> None:
        if message == self.last:
            return
        self.last = message
        line = f"{self.prefix} {int(100 * fraction):3d}% {message}"
        sys.stderr.write(("\r\033[K" + line) if self.tty else line + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")


def _generate_one(args, audio: Path | None, paths: dict, options: dict, hints: MusicHints,
                  progress: _ProgressLine) -> tuple[str, tuple[str, ...]]:
    """(summary, warnings) of conducting `audio`, or without it the score rendered next to the .blend."""
    from .pipeline import perform, perform_score

    def scaled(fraction: float, message: str) -> None:
        progress(0.85 * fraction, message)

    if audio is None:
        performance = perform_score(args.score, paths["out"].with_suffix(".wav"), args.generator, seed=args.seed,
                                    checkpoint=args.checkpoint, options=options, progress=scaled)
    else:
        performance = perform(audio, args.generator, seed=args.seed, checkpoint=args.checkpoint, options=options,
                              hints=hints, progress=scaled, score=args.score)
    if paths["keypoints"]:
        paths["keypoints"].parent.mkdir(parents=True, exist_ok=True)
        performance.motion.save(paths["keypoints"])

    import bpy

    from .blender import rigs, scene, stage

    progress(0.9, "Building the scene")
    # The factory startup scene but the user's preferences: read_factory_settings would reset those too, and
    # Blender then deletes the wheels of every extension the reset left disabled, this one among them.
    bpy.ops.wm.read_homefile(use_factory_startup=True, use_empty=True)
    current = bpy.context.scene
    armature = rigs.append_bundled_rig(current) if args.rig == "bundled" else rigs.append_rig_file(current, args.rig)
    rig_map = rigs.rig_map_for(armature, args.rig_map)
    applied = scene.apply_performance(current, armature, performance, rig_map, args.smoothing,
                                      key_tolerance=args.sparse_keys)
    if args.rig == "bundled":
        stage.add_stage(current, armature)
    if current.camera is None:
        rigs.frame_camera(current, armature)
    scene.configure_look(current)
    paths["out"].parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(paths["out"]), compress=True)
    if paths["render"]:
        progress(0.95, "Rendering")
        paths["render"].parent.mkdir(parents=True, exist_ok=True)
        scene.configure_video_output(current, paths["render"], args.render_seconds)
        bpy.ops.render.render(animation=True)
    a = performance.analysis
    summary = f"{applied.bars} bars of {a.meter} at {a.tempo_bpm:.0f} BPM, {applied.frames} frames, {applied.keys} keys"
    if a.score is not None:
        cues, releases = len(a.score.cues), len(a.score.releases)
        summary += (f", from the score (alignment confidence {a.score.confidence:.2f}, {cues} cue{'s' * (cues != 1)}, "
                    f"{releases} section cut-off{'s' * (releases != 1)})")
    return summary, performance.warnings


def _run_generate(args) -> int:
    options = _validate(args)
    hints = _hints(args)
    if not args.audio and args.score is None:
        raise UsageError("Give the audio file(s) to conduct, or --score SCORE to conduct a score without a recording.")
    files = _collect_audio(args.audio) if args.audio else [None]
    several = len(files) > 1 or any(p.is_dir() for p in args.audio)
    if several and hints.beats is not None:
        raise UsageError("--beats gives the beats of one recording: generate one audio file with it.")
    if several and args.score is not None:
        raise UsageError("--score is the score of one recording: generate one audio file with it.")
    for name in ("out", "keypoints", "render"):
        target = getattr(args, name)
        if target is not None:
            if several and target.suffix:
                raise UsageError(f"With several inputs --{name} names a folder, not {target}.")
            _writable_target(target, folder=several, what=name)
    if not several and args.render is not None and args.render.suffix.lower() != ".mp4":
        raise UsageError(f"--render writes an .mp4; got {args.render}.")

    failures = 0
    for number, audio in enumerate(files, start=1):
        prefix = f"[{number}/{len(files)}] {audio.name if audio else args.score.source}:"
        progress = _ProgressLine(prefix)
        started = time.perf_counter()
        paths = _outputs(args, audio, several)
        try:
            summary, warnings = _generate_one(args, audio, paths, options, hints, progress)
        except INPUT_ERRORS as exc:
            progress.done()
            failures += 1
            print(f"{prefix} FAILED: {exc}", file=sys.stderr)
            continue
        except Exception:  # an unexpected fault: keep going with the others but show everything
            progress.done()
            failures += 1
            print(f"{prefix} FAILED with an internal error:", file=sys.stderr)
            traceback.print_exc()
            continue
        progress.done()
        print(f"{prefix} {paths['out']} ({summary}; {time.perf_counter() - started:.1f} s)")
        for warning in warnings:
            print(f"{prefix} {warning}", file=sys.stderr)
        failures += bool(warnings)
    if failures:
        print(f"{failures} of {len(files)} input(s) failed.", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            return _run_generate(args)
        if args.command == "analyze":
            return _run_analyze(args)
        if args.command == "capture":
            return _run_capture(args)
        if args.command == "compare":
            return _run_compare(args)
        if args.command == "vocabulary":
            return _run_vocabulary(args)
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    return 2
