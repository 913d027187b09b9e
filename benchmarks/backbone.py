"""Figures for the backbone: speed, memory and musicality of audio → conductor. Prints a report; asserts nothing.

    .venv/bin/python benchmarks/backbone.py [--skip-insert] [--skip-hour] [--pieces N] [--only-keys | --only-human-likeness]

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


def _bundled_rig():
    """A factory-fresh scene holding the bundled conductor: (scene, armature, skeleton, rig-map parts)."""
    import bpy

    from gm_blender_addon.blender import rigs

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    armature = rigs.append_bundled_rig(scene)
    skeleton = rigs.snapshot(armature)
    return scene, armature, skeleton, rigs.rig_map_for(armature).resolve(skeleton.names)


def bench_keyframes(performance, with_insert: bool) -> None:
    from gm_blender_addon.blender import keyframes

    _, armature, skeleton, parts = _bundled_rig()
    rotations = solve_for_rig(performance.motion, skeleton, parts, smoothing=0.2).rotations
    keys = sum(4 * len(q) for q in rotations.values())
    started, cpu = time.perf_counter(), time.process_time()
    keyframes.build_action(armature, "bulk", rotations)
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


def bench_sparse_keys(performances: dict[str, object]) -> None:
    """Keys written on the bundled rig every frame and reduced to the default tolerance (core.keys), with the
    largest angle a bone strays from the solved motion, measured on the curves as Blender plays them."""
    from gm_blender_addon.blender import compat, keyframes
    from gm_blender_addon.core import keys

    _, armature, skeleton, parts = _bundled_rig()
    for label, performance in performances.items():
        pose = solve_for_rig(performance.motion, skeleton, parts, smoothing=0.2)
        rotations = pose.rotations
        dense = keyframes.key_count(*keyframes.build_action(armature, "dense", rotations, locations=pose.locations))
        started = time.perf_counter()
        action, slot = keyframes.build_action(armature, "sparse", rotations, tolerance_deg=keys.DEFAULT_TOLERANCE_DEG,
                                              locations=pose.locations, planted=pose.planted)
        elapsed = time.perf_counter() - started
        sparse = keyframes.key_count(action, slot)
        worst = 0.0
        by_bone: dict[str, list] = {}
        for fcurve in compat.action_fcurves(action, slot):
            by_bone.setdefault(fcurve.data_path, []).append(fcurve)
        for bone, quaternions in rotations.items():
            pose_bone = armature.pose.bones[bone]
            curves = sorted(by_bone[pose_bone.path_from_id(keys.DATA_PATHS[pose_bone.rotation_mode])],
                            key=lambda f: f.array_index)
            played = np.array([[f.evaluate(1 + t) for f in curves] for t in range(len(quaternions))])
            worst = max(worst, float(keys.angle_between_deg(keys.quaternions_of(played, pose_bone.rotation_mode),
                                                            quaternions).max()))
        print(f"sparse keys, {label} ({performance.motion.n_frames} frames, {len(rotations)} bones): {dense} keys "
              f"every frame → {sparse} within {keys.DEFAULT_TOLERANCE_DEG}° ({dense / sparse:.1f}× fewer), "
              f"largest deviation as played {worst:.3f}°, reduced and written in {elapsed:.2f} s")


# Long real recordings for the power-law check (Debian packages unpacked by benchmarks/real_music_sources.py; the
# ones that are absent are skipped).
LONG_REAL = [
    "widelands-data/usr/share/games/widelands/data/music/ingame_01.ogg",
    "megaglest-data/usr/share/games/megaglest/techs/megapack/factions/magic/music/music_magic.ogg",
    "naev-data/usr/share/naev/dat/snd/music/combat1.ogg",
]


# The bundled mannequin's body as the plausibility check sees it: the torso a capsule round the spine (pelvis to
# neck), the head a sphere round its bone's middle; radii from the mesh (0.36 m wide, 0.25 m deep; head 0.2 m).
TORSO_RADIUS, HEAD_RADIUS = 0.13, 0.11


def _inside_capsule(points: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> np.ndarray:
    """(T, K) points, (T, 3) segment ends → (T,) whether any point lies within `radius` of the segment."""
    ab = (b - a)[:, None]
    t = np.clip(np.sum((points - a[:, None]) * ab, axis=2) / np.sum(ab * ab, axis=2), 0.0, 1.0)
    return (np.linalg.norm(points - (a[:, None] + t[..., None] * ab), axis=2) < radius).any(axis=1)


def bench_human_likeness() -> None:
    """On the procedural conductor as keyed on the bundled rig and played by Blender: the two-thirds power law
    (core.metrics.power_law) on the baton's tip and both wrists in 3D and the right wrist's 2D keypoints; and
    plausibility: frames where a hand or the baton passes through the torso or the head, the elbows' bend, and the
    fastest turn of any bone (a pop)."""
    from gm_blender_addon.blender import compat, keyframes
    from gm_blender_addon.core import keys
    from gm_blender_addon.core.metrics import power_law

    pieces = {"the demo": demo_audio_file()}
    packages = ROOT / "data" / "real_music"
    pieces.update({Path(path).name: packages / path for path in LONG_REAL if (packages / path).is_file()})
    for label, audio in pieces.items():
        performance = perform(audio)
        scene, armature, skeleton, parts = _bundled_rig()
        pose = solve_for_rig(performance.motion, skeleton, parts, smoothing=0.2)
        rotations = pose.rotations
        compat.assign_action(armature, *keyframes.build_action(armature, "bench", rotations, locations=pose.locations))
        baton = next(o for o in scene.objects if o.parent == armature and o.parent_type == "BONE")
        tip = max((v.co.copy() for v in baton.data.vertices), key=lambda co: co.y)
        bones = armature.pose.bones
        ends = {"spine": "head", "spine.003": "tail", "spine.006": "head", "spine.006 ": "tail",
                "foot.L": "head", "foot.L ": "tail", "foot.R": "head", "foot.R ": "tail"}
        track: dict[str, list] = {name: [] for name in
                                  ("tip", "grip", "hand.R", "hand.L", "elbow.R", "elbow.L", "shoulder.R",
                                   "shoulder.L", *ends)}
        for frame in range(1, performance.motion.n_frames + 1):
            scene.frame_set(frame)
            world = armature.matrix_world
            track["tip"].append(tuple(baton.matrix_world @ tip))
            track["grip"].append(tuple(baton.matrix_world.translation))
            for side in "RL":
                track[f"hand.{side}"].append(tuple(world @ bones[f"hand.{side}"].head))
                track[f"elbow.{side}"].append(tuple(world @ bones[f"forearm.{side}"].head))
                track[f"shoulder.{side}"].append(tuple(world @ bones[f"upper_arm.{side}"].head))
            for name, end in ends.items():
                track[name].append(tuple(world @ getattr(bones[name.strip()], end)))
        at = {name: np.array(points) for name, points in track.items()}
        figures = [f"{name} β {beta:.2f} R² {r2:.2f}" for name, (beta, r2) in
                   (("baton tip", power_law(at["tip"])), ("right wrist", power_law(at["hand.R"])),
                    ("left wrist", power_law(at["hand.L"])))]
        beta, r2 = power_law(performance.motion.keypoints[:, JOINT["right_wrist"]])
        print(f"two-thirds power law, {label} ({performance.motion.duration:.0f} s): " + ", ".join(figures)
              + f"; right wrist 2D β {beta:.2f} R² {r2:.2f}  (target β 0.25-0.4 with R² ≥ 0.5)")
        # The baton sampled along its length, and both hands, against the body.
        along = np.linspace(0.0, 1.0, 6)[None, :, None]
        baton_points = at["grip"][:, None] + along * (at["tip"] - at["grip"])[:, None]
        hands = np.stack([at["hand.R"], at["hand.L"]], axis=1)
        head_centre = 0.5 * (at["spine.006"] + at["spine.006 "])
        torso = _inside_capsule(np.concatenate([baton_points, hands], axis=1), at["spine"], at["spine.003"],
                                TORSO_RADIUS)
        head = np.linalg.norm(np.concatenate([baton_points, hands], axis=1) - head_centre[:, None], axis=2).min(
            axis=1) < HEAD_RADIUS
        bend = {side: np.degrees(np.arccos(np.clip(np.sum(
            (at[f"elbow.{side}"] - at[f"shoulder.{side}"]) * (at[f"hand.{side}"] - at[f"elbow.{side}"]), axis=1)
            / np.linalg.norm(at[f"elbow.{side}"] - at[f"shoulder.{side}"], axis=1)
            / np.linalg.norm(at[f"hand.{side}"] - at[f"elbow.{side}"], axis=1), -1.0, 1.0))) for side in "RL"}
        # The wrist's flick: at each beat, how much sooner the tip reaches its lowest point than the wrist does, and
        # how much harder it stops (peak upward acceleration there).
        leads, sharper = [], []
        for beat in performance.analysis.beats:
            near = slice(max(0, int((beat - 0.2) * 30)), int((beat + 0.2) * 30) + 1)
            if near.stop >= len(at["tip"]) - 1:
                continue
            tip_z, wrist_z = at["tip"][near, 2], at["hand.R"][near, 2]
            leads.append((np.argmin(wrist_z) - np.argmin(tip_z)) / 30.0)
            sharper.append(np.diff(tip_z, 2).max() / max(np.diff(wrist_z, 2).max(), 1e-9))
        pointing = at["tip"] - at["grip"]
        pointing /= np.linalg.norm(pointing, axis=1, keepdims=True)
        back = int((pointing[:, 1] > 0).sum())  # the conductor faces -Y: towards the orchestra
        elevation = np.degrees(np.arcsin(np.clip(pointing[:, 2], -1.0, 1.0)))
        turn = {bone: keys.angle_between_deg(q[1:], q[:-1]).max() * 30.0 for bone, q in rotations.items()}
        fastest = max(turn, key=turn.get)
        print(f"  plausibility: hands or baton inside the torso on {int(torso.sum())} of {len(torso)} frames, inside "
              f"the head on {int(head.sum())}; elbow bend right {bend['R'].min():.0f}-{bend['R'].max():.0f}°, left "
              f"{bend['L'].min():.0f}-{bend['L'].max():.0f}° (a human elbow: 0-150°); fastest bone turn "
              f"{turn[fastest]:.0f}°/s ({fastest}); the baton points back at the conductor on {back} frames, "
              f"its elevation {np.percentile(elevation, 5):.0f}° to {np.percentile(elevation, 95):.0f}° (5th-95th "
              "percentile; 0° level, 90° straight up)")
        # Each wrist's turn against the forearm (the hand bone's local rotation), and the fingers' bends.
        bent = {bone: np.degrees(2 * np.arccos(np.clip(np.abs(q[:, 0]), 0.0, 1.0))) for bone, q in rotations.items()}
        finger_bend = max((bent[b].max() for b in bent if b.startswith(("thumb", "f_"))), default=float("nan"))
        print(f"  joint limits: hand against forearm up to {bent['hand.R'].max():.0f}° right, "
              f"{bent['hand.L'].max():.0f}° left (a human wrist: about 70° flexion, 80° extension, 30° sideways); "
              f"finger bones up to {finger_bend:.0f}°")
        # The breath before each entry: how far the shoulders rise at its top, against a second after it.
        breath = performance.motion.breath
        tops = [f for f in range(1, len(breath) - 31) if breath[f] > 0.9 and breath[f] >= breath[f - 1]
                and breath[f] > breath[f + 1]]
        rise = [100 * (at[f"shoulder.{side}"][f, 2] - at[f"shoulder.{side}"][f + 30, 2]) for f in tops for side in "RL"]
        slide = max(np.ptp(at[name], axis=0).max() for name in ("foot.L", "foot.L ", "foot.R", "foot.R "))
        print(f"  weight: the hips travel {100 * np.ptp(at['spine'][:, 0]):.1f} cm sideways and "
              f"{100 * np.ptp(at['spine'][:, 2]):.1f} cm up and down; heels and toes move at most {1000 * slide:.2f} mm")
        print(f"  breath: {len(tops)} entries breathed in; at the top the shoulders stand "
              f"{np.median(rise) if rise else float('nan'):.1f} cm above where they are a second later")
        print(f"  flick: at the ictus the baton's tip reaches its lowest point {1000 * np.median(leads):.0f} ms "
              f"before the wrist (median of {len(leads)} beats) and stops {np.median(sharper):.1f}× as sharply "
              "(peak upward acceleration)")


def bench_conduct_to_markers(folder: Path) -> None:
    """Conduct to Markers after a correction, through the operator: markers read, motion generated from the kept
    analysis, rig solved and keyed, markers renamed."""
    import bpy

    import gm_blender_addon

    gm_blender_addon.register()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.gm_conductor.audio_path = str(repeated_demo(300.0, folder))
    for generator, sparse in (("procedural", False), ("procedural", True), ("m2sgan", False)):
        scene.gm_conductor.generator = generator
        scene.gm_conductor.sparse_keys = sparse
        bpy.ops.gm.generate()
        markers = sorted(scene.timeline_markers, key=lambda m: m.frame)
        markers[len(markers) // 2].frame += 2  # the user moves one beat
        started, cpu = time.perf_counter(), time.process_time()
        bpy.ops.gm.conduct_to_markers()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        target = "  (target ≤ 1 s)" if generator == "procedural" else " (decodes the audio again for the mel)"
        keyed = "sparse keys written" if sparse else "keys written"
        print(f"Conduct to Markers, 5-minute piece, {generator} ({len(markers)} beat markers, {keyed}): "
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
    parser.add_argument("--only-keys", action="store_true", help="only the keyframe figures and Conduct to Markers")
    parser.add_argument("--only-human-likeness", action="store_true",
                        help="only the power-law and plausibility figures")
    args = parser.parse_args()
    if args.only_human_likeness:
        bench_human_likeness()
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        performance = bench_generation(folder)
        if args.only_keys:
            bench_sparse_keys({"the demo": perform(demo_audio_file()), "5-minute piece": performance})
            bench_conduct_to_markers(folder)
            return
        bench_keyframes(performance, not args.skip_insert)
        bench_sparse_keys({"the demo": perform(demo_audio_file()), "5-minute piece": performance})
        bench_human_likeness()
        bench_conduct_to_markers(folder)
        bench_cli(folder, not args.skip_hour)
        if args.pieces:
            bench_musicality(folder, args.pieces)


if __name__ == "__main__":
    main()
