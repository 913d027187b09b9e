"""Where the add-on's data files live, both in a repository checkout and inside a built extension."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    return next((c for c in candidates if c.exists()), candidates[-1])


def rigs_dir() -> Path:
    # A built extension carries rigs/ inside the package; a checkout keeps it at the repository root.
    return _first_existing(PACKAGE_DIR / "rigs", PACKAGE_DIR.parent / "rigs")


def bundled_rig_file() -> Path:
    return rigs_dir() / "conductor_rig.blend"


def rig_maps_dir() -> Path:
    return rigs_dir() / "maps"


def demo_audio_file() -> Path:
    return PACKAGE_DIR / "data" / "demo" / "demo.ogg"


def pose_models_dir() -> Path:
    return PACKAGE_DIR / "data" / "pose"


def starter_vocabulary_file() -> Path:
    """The trained gesture vocabulary the add-on ships (training/gesture_set.py's, kept with `vocabulary evaluate
    --keep`)."""
    return PACKAGE_DIR / "data" / "vocabulary" / "conducting.npz"
