"""Serving latency: MM-RACL-KAL per request, and a saved run served by ``mmkgrec.load``.

**MM-RACL-KAL** (issue: sequences and MM-RACL-KAL, efficiency; jobs ``ml-100k-size``,
``25k-items``, written to ``results/latency/<catalogue>.json``). What is timed: one user's
request, history -> top-20 items, with everything that does not depend
on the request prepared offline (``prepare_eval``: the fused item table e_i and every user's
static LightGCN interest u_s; and, for the ``faiss`` path, a flat inner-product index over e_i).
A request is: the Transformer over the user's last ``max_seq_length`` items, the gate with the
user's cached u_s, then either ``torch`` (scores against every item + ``torch.topk``) or ``faiss``
(the index's top-20 search). Retrieval augmentation is off at inference (``augment_at_inference:
false``, the default), as measured here. One torch thread, batch of one, 1,000 users after 50
warm-up requests; p50 / p99 / mean in milliseconds.
Catalogues: ML-100K's size under MM-RACL-KAL's protocol (943 users, 933 items) and a 25,000-item
catalogue (2,000 users). Weights are untrained and the interactions random (100 per user):
latency does not depend on either. Features have MiniLM's (384) and the descriptor's (239) widths.

**Serving a run** (issue: one place for each mechanism, self-contained runs; jobs in
``results/latency/serving/``). BPR trained on Amazon-Book (KGAT's split, 70,679 users, 24,915
items; 2 epochs: the weights do not change the timings) into
``benchmarks/work/runs/latency/amazon-book-BPR`` (job ``amazon-book-BPR-train``), then:

* ``amazon-book-BPR-cold``: a new Python process runs ``import mmkgrec; mmkgrec.load(run)
  .recommend(user, 20)``; the wall time of the whole process (interpreter start and imports
  included) and its parts, ``REPEATS`` times. Target: under 2 s.
* ``amazon-book-BPR-request``: ``Run.recommend(user, 20)`` in one process, one torch thread,
  1,000 random users after 50 warm-up requests; p50 / p99 / mean ms. Target: p99 under 5 ms.
* ``amazon-book-BPR-all``: the top-20 of every user as ``mmkgrec recommend RUN --all`` computes
  it (``Run.iter_recommendations``: scores in chunks, the user's items masked, top-k with ties),
  next to the bare bound of the same process: the same user and item vectors, ``U_chunk @ V.T``
  and ``torch.topk`` over the same chunks, nothing masked. Alternated ``REPEATS`` times; the
  medians and their ratio (target: at most 1.2). Writing the file is timed apart, by the CLI.

Each measurement first waits (up to ``--wait`` seconds) for the 1-minute load average to fall
under ``--max-load`` and records the load average before and after it: other work on the
machine shows in the wall times, so read them with the load they report. Beside every wall time
stands the CPU time spent (the cold process's user + system seconds, each request's thread CPU
time, the batch paths' process CPU time): what the same work costs when nothing else competes
for the cores.

    python benchmarks/latency.py [--only SUBSTRING] [--max-load 0.5] [--wait 1800] [--tag t1]
Resumable: a job whose JSON exists is skipped (delete it to measure again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import WORK, NotReady, loadavg, run_queue  # noqa: E402

from mmkgrec.config import load_config  # noqa: E402
from mmkgrec.data.dataset import Interactions  # noqa: E402
from mmkgrec.graph.adjacency import bipartite_adjacency, sym_normalize, to_torch_csr  # noqa: E402
from mmkgrec.models import ModelInputs, get_model_class  # noqa: E402
from mmkgrec.retrieval.faiss_index import ItemIndex  # noqa: E402

CATALOGUES = {"ml-100k-size": (943, 933), "25k-items": (2000, 25_000)}
HISTORY = 100
K = 20
N_REQUESTS = 1000
WARMUP = 50
DIMS = {"text": 384, "image": 239}


def build(n_users: int, n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), HISTORY)
    items = np.concatenate([rng.choice(n_items, HISTORY, replace=False) for _ in range(n_users)])
    train = Interactions(users, items, timestamp=np.tile(np.arange(HISTORY, dtype=np.float64), n_users))
    inputs = ModelInputs(n_users, n_items, train)
    inputs.graph = to_torch_csr(sym_normalize(bipartite_adjacency(train, n_users, n_items)), "cpu")
    inputs.features = {m: (torch.from_numpy(rng.standard_normal((n_items, d)).astype(np.float32)),
                           torch.ones(n_items)) for m, d in DIMS.items()}
    cfg = load_config("MMRACLKAL", "synthetic", overrides={"show_progress": False})
    torch.manual_seed(seed)
    model = get_model_class("MMRACLKAL")(cfg, inputs)
    model.eval()
    model.prepare_eval()
    histories = items.reshape(n_users, HISTORY)[:, -int(cfg["max_seq_length"]):] + 1  # id + 1
    return model, cfg, torch.from_numpy(histories)


def time_requests(fn, users, histories) -> dict:
    out = []
    for k, u in enumerate(users):
        seq = histories[u:u + 1]
        uid = torch.tensor([u])
        t0 = time.perf_counter()
        fn(seq, uid)
        dt = (time.perf_counter() - t0) * 1000.0
        if k >= WARMUP:
            out.append(dt)
    a = np.asarray(out)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean()), "n": len(a)}


def mmraclkal_job(job: dict) -> dict:
    torch.set_num_threads(1)
    name = job["id"]
    n_users, n_items = CATALOGUES[name]
    model, cfg, histories = build(n_users, n_items)
    table = model.item_table()[1:n_items + 1].contiguous()
    t0 = time.perf_counter()
    index = ItemIndex(table, metric="ip", kind="flat")
    index_s = time.perf_counter() - t0
    lengths = torch.full((1,), histories.shape[1], dtype=torch.long)
    rng = np.random.default_rng(1)
    users = rng.integers(0, n_users, N_REQUESTS + WARMUP)

    @torch.inference_mode()
    def exact(seq, uid):
        return torch.topk(model.score_sequences(seq, lengths, users=uid), K)

    @torch.inference_mode()
    def faiss(seq, uid):
        u = model.fuse(model.encode(seq, lengths, table=model.item_table()),
                       model._static_cache[uid])
        return index.search(u.numpy(), K)

    # both paths return the same top-20 (up to ties)
    seq, uid = histories[:1], torch.tensor([0])
    assert set(exact(seq, uid)[1][0].tolist()) == set(faiss(seq, uid)[1][0].tolist())
    res = {"catalogue": name, "n_users": n_users, "n_items": n_items, "k": K,
           "history_length": int(histories.shape[1]), "threads": 1,
           "augment_at_inference": bool(cfg["augment_at_inference"]),
           "offline_index_build_s": index_s, "index_backend": index.backend,
           "torch_exact": time_requests(exact, users, histories),
           "faiss_flat": time_requests(faiss, users, histories),
           "versions": {"torch": torch.__version__, "python": platform.python_version()},
           "command": f"python benchmarks/latency.py --only ={name}"}
    print(f"{name}: exact p50 {res['torch_exact']['p50_ms']:.2f} ms p99 "
          f"{res['torch_exact']['p99_ms']:.2f} ms | faiss p50 {res['faiss_flat']['p50_ms']:.2f} "
          f"ms p99 {res['faiss_flat']['p99_ms']:.2f} ms")
    return res


# ---- serving a run -----------------------------------------------------------------------
SERVE_RUN = Path("benchmarks") / "work" / "runs" / "latency" / "amazon-book-BPR"  # from ROOT
SERVE_TRAIN = {"epochs": 2, "eval_step": 2, "stopping_step": 0, "embedding_size": 64,
               "train_batch_size": 2048, "learning_rate": 0.001, "eval_batch_size": 4096,
               "seed": 2020, "show_progress": False}
REPEATS = 5
QUIET = {"max_load": 0.5, "wait": 1800.0}  # set from the command line


def wait_quiet() -> list[float]:
    """Wait until the 1-minute load average is under ``QUIET['max_load']`` (at most
    ``QUIET['wait']`` seconds); the load average then."""
    t0 = time.time()
    while os.getloadavg()[0] >= QUIET["max_load"] and time.time() - t0 < QUIET["wait"]:
        time.sleep(10)
    return loadavg()


def versions() -> dict:
    from mmkgrec.api import versions as v

    return v()


def serve_run_dir() -> Path:
    run = ROOT / SERVE_RUN
    if not (run / "run.json").is_file():
        raise NotReady(f"{SERVE_RUN} is missing: run the job amazon-book-BPR-train first")
    return run


def train_job(job: dict) -> dict:
    import shutil

    run = ROOT / SERVE_RUN
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(run.with_name(run.name + ".partial"), ignore_errors=True)
    sets = [a for k, v in SERVE_TRAIN.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    cmd = ["-m", "mmkgrec.cli", "train", "--model", "BPR", "--dataset", "amazon-book", "--out",
           str(SERVE_RUN), *sets]
    subprocess.run([sys.executable, *cmd], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    m = json.loads((run / "metrics.json").read_text())
    return {"model": "BPR", "dataset": "amazon-book", "config": SERVE_TRAIN, "test": m["test"],
            "timing": m["timing"], "run_files_mb": _size_mb(run), "versions": m["versions"],
            "command": "python " + " ".join(shlex.quote(c) for c in cmd)}


def _size_mb(folder: Path) -> dict:
    return {p.name: round(p.stat().st_size / 2**20, 3) for p in sorted(folder.iterdir())
            if p.is_file()}


COLD = """
import json, sys, time
t0 = time.perf_counter()
import mmkgrec
t1 = time.perf_counter()
run = mmkgrec.load(sys.argv[1])
t2 = time.perf_counter()
recs = run.recommend(sys.argv[2], 20)
t3 = time.perf_counter()
assert len(recs) == 20
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "recommend_s": t3 - t2,
                  "in_process_s": t3 - t0}))
"""


def _command(job: dict) -> str:
    tag = job["id"][len(job["name"]) + 1:]
    return (f"python benchmarks/latency.py --only ={job['id']} --tag {tag} --max-load "
            f"{QUIET['max_load']} --wait {QUIET['wait']:g}")


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _percentiles(ms: list) -> dict:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean()), "max_ms": float(a.max()), "n": len(a)}


def cold_job(job: dict) -> dict:
    run = serve_run_dir()
    import mmkgrec

    ids = mmkgrec.load(run).dataset.user_ids
    rng = np.random.default_rng(0)
    users = [str(ids[i]) for i in rng.integers(0, len(ids), REPEATS)]
    reps = []
    for user in users:
        before = wait_quiet()
        c0 = _children_cpu()
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD, str(SERVE_RUN), user], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        cpu = _children_cpu() - c0
        reps.append({"user": user, "process_wall_s": wall, "process_cpu_s": cpu,
                     **json.loads(out.stdout), "loadavg_before": before,
                     "loadavg_after": loadavg()})
        print(f"cold: {wall:.2f} s wall, {cpu:.2f} s CPU (load avg {before[0]})", flush=True)
    walls = [r["process_wall_s"] for r in reps]
    cpus = [r["process_cpu_s"] for r in reps]
    return {"model": "BPR", "dataset": "amazon-book", "target_s": 2.0,
            "process_wall_s": {"median": statistics.median(walls), "max": max(walls),
                               "min": min(walls)},
            "process_cpu_s": {"median": statistics.median(cpus), "max": max(cpus),
                              "min": min(cpus)},
            "repeats": reps, "threads": torch.get_num_threads(), "versions": versions(),
            "command": _command(job)}


def request_job(job: dict) -> dict:
    import mmkgrec

    torch.set_num_threads(1)
    run = mmkgrec.load(serve_run_dir())
    ids = run.dataset.user_ids
    users = [str(ids[i]) for i in np.random.default_rng(1).integers(0, len(ids),
                                                                    N_REQUESTS + WARMUP)]
    before = wait_quiet()
    wall, cpu = [], []
    for k, u in enumerate(users):
        c0, t0 = time.thread_time(), time.perf_counter()
        run.recommend(u, K)
        dt, dc = (time.perf_counter() - t0) * 1000.0, (time.thread_time() - c0) * 1000.0
        if k >= WARMUP:
            wall.append(dt)
            cpu.append(dc)
    res = _percentiles(wall)
    # CPU time of the request's thread: what a request costs when nothing else competes for
    # the core (wall time also counts the time other processes held it)
    res_cpu = _percentiles(cpu)
    print(f"request: p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms wall; CPU p99 "
          f"{res_cpu['p99_ms']:.2f} ms", flush=True)
    return {"model": "BPR", "dataset": "amazon-book", "k": K, "threads": 1, "target_p99_ms": 5.0,
            "n_users": run.split.n_users, "n_items": run.split.n_items, "request": res,
            "request_thread_cpu": res_cpu,
            "loadavg_before": before, "loadavg_after": loadavg(), "versions": versions(),
            "command": _command(job)}


DEFAULT_THREADS = torch.get_num_threads()  # before a request job sets one thread


def all_job(job: dict) -> dict:
    import mmkgrec

    torch.set_num_threads(DEFAULT_THREADS)  # the batch paths use every core, as the CLI does
    run = mmkgrec.load(serve_run_dir())
    chunk = run.chunk_size()
    run._prepare()
    with torch.no_grad():
        U = run.model.user_vectors().detach().float().contiguous()
        V = run.model.item_vectors().detach().float().contiguous()

    def bound():
        with torch.no_grad():
            for s in range(0, len(U), chunk):
                torch.topk(U[s:s + chunk] @ V.T, K)

    def ours():
        for _ in run.iter_recommendations(K, chunk=chunk):
            pass

    times = {"bound_s": [], "recommend_all_s": []}
    cpu = {"bound_s": [], "recommend_all_s": []}  # process CPU seconds (all threads)
    loads = []
    for _ in range(REPEATS):
        loads.append(wait_quiet())
        for name, fn in (("bound_s", bound), ("recommend_all_s", ours)):
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        print(f"all: bound {times['bound_s'][-1]:.2f} s, ours {times['recommend_all_s'][-1]:.2f} s "
              f"(load avg {loads[-1][0]})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    # the CLI end to end (load, compute, and writing the CSV), once, for scale
    out_csv = WORK / "latency-all.csv"
    cli_cmd = ["-m", "mmkgrec.cli", "recommend", str(SERVE_RUN), "--all", "--out",
               str(out_csv.relative_to(ROOT)), "-k", str(K)]
    before = wait_quiet()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *cli_cmd], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    cli_s = time.perf_counter() - t0
    size = out_csv.stat().st_size / 2**20
    out_csv.unlink()
    res = {"model": "BPR", "dataset": "amazon-book", "k": K, "chunk_users": chunk,
           "n_users": run.split.n_users, "n_items": run.split.n_items,
           "threads": torch.get_num_threads(), "all_s": times, "median_s": med,
           "ratio": med["recommend_all_s"] / med["bound_s"], "target_ratio": 1.2,
           "cpu_s": cpu, "median_cpu_s": med_cpu,
           "cpu_ratio": med_cpu["recommend_all_s"] / med_cpu["bound_s"],
           "loadavg_before": loads, "loadavg_after": loadavg(),
           "cli_with_writing_s": cli_s, "cli_loadavg_before": before, "csv_mb": size,
           "cli_command": "python " + " ".join(shlex.quote(c) for c in cli_cmd),
           "versions": versions(),
           "command": _command(job)}
    print(f"all: ratio {res['ratio']:.3f} (CPU time {res['cpu_ratio']:.3f}); CLI with writing "
          f"{cli_s:.1f} s", flush=True)
    return res


SERVING = {"amazon-book-BPR-train": train_job, "amazon-book-BPR-cold": cold_job,
           "amazon-book-BPR-request": request_job, "amazon-book-BPR-all": all_job}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--only", help="a substring of job ids, or =ID1,ID2 for exactly those")
    p.add_argument("--max-load", type=float, default=QUIET["max_load"],
                   help="wait for the 1-minute load average to fall under this")
    p.add_argument("--wait", type=float, default=QUIET["wait"],
                   help="longest wait for a quiet machine, in seconds, per measurement")
    p.add_argument("--tag", default="t1", help="names one session of the serving measurements "
                   "(job ids end in -TAG), so a later, quieter session sits beside it")
    a = p.parse_args()
    QUIET.update(max_load=a.max_load, wait=a.wait)
    run_queue("latency", [{"id": name} for name in CATALOGUES], mmraclkal_job, a.only)
    jobs = [{"id": name if name.endswith("-train") else f"{name}-{a.tag}", "name": name}
            for name in SERVING]
    run_queue("latency/serving", jobs, lambda job: SERVING[job["name"]](job), a.only)


if __name__ == "__main__":
    main()
