"""Figures for the backbone: speed, memory and musicality of audio → conductor. Prints a report; asserts nothing.

    .venv/bin/python benchmarks/backbone.py [--skip-insert] [--skip-hour] [--pieces N]

Long inputs are made by repeating the bundled demo; the musicality table renders public-domain score excerpts with
known beats through the project's own score-rendering recipe.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gm_blender_addon.core.metrics import ictus_times  # noqa: E402
from gm_blender_addon.core.motion import FPS, JOINT, gaussian_smooth  # noqa: E402
from gm_blender_addon.pipeline import perform, solve_for_rig  # noqa: E402
from gm_blender_addon.resources import demo_audio_file  # noqa: E402

# (music21 corpus work, first bar, seconds): varied meters, tempi and textures.
PIECES = [
    ("bach/bwv66.6", 1, 30.0),
    ("mozart/k80/movement1", 1, 40.0),
    ("haydn/opus74no1/movement1", 1, 40.0),
    ("beethoven/opus18no1/movement1", 1, 40.0),
    ("joplin/maple_leaf_rag", 1, 40.0),
]


def repeated_demo(seconds: float, folder: Path) -> Path:
    audio, rate = soundfile.read(str(demo_audio_file()), dtype="float32", always_2d=True)
    reps = int(np.ceil(seconds * rate / len(audio)))
    path = folder / f"demo_{int(seconds)}s.wav"
    soundfile.write(str(path), np.tile(audio, (reps, 1))[: int(seconds * rate)], rate, subtype="PCM_16")
    return path


def f_measure(estimated, reference, tolerance=0.07) -> float:
    estimated, reference = np.asarray(estimated), np.asarray(reference)
    if not len(estimated) or not len(reference):
        return 0.0
    hits = sum(np.min(np.abs(estimated - r)) <= tolerance for r in reference)
    return 0.0 if hits == 0 else 2 * hits / (len(estimated) + len(reference))


def speed_loudness_r(keypoints: np.ndarray, loudness: np.ndarray, silent: np.ndarray) -> float:
    speed = np.linalg.norm(np.diff(keypoints[:, JOINT["right_wrist"]], axis=0), axis=1)
    contour = gaussian_smooth(speed, 1.0 * FPS)
    sounding = ~silent[1:]
    return float(np.corrcoef(contour[sounding], gaussian_smooth(loudness[1:], 1.0 * FPS)[sounding])[0, 1])


def bench_generation(folder: Path) -> None:
    path = repeated_demo(300.0, folder)
    perform(path)  # the first call compiles librosa's numba kernels; users pay that once per session
    started, cpu = time.perf_counter(), time.process_time()
    performance = perform(path)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"procedural generation, 5-minute piece (analysis + motion): {elapsed:.2f} s wall, {cpu:.2f} s CPU  (target ≤ 10 s)")
    return performance


def bench_keyframes(performance, with_insert: bool) -> None:
    import bpy

    from gm_blender_addon.blender import keyframes, rigs

    bpy.ops.wm.read_factory_settings(use_empty=True)
    armature = rigs.append_bundled_rig(bpy.context.scene)
    skeleton = rigs.snapshot(armature)
    parts = rigs.rig_map_for(armature).resolve(skeleton.names)
    rotations, _ = solve_for_rig(performance.motion, skeleton, parts, smoothing=0.2)
    keys = sum(4 * len(q) for q in rotations.values())
    started, cpu = time.perf_counter(), time.process_time()
    keyframes.build_rotation_action(armature, "bulk", rotations)
    bulk, bulk_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"keyframe writing, 5-minute piece ({keys} keys on {len(rotations)} bones): bulk {bulk:.3f} s wall, {bulk_cpu:.3f} s CPU  (target ≤ 1 s)")
    if not with_insert:
        return
    for bone in rotations:
        armature.pose.bones[bone].rotation_mode = "QUATERNION"
    started, cpu = time.perf_counter(), time.process_time()
    for frame in range(len(next(iter(rotations.values())))):
        for bone, q in rotations.items():
            pose_bone = armature.pose.bones[bone]
            pose_bone.rotation_quaternion = q[frame]
            pose_bone.keyframe_insert("rotation_quaternion", frame=1 + frame)
    insert, insert_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"  keyframe_insert on the same data: {insert:.1f} s wall, {insert_cpu:.1f} s CPU → bulk is {insert / bulk:.0f}× faster (CPU: {insert_cpu / bulk_cpu:.0f}×)  (target ≥ 50×)")


def bench_conduct_to_markers(folder: Path) -> None:
    """Conduct to Markers after a correction, through the operator: markers read, motion generated from the kept
    analysis, rig solved and keyed, markers renamed."""
    import bpy

    import gm_blender_addon

    gm_blender_addon.register()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.gm_conductor.audio_path = str(repeated_demo(300.0, folder))
    for generator in ("procedural", "m2sgan"):
        scene.gm_conductor.generator = generator
        bpy.ops.gm.generate()
        markers = sorted(scene.timeline_markers, key=lambda m: m.frame)
        markers[len(markers) // 2].frame += 2  # the user moves one beat
        started, cpu = time.perf_counter(), time.process_time()
        bpy.ops.gm.conduct_to_markers()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        target = "  (target ≤ 1 s)" if generator == "procedural" else " (decodes the audio again for the mel)"
        print(f"Conduct to Markers, 5-minute piece, {generator} ({len(markers)} beat markers, keys written): "
              f"{elapsed:.2f} s wall, {cpu:.2f} s CPU{target}")
    gm_blender_addon.unregister()


def run_cli(audio: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, peak resident memory in GB) of one headless generate in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "gm_blender_addon", "generate", str(audio), "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True,
    )
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("  (peak memory not measurable: an earlier child process used more)")
    return elapsed, peak / 1024**2


def bench_cli(folder: Path, with_hour: bool) -> None:
    seconds, peak = run_cli(repeated_demo(60.0, folder), folder / "minute.blend")
    print(f"end-to-end CLI, 60 s of audio → .blend: {seconds:.1f} s (peak memory {peak:.2f} GB)")
    if with_hour:
        seconds, peak = run_cli(repeated_demo(3600.0, folder), folder / "hour.blend")
        print(f"end-to-end CLI, 60 minutes of audio → .blend: {seconds:.0f} s, peak memory {peak:.2f} GB  (target ≤ 3 GB)")


def bench_musicality(folder: Path, count: int) -> None:
    from gm_blender_addon.training import score_render

    print("\nmusicality on rendered public-domain scores (beats ±70 ms):")
    print(f"{'piece':34s} {'meter':>5s} {'bpm':>4s} {'tracker F vs true':>18s} {'ictus F vs tracker':>19s} {'speed~loudness r':>17s}")
    for work, start, seconds in PIECES[:count]:
        excerpt = score_render.render_excerpt(work, start_bar=start, seconds=seconds, seed=1)
        path = folder / (work.replace("/", "_") + ".wav")
        soundfile.write(str(path), excerpt.audio, excerpt.sample_rate)
        performance = perform(path, seed=1)
        a = performance.analysis
        print(
            f"{work:34s} {excerpt.meter:>5s} {a.tempo_bpm:4.0f} {f_measure(a.beats, excerpt.beats):18.2f} "
            f"{f_measure(ictus_times(performance.motion.keypoints), a.beats):19.2f} "
            f"{speed_loudness_r(performance.motion.keypoints, a.loudness, a.silent):17.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-insert", action="store_true", help="skip the slow keyframe_insert comparison")
    parser.add_argument("--skip-hour", action="store_true", help="skip the 60-minute memory run")
    parser.add_argument("--pieces", type=int, default=len(PIECES), help="how many score excerpts to render")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        performance = bench_generation(folder)
        bench_keyframes(performance, not args.skip_insert)
        bench_conduct_to_markers(folder)
        bench_cli(folder, not args.skip_hour)
        if args.pieces:
            bench_musicality(folder, args.pieces)


if __name__ == "__main__":
    main()
