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
           "sampled": SampledEvaluator(split, "test", ["hit@3", "ndcg@5", "mrr@5"], 3),
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


def _synthetic():
    from mmkgrec.data import load_dataset, split_dataset

    return split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "random_ratio")


def trained(name: str, epochs: int = 1, ckpt=None, resume: bool = False, **ov):
    """The parameters after ``epochs`` of ``name`` on the synthetic split (global batch 512)."""
    split = _synthetic()
    model, cfg = build_model(name, split, epochs=epochs, train_batch_size=512, learning_rate=0.01,
                             valid_metric="ndcg@10", reg_weight=1e-4, threads=1, **ov)
    Trainer(model, split, cfg, ckpt).fit(resume=resume)
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def train_scenario(work):
    """One BPR and one LightGCN epoch; two BPR epochs resumed from a one-process checkpoint."""
    out = {m: trained(m) for m in ("BPR", "LightGCN")}
    out["BPR-resumed"] = trained("BPR", 2, os.path.join(work, "ckpt"), resume=True)
    return out


def die_scenario(work):
    """BPR on 2 processes, rank 1 killed in the third step of epoch 1: what rank 0 raises."""
    split = _synthetic()
    model, cfg = build_model("BPR", split, epochs=3, train_batch_size=256, threads=1)
    if distributed.rank() == 1:
        loss, start, epochs = model.loss, model.on_epoch_start, []

        def dying(batch):
            if epochs:
                epochs[-1] += 1
            if len(epochs) == 2 and epochs[1] == 3:  # the third step of epoch 1
                os._exit(3)
            return loss(batch)

        def counting(epoch):
            epochs.append(0)
            start(epoch)

        model.loss, model.on_epoch_start = dying, counting
    try:
        Trainer(model, split, cfg, os.path.join(work, "ckpt")).fit()
    except distributed.DistributedError as e:
        return str(e)
    return None


def refuse_scenario(work):
    """What each process raises for bad input: configurations that differ between processes, a
    configuration one process refuses, more processes than users."""
    import mmkgrec

    r = distributed.rank()
    cases = {"differ": ("synthetic", {"learning_rate": 0.001 * (r + 1)}),
             "one_refuses": ("synthetic", {"epochs": -1} if r == 1 else {}),
             "too_many": (os.path.join(work, "one"), {})}
    out = {}
    for name, (dataset, ov) in cases.items():
        try:
            mmkgrec.train("BPR", dataset, overrides={**QUIET, "epochs": 1, **ov})
            out[name] = None
        except Exception as e:  # noqa: BLE001 - the test compares the type and the message
            out[name] = (type(e).__name__, str(e))
    return out


def two_scenario(work):
    """What the tests of 2 processes check, in one start of the processes (each costs seconds)."""
    return {"eval": evaluations(), "train": train_scenario(work), "refuse": refuse_scenario(work)}


SCENARIOS = {"eval": lambda work: evaluations(), "two": two_scenario, "die": die_scenario}


def _worker(rank: int, world: int, port: int, scenario: str, work: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    before = _threads()
    distributed.init_from_env(timeout_s=120)
    result = SCENARIOS[scenario](work)
    with open(os.path.join(work, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)
    distributed.shutdown()
    with open(os.path.join(work, f"rank{rank}.threads"), "w") as f:
        f.write(f"{before} {_threads()}")


def _threads() -> int:
    """This process's native threads (gloo's and the store's included); -1 without /proc."""
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else -1


def run_processes(world: int, scenario: str, work) -> tuple[list, list, list]:
    """``scenario`` on ``world`` processes joined by gloo: (exit codes, what each returned, each
    one's native threads before joining the group and after :func:`distributed.shutdown`)."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(r, world, port, scenario, str(work)))
             for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    codes = [p.exitcode for p in procs]
    out, threads = [], []
    for r in range(world):
        path = os.path.join(work, f"rank{r}.pkl")
        out.append(pickle.load(open(path, "rb")) if os.path.exists(path) else None)
        path = os.path.join(work, f"rank{r}.threads")
        threads.append(tuple(map(int, open(path).read().split())) if os.path.exists(path) else None)
    return codes, out, threads


# ---- the tests ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """The ``two`` scenario on 2 processes: (exit codes, what each returned), with the inputs it
    needs: a one-process checkpoint of one BPR epoch, a dataset with one user."""
    work = tmp_path_factory.mktemp("two")
    torch.set_num_threads(1)
    trained("BPR", 1, work / "ckpt")  # one process writes the checkpoint of epoch 0
    one = work / "one"
    one.mkdir()
    (one / "one.inter").write_text("user_id:token\titem_id:token\n"
                                   + "".join(f"u1\ti{i}\n" for i in range(10)))
    return run_processes(2, "two", work)


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
def test_distributed_evaluation_equals_one_process(world, two, tmp_path):
    single = evaluations()
    if world == 2:
        codes, results = two[0], [r["eval"] for r in two[1]]
    else:
        codes, results, _ = run_processes(world, "eval", tmp_path)
    assert codes == [0] * world
    for per_rank in results:
        for name, (metrics, ids, per_user) in single.items():
            got_metrics, got_ids, got_per_user = per_rank[name]
            assert got_ids.tolist() == ids.tolist(), name  # every user once, in order: 10, not 12
            assert got_metrics.keys() == metrics.keys()
            for m, v in metrics.items():
                assert got_metrics[m] == pytest.approx(v, abs=1e-6, nan_ok=True), (name, m)
            for m, v in per_user.items():
                np.testing.assert_allclose(got_per_user[m], v, atol=1e-6, err_msg=f"{name} {m}")
    assert len(single["full_test"][1]) == 10


def test_epochs_on_two_processes_equal_one_process_and_resume_across_world_size(two):
    torch.set_num_threads(1)
    single = {m: trained(m) for m in ("BPR", "LightGCN")}
    single["BPR-resumed"] = trained("BPR", 2)  # two processes resumed a one-process checkpoint
    codes, results = two[0], [r["train"] for r in two[1]]
    assert codes == [0, 0]
    initial = {m: build_model(m, _synthetic(), **QUIET)[0].state_dict() for m in ("BPR", "LightGCN")}
    for per_rank in results:
        for name, params in single.items():
            for k, v in params.items():
                np.testing.assert_allclose(per_rank[name][k], v, atol=1e-5, rtol=0,
                                           err_msg=f"{name} {k}")
                moved = np.abs(v - initial[name.split("-")[0]][k].numpy()).max()
                assert moved > 1e-3, f"{name} did not train"  # not a comparison of untouched weights


def test_a_process_that_dies_stops_the_others_with_a_clear_message(tmp_path):
    codes, results, _ = run_processes(2, "die", tmp_path)
    assert codes == [0, 3]
    msg = results[0]
    assert msg is not None and "rank 0 of 2: training stopped in epoch 1" in msg, msg
    assert "another process of this run stopped" in msg and "checkpoint of epoch 0" in msg, msg
    split = _synthetic()
    model, cfg = build_model("BPR", split, epochs=3, train_batch_size=256)
    state, _ = Trainer(model, split, cfg, tmp_path / "ckpt")._load_latest()  # still loadable
    assert state["epoch"] == 0


def test_shutdown_frees_the_process_group_after_training(two):
    """After training (DDP, Adam: both import torch._dynamo) and shutdown, no gloo or store thread
    is left: a group pinned by an import would keep them into interpreter exit, where they can
    abort a process that has finished its work."""
    codes, _, threads = two
    assert codes == [0, 0]
    for r, (before, after) in enumerate(threads):
        if before < 0:
            pytest.skip("no /proc/self/task to count threads on this system")
        assert after <= before, f"rank {r}: {before} threads before the group, {after} after shutdown"


def test_bad_input_is_refused_on_every_process(two):
    codes, results = two[0], [r["refuse"] for r in two[1]]
    assert codes == [0, 0]
    for r, res in enumerate(results):
        kind, msg = res["differ"]
        assert kind == "DistributedError" and "rank 1 was started with another configuration" \
            in msg and "learning_rate" in msg, msg
        kind, msg = res["too_many"]
        assert kind == "DistributedError" and "2 processes for the 1 users" in msg, msg
        kind, msg = res["one_refuses"]
        if r == 1:  # its own error names the key
            assert kind == "ConfigError" and "epochs" in msg, msg
        else:  # the other says which process refused and why, instead of waiting for it
            assert kind == "DistributedError" and "rank 1 refused its configuration" in msg \
                and "epochs" in msg, msg
