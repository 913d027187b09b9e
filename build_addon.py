"""Build the Blender extension zips: `python build_addon.py --out DIR [--platform linux-x64 ...] [--python 3.13 ...]`.

One zip per platform (linux-x64, windows-x64, macos-arm64) and Python (3.11 for Blender 4.2 LTS to 5.0, 3.13 for 5.1
to 5.3, 3.14 for Linux distributions' builds on it). Each holds the add-on, its conductor rig, rig maps, demo audio,
shipped weights and pose models, and every wheel it imports inside Blender (requirements-extension.txt), so that
"Install from Disk" in a stock Blender works offline, with no pip step and no download at run time.

Wheels are unmodified PyPI wheels for that Python, downloaded once per platform and Python into .wheels/ and reused,
so rebuilds need no network. The zips are built and validated by Blender's own extension tool,
`bl_pkg/cli/blender_ext.py`, which ships inside the bpy wheel and runs under plain Python; it is given Blender's list
of valid tags, as `blender --command extension build` does. Run this script with the newest Blender's bpy installed
(`make addon` does) so that the newest tool checks the zips.

Exit codes: 0 built, 1 a zip failed validation or is too large, 2 bad arguments, 3 wheels could not be downloaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from packaging.markers import Marker

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "gm_blender_addon"
REQUIREMENTS = ROOT / "requirements-extension.txt"
WHEEL_CACHE = ROOT / ".wheels"
# Python → the Blender versions (min inclusive, max exclusive) its zips declare. Official builds embed 3.11 in 4.2 to
# 5.0 and 3.13 from 5.1; Linux distributions build Blender on their own Python, 3.13 (Debian 13's 4.3) or 3.14 (Debian
# unstable's 5.2). The 3.13 and 3.14 zips start at 4.2 all the same: Blender itself refuses a zip whose wheels are not
# for its Python, so an official 4.2 to 5.0 never takes them. 5.4 is the first release no zip has been tested with.
PYTHONS = {
    "3.11": ("4.2.0", "5.1.0"),
    "3.13": ("4.2.0", "5.4.0"),
    "3.14": ("4.2.0", "5.4.0"),
}
# Blender platform → wheel platform tags pip may pick. Blender itself needs glibc 2.28 on Linux; on Apple silicon the
# pinned wheels need the macOS release in MACOS_FOR_PYTHON, so the macOS zips do too. pip widens a macOS tag to the
# older releases by itself but takes a manylinux tag literally, so every glibc from 2.28 down is listed
# (manylinux2014 = 2_17).
PLATFORMS = {
    "linux-x64": [f"manylinux_2_{glibc}_x86_64" for glibc in range(28, 16, -1)] + ["manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_{macos}_arm64"],
}
# The oldest macOS every pinned wheel runs on: scipy and numba need 12; onnxruntime's CPython 3.13 wheels need 13,
# its 3.14 ones 14.
MACOS_FOR_PYTHON = {"3.11": "12_0", "3.13": "13_0", "3.14": "14_0"}
# extensions.blender.org's upload limit.
MAX_ZIP_BYTES = 300 * 1024 * 1024
EXIT_NO_WHEELS = 3


class WheelDownloadError(RuntimeError):
    """pip could not fetch a wheel (offline, or none published for a platform)."""


def pinned_requirements(python: str) -> list[tuple[str, str, str]]:
    """(name, version, licence) for every wheel the zips for `python` carry, from requirements-extension.txt."""
    pins = []
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)\s*(?:;([^#]+))?#\s*(.+)$", line)
        if match:
            name, version, marker, licence = match.groups()
            if marker is None or Marker(marker).evaluate({"python_version": python}):
                pins.append((name, version, licence))
    return pins


def _normalised(name: str) -> str:
    # Wheel file names spell the distribution with underscores (PEP 427), lowercase here for comparing.
    return re.sub(r"[-_.]+", "_", name).lower()


def _cached_wheel(folder: Path, name: str, version: str) -> Path | None:
    for wheel in folder.glob("*.whl"):
        distribution, wheel_version = wheel.name.split("-")[:2]
        if _normalised(distribution) == _normalised(name) and wheel_version == version:
            return wheel
    return None


def wheels_for(platform: str, python: str) -> list[Path]:
    """The pinned wheels for one Blender platform and Python, downloading into .wheels/ only what is missing."""
    folder = WHEEL_CACHE / f"{platform}-py{python}"
    folder.mkdir(parents=True, exist_ok=True)
    pins = pinned_requirements(python)
    missing = [f"{name}=={version}" for name, version, _ in pins if _cached_wheel(folder, name, version) is None]
    if missing:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--no-deps", "--python-version", python, "--implementation", "cp",
            *(f"--platform={tag.format(macos=MACOS_FOR_PYTHON[python])}" for tag in PLATFORMS[platform]),
            "--dest", str(folder), *missing,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise WheelDownloadError(f"pip could not download {platform} wheels for Python {python}:\n"
                                     f"{result.stderr.strip()}")
    wheels = []
    for name, version, _ in pins:
        wheel = _cached_wheel(folder, name, version)
        if wheel is None:
            raise WheelDownloadError(f"no {platform} wheel of {name}=={version} for Python {python} was downloaded")
        wheels.append(wheel)
    return wheels


def blender_ext_tool() -> tuple[Path, Path]:
    """(blender_ext.py, Blender's tags list) from the installed bpy wheel."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("build_addon.py needs the bpy wheel installed (pip install -r requirements.txt).")
    bpy_dir = Path(next(iter(spec.submodule_search_locations)))
    tool = next(bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    tags = next(bpy_dir.glob("*/scripts/modules/_bpy_internal/extensions/tags.py"))
    return tool, tags


def _manifest_for(python: str, platforms: list[str], wheels: list[Path]) -> str:
    """The repository's manifest with the Blender versions of `python`, plus the platforms and wheels lines (which
    TOML wants before the first table)."""
    text = (PACKAGE / "blender_manifest.toml").read_text(encoding="utf-8")
    for key, version in zip(("blender_version_min", "blender_version_max"), PYTHONS[python]):
        text, found = re.subn(rf'^{key} = ".*"$', f'{key} = "{version}"', text, flags=re.MULTILINE)
        if not found:
            raise SystemExit(f"gm_blender_addon/blender_manifest.toml has no {key} line")
    head, table, tail = text.partition("\n[")
    lines = [
        "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]",
        "wheels = [",
        *(f'  "./wheels/{w.name}",' for w in wheels),
        "]",
    ]
    return head.rstrip("\n") + "\n" + "\n".join(lines) + "\n" + table + tail


def manifest() -> dict:
    return tomllib.loads((PACKAGE / "blender_manifest.toml").read_text(encoding="utf-8"))


def stage(folder: Path, python: str, platforms: list[str], wheels: list[Path]) -> Path:
    """Lay out the extension's source: the package, rigs/ inside it, wheels/, and the generated manifest."""
    source = folder / manifest()["id"]
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    rigs = source / "rigs"
    rigs.mkdir()
    shutil.copy2(ROOT / "rigs" / "conductor_rig.blend", rigs)
    shutil.copytree(ROOT / "rigs" / "maps", rigs / "maps")
    # The project-trained weights with their manifest (gm_blender_addon/weights.py looks inside the package first).
    # Only what runs without PyTorch: the generators' ONNX exports and the tracker, not the training checkpoints.
    weights = ROOT / "weights"
    if weights.is_dir() and any(weights.iterdir()):
        shutil.copytree(weights, source / "weights", ignore=shutil.ignore_patterns("*.pt"))
    (source / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, source / "wheels")
    (source / "blender_manifest.toml").write_text(_manifest_for(python, platforms, wheels), encoding="utf-8")
    return source


def zip_name(python: str, platform: str) -> str:
    return "{id}-{version}-py{python}-{platform}.zip".format(
        **manifest(), python=python.replace(".", ""), platform=platform.replace("-", "_")
    )


def _run_tool(*arguments: str) -> str:
    tool, tags = blender_ext_tool()
    result = subprocess.run(
        [sys.executable, str(tool), *arguments, f"--valid-tags={tags}"], capture_output=True, text=True
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise SystemExit(f"blender_ext.py {arguments[0]} failed:\n{output}")
    return output


def build(out: Path, platforms: list[str], pythons: list[str]) -> list[Path]:
    """Build and validate one zip per platform and Python in `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    zips = []
    for python in pythons:
        wheels = {p: wheels_for(p, python) for p in platforms}
        every_wheel = sorted({w.name: w for ws in wheels.values() for w in ws}.values(), key=lambda w: w.name)
        with tempfile.TemporaryDirectory(prefix="gm_extension_") as scratch:
            source = stage(Path(scratch), python, platforms, every_wheel)
            print(_run_tool("validate", str(source)))
            # The tool names split zips after the platform alone; each is renamed after its Python too.
            built = Path(scratch) / "built"
            built.mkdir()
            print(_run_tool("build", "--source-dir", str(source), "--output-dir", str(built), "--split-platforms"))
            for platform in platforms:
                (built_zip,) = built.glob(f"*-{platform.replace('-', '_')}.zip")
                zips.append(out / zip_name(python, platform))
                shutil.move(built_zip, zips[-1])
    for zip_path in zips:
        print(_run_tool("validate", str(zip_path)))
    return zips


def report(zips: list[Path], platforms: list[str], pythons: list[str]) -> bool:
    """Print each zip's size and Blender versions and the bundled wheels with their licences; False if a zip is over
    the limit."""
    for python in pythons:
        print(f"\nBundled wheels for Python {python} (name, version, licence):")
        for name, version, licence in sorted(pinned_requirements(python), key=lambda pin: _normalised(pin[0])):
            print(f"  {_normalised(name):18s} {version:10s} {licence}")
    print("\nZips (Blender versions: from, up to but not including):")
    fits = True
    for (python, platform), zip_path in zip([(py, p) for py in pythons for p in platforms], zips):
        size = zip_path.stat().st_size
        fits &= size <= MAX_ZIP_BYTES
        flag = "" if size <= MAX_ZIP_BYTES else f"  OVER THE {MAX_ZIP_BYTES // 2**20} MB LIMIT"
        low, high = PYTHONS[python]
        print(f"  Python {python}  Blender {low}-{high}  {platform:12s} {size / 2**20:7.1f} MB  {zip_path}{flag}")
    return fits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zips (default: dist/)")
    parser.add_argument(
        "--platform", dest="platforms", action="append", choices=list(PLATFORMS),
        help="build only this platform (repeatable; default: all)",
    )
    parser.add_argument(
        "--python", dest="pythons", action="append", choices=list(PYTHONS),
        help="build only the zips for this Python (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    platforms = args.platforms or list(PLATFORMS)
    pythons = args.pythons or list(PYTHONS)
    try:
        zips = build(args.out, platforms, pythons)
    except WheelDownloadError as exc:
        print(exc, file=sys.stderr)
        return EXIT_NO_WHEELS
    return 0 if report(zips, platforms, pythons) else 1


if __name__ == "__main__":
    sys.exit(main())
