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


@pytest.fixture(scope="module")
def one_torch_thread():
    """The networks in the tests are small: extra threads only contend on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def music_file(tmp_path_factory) -> Path:
    from helpers import write_click_music

    return write_click_music(tmp_path_factory.mktemp("music") / "waltz.wav", seconds=14.0, bpm=120.0, beats_per_bar=3)
