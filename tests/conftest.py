import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
SHARED = ROOT.parent / "shared" / "reference" / "virtualconductor"


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/reference/virtualconductor is not present")
    return SHARED


@pytest.fixture(scope="session")
def music_file(tmp_path_factory) -> Path:
    from helpers import write_click_music

    return write_click_music(tmp_path_factory.mktemp("music") / "waltz.wav", seconds=14.0, bpm=120.0, beats_per_bar=3)
