"""Speed at scale (issue: distributed training with exact metrics, and evaluation speed).

Jobs (one JSON each under ``results/scale/``; a job whose JSON exists is skipped):

* ``kgcn-eval-<catalogue>``: KGCN's full-ranking validation pass beside one training epoch, the
  way the trainer runs both (one torch thread; process CPU seconds beside wall seconds: on a
  shared machine the CPU time is the work, the wall time includes waiting for a core), on
  Last.FM (``lastfm-kg``, KGCN's defaults) and on a generated catalogue of about 15,000 items
  (``make_synthetic``: 1,500 users, 10-40 interactions each, 45,000 items drawn from, 14,892 of
  them drawn at least once). ``REPEATS`` times in one process: an epoch, a pass, and a pass of
  the previous one-hop computation (:class:`PreviousRanking`, the model code before the
  user-independent items and the ``exp2`` form, run by the same evaluator); the figures are the
  medians of the repeats' ratios. Then one pass under the torch profiler (where the time goes),
  the exact per-pair scores of the first ``OLD_USERS`` users beside the full ranking's, and
  the computation before this issue (``old_score_all``: the shared entity vectors, but ``W_n``
  of the neighbours and ``W_v v`` recomputed for every chunk of ~17 users), timed on those
  users only (it is that slow) and extrapolated linearly to the pass, which the JSON says.
  ``exp2_floor``: the CPU time of the one ``exp2`` per user, item (of those whose vectors
  depend on the user) and dimension alone, at the ns per element measured in the same process.
  Target: one pass at most 5x one epoch.
* ``bpr-<library>-lr<rate>``: BPR on Amazon-Book (KGAT's split, validation carved from train)
  with 64 factors, ours (``mmkgrec.training.Trainer``) beside the ``implicit`` library's CPU BPR
  (``implicit==0.7.3``, the ``bench`` extra; 64 factors plus its item-bias column), one thread
  each, two learning rates each (each library's default and 5x it: the same tuning budget);
  ids ending ``-t2``: the same at 2 threads each (implicit's ``num_threads``, torch's threads).
  Both are scored by our evaluator (full ranking, training items masked) on the same fixed
  sample of ``EVAL_USERS`` validation / test users, every ``EVAL_EVERY`` epochs; evaluation time
  is excluded from the training clock. Time to target: our training seconds until our
  validation Recall@20 reaches the best that implicit reaches (its best run), beside implicit's
  seconds to reach that best.
* ``ddp-<model>-np<N>``: ``mmkgrec train --nproc N`` (N = 1, 2; one thread per process) on
  Amazon-Book with ``subsample_users: SUBSAMPLE`` (a capped size; split 8:1:1 at random, as the
  given split's test file holds every user), ``DDP_EPOCHS`` epochs: seconds
  per training epoch and per validation pass, and the validation score after each epoch (the
  same at N = 1 and 2: the global batch does not change), so time to a target validation score
  is the sum of the epochs until it is reached. Ids ending ``-r2``: the same jobs measured again
  (the load averages recorded beside them say on what machine).
* ``lightgcn-amazon-<library>``: the core suite's Amazon-Book LightGCN speed job (``core.py``,
  2 epochs, identical settings, the same exported split) for mmkgrec and RecBole, measured again
  one after the other (target: our epoch at most a third of RecBole's).

Timings taken on a shared machine are only comparable within one job (ratios in the same run);
the JSONs record the load average before and after each job.

    python benchmarks/scale.py [--only SUBSTRING]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import WORK, run_queue  # noqa: E402

OLD_USERS = 64
REPEATS = 3  # KGCN: epoch and passes, the median of the ratios
EVAL_USERS = 5000
EVAL_EVERY = {"mmkgrec": 1, "implicit": 5}
EPOCHS = {"mmkgrec": 6, "implicit": 30}
RATES = {"mmkgrec": (0.001, 0.005), "implicit": (0.01, 0.05)}
FACTORS = 64
BPR_THREADS = (1, 2)  # threads per library; 1: the first measurement's rows
SUBSAMPLE = 20000
DDP_EPOCHS = 3
DDP_REPEATS = (1, 2)  # the same jobs measured again (ids ``-r2``), e.g. on a quieter machine
# synthetic: 45,000 items generated, of which about 14,900 get an interaction (the catalogue)
CATALOGUES = {"lastfm-kg": None, "synthetic-15k": (1500, 45_000)}


def _load() -> list[float]:
    return list(os.getloadavg())


# ---- KGCN: an evaluation pass beside a training epoch -------------------------------------------
def old_score_all(model, users):
    """KGCN's ``score_all`` before this issue (kept here to measure against): entity vectors
    shared, the first aggregation's ``W_n`` of the neighbours and ``W_v v`` recomputed for every
    chunk of users."""
    items = torch.arange(model.n_items, device=users.device)
    ents, rels = model._receptive_field(items)
    vecs = [model.entity_emb(e).unsqueeze(0) for e in ents]
    d = vecs[0].shape[-1]
    K, H = model.K, model.H
    step = max(1, (1 << 24) // (model.n_items * K ** (H - 1) * d))
    out = []
    for s in range(0, len(users), step):
        u = model.user_emb(users[s:s + step])
        ur = u @ model.relation_emb.weight.T
        att = [ur[:, r] for r in rels]
        cur = vecs
        for i in range(H):
            new = []
            for hop in range(H - i):
                neigh = cur[hop + 1].unflatten(-2, (-1, K))
                a = att[hop].unflatten(-1, (-1, K)).softmax(-1)
                agg, last = model.aggregators[i], i == H - 1
                if i == 0:
                    own, neigh_w = agg.project_shared(cur[hop][0], neigh[0])
                    new.append(agg.combine_shared(own, neigh_w, a, last))
                else:
                    new.append(agg(cur[hop], (a.unsqueeze(-1) * neigh).sum(-2), last))
            cur = new
        out.append((cur[0].squeeze(-2) * u.unsqueeze(1)).sum(-1))
    return torch.cat(out)


class PreviousRanking:
    """KGCN's one-hop (H = 1) full ranking as it was before the user-independent items and the
    ``exp2`` form (commit c96aa39, kept here to measure against in the same process): shared
    parts once per pass, every item in blocks of 256 users x ~15 items, the softmax per user,
    item and neighbour, ``u . tanh(x) = 2 u . sigmoid(2x) - sum(u)``. Installed on a model's
    instance (``with PreviousRanking(model):``), so the evaluator runs it unchanged."""

    def __init__(self, model):
        assert model.H == 1, "the previous form is kept for one iteration only"
        self.model, self.shared = model, None

    def __enter__(self):
        self.model.prepare_eval = self.prepare_eval
        self.model.score_all = self.score_all
        self.model.score_all_for_top = lambda users, k, exclude: self.score_all(users)
        return self

    def __exit__(self, *exc):
        del self.model.prepare_eval, self.model.score_all, self.model.score_all_for_top
        self.model.prepare_eval()  # back to the model's own


    def prepare_eval(self):
        m = self.model
        ents, rels = m._receptive_field(torch.arange(m.n_items))
        vecs = m._entity_vectors(ents)
        own, neigh_w = m.aggregators[0].project_shared(vecs[0], vecs[1].unflatten(-2, (-1, m.K)))
        self.shared = rels[0], own.squeeze(1).unsqueeze(-1), neigh_w.squeeze(1).transpose(1, 2)

    def score_all(self, users):
        m = self.model
        rels, own, neigh_w = self.shared
        n, d = m.n_items, own.shape[1]
        b = max(1, min(len(users), 256))
        step = min(n, max(1, (1 << 18) // (b * (d + m.K))))
        out = torch.empty(len(users), n)
        for s in range(0, len(users), b):
            u = m.user_emb(users[s:s + b])
            ur = u @ m.relation_emb.weight.T
            for i0 in range(0, n, step):
                blk = slice(i0, min(i0 + step, n))
                att = ur.T[rels[blk]].softmax(1)
                x = torch.baddbmm(own[blk], neigh_w[blk], att, beta=2.0, alpha=2.0)
                x.sigmoid_().mul_(u.T)
                out[s:s + b, blk] = (2.0 * x.sum(1) - u.sum(1)).T
        return out


class ExactRanking:
    """KGCN's pass with every item scored exactly (``score_all``; the pass before the top-k
    bounds of ``score_all_for_top``), installed on the instance like :class:`PreviousRanking`."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.model.score_all_for_top = lambda users, k, exclude: self.model.score_all(users)
        return self

    def __exit__(self, *exc):
        del self.model.score_all_for_top


def _exp2_ns_per_element() -> float:
    """CPU nanoseconds of torch's in-place ``exp2`` per element on a cache-sized block of
    normal values (sd 4; the one transcendental of the one-hop full ranking per user, item and
    dimension), the copy that refills the block subtracted."""
    src = torch.randn(1 << 18, generator=torch.Generator().manual_seed(0)) * 4.0
    x = src.clone().exp2_()
    c0 = time.process_time()
    for _ in range(100):
        x.copy_(src).exp2_()
    both = time.process_time() - c0
    c0 = time.process_time()
    for _ in range(100):
        x.copy_(src)
    return (both - (time.process_time() - c0)) / 100 / x.numel() * 1e9


def _profile_pass(evaluator, model) -> dict:
    """Where one pass's CPU time goes: the top operators by self time (torch profiler) and the
    share of the model's ``score_all`` (timed alone, same users, after ``prepare_eval``)."""
    from torch.profiler import ProfilerActivity, profile

    from mmkgrec.evaluation.common import EvalMode

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        evaluator.evaluate(model)
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in ops)
    top = [{"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count}
           for e in ops[:10]]
    with EvalMode(model), torch.no_grad():
        c0 = time.process_time()
        model.prepare_eval()
        prep = time.process_time() - c0
        c0 = time.process_time()
        model.score_all(evaluator.users)
        score = time.process_time() - c0
    return {"top_ops": top, "prepare_eval_cpu_s": prep, "score_all_cpu_s": score}


def kgcn_eval(job: dict) -> dict:
    from mmkgrec.config import load_config
    from mmkgrec.data import load_dataset, split_dataset
    from mmkgrec.data.split_factory import split_from_config
    from mmkgrec.evaluation.common import EvalMode
    from mmkgrec.inputs import build_inputs
    from mmkgrec.models import get_model_class
    from mmkgrec.training.trainer import Trainer, epoch_seed, seed_everything

    torch.set_num_threads(1)
    load_before = _load()
    name = job["catalogue"]
    ov = {"show_progress": False, "threads": 1}
    if CATALOGUES[name] is None:
        cfg = load_config("KGCN", name, overrides=ov)
        ds = load_dataset(name, cfg)
        split = split_from_config(ds, cfg)
    else:
        from mmkgrec.data.synthetic import make_synthetic

        n_users, n_items = CATALOGUES[name]
        cfg = load_config("KGCN", "synthetic", overrides=ov)
        ds = make_synthetic(n_users=n_users, n_items=n_items)
        split = split_dataset(ds, "random_ratio")
    seed_everything(cfg["seed"])
    cls = get_model_class("KGCN")
    model = cls(cfg, build_inputs(split, cls.requirements(cfg), "cpu", cfg))
    trainer = Trainer(model, split, cfg)
    ev = trainer.evaluator
    reps = []
    for rep in range(REPEATS):  # epoch, pass, previous pass: the ratios of each repeat
        model.train()
        rng = np.random.default_rng(epoch_seed(cfg["seed"], rep))
        c0, t0 = time.process_time(), time.perf_counter()
        trainer._epoch(trainer.batches.epoch(rng), rep)
        epoch = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - t0}
        c0 = time.process_time()
        metrics, _, wall = ev.evaluate(model)
        now = {"cpu": time.process_time() - c0, "wall": wall}
        exact_pairs = list(model.exact_pairs) if model.exact_pairs else None
        with ExactRanking(model):
            c0 = time.process_time()
            exact_metrics, _, wall = ev.evaluate(model)
            exact = {"cpu": time.process_time() - c0, "wall": wall}
        with PreviousRanking(model):
            c0 = time.process_time()
            prev_metrics, _, wall = ev.evaluate(model)
            prev = {"cpu": time.process_time() - c0, "wall": wall}
        reps.append({"epoch": epoch, "pass": now, "exact_pass": exact, "previous_pass": prev,
                     "pass_over_epoch_cpu": now["cpu"] / epoch["cpu"],
                     "exact_over_epoch_cpu": exact["cpu"] / epoch["cpu"],
                     "previous_over_epoch_cpu": prev["cpu"] / epoch["cpu"],
                     "exact_pairs": exact_pairs,
                     "max_metric_diff_exact": max(abs(metrics[k] - exact_metrics[k])
                                                  for k in metrics),
                     "max_metric_diff_previous": max(abs(metrics[k] - prev_metrics[k])
                                                     for k in metrics)})
    med = lambda key: statistics.median(r[key] for r in reps)  # noqa: E731
    epoch_cpu = statistics.median(r["epoch"]["cpu"] for r in reps)
    profile = _profile_pass(ev, model)
    users = ev.users
    sample = users[:OLD_USERS]
    with EvalMode(model), torch.no_grad():
        new = model.score_all(sample)
        per_pair = model.score(sample.repeat_interleave(model.n_items),
                               torch.arange(model.n_items).repeat(len(sample))).view(len(sample), -1)
        c0 = time.process_time()
        old = old_score_all(model, sample)
        old_s = time.process_time() - c0
        n_dynamic = len(model._shared["items"])
    exp2_ns = _exp2_ns_per_element()
    floor_s = exp2_ns * 1e-9 * len(users) * n_dynamic * cfg["embedding_size"]
    return {"model": "KGCN", "catalogue": name, "n_users": split.n_users,
            "n_items": split.n_items, "n_train": len(split.train),
            "config": {k: cfg[k] for k in ("n_iter", "neighbor_sample_size", "embedding_size",
                                           "aggregator", "train_batch_size")},
            "eval_users": len(users), "repeats": reps,
            "train_epoch_cpu_s": epoch_cpu, "eval_pass_cpu_s": statistics.median(
                r["pass"]["cpu"] for r in reps),
            "previous_pass_cpu_s": statistics.median(r["previous_pass"]["cpu"] for r in reps),
            "exact_pass_cpu_s": statistics.median(r["exact_pass"]["cpu"] for r in reps),
            "exact_over_epoch_cpu": med("exact_over_epoch_cpu"),
            "max_metric_diff_exact": max(r["max_metric_diff_exact"] for r in reps),
            "eval_over_epoch_cpu": med("pass_over_epoch_cpu"),
            "previous_over_epoch_cpu": med("previous_over_epoch_cpu"),
            "train_epoch_s": statistics.median(r["epoch"]["wall"] for r in reps),
            "eval_pass_s": statistics.median(r["pass"]["wall"] for r in reps),
            "user_independent_items": model.n_items - n_dynamic,
            "valid": metrics, "profile": profile,
            "exp2_ns_per_element": exp2_ns, "exp2_floor_cpu_s": floor_s,
            "exp2_floor_over_epoch": floor_s / epoch_cpu,
            "sample_users": len(sample),
            "max_abs_diff_per_pair": float((per_pair - new).abs().max()),
            "sample_old_cpu_s": old_s,
            "old_pass_cpu_s_extrapolated": old_s * len(users) / len(sample),
            "max_abs_diff_old_new": float((old - new).abs().max()),
            "load_before": load_before, "load_after": _load()}


# ---- BPR beside implicit --------------------------------------------------------------------
class Factors(torch.nn.Module):
    """Fixed user and item factors scored by inner product (implicit's, for our evaluator)."""

    def __init__(self, users: np.ndarray, items: np.ndarray):
        super().__init__()
        self.u, self.i = torch.from_numpy(np.ascontiguousarray(users)), torch.from_numpy(
            np.ascontiguousarray(items))

    def prepare_eval(self):
        pass

    def score_all(self, users):
        return self.u[users] @ self.i.T


def _amazon():
    from mmkgrec.config import load_config
    from mmkgrec.data import load_dataset
    from mmkgrec.data.split_factory import split_from_config

    cfg = load_config("BPR", "amazon-book", overrides={
        "show_progress": False, "threads": 1, "embedding_size": FACTORS,
        "valid_metric": "recall@20", "metrics": ["recall", "ndcg"], "topk": [20]})
    split = split_from_config(load_dataset("amazon-book", cfg), cfg)
    rng = np.random.default_rng(0)
    chosen = np.zeros(split.n_users, dtype=bool)
    chosen[rng.choice(np.unique(split.valid.user), min(EVAL_USERS, split.n_users),
                      replace=False)] = True
    return cfg, split, chosen


def bpr_job(job: dict) -> dict:
    from mmkgrec.evaluation.evaluator import make_evaluator

    threads = job.get("threads", 1)
    torch.set_num_threads(threads)
    load_before = _load()
    cfg, split, chosen = _amazon()
    cfg = cfg.updated(learning_rate=job["lr"], threads=threads)
    valid = make_evaluator(split, "valid", cfg, users=chosen)
    test = make_evaluator(split, "test", cfg, users=chosen)
    history, train_s = [], 0.0
    lib = job["library"]
    if lib == "mmkgrec":
        from mmkgrec.models import get_model_class
        from mmkgrec.training.trainer import Trainer, epoch_seed, seed_everything

        seed_everything(cfg["seed"])
        cls = get_model_class("BPR")
        from mmkgrec.inputs import build_inputs

        model = cls(cfg, build_inputs(split, cls.requirements(cfg), "cpu", cfg))
        trainer = Trainer(model, split, cfg)
        for epoch in range(EPOCHS[lib]):
            torch.manual_seed(epoch_seed(cfg["seed"], epoch))
            model.train()
            t0 = time.perf_counter()
            trainer._epoch(trainer.batches.epoch(np.random.default_rng(
                epoch_seed(cfg["seed"], epoch))), epoch)
            train_s += time.perf_counter() - t0
            if (epoch + 1) % EVAL_EVERY[lib] == 0:
                m, _, es = valid.evaluate(model)
                history.append({"epoch": epoch, "train_s_cum": train_s, "eval_s": es, "valid": m})
        scorer = model
    else:
        import scipy.sparse as sp
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        ui = sp.csr_matrix((np.ones(len(split.train), np.float32),
                            (split.train.user, split.train.item)),
                           shape=(split.n_users, split.n_items))
        bpr = BayesianPersonalizedRanking(factors=FACTORS, learning_rate=job["lr"],
                                          regularization=0.01, iterations=EVAL_EVERY[lib],
                                          num_threads=threads, random_state=cfg["seed"])
        for step in range(EPOCHS[lib] // EVAL_EVERY[lib]):
            t0 = time.perf_counter()
            bpr.fit(ui, show_progress=False)  # continues from the current factors
            train_s += time.perf_counter() - t0
            scorer = Factors(bpr.user_factors, bpr.item_factors)
            m, _, es = valid.evaluate(scorer)
            history.append({"epoch": (step + 1) * EVAL_EVERY[lib] - 1, "train_s_cum": train_s,
                            "eval_s": es, "valid": m})
    best = max(history, key=lambda h: h["valid"]["recall@20"])
    t, _, _ = test.evaluate(scorer)
    import implicit

    return {"library": lib, "model": "BPR", "dataset": "amazon-book", "lr": job["lr"],
            "factors": FACTORS, "threads": threads, "epochs": EPOCHS[lib],
            "eval_users": int(chosen.sum()), "history": history, "best": best,
            "test_last_epoch": t, "train_epoch_s": train_s / EPOCHS[lib],
            "versions": {"torch": torch.__version__, "implicit": implicit.__version__},
            "load_before": load_before, "load_after": _load()}


# ---- 1 vs 2 processes -----------------------------------------------------------------------
def ddp_job(job: dict) -> dict:
    run = WORK / "runs" / "scale" / job["id"]
    import shutil

    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(run.with_name(run.name + ".partial"), ignore_errors=True)
    # a random 8:1:1 split of the subsample (KGAT's given test file covers all users)
    sets = {"subsample_users": SUBSAMPLE, "split": "random_ratio", "epochs": DDP_EPOCHS, "threads": 1,
            "show_progress": False, "valid_metric": "recall@20", "stopping_step": 0}
    cmd = [sys.executable, "-m", "mmkgrec.cli", "train", "--nproc", str(job["nproc"]),
           "--model", job["model"], "--dataset", "amazon-book", "--out", str(run)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={json.dumps(v)}"]
    load_before = _load()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    m = json.loads((run / "metrics.json").read_text())
    return {"model": job["model"], "dataset": "amazon-book", "nproc": job["nproc"],
            "repeat": job.get("repeat", 1),
            "subsample_users": SUBSAMPLE, "epochs": DDP_EPOCHS, "wall_s": wall,
            "train_epoch_s": [h["train_s"] for h in m["history"]],
            "eval_s": [h.get("eval_s") for h in m["history"]],
            "valid": [h.get("valid", {}).get("recall@20") for h in m["history"]],
            "test": m["test"], "command": " ".join(cmd), "load_before": load_before,
            "load_after": _load()}


# ---- LightGCN beside RecBole on Amazon-Book ------------------------------------------------
def lightgcn_job(job: dict) -> dict:
    """The core suite's Amazon-Book LightGCN speed job (2 epochs, one full evaluation, identical
    settings in both libraries, the same exported split), measured again here: the two
    libraries run one after the other, so the ratio of their epoch times is this run's."""
    from core import run as core_run

    load_before = _load()
    r = core_run({"id": job["id"], "kind": "speed", "lib": job["library"], "model": "LightGCN",
                  "dataset": "amazon-book", "seed": 2020})
    return {**r, "load_before": load_before, "load_after": _load()}


def jobs() -> list[tuple[dict, object]]:
    out = [({"id": f"kgcn-eval-{c}", "catalogue": c}, kgcn_eval) for c in CATALOGUES]
    for threads in BPR_THREADS:
        tail = "" if threads == 1 else f"-t{threads}"
        out += [({"id": f"bpr-{lib}-lr{lr}{tail}", "library": lib, "lr": lr, "threads": threads},
                 bpr_job) for lib in RATES for lr in RATES[lib]]
    for rep in DDP_REPEATS:
        tail = "" if rep == 1 else f"-r{rep}"
        out += [({"id": f"ddp-{m}-np{n}{tail}", "model": m, "nproc": n, "repeat": rep}, ddp_job)
                for m in ("BPR", "LightGCN") for n in (1, 2)]
    out += [({"id": f"lightgcn-amazon-{lib}", "library": lib}, lightgcn_job)
            for lib in ("mmkgrec", "recbole")]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--only", help="a substring of the job ids to run")
    a = p.parse_args()
    runners = {j["id"]: fn for j, fn in jobs()}
    run_queue("scale", [j for j, _ in jobs()], lambda job: runners[job["id"]](job), a.only)


if __name__ == "__main__":
    main()
