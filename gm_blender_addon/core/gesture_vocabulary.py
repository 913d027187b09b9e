"""A gesture vocabulary: conducting gestures (frame ranges of motions), what each looks like (its description) and
what it asks of the orchestra (its meaning), embedded together so that a motion can be explained, searched by a
typed description and drawn as a map.

Descriptions and meanings are embedded by the sentence model once, when an entry is added, and stored; training,
Explain and the map need no text model, only Search of a newly typed description does.

Retrieval metrics (`retrieval`, used by the evaluation): for the pair "a-b", each query of modality a ranks the
vocabulary's distinct items of modality b by cosine similarity; top-1 accuracy is the share of queries whose own b
item ranks first, MRR the mean of 1 / its rank. For g-d and g-m the queries are gesture clips, for d-m the
distinct descriptions. `alignment` is Wang and Isola's alignment loss, the mean squared distance between the unit
embeddings of positive pairs (0 is perfect, lower is better); `positive_cosine` is those pairs' mean cosine
similarity (1 is perfect); `uniformity` is log mean exp(-2 ‖x - y‖²) over the distinct pairs of all the embeddings
of both modalities (lower is more evenly spread; about -4 when they are mutually orthogonal).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import gesture_encoder as ge
from .motion import Motion

FORMAT = "gesture-maestro-vocabulary"
VERSION = 1
MIN_CLIP_S = 1.0
EXPLAIN_HOP_S = 0.5
# Search results closer than this share of a window are one moment.
SEARCH_SEPARATION = 0.5

Embed = Callable[[list[str]], np.ndarray]


class VocabularyError(ValueError):
    """A vocabulary file that is not one, an entry that cannot be added, or a request the vocabulary cannot answer."""


@dataclass
class Entry:
    keypoints: np.ndarray  # (T, 13, 2) float32
    fps: float
    description: str
    meaning: str
    source: str  # where the clip was taken from, for the user
    frames: tuple[int, int]  # [start, end) in the source


@dataclass
class TrainedModel:
    arch: ge.Architecture
    settings: ge.TrainingSettings
    weights: ge.Weights
    seconds: float
    final_loss: float


@dataclass
class Vocabulary:
    entries: list[Entry] = field(default_factory=list)
    sentences: dict[str, np.ndarray] = field(default_factory=dict)  # text → stored sentence embedding (384,)
    model: TrainedModel | None = None

    @property
    def descriptions(self) -> list[str]:
        return list(dict.fromkeys(e.description for e in self.entries))

    @property
    def meanings(self) -> list[str]:
        return list(dict.fromkeys(e.meaning for e in self.entries))


@dataclass(frozen=True)
class Explanation:
    time: float  # seconds: the centre of the window explained
    meanings: list[tuple[str, float]]  # (meaning, cosine similarity), best first


# --- building ------------------------------------------------------------------------------------------------------

def add_entry(vocabulary: Vocabulary, motion: Motion, frame_start: int, frame_end: int, description: str,
              meaning: str, embed: Embed, source: str = "") -> Entry:
    """Add frames [frame_start, frame_end) of `motion` with its description and meaning, embedding texts not yet
    stored. A trained model is dropped: it has not seen the new entry (train again)."""
    description, meaning = " ".join(description.split()), " ".join(meaning.split())
    if not description or not meaning:
        empty = "description" if not description else "meaning"
        raise VocabularyError(f"The gesture's {empty} is empty: say in words what the gesture "
                              f"{'looks like' if empty == 'description' else 'asks of the orchestra'}.")
    if not 0 <= frame_start < frame_end <= motion.n_frames:
        raise VocabularyError(f"Frames {frame_start} to {frame_end} are not inside the motion, which has frames 0 to "
                              f"{motion.n_frames} (end excluded): give a range within it, start before end.")
    if (frame_end - frame_start) / motion.fps < MIN_CLIP_S:
        raise VocabularyError(f"Frames {frame_start} to {frame_end} last {(frame_end - frame_start) / motion.fps:.2f} "
                              f"s: a gesture clip needs at least {MIN_CLIP_S:g} s "
                              f"({int(np.ceil(MIN_CLIP_S * motion.fps))} frames).")
    missing = [text for text in dict.fromkeys((description, meaning)) if text not in vocabulary.sentences]
    if missing:
        for text, vector in zip(missing, np.asarray(embed(missing), dtype=np.float32)):
            vocabulary.sentences[text] = vector
    entry = Entry(keypoints=motion.keypoints[frame_start:frame_end].copy(), fps=float(motion.fps),
                  description=description, meaning=meaning, source=source, frames=(int(frame_start), int(frame_end)))
    vocabulary.entries.append(entry)
    vocabulary.model = None
    return entry


def _text_matrix(vocabulary: Vocabulary, texts: list[str]) -> np.ndarray:
    return np.stack([vocabulary.sentences[t] for t in texts]).astype(np.float32)


def training_set(vocabulary: Vocabulary, arch: ge.Architecture) -> ge.TrainingSet:
    descriptions, meanings = vocabulary.descriptions, vocabulary.meanings
    return ge.TrainingSet(
        clip_tokens=[ge.token_features(e.keypoints, e.fps, arch.token_fps) for e in vocabulary.entries],
        description_of=np.array([descriptions.index(e.description) for e in vocabulary.entries]),
        meaning_of=np.array([meanings.index(e.meaning) for e in vocabulary.entries]),
        descriptions=_text_matrix(vocabulary, descriptions),
        meanings=_text_matrix(vocabulary, meanings),
    )


def train_vocabulary(vocabulary: Vocabulary, settings: ge.TrainingSettings | None = None,
                     arch: ge.Architecture | None = None, progress: ge.Progress | None = None,
                     seed: int = 0) -> TrainedModel:
    """Train the encoders on the vocabulary's entries and keep the model in it. `progress` may raise to cancel."""
    if len(vocabulary.descriptions) < 2 or len(vocabulary.meanings) < 2:
        raise VocabularyError("A vocabulary needs at least two gestures with different descriptions and meanings "
                              "to learn from: add more entries, then train.")
    settings, arch = settings or ge.TrainingSettings(), arch or ge.Architecture()
    result = ge.train(training_set(vocabulary, arch), arch, settings, seed=seed, progress=progress)
    vocabulary.model = TrainedModel(arch=arch, settings=settings, weights=result.weights, seconds=result.seconds,
                                    final_loss=float(np.mean(result.losses[-10:])))
    return vocabulary.model


# --- embedding -----------------------------------------------------------------------------------------------------

def _trained(vocabulary: Vocabulary, what: str) -> TrainedModel:
    if vocabulary.model is None:
        raise VocabularyError(f"The vocabulary is not trained (or has entries added since): train it before {what}.")
    return vocabulary.model


def _windows(tokens: np.ndarray, arch: ge.Architecture, hop_tokens: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Windows of a token sequence every `hop_tokens` (one shorter window for a short sequence); their centres in
    tokens."""
    length = arch.window_tokens
    if len(tokens) <= length:
        return [tokens], np.array([len(tokens) / 2])
    starts = np.arange(0, len(tokens) - length + 1, hop_tokens)
    return [tokens[s:s + length] for s in starts], starts + length / 2


def clip_embedding(model: TrainedModel, keypoints: np.ndarray, fps: float) -> np.ndarray:
    """The unit gesture embedding of a clip: the mean direction of its windows, half a window apart."""
    arch = model.arch
    windows, _ = _windows(ge.token_features(keypoints, fps, arch.token_fps), arch, max(1, arch.window_tokens // 2))
    mean = ge.embed_windows(model.weights, arch, windows).mean(axis=0)
    return mean / np.linalg.norm(mean)


def text_embeddings(vocabulary: Vocabulary, head: str, texts: list[str]) -> np.ndarray:
    """Unit joint-space embeddings of stored texts through the "description" or "meaning" head."""
    model = _trained(vocabulary, "embedding texts")
    return ge.encode_texts(model.weights, head, _text_matrix(vocabulary, texts))[0]


def motion_embeddings(model: TrainedModel, motion: Motion, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(window centre times in seconds, unit gesture embeddings) of windows slid over the motion every `hop_s`."""
    arch = model.arch
    tokens = ge.token_features(motion.keypoints, motion.fps, arch.token_fps)
    if not len(tokens):
        raise VocabularyError(f"The motion lasts {motion.duration:.2f} s: too short to look for gestures in.")
    windows, centres = _windows(tokens, arch, max(1, int(round(hop_s * arch.token_fps))))
    return centres / arch.token_fps, ge.embed_windows(model.weights, arch, windows)


# --- explain, search -----------------------------------------------------------------------------------------------

def explain(vocabulary: Vocabulary, motion: Motion, hop_s: float = EXPLAIN_HOP_S, top: int = 3) -> list[Explanation]:
    """For windows slid over the motion: the nearest meanings of the vocabulary, with their cosine similarity."""
    model = _trained(vocabulary, "explaining a motion")
    times, gestures = motion_embeddings(model, motion, hop_s)
    meanings = vocabulary.meanings
    similarity = gestures @ text_embeddings(vocabulary, "meaning", meanings).T
    order = np.argsort(-similarity, axis=1)[:, :top]
    return [Explanation(float(t), [(meanings[j], float(row[j])) for j in best])
            for t, row, best in zip(times, similarity, order)]


def search(vocabulary: Vocabulary, motion: Motion, query: str | np.ndarray, top: int = 5,
           embed: Embed | None = None, hop_s: float = EXPLAIN_HOP_S) -> list[tuple[float, float]]:
    """The moments (window centre in seconds, cosine similarity) of the motion best matching a description: a
    text (a stored one needs no text model; any other is embedded by `embed`) or its sentence embedding (384,).
    Moments closer than half a window to a better one are left out."""
    model = _trained(vocabulary, "searching a motion")
    if isinstance(query, str):
        text = " ".join(query.split())
        if not text:
            raise VocabularyError("The search text is empty: type a description of the gesture to find.")
        if text in vocabulary.sentences:
            sentence = vocabulary.sentences[text]
        elif embed is None:
            raise VocabularyError(f"{text!r} is not one of the vocabulary's texts and no text model is at hand to "
                                  "embed it.")
        else:
            sentence = np.asarray(embed([text]), dtype=np.float32)[0]
    else:
        sentence = np.asarray(query, dtype=np.float32)
    if sentence.shape != (model.arch.text_size,):
        raise VocabularyError(f"A search needs a sentence embedding of {model.arch.text_size} values, got "
                              f"{sentence.shape}.")
    target = ge.encode_texts(model.weights, "description", sentence[None])[0][0]
    times, gestures = motion_embeddings(model, motion, hop_s)
    scores = gestures @ target
    separation = SEARCH_SEPARATION * model.arch.window_s
    found: list[tuple[float, float]] = []
    for index in np.argsort(-scores):
        if len(found) == top:
            break
        if all(abs(times[index] - t) >= separation for t, _ in found):
            found.append((float(times[index]), float(scores[index])))
    return found


# --- metrics -------------------------------------------------------------------------------------------------------

def retrieval(similarity: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(top-1 accuracy, mean reciprocal rank) of queries (rows) ranking targets (columns); `truth` (Q,) the index
    of each query's target."""
    own = similarity[np.arange(len(truth)), truth]
    rank = 1 + (similarity > own[:, None]).sum(axis=1)
    return float(np.mean(rank == 1)), float(np.mean(1.0 / rank))


def alignment(a: np.ndarray, b: np.ndarray) -> float:
    """Wang and Isola's alignment loss of positive pairs (a_i, b_i) of unit embeddings: mean ‖a_i - b_i‖²."""
    return float(np.mean(((a - b) ** 2).sum(axis=1)))


def uniformity(x: np.ndarray) -> float:
    """Wang and Isola's uniformity of unit embeddings: log mean over distinct pairs of exp(-2 ‖x_i - x_j‖²)."""
    squared = np.maximum(2.0 - 2.0 * (x @ x.T), 0.0)
    upper = np.triu_indices(len(x), k=1)
    return float(np.log(np.mean(np.exp(-2.0 * squared[upper]))))


# --- map -----------------------------------------------------------------------------------------------------------

def layout_2d(points: np.ndarray, neighbours: int = 10, epochs: int = 300, seed: int = 0) -> np.ndarray:
    """A UMAP-style 2-D layout (N, 2) of points (N, D): a fuzzy k-nearest-neighbour graph, laid out by sampling its
    edges for attraction and random pairs for repulsion, starting from the principal components."""
    rng = np.random.default_rng(seed)
    n = len(points)
    if n < 3:
        return np.column_stack([np.arange(n, dtype=np.float64), np.zeros(n)])
    k = min(neighbours, n - 1)
    squared = ((points[:, None] - points[None]) ** 2).sum(axis=-1)
    distance = np.sqrt(np.maximum(squared, 0.0))
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, :k]
    near_d = np.take_along_axis(distance, nearest, axis=1)
    rho = near_d[:, 0]
    # Each point's bandwidth makes its neighbours' memberships sum to log2(k), as in UMAP.
    lo, hi = np.zeros(n), np.full(n, np.inf)
    sigma = np.ones(n)
    for _ in range(64):
        total = np.exp(-np.maximum(near_d - rho[:, None], 0.0) / sigma[:, None]).sum(axis=1)
        too_big = total > np.log2(k)
        hi = np.where(too_big, sigma, hi)
        lo = np.where(too_big, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2, 0.5 * (lo + hi))
    membership = np.zeros((n, n))
    np.put_along_axis(membership, nearest,
                      np.exp(-np.maximum(near_d - rho[:, None], 0.0) / np.maximum(sigma[:, None], 1e-12)), axis=1)
    membership = membership + membership.T - membership * membership.T
    heads, tails = np.nonzero(np.triu(membership, 1))
    weight = membership[heads, tails]
    centred = points - points.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    y = centred @ vt[:2].T
    y = 10.0 * y / max(float(np.abs(y).max()), 1e-12) + rng.normal(0, 1e-3, (n, 2))
    a, b = 1.577, 0.895  # the curve 1 / (1 + a d^2b) UMAP fits for a minimum distance of 0.1
    for epoch in range(epochs):
        rate = 1.0 - epoch / epochs
        use = rng.random(len(weight)) < weight / weight.max()
        i, j = heads[use], tails[use]
        diff = y[i] - y[j]
        d2 = (diff * diff).sum(axis=1, keepdims=True)
        pull = -2 * a * b * d2 ** (b - 1) / (1 + a * d2**b)
        step = np.clip(pull * diff, -4, 4) * rate
        moves = np.zeros_like(y)
        np.add.at(moves, i, step)
        np.add.at(moves, j, -step)
        others = rng.integers(0, n, (len(i), 5))
        for column in others.T:
            diff = y[i] - y[column]
            d2 = (diff * diff).sum(axis=1, keepdims=True)
            push = 2 * b / ((0.001 + d2) * (1 + a * d2**b))
            np.add.at(moves, i, np.clip(push * diff, -4, 4) * rate * (column != i)[:, None])
        y += moves / np.maximum(np.bincount(np.concatenate([i, j]), minlength=n), 1)[:, None]
    return y


def map_points(vocabulary: Vocabulary) -> dict:
    """The map's contents: each entry's clip embedding, the distinct descriptions' and meanings' embeddings, and
    their 2-D layout."""
    model = _trained(vocabulary, "drawing its map")
    descriptions, meanings = vocabulary.descriptions, vocabulary.meanings
    gestures = np.stack([clip_embedding(model, e.keypoints, e.fps) for e in vocabulary.entries])
    d = text_embeddings(vocabulary, "description", descriptions)
    m = text_embeddings(vocabulary, "meaning", meanings)
    layout = layout_2d(np.concatenate([gestures, d, m]).astype(np.float64))
    n, n_d = len(gestures), len(descriptions)
    return {"gestures": layout[:n], "descriptions": layout[n:n + n_d], "meanings": layout[n + n_d:],
            "description_of": [descriptions.index(e.description) for e in vocabulary.entries],
            "meaning_of": [meanings.index(e.meaning) for e in vocabulary.entries],
            "description_texts": descriptions, "meaning_texts": meanings}


# --- file ----------------------------------------------------------------------------------------------------------

def vocabulary_arrays(vocabulary: Vocabulary) -> dict[str, np.ndarray]:
    """The vocabulary as named arrays: the clips, the stored sentence embeddings, the trained weights, and a JSON
    record of the rest under "record_json" (what a .npz file or a Blender scene keeps)."""
    texts = list(vocabulary.sentences)
    record = {
        "format": FORMAT, "version": VERSION,
        "entries": [{"description": e.description, "meaning": e.meaning, "source": e.source,
                     "frames": list(e.frames), "fps": e.fps, "length": len(e.keypoints)} for e in vocabulary.entries],
        "texts": texts,
    }
    arrays = {
        "clips": (np.concatenate([e.keypoints for e in vocabulary.entries]) if vocabulary.entries
                  else np.zeros((0, 13, 2), np.float32)),
        "sentences": (np.stack([vocabulary.sentences[t] for t in texts]) if texts
                      else np.zeros((0, 0), np.float32)),
    }
    model = vocabulary.model
    if model is not None:
        record["model"] = {"architecture": model.arch.record(), "settings": model.settings.record(),
                           "seconds": model.seconds, "final_loss": model.final_loss}
        arrays.update({f"weight:{name}": value for name, value in model.weights.items()})
    arrays["record_json"] = np.array(json.dumps(record))
    return arrays


def save_vocabulary(vocabulary: Vocabulary, path: str | Path) -> Path:
    """Write the vocabulary as one .npz; written to a temporary file first, so a failure leaves any old file whole."""
    path = Path(path)
    arrays = vocabulary_arrays(vocabulary)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez_compressed(out, **arrays)
        # mkstemp makes the file private; the vocabulary gets the permissions any new file of the user's would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_vocabulary(path: str | Path) -> Vocabulary:
    path = Path(path)
    if not path.is_file():
        raise VocabularyError(f"Vocabulary file not found: {path} (create one with 'vocabulary add').")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # numpy raises several types for a file that is not an .npz
        raise VocabularyError(f"{path.name} is not a readable .npz file ({exc}): give a gesture vocabulary made by "
                              "'vocabulary add'.") from exc
    return vocabulary_from_arrays(arrays, path.name)


def vocabulary_from_arrays(arrays: dict[str, np.ndarray], name: str) -> Vocabulary:
    """The vocabulary `vocabulary_arrays` gave; `name` says where it was kept, for the messages."""
    try:
        record = json.loads(str(arrays["record_json"]))
        if record.get("format") != FORMAT:
            raise KeyError("format")
    except (KeyError, ValueError):
        raise VocabularyError(f"{name} is not a gesture vocabulary (a keypoint file?): give a vocabulary made "
                              "by 'vocabulary add'.") from None
    if record.get("version") != VERSION:
        raise VocabularyError(f"{name} is a gesture vocabulary of version {record.get('version')}; this "
                              f"Gesture Maestro reads version {VERSION}.")
    clips, start = [], 0
    for item in record["entries"]:
        clips.append(Entry(keypoints=arrays["clips"][start:start + item["length"]], fps=float(item["fps"]),
                           description=item["description"], meaning=item["meaning"], source=item["source"],
                           frames=tuple(item["frames"])))
        start += item["length"]
    vocabulary = Vocabulary(entries=clips, sentences=dict(zip(record["texts"], arrays["sentences"])))
    if "model" in record:
        info = record["model"]
        weights = {key.split(":", 1)[1]: value for key, value in arrays.items() if key.startswith("weight:")}
        vocabulary.model = TrainedModel(arch=ge.Architecture(**info["architecture"]),
                                        settings=ge.TrainingSettings(**info["settings"]), weights=weights,
                                        seconds=float(info["seconds"]), final_loss=float(info["final_loss"]))
    return vocabulary
