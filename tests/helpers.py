"""Helpers shared by several test modules (fixtures live in conftest.py): fixed-score models,
hand-built splits, tiny sequence data, generated posters, fake item features and the short runs of
the knowledge-graph tests."""

from __future__ import annotations

import functools

import numpy as np
import torch

import mmkgrec
from mmkgrec.config import load_config
from mmkgrec.data import build_dataset, split_dataset
from mmkgrec.data.batches import PairwiseBatches
from mmkgrec.data.dataset import Interactions
from mmkgrec.data.split import Split
from mmkgrec.models import build_inputs, get_model_class
from mmkgrec.training.trainer import make_optimizer

QUIET = {"show_progress": False}


# ---- evaluation: a model with fixed scores and a split written out by hand ----------------------
class FixedScores(torch.nn.Module):
    input_type = "none"

    def __init__(self, scores):
        super().__init__()
        self.s = torch.as_tensor(scores, dtype=torch.float32)

    def prepare_eval(self):
        pass

    def score_all(self, users):
        return self.s[users]

    def score(self, users, items):
        return self.s[users, items]


def make_split(train, valid, test, n_users, n_items):
    ds = build_dataset("t", [str(u) for u in range(n_users)], [str(i) for i in range(n_users)])
    ds.user_ids = np.asarray([str(u) for u in range(n_users)], dtype=object)
    ds.item_ids = np.asarray([str(i) for i in range(n_items)], dtype=object)

    def it(pairs):
        a = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return Interactions(a[:, 0], a[:, 1])

    return Split(ds, it(train), it(valid), it(test))


# ---- sequences: a tiny time-ordered dataset and a model that predicts by rule -------------------
# user "1": items in file order with timestamps; 5 and 7 share timestamp 30 (file order: 5 first)
U1_ITEMS = [5, 3, 7, 1, 2, 8, 4, 6, 9, 0]
U1_TS = [30, 10, 30, 20, 40, 50, 60, 70, 80, 90]
U1_SEQ = [3, 1, 5, 7, 2, 8, 4, 6, 9, 0]
# user "2": five items in reverse time order; user "3": two interactions, too few for 8:1:1
U2_ITEMS, U2_TS = [10, 11, 12, 13, 14], [5, 4, 3, 2, 1]
U2_SEQ = [14, 13, 12, 11, 10]


def tiny(method="time_ratio", ratios=(0.8, 0.1, 0.1)):
    users = ["1"] * 10 + ["2"] * 5 + ["3"] * 2
    items = U1_ITEMS + U2_ITEMS + [1, 2]
    ts = U1_TS + U2_TS + [1, 2]
    ds = build_dataset("tiny", np.array(users), np.array(items), None, np.array(ts, dtype=float))
    assert list(ds.item_ids) == [str(i) for i in range(15)]  # dense id == raw id
    return split_dataset(ds, method, list(ratios))


class PredictPrevious(torch.nn.Module):
    """Scores 1 for (last input item - 1), 0 elsewhere."""

    input_type = "sequence"
    max_input_length = 3

    def __init__(self, n_items):
        super().__init__()
        self.n_items = n_items

    def prepare_eval(self):
        pass

    def score_sequences(self, seq, lengths):
        last = seq[torch.arange(len(seq)), lengths - 1] - 1
        out = torch.zeros(len(seq), self.n_items)
        out[torch.arange(len(seq)), (last - 1) % self.n_items] = 1.0
        return out


# ---- images --------------------------------------------------------------------------------
def poster(seed: int, size=(60, 90)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    a = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    a[:] = rng.integers(0, 256, 3)
    y0, x0 = rng.integers(0, size[1] // 2), rng.integers(0, size[0] // 2)
    a[y0:y0 + size[1] // 3, x0:x0 + size[0] // 3] = rng.integers(0, 256, 3)
    a = np.clip(a + rng.normal(0, 8 * (seed % 3), a.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a)


# ---- knowledge-graph models: fake features, a model, its batches, a short training ----------------
def fake_item_feature_matrix(dataset, modality, config=None):
    cats = np.array([int(c[0][3:]) for c in dataset.item_features["class"]])
    rng = np.random.default_rng(1 if modality == "text" else 2)
    mat = rng.normal(size=(cats.max() + 1, 6))[cats] + 0.1 * rng.normal(size=(len(cats), 6))
    return mat.astype(np.float32), np.ones(len(cats), dtype=bool)


def fake_user_history_matrix(split, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-pass user vectors without a language model: the sum of the item vectors ``items`` of
    the user's training items plus a fixed per-user offset."""
    out = np.zeros((split.n_users, items.shape[1]), dtype=np.float32)
    np.add.at(out, split.train.user, items[split.train.item])
    out += np.random.default_rng(3).normal(size=out.shape).astype(np.float32) * 0.1
    return out, np.ones(split.n_users, dtype=bool)


# ---- recorded references of the exactness tests (tests/data/*_reference.npz) -------------------
@functools.lru_cache(maxsize=4)
def load_reference(path) -> dict[str, np.ndarray]:
    """The arrays of an exactness test's reference file (read once per path)."""
    if not path.exists():
        import pytest

        pytest.fail(f"{path} is missing (regenerate with --write, see the test's docstring)")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def write_reference(path, run_case, cases: dict) -> None:
    """Record ``run_case(split, case, overrides)`` (a dict of arrays) of every case on the
    synthetic split, 8:1:1 at random, into ``path`` as ``case/key`` arrays."""
    from mmkgrec.data import load_dataset

    split = split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "random_ratio")
    arrays = {f"{case}/{k}": v for case, ov in cases.items()
              for k, v in run_case(split, case, ov).items()}
    path.parent.mkdir(exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(f"wrote {len(arrays)} arrays to {path}")


def assert_equals_reference(got: dict, reference: dict, case: str, same_keys=True) -> None:
    """Every array of ``case`` in ``reference`` (keys ``case/...``) equals ``got``'s to 1e-5 of
    its largest magnitude (at least 1e-5 absolute)."""
    want = {k[len(case) + 1:]: v for k, v in reference.items() if k.startswith(case + "/")}
    if same_keys:
        assert set(got) == set(want), set(got) ^ set(want)
    for key, ref in want.items():
        diff = np.abs(got[key] - ref)
        tol = 1e-5 * max(1.0, float(np.abs(ref).max()))
        assert diff.max() <= tol, f"{case} {key}: max |diff| {diff.max():.3g} > {tol:.3g}"


def build_model(name, split, **ov):
    cfg = load_config(name, "synthetic", overrides={**QUIET, **ov})
    torch.manual_seed(0)
    cls = get_model_class(name)
    return cls(cfg, build_inputs(split, cls.requirements(cfg), "cpu", cfg)), cfg


def model_batches(model, split, cfg):
    return model.make_batches(split, cfg) or PairwiseBatches.from_split(split, cfg)


def first_batches(model, split, cfg):
    """One batch of every phase the model trains with."""
    seen = {}
    for b in model_batches(model, split, cfg).epoch(np.random.default_rng(0)):
        seen.setdefault(b.get("phase", "cf"), b)
    return list(seen.values())


def train_scores(name, split, epochs=2, **ov):
    model, cfg = build_model(name, split, learning_rate=0.01, **ov)
    opt = make_optimizer(model.parameters(), cfg)
    batches = model_batches(model, split, cfg)
    for epoch in range(epochs):
        model.train()
        model.on_epoch_start(epoch)
        for b in batches.epoch(np.random.default_rng(epoch)):
            opt.zero_grad()
            model.loss(b).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        model.prepare_eval()
        return model.score_all(torch.arange(20))


# ---- real data ----------------------------------------------------------------------------
ML100K_BASE = {"subsample_users": 400, "show_progress": False, "stopping_step": 3,
        "valid_metric": "ndcg@10", "metrics": ["ndcg"], "topk": [10]}


def assert_beats_popularity(model, overrides, pop):
    """A short ML-100K run of ``model`` (ML100K_BASE + ``overrides``, one torch thread: these runs
    are many small ops, which a second thread slows down badly on a shared machine) reaches at
    least 1.1x the popularity baseline's test NDCG@10 ``pop``."""
    threads = torch.get_num_threads()
    try:
        run = mmkgrec.train(model, "ml-100k", overrides={**ML100K_BASE, "threads": 1, **overrides})
    finally:
        torch.set_num_threads(threads)
    ndcg = run.metrics["test"]["ndcg@10"]
    print(f"{model} ndcg@10 {ndcg:.4f} vs Pop {pop:.4f}")
    assert ndcg >= 1.10 * pop, f"{model} ndcg@10 {ndcg:.4f} vs Pop {pop:.4f}"


# ---- serving: a free loopback port, an app under uvicorn in a thread --------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedInThread:
    """``with ServedInThread(app) as base:`` serves the ASGI ``app`` with uvicorn in a thread on
    a free loopback port; ``base`` is its URL."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))

    def __enter__(self) -> str:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start within 60 s"
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)
        return False


def assert_score_matches_score_all(model, n_items: int) -> None:
    """``model.score`` on (user, item) pairs equals the same cells of ``score_all`` in eval mode,
    and scoring again after ``prepare_eval`` (from its caches) gives the same values."""
    users, items = torch.tensor([0, 4, 9, 30, 4]), torch.tensor([3, 1, 2, 17, 150])
    model.eval()
    with torch.no_grad():
        fresh = model.score(users, items)
        model.prepare_eval()
        full = model.score_all(users)
        cached = model.score(users, items)
    assert full.shape == (5, n_items)
    assert torch.allclose(full[torch.arange(5), items], fresh, atol=1e-5)
    assert torch.allclose(cached, fresh, atol=1e-5)


def reload_and_compare_scores(run, out, n_users: int = 10):
    """The run saved in ``out``, loaded again (``mmkgrec.load``): its ``score_all`` of the first
    ``n_users`` users equals the trained model's to 1e-5. Returns the loaded run."""
    again = mmkgrec.load(str(out))
    users = torch.arange(n_users)
    with torch.no_grad():
        run.model.eval()
        run.model.prepare_eval()
        again.model.prepare_eval()
        assert torch.allclose(run.model.score_all(users), again.model.score_all(users),
                              atol=1e-5)
    return again
