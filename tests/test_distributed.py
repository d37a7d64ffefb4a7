"""Distributed runs on CPU with gloo (2 and 3 processes started here with torch.multiprocessing):
evaluation of fixed weights equals the single-process evaluation to 1e-6 whatever the number of
processes (10 users over 3 processes included: 4 + 3 + 3, never padded to 12), and a BPR and a
LightGCN epoch at world size 2 end within 1e-5 of world size 1 with the same global batch and seed.
"""

from __future__ import annotations

import os
import pickle
import socket

import numpy as np
import pytest
import torch

from helpers import QUIET, FixedScores, PredictPrevious, build_model, make_split, tiny
from mmkgrec import distributed
from mmkgrec.data.dataset import Interactions
from mmkgrec.evaluation.ctr import CTREvaluator
from mmkgrec.evaluation.ranking import FullRankingEvaluator, SampledEvaluator
from mmkgrec.evaluation.rating import RatingEvaluator
from mmkgrec.evaluation.sequential import NextItemEvaluator
from mmkgrec.training.trainer import Trainer

METRICS = ["recall@3", "ndcg@3", "mrr@5", "hit@2", "precision@4"]


# ---- the scenarios every process runs (top level: the spawned processes import them) ----------
def ten_users():
    """10 users, 12 items; every user has training, validation and test items; scores with ties
    (rounded), so the tie rule is exercised across processes too."""
    rng = np.random.default_rng(7)
    train, valid, test = [], [], []
    for u in range(10):
        items = rng.permutation(12)
        train += [(u, int(i)) for i in items[:4]]
        valid += [(u, int(i)) for i in items[4:4 + 1 + u % 2]]
        test += [(u, int(i)) for i in items[6:6 + 1 + u % 3]]
    split = make_split(train, valid, test, 10, 12)
    scores = np.round(rng.normal(size=(10, 12)), 1)
    labelled = Interactions(np.repeat(np.arange(10), 5), rng.integers(0, 12, 50),
                            rng.integers(0, 2, 50).astype(np.float32))
    split.labelled = {"valid": labelled, "test": labelled}
    rated = split.test
    split.test = Interactions(rated.user, rated.item, rng.integers(1, 6, len(rated)).astype(float))
    split.train = Interactions(split.train.user, split.train.item,
                               rng.integers(1, 6, len(split.train)).astype(float))
    return split, FixedScores(scores)


def evaluations():
    """(name -> (metrics, user ids, per-user values)) of several evaluators on :func:`ten_users`."""
    split, model = ten_users()
    evs = {"full_valid": FullRankingEvaluator(split, "valid", METRICS, batch_size=3),
           "full_test": FullRankingEvaluator(split, "test", METRICS, batch_size=2),
           "sampled": SampledEvaluator(split, "test", ["hit@3", "ndcg@5", "mrr@5"], 5),
           "ctr": CTREvaluator(split, "test", batch_size=8),
           "rating": RatingEvaluator(split, "test")}
    out = {}
    for name, ev in evs.items():
        metrics, acc, _ = ev.evaluate(model)
        out[name] = (metrics, acc.user_ids, acc.per_user())
    seq = tiny("time_ratio", (0.4, 0.3, 0.3))
    ev = NextItemEvaluator(seq, "test", ["hit@1", "ndcg@3"], batch_size=2)
    metrics, acc, _ = ev.evaluate(PredictPrevious(seq.n_items))
    out["next_item"] = (metrics, acc.user_ids, acc.per_user())
    return out


def one_epoch(name: str):
    """The parameters after one epoch of ``name`` on the synthetic split (global batch 512)."""
    from mmkgrec.data import load_dataset, split_dataset

    split = split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "random_ratio")
    model, cfg = build_model(name, split, epochs=1, train_batch_size=512, learning_rate=0.01,
                             valid_metric="ndcg@10", reg_weight=1e-4, threads=1)
    Trainer(model, split, cfg).fit()
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


SCENARIOS = {"eval": evaluations,
             "train": lambda: {m: one_epoch(m) for m in ("BPR", "LightGCN")}}


def _worker(rank: int, world: int, port: int, scenario: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init_from_env("cpu", timeout_s=120)
    try:
        result = SCENARIOS[scenario]()
    finally:
        distributed.shutdown()
    with open(os.path.join(out, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)


def run_processes(world: int, scenario: str, tmp_path) -> list:
    """``scenario`` on ``world`` processes joined by gloo; what each process returned."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(world, port, scenario, str(tmp_path)), nprocs=world,
                       start_method="spawn")
    out = []
    for r in range(world):
        with open(tmp_path / f"rank{r}.pkl", "rb") as f:
            out.append(pickle.load(f))
    return out


# ---- the tests ---------------------------------------------------------------------------------
def test_shards_are_contiguous_balanced_and_never_padded():
    assert [distributed.shard_bounds(10, 3, r) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [distributed.shard_bounds(2, 3, r) for r in range(3)] == [(0, 1), (1, 2), (2, 2)]
    batch = {"users": torch.arange(5), "pos_items": torch.arange(5) + 10, "phase": "cf"}
    parts = [distributed.shard_batch(batch, 2, r) for r in range(2)]
    assert parts[0][0]["users"].tolist() == [0, 1, 2] and parts[1][0]["users"].tolist() == [3, 4]
    assert parts[1][0]["phase"] == "cf"
    assert [w for _, w in parts] == pytest.approx([1.2, 0.8])  # W * n_r / n: sums to W
    one = {"users": torch.arange(1)}
    (_, w0), (empty, w1) = (distributed.shard_batch(one, 2, r) for r in range(2))
    assert (w0, w1) == (2.0, 0.0) and len(empty["users"]) == 1  # takes part, adds nothing


@pytest.mark.parametrize("world", [2, 3])
def test_distributed_evaluation_equals_one_process(world, tmp_path):
    single = evaluations()
    for per_rank in run_processes(world, "eval", tmp_path):
        for name, (metrics, ids, per_user) in single.items():
            got_metrics, got_ids, got_per_user = per_rank[name]
            assert got_ids.tolist() == ids.tolist(), name  # every user once, in order: 10, not 12
            assert got_metrics.keys() == metrics.keys()
            for m, v in metrics.items():
                assert got_metrics[m] == pytest.approx(v, abs=1e-6, nan_ok=True), (name, m)
            for m, v in per_user.items():
                np.testing.assert_allclose(got_per_user[m], v, atol=1e-6, err_msg=f"{name} {m}")
    assert len(single["full_test"][1]) == 10


def test_one_epoch_on_two_processes_equals_one_process(tmp_path):
    torch.set_num_threads(1)
    single = {m: one_epoch(m) for m in ("BPR", "LightGCN")}
    for per_rank in run_processes(2, "train", tmp_path):
        for name, params in single.items():
            for k, v in params.items():
                np.testing.assert_allclose(per_rank[name][k], v, atol=1e-5, rtol=0,
                                           err_msg=f"{name} {k}")
            moved = max(float(np.abs(v - build_model(name, _synthetic(), **QUIET)[0]
                                      .state_dict()[k].numpy()).max()) for k, v in params.items())
            assert moved > 1e-3, f"{name} did not train"  # the comparison is not of untouched weights


def _synthetic():
    from mmkgrec.data import load_dataset, split_dataset

    return split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "random_ratio")
