"""The gesture vocabulary: numpy networks checked against torch autograd, the vocabulary file, explain, search, the
map and the evaluation at a reduced size."""

from __future__ import annotations

import numpy as np
import pytest

from gm_blender_addon.core import gesture_encoder as ge
from helpers import PLANTED, planted_motion, run_without_torch, stand_in_embed

SMALL = ge.Architecture(token_fps=10, window_s=1.2, width=16, layers=2, heads=4, mlp=24, joint_size=8, text_size=12)


def _torch_reference(w, arch, tokens, mask, descriptions, meanings, settings, description_of, meaning_of):
    """The same networks and loss written with torch's own layers, for autograd to differentiate."""
    import torch
    import torch.nn.functional as F

    t = {k: torch.tensor(v, requires_grad=True) for k, v in w.items()}
    x = torch.tensor(tokens) @ t["embed.w"] + t["embed.b"] + torch.tensor(ge.sinusoids(tokens.shape[1], arch.width,
                                                                                           np.float64))
    keep = torch.tensor(mask)
    batch, length, width = x.shape
    size = width // arch.heads
    for i in range(arch.layers):
        p = f"layer{i}."
        a = F.layer_norm(x, (width,), t[p + "ln1.g"], t[p + "ln1.b"], eps=1e-5)
        q, k, v = (a @ t[p + "qkv.w"] + t[p + "qkv.b"]).split(width, dim=-1)
        q, k, v = (z.reshape(batch, length, arch.heads, size).transpose(1, 2) for z in (q, k, v))
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        x = x + mixed.transpose(1, 2).reshape(batch, length, width) @ t[p + "out.w"] + t[p + "out.b"]
        c = F.layer_norm(x, (width,), t[p + "ln2.g"], t[p + "ln2.b"], eps=1e-5)
        hidden = F.gelu(c @ t[p + "mlp1.w"] + t[p + "mlp1.b"], approximate="tanh")
        x = x + hidden @ t[p + "mlp2.w"] + t[p + "mlp2.b"]
    f = F.layer_norm(x, (width,), t["final.g"], t["final.b"], eps=1e-5)
    count = keep.sum(dim=1, keepdim=True)
    half = torch.clamp(count // 2, min=1)
    order = torch.cumsum(keep, dim=1)
    first = (keep & (order <= half)).double() / half
    second = (keep & (order > count - half)).double() / half
    pooled = torch.cat([(f * (keep.double() / count)[..., None]).sum(dim=1),
                        (f * (second - first)[..., None]).sum(dim=1)], dim=1)

    def head(z, name):
        return F.normalize(F.relu(z @ t[name + ".w1"] + t[name + ".b1"]) @ t[name + ".w2"] + t[name + ".b2"], dim=-1)

    g = head(pooled, "gesture")
    d = head(torch.tensor(descriptions), "description")
    m = head(torch.tensor(meanings), "meaning")

    def nce(a, b, positive):
        logits = a @ b.T / settings.temperature
        positive = torch.tensor(positive, dtype=torch.float64)
        total = 0.0
        for dim in (1, 0):
            counts = positive.sum(dim=dim, keepdim=True)
            valid = (counts > 0).squeeze(dim)
            target = positive / counts.clamp(min=1)
            per = -(target * torch.log_softmax(logits, dim=dim)).sum(dim=dim)
            total = total + 0.5 * per[valid].mean()
        return total

    gd = description_of[:, None] == np.arange(len(descriptions))[None, :]
    gm = meaning_of[:, None] == np.arange(len(meanings))[None, :]
    dm = np.zeros((len(descriptions), len(meanings)), dtype=bool)
    dm[description_of, meaning_of] = True
    loss = nce(g, d, gd) + settings.alpha * nce(g, m, gm) + settings.beta * nce(d, m, dm)
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in t.items()}


def test_every_gradient_matches_torch_autograd():
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    arch = SMALL
    w = ge.init_weights(arch, seed=3, dtype=np.float64)
    # Non-trivial norms and biases, so that their gradients are tested away from the initial values.
    for name in w:
        if name.endswith((".g", ".b", ".b1", ".b2")):
            w[name] = w[name] + rng.normal(0, 0.3, w[name].shape)
    windows = [rng.normal(size=(n, ge.N_FEATURES)) for n in (12, 12, 7, 12, 9)]
    tokens, mask = ge.batch_tokens(windows, arch.window_tokens)
    descriptions = rng.normal(size=(3, arch.text_size))
    meanings = rng.normal(size=(4, arch.text_size))
    description_of, meaning_of = np.array([0, 1, 1, 2, 0]), np.array([0, 1, 1, 3, 0])
    settings = ge.TrainingSettings(temperature=0.2, alpha=0.7, beta=0.4)
    loss, grads = ge.total_loss(w, arch, settings, tokens, mask, description_of, meaning_of, descriptions, meanings)
    expected_loss, expected = _torch_reference(w, arch, tokens, mask, descriptions, meanings, settings,
                                               description_of, meaning_of)
    assert loss == pytest.approx(expected_loss, rel=1e-10)
    assert set(grads) == set(w)
    for name, grad in expected.items():
        np.testing.assert_allclose(grads[name], grad, rtol=1e-7, atol=1e-10, err_msg=name)


def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    reference = {k: torch.tensor(v, requires_grad=True) for k, v in w.items()}
    torch_adam = torch.optim.Adam(reference.values(), lr=0.01)
    ours = ge.Adam(w, learning_rate=0.01)
    for _ in range(5):
        grads = {k: rng.normal(size=v.shape) for k, v in w.items()}
        for k, v in reference.items():
            v.grad = torch.tensor(grads[k])
        torch_adam.step()
        ours.step(w, grads)
    for k, v in reference.items():
        np.testing.assert_allclose(w[k], v.detach().numpy(), rtol=1e-10, atol=1e-12)


# --- the vocabulary ------------------------------------------------------------------------------------------------

TINY = ge.Architecture(token_fps=10, window_s=2.0, width=32, layers=1, heads=2, mlp=64, joint_size=16)
QUICK = ge.TrainingSettings(steps=150, batch=16, learning_rate=2e-3, warmup_steps=10)


@pytest.fixture(scope="module")
def trained():
    from gm_blender_addon.core import gesture_vocabulary as gv

    vocabulary = gv.Vocabulary()
    for seed in range(4):
        for kind, (description, meaning) in PLANTED.items():
            motion = planted_motion([kind], seed=10 * seed + len(kind))
            gv.add_entry(vocabulary, motion, 0, motion.n_frames, description, meaning, stand_in_embed)
    gv.train_vocabulary(vocabulary, QUICK, TINY)
    return vocabulary


def test_features_ignore_where_the_performer_stands():
    motion = planted_motion(["raise"])
    moved = motion.keypoints + np.array([0.1, -0.05], dtype=np.float32)
    features = ge.token_features(motion.keypoints, 30, 10)
    assert features.shape == (motion.n_frames // 3, ge.N_FEATURES)
    np.testing.assert_allclose(ge.token_features(moved, 30, 10), features, atol=1e-5)
    # The same motion at 60 fps gives the same tokens, near enough.
    doubled = np.repeat(motion.keypoints, 2, axis=0)
    assert np.abs(ge.token_features(doubled, 60, 10)[2:-2] - features[2:-2]).max() < 0.1


def test_explain_and_search_find_the_planted_gesture(trained):
    from gm_blender_addon.core import gesture_vocabulary as gv

    motion = planted_motion(["still", "beat", "raise", "still"], seed=99)
    explained = gv.explain(trained, motion, hop_s=0.5)
    assert explained[0].meanings[0][0] == "silence"
    during_raise = [e for e in explained if 7.0 <= e.time <= 8.0]
    assert during_raise and all(e.meanings[0][0] == "louder please" for e in during_raise)
    assert all(e.meanings[0][1] >= e.meanings[1][1] for e in explained)
    moments = gv.search(trained, motion, PLANTED["beat"][0], top=2)
    assert 3.5 <= moments[0][0] <= 5.5 and moments[0][1] > moments[1][1]
    assert abs(moments[0][0] - moments[1][0]) >= gv.SEARCH_SEPARATION * TINY.window_s
    # A new description is embedded by the text model given.
    seen = []
    gv.search(trained, motion, "hands resting", embed=lambda s: seen.extend(s) or stand_in_embed(s))
    assert seen == ["hands resting"]


def test_a_vocabulary_file_round_trips_and_bad_files_are_named(trained, tmp_path):
    from gm_blender_addon.core import gesture_vocabulary as gv
    from gm_blender_addon.core.motion import Motion

    path = gv.save_vocabulary(trained, tmp_path / "vocabulary.npz")
    loaded = gv.load_vocabulary(path)
    assert [e.description for e in loaded.entries] == [e.description for e in trained.entries]
    np.testing.assert_array_equal(loaded.entries[3].keypoints, trained.entries[3].keypoints)
    assert loaded.model.arch == TINY and loaded.model.settings == QUICK
    motion = planted_motion(["beat", "raise"], seed=5)
    assert gv.explain(loaded, motion) == gv.explain(trained, motion)
    assert not list(tmp_path.glob("*.part"))
    Motion(motion.keypoints).save(tmp_path / "motion.npz")
    with pytest.raises(gv.VocabularyError, match="not a gesture vocabulary"):
        gv.load_vocabulary(tmp_path / "motion.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(gv.VocabularyError, match="not a readable .npz"):
        gv.load_vocabulary(tmp_path / "junk.npz")
    with pytest.raises(gv.VocabularyError, match="not found"):
        gv.load_vocabulary(tmp_path / "missing.npz")


def test_adding_checks_the_clip_and_its_texts_and_untrains():
    from gm_blender_addon.core import gesture_vocabulary as gv

    vocabulary = gv.Vocabulary()
    motion = planted_motion(["raise"])
    with pytest.raises(gv.VocabularyError, match="not inside the motion"):
        gv.add_entry(vocabulary, motion, 10, motion.n_frames + 1, "a", "b", stand_in_embed)
    with pytest.raises(gv.VocabularyError, match="at least 1 s"):
        gv.add_entry(vocabulary, motion, 10, 20, "a", "b", stand_in_embed)
    with pytest.raises(gv.VocabularyError, match="description is empty"):
        gv.add_entry(vocabulary, motion, 0, 60, "  ", "b", stand_in_embed)
    assert not vocabulary.entries
    with pytest.raises(gv.VocabularyError, match="not trained"):
        gv.explain(vocabulary, motion)
    calls = []
    embed = lambda s: calls.append(list(s)) or stand_in_embed(s)  # noqa: E731
    gv.add_entry(vocabulary, motion, 0, 60, "hand up", "louder", embed)
    gv.add_entry(vocabulary, motion, 30, 90, "hand  up ", "softer", embed)
    assert calls == [["hand up", "louder"], ["softer"]]
    with pytest.raises(gv.VocabularyError, match="at least two gestures"):
        gv.train_vocabulary(vocabulary)
    vocabulary.model = "trained"
    gv.add_entry(vocabulary, motion, 0, 60, "hand down", "softer", embed)
    assert vocabulary.model is None


def test_training_reports_progress_and_can_be_cancelled():
    class Cancelled(Exception):
        pass

    from gm_blender_addon.core import gesture_vocabulary as gv

    vocabulary = gv.Vocabulary()
    for kind, (description, meaning) in PLANTED.items():
        motion = planted_motion([kind])
        gv.add_entry(vocabulary, motion, 0, motion.n_frames, description, meaning, stand_in_embed)
    reports = []

    def progress(fraction, message):
        reports.append(fraction)
        if fraction > 0.2:
            raise Cancelled

    with pytest.raises(Cancelled):
        gv.train_vocabulary(vocabulary, QUICK, TINY, progress=progress)
    assert vocabulary.model is None and reports[0] == 0.0


def test_layout_keeps_clusters_apart_and_the_map_is_drawn(trained, tmp_path):
    from gm_blender_addon.core import gesture_vocabulary as gv
    from gm_blender_addon.core.plots import gesture_map

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20)) * 3
    points = np.concatenate([c + rng.normal(size=(15, 20)) * 0.3 for c in centres])
    layout = gv.layout_2d(points)
    labels = np.repeat(np.arange(3), 15)
    inside = np.mean([np.linalg.norm(layout[labels == k] - layout[labels == k].mean(0), axis=1).mean()
                      for k in range(3)])
    between = np.mean([np.linalg.norm(layout[labels == a].mean(0) - layout[labels == b].mean(0))
                       for a, b in ((0, 1), (0, 2), (1, 2))])
    assert between > 3 * inside
    points = gv.map_points(trained)
    assert points["gestures"].shape == (len(trained.entries), 2) and len(points["meanings"]) == 3
    path = gesture_map(points, tmp_path / "map.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics():
    from gm_blender_addon.core import gesture_vocabulary as gv

    similarity = np.array([[0.9, 0.1, 0.0], [0.2, 0.1, 0.5], [0.0, 0.3, 0.2]])
    accuracy, mrr = gv.retrieval(similarity, np.array([0, 1, 2]))
    assert accuracy == pytest.approx(1 / 3) and mrr == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    x = np.eye(4)
    assert gv.alignment(x, x) == 0.0
    assert gv.uniformity(x) == pytest.approx(-4.0)


def test_evaluation_at_a_reduced_size_retrieves_most_held_out_gestures_and_keeps_a_starter(tmp_path):
    from gm_blender_addon.core import gesture_vocabulary as gv
    from gm_blender_addon.training import gesture_set as gs

    arch = ge.Architecture(token_fps=10, window_s=4.0, width=48, layers=1, heads=4, mlp=96, joint_size=32)
    settings = ge.TrainingSettings(steps=150, batch=24, learning_rate=2e-3, warmup_steps=10)
    result = gs.evaluate(stand_in_embed, per_gesture_train=4, per_gesture_test=2, split="dev", settings=settings,
                         arch=arch, keep=tmp_path / "starter.npz")
    assert result["held_out_clips"] == 2 * len(gs.GESTURES)
    assert result["retrieval_accuracy"]["g-d"] >= 0.5 and result["retrieval_accuracy"]["d-m"] == 1.0
    assert set(result["uniformity"]) == {"g-d", "g-m", "d-m"}
    starter = gv.load_vocabulary(tmp_path / "starter.npz")
    assert len(starter.entries) == gs.STARTER_PERFORMANCES * len(gs.GESTURES) and starter.model is not None
    assert len(starter.meanings) == len(gs.GESTURES)


WITHOUT_TORCH = """
from gm_blender_addon.core import gesture_encoder as ge, gesture_vocabulary as gv
from helpers import PLANTED, planted_motion, stand_in_embed

vocabulary = gv.Vocabulary()
for kind, (description, meaning) in PLANTED.items():
    motion = planted_motion([kind])
    gv.add_entry(vocabulary, motion, 0, motion.n_frames, description, meaning, stand_in_embed)
gv.train_vocabulary(vocabulary, ge.TrainingSettings(steps=3, batch=4), ge.Architecture(window_s=2.0, width=32))
explained = gv.explain(vocabulary, planted_motion(["beat", "raise"]))
print("RESULT " + json.dumps({"moments": len(explained), "torch_loaded": "torch" in sys.modules}))
"""


def test_training_and_explaining_need_no_torch():
    assert run_without_torch(WITHOUT_TORCH, timeout=120) == {"moments": 9, "torch_loaded": False}
