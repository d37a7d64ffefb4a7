"""The rating and classification models on real ML-100K, each against its trivial baseline, and the
proof that the classification target never leaks into the inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import svds

import mmkgrec
from mmkgrec.config import load_config
from mmkgrec.data import load_dataset
from mmkgrec.data.split_factory import split_from_config
from mmkgrec.evaluation.evaluator import make_evaluator
from mmkgrec.models import build_inputs, get_model_class
from mmkgrec.training.trainer import Trainer, seed_everything

QUIET = {"show_progress": False, "threads": 1}


def test_biased_mf_beats_bias_only_beats_the_mean(data_dir):
    ov = {**QUIET, "split": "kfold", "fold": 0, "epochs": 30, "load_kg": False}
    runs = {m: mmkgrec.train(m, "ml-100k", overrides=ov) for m in ("BiasOnly", "BiasedMF")}
    split = runs["BiasOnly"].split
    mean = float(np.mean(split.train.rating))
    mean_rmse = float(np.sqrt(np.mean((np.clip(mean, 1, 5) - split.test.rating) ** 2)))
    rmse = {m: r.metrics["test"]["rmse"] for m, r in runs.items()}
    assert rmse["BiasOnly"] < mean_rmse - 0.1, (rmse, mean_rmse)
    assert rmse["BiasedMF"] < rmse["BiasOnly"] - 0.01, rmse
    assert runs["BiasedMF"].metrics["split"]["n_folds"] == 5


def _embeddings(ds, path) -> str:
    """Frozen collaborative item vectors (the top singular vectors of the normalised item x user
    matrix, as a LightGCN export would be), written as an ``item_embeddings`` file."""
    m = ds.inter.csr(ds.n_users, ds.n_items).astype(np.float64)
    du, di = np.asarray(m.sum(1)).ravel(), np.asarray(m.sum(0)).ravel()
    a = sp.diags(1 / np.sqrt(np.maximum(du, 1))) @ m @ sp.diags(1 / np.sqrt(np.maximum(di, 1)))
    u, _, _ = svds(a.T.tocsr(), k=64, random_state=0)
    np.savez(path, item_ids=np.asarray(ds.item_ids, dtype=str), features=u.astype(np.float32))
    return str(path)


def _classify(model: str, ds, cfg) -> dict:
    """Train ``model`` on ``ds`` (the dataset as given: nothing re-read) and return its test
    metrics."""
    split = split_from_config(ds, cfg)
    cls = get_model_class(model)
    seed_everything(cfg["seed"])
    net = cls(cfg, build_inputs(split, cls.requirements(cfg), "cpu", cfg))
    Trainer(net, split, cfg).fit()
    metrics, _, _ = make_evaluator(split, "test", cfg, net).evaluate(net)
    labels = split.labels[split.items["test"]]
    return {**metrics, "majority_rate": float(labels.sum(0).max() / len(labels))}


def test_target_shuffled_before_inputs_are_built_leaves_nothing_to_learn(data_dir, tmp_path):
    """The genre column shuffled across items before the item text, KG and features are built:
    were it in any input, the classifier would learn the shuffled labels from it; it is not, so
    accuracy falls to the majority-class rate, while with the real column the same classifier
    (text and collaborative vectors) is clearly above it."""
    base = load_config("ContentLR", "ml-100k", overrides={
        **QUIET, "classification_mode": "single", "min_class_items": 10, "valid_metric":
        "accuracy", "split_ratio": [0.6, 0.2, 0.2], "modalities": ["text"]})
    ds = load_dataset("ml-100k", base)
    cfg = base.updated(item_embeddings=_embeddings(ds, tmp_path / "emb.npz"))
    real = _classify("ContentLR", ds, cfg)
    majority = _classify("Majority", ds, cfg)
    shuffled_ds = load_dataset("ml-100k", base)
    col = shuffled_ds.item_features["class"]
    perm = np.random.default_rng(0).permutation(len(col))
    shuffled_ds.item_features["class"] = np.asarray([col[k] for k in perm], dtype=object)
    shuffled = _classify("ContentLR", shuffled_ds, cfg)
    print(f"real {real}\nshuffled {shuffled}\nmajority {majority}")
    assert majority["accuracy"] == pytest.approx(majority["majority_rate"])
    assert real["accuracy"] > real["majority_rate"] + 0.05
    assert real["f1_macro"] > majority["f1_macro"] + 0.2
    assert shuffled["accuracy"] <= shuffled["majority_rate"] + 0.02
