"""The project-trained weights shipped with the add-on, and their manifest.

``weights/manifest.json`` lists one entry per model kind (m2snet, m2sgan, diffusion)::

    {"format": "gesture-maestro-weights", "version": 1,
     "models": {"m2sgan": {"file": "m2sgan.pt", "sha256": "…", "bytes": 1234, "recipe": "…", "epochs": 12,
                           "data": {…}, "metrics": {…},
                           "onnx": {"file": "m2sgan.onnx.zip", "sha256": "…", "bytes": 1234}}, …}}

The PyTorch file is what training resumes and evaluates; the generators run its ONNX export, which is all the
Blender extension ships (it carries no PyTorch). A generator that needs weights falls back to its entry here when
the user gives no checkpoint. Files are checked against their sha256 before use, so a damaged install is reported
instead of producing nonsense. Only weights
trained by the project from data it may redistribute belong here (never the research-only official checkpoints
or anything fine-tuned from them).
"""

from __future__ import annotations

import json
from pathlib import Path

from .core.audio import file_sha256
from .resources import PACKAGE_DIR

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "gesture-maestro-weights"
MANIFEST_VERSION = 1


class WeightsError(ValueError):
    """Installed weights that do not match their manifest, or a manifest that cannot be read."""


def weights_dir() -> Path:
    # A built extension carries weights/ inside the package; a checkout keeps it at the repository root.
    inside = PACKAGE_DIR / "weights"
    return inside if inside.is_dir() else PACKAGE_DIR.parent / "weights"


def read_manifest(folder: Path | None = None) -> dict:
    """The manifest's "models" mapping (empty when no manifest is installed)."""
    path = (folder or weights_dir()) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path} cannot be read ({exc}); re-install the add-on.") from exc
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("models"), dict):
        raise WeightsError(f"{path} is not a Gesture Maestro weights manifest; re-install the add-on.")
    return manifest["models"]


def default_checkpoint(kind: str, folder: Path | None = None, onnx: bool = False) -> Path | None:
    """Path of the shipped weights for `kind` (with `onnx`, of their ONNX export), checked against the manifest;
    None when none are shipped."""
    folder = folder or weights_dir()
    entry = read_manifest(folder).get(kind)
    if entry is not None and onnx:
        entry = entry.get("onnx")
    if entry is None:
        return None
    path = folder / entry["file"]
    if not path.is_file():
        raise WeightsError(f"{path.name} is listed in {folder / MANIFEST_NAME} but missing; re-install the add-on.")
    actual = file_sha256(path)
    if actual != entry["sha256"]:
        raise WeightsError(
            f"{path} is damaged or was replaced (sha256 {actual[:12]}…, manifest says {entry['sha256'][:12]}…); "
            f"re-install the add-on or pass --checkpoint PATH."
        )
    return path


def file_entry(path: Path, folder: Path) -> dict:
    """{"file", "sha256", "bytes"} of a file that must sit in the weights folder."""
    path = Path(path)
    if path.resolve().parent != folder.resolve():
        raise WeightsError(f"{path} must be inside {folder} to be listed in its manifest")
    return {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size}


def write_entry(kind: str, path: Path, folder: Path | None = None, **fields) -> dict:
    """Add or replace `kind` in the manifest for the file `path` (which must sit in the weights folder)."""
    folder = folder or weights_dir()
    manifest_path = folder / MANIFEST_NAME
    models = read_manifest(folder) if manifest_path.is_file() else {}
    entry = {**file_entry(path, folder), **fields}
    models[kind] = entry
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "models": dict(sorted(models.items()))}
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return entry
