"""Short runs on real data: every model must beat popularity by >= 10% NDCG@10.

A fixed ML-100K subsample (400 users, seed 0) and a capped number of epochs keep this fast."""

import pytest

import mmkgrec

BASE = {"subsample_users": 400, "show_progress": False, "stopping_step": 5}


@pytest.fixture(scope="module")
def pop(data_dir):
    return mmkgrec.train("Pop", "ml-100k", overrides=BASE).metrics["test"]["ndcg@10"]


@pytest.mark.parametrize("model,overrides", [
    ("BPR", {"epochs": 40, "learning_rate": 0.005}),
    ("LightGCN", {"epochs": 30, "learning_rate": 0.01}),
    # real MiniLM text features and hand-crafted poster descriptors, extracted on first use
    ("VBPR", {"epochs": 40, "learning_rate": 0.005}),
    ("MMGCN", {"epochs": 20, "learning_rate": 0.005}),
])
def test_beats_popularity_on_ml100k(model, overrides, pop, data_dir):
    run = mmkgrec.train(model, "ml-100k", overrides={**BASE, **overrides})
    ndcg = run.metrics["test"]["ndcg@10"]
    assert ndcg >= 1.10 * pop, f"{model} ndcg@10 {ndcg:.4f} vs Pop {pop:.4f}"
