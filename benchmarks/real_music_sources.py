"""Where the real-music excerpts come from: music files inside Debian packages, unpacked under one folder.

Shared by `real_music_reference.py` (run in madmom's environment) and `real_music.py` (run in the project's), so it
needs only numpy and soundfile. The folder holds each package unpacked as `<package>/` (the tree `dpkg-deb -x`
writes) beside the `.deb` it came from; a package that is missing is fetched with `apt-get download` and unpacked.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "data" / "real_music"
REFERENCES = Path(__file__).resolve().parent / "real_music" / "references.json"


class SourceError(RuntimeError):
    """A package that cannot be had, or a file that is not the one the references were made on."""


@dataclass(frozen=True)
class MusicFile:
    """One music file: `path` inside the package's tree and, for a file inside a zip archive (UFO:AI's .pk3),
    `member` inside that archive."""

    package: str
    path: str
    member: str | None = None

    @property
    def name(self) -> str:
        return Path(self.member or self.path).stem

    @property
    def logical_path(self) -> str:
        """The path as the game's source tree has it: an archive stands for the folder it is unpacked into."""
        return str(Path(self.path).parent / self.member) if self.member else self.path

    def read(self, packages: Path) -> bytes:
        location = packages / self.package / self.path
        if self.member is None:
            return location.read_bytes()
        with zipfile.ZipFile(location) as archive:
            return archive.read(self.member)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def deb_of(packages: Path, package: str) -> Path | None:
    debs = sorted(packages.glob(f"{package}_*.deb"))
    return debs[-1] if debs else None


def deb_version(deb: Path) -> str:
    """The version in a .deb's name (`name_version_arch.deb`; apt writes an epoch's colon as %3a)."""
    return unquote(deb.name.split("_")[1])


def ensure_package(packages: Path, package: str, version: str | None = None) -> Path:
    """The unpacked tree of `package` under `packages`, downloading and unpacking it first if it is not there.

    The version the references were made on is asked for first; if the archive no longer has it, the current one
    is taken and the files' sha256 decide whether it still serves.
    """
    tree = packages / package
    if tree.is_dir():
        return tree
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SourceError(f"{package} is not unpacked under {packages} and apt-get/dpkg-deb are not available here: "
                          f"on a Debian or Ubuntu machine run `apt-get download {package}` and "
                          f"`dpkg-deb -x {package}_*.deb {tree}`, or pass --packages with a folder that has it.")
    packages.mkdir(parents=True, exist_ok=True)
    asked = [f"{package}={version}", package] if version else [package]
    for name in asked:
        done = subprocess.run(["apt-get", "download", name], cwd=packages, capture_output=True, text=True)
        if done.returncode == 0:
            break
    else:
        raise SourceError(f"apt-get download {package} failed: {done.stderr.strip()}")
    partial = packages / f"{package}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(deb_of(packages, package)), str(partial)], check=True)
    partial.rename(tree)  # only a complete tree ever carries the package's name
    return tree


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """(samples (n, channels) float32, sample rate) of a whole encoded file."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples, rate


def cut(samples: np.ndarray, rate: int, start: float, duration: float) -> np.ndarray:
    first = int(round(start * rate))
    return samples[first : first + int(round(duration * rate))]


def write_excerpt(path: Path, samples: np.ndarray, rate: int) -> Path:
    """The excerpt as a float WAV at its own rate and channels, for readers that take a path."""
    sf.write(str(path), samples, rate, subtype="FLOAT")
    return path
