"""Build the Blender extension zips: `python build_addon.py --out DIR [--platform linux-x64 ...]`.

One zip per platform (linux-x64, windows-x64, macos-arm64). Each holds the add-on, its conductor rig, rig maps, demo
audio and shipped weights, and every wheel it imports inside Blender (requirements-extension.txt), so that "Install
from Disk" in a stock Blender 4.2 LTS to 5.0 works offline, with no pip step and no download at run time.

Wheels are unmodified PyPI wheels for CPython 3.11 (what Blender 4.2 to 5.0 embed), downloaded once per platform into
.wheels/ and reused, so rebuilds need no network. The zips are built and validated by Blender's own extension tool,
`bl_pkg/cli/blender_ext.py`, which ships inside the bpy wheel and runs under plain Python; it is given Blender's list
of valid tags, as `blender --command extension build` does.

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

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "gm_blender_addon"
REQUIREMENTS = ROOT / "requirements-extension.txt"
WHEEL_CACHE = ROOT / ".wheels"
PYTHON_VERSION = "3.11"
# Blender platform → wheel platform tags pip may pick. Blender itself needs glibc 2.28 on Linux; on Apple silicon the
# pinned scipy and numba need macOS 12, so the macOS zip does too. pip widens a macOS tag to the older releases by
# itself but takes a manylinux tag literally, so every glibc from 2.28 down is listed (manylinux2014 = 2_17).
PLATFORMS = {
    "linux-x64": [f"manylinux_2_{glibc}_x86_64" for glibc in range(28, 16, -1)] + ["manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_12_0_arm64"],
}
# extensions.blender.org's upload limit.
MAX_ZIP_BYTES = 300 * 1024 * 1024
EXIT_NO_WHEELS = 3


class WheelDownloadError(RuntimeError):
    """pip could not fetch a wheel (offline, or none published for a platform)."""


def pinned_requirements() -> list[tuple[str, str, str]]:
    """(name, version, licence) for every wheel the zips carry, from requirements-extension.txt."""
    pins = []
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)\s*#\s*(.+)$", line)
        if match:
            pins.append(match.groups())
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


def wheels_for(platform: str) -> list[Path]:
    """The pinned wheels for one Blender platform, downloading into .wheels/<platform>/ only what is missing."""
    folder = WHEEL_CACHE / platform
    folder.mkdir(parents=True, exist_ok=True)
    pins = pinned_requirements()
    missing = [f"{name}=={version}" for name, version, _ in pins if _cached_wheel(folder, name, version) is None]
    if missing:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary=:all:", "--no-deps", "--python-version", PYTHON_VERSION, "--implementation", "cp",
            *(f"--platform={tag}" for tag in PLATFORMS[platform]), "--dest", str(folder), *missing,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise WheelDownloadError(f"pip could not download {platform} wheels:\n{result.stderr.strip()}")
    wheels = []
    for name, version, _ in pins:
        wheel = _cached_wheel(folder, name, version)
        if wheel is None:
            raise WheelDownloadError(f"no {platform} wheel of {name}=={version} was downloaded")
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


def _manifest_with_wheels(platforms: list[str], wheels: list[Path]) -> str:
    """The repository's manifest plus the platforms and wheels lines, which TOML wants before the first table."""
    text = (PACKAGE / "blender_manifest.toml").read_text(encoding="utf-8")
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


def stage(folder: Path, platforms: list[str], wheels: list[Path]) -> Path:
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
    (source / "blender_manifest.toml").write_text(_manifest_with_wheels(platforms, wheels), encoding="utf-8")
    return source


def _run_tool(*arguments: str) -> str:
    tool, tags = blender_ext_tool()
    result = subprocess.run(
        [sys.executable, str(tool), *arguments, f"--valid-tags={tags}"], capture_output=True, text=True
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise SystemExit(f"blender_ext.py {arguments[0]} failed:\n{output}")
    return output


def build(out: Path, platforms: list[str]) -> list[Path]:
    """Build, validate and size-check one zip per platform in `out`; returns their paths."""
    wheels = {p: wheels_for(p) for p in platforms}
    every_wheel = sorted({w.name: w for ws in wheels.values() for w in ws}.values(), key=lambda w: w.name)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gm_extension_") as scratch:
        source = stage(Path(scratch), platforms, every_wheel)
        print(_run_tool("validate", str(source)))
        print(_run_tool("build", "--source-dir", str(source), "--output-dir", str(out), "--split-platforms"))
    name = "{id}-{version}".format(**manifest())
    zips = [out / f"{name}-{platform.replace('-', '_')}.zip" for platform in platforms]
    for zip_path in zips:
        print(_run_tool("validate", str(zip_path)))
    return zips


def report(zips: list[Path], platforms: list[str]) -> bool:
    """Print each zip's size and the bundled wheels with their licences; False if a zip is over the limit."""
    licences = {_normalised(name): (version, licence) for name, version, licence in pinned_requirements()}
    print("\nBundled wheels (name, version, licence):")
    for name, (version, licence) in sorted(licences.items()):
        print(f"  {name:18s} {version:10s} {licence}")
    print("\nZips:")
    fits = True
    for platform, zip_path in zip(platforms, zips):
        size = zip_path.stat().st_size
        fits &= size <= MAX_ZIP_BYTES
        flag = "" if size <= MAX_ZIP_BYTES else f"  OVER THE {MAX_ZIP_BYTES // 2**20} MB LIMIT"
        print(f"  {platform:12s} {size / 2**20:7.1f} MB  {zip_path}{flag}")
    return fits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zips (default: dist/)")
    parser.add_argument(
        "--platform", dest="platforms", action="append", choices=list(PLATFORMS),
        help="build only this platform (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    platforms = args.platforms or list(PLATFORMS)
    try:
        zips = build(args.out, platforms)
    except WheelDownloadError as exc:
        print(exc, file=sys.stderr)
        return EXIT_NO_WHEELS
    return 0 if report(zips, platforms) else 1


if __name__ == "__main__":
    sys.exit(main())
