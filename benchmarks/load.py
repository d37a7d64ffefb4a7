"""Load test of ``mmkgrec serve`` on loopback (issue: serving), one JSON per job in
``results/load/``.

Runs: BPR and LightGCN on ML-100K and Amazon-Book (KGAT's split, 24,915 items), trained with a
small budget into ``benchmarks/work/runs/load/<dataset>-<model>`` (jobs ``train-*``; the weights
do not change the timings). For each run a server process is started (``mmkgrec serve RUN
--workers 1``, one torch thread, loopback only) and driven by a client in this process: asyncio,
one keep-alive HTTP/1.1 connection per simulated client, written here (on uvloop where installed)
so that the client costs little of the two cores it shares with the server; the server runs
uvicorn with uvloop and httptools (the ``serve`` extra). Every loop is bounded in requests and in time
(``DEADLINE_S``) and stops by itself; no address other than 127.0.0.1 is used.

Jobs per run (``<run>-...``):

* ``closed``: ``--requests`` requests (default 10,000) at ``--clients`` concurrent clients (64)
  for each of recommend (``k=20``), similar (``k=10``) and explain (template backend, a user with
  one of their top-10 items); p50 / p95 / p99, throughput, errors (any status but 200, or a
  broken connection). Beside it, the same requests in-process (``Run.recommend``,
  ``similar_items``, ``explain``, one thread, one after another): the difference is what HTTP,
  JSON and the server's queueing cost. At 64 clients the p99 is bounded by queueing (about
  clients / throughput), so the latency target is read at a fixed rate:
* ``rate``: recommend at a fixed arrival rate (``--rate``, 200 requests/s) for
  ``--rate-seconds`` (50: 10,000 requests), each request sent at its scheduled time on a free
  connection (at most 64), its latency counted from that time (no coordinated omission).
  Target: p99 under 50 ms.
* ``cold``: process start to the first 200 of ``/v1/recommend`` (interpreter, imports, loading
  the run, warm-up, binding), ``REPEATS`` times. Target: under 5 s on Amazon-Book.

And once, on ``ml-100k-BPR``: ``feedback-kill9``: 8 clients post 1,000 feedback events; after a
seeded number of acknowledgements the server is killed with SIGKILL; every acknowledged event
must be in the file. Target: none missing.

Timings on the shared 2-core machine depend on what else runs: every job records the load
average before and after; only figures of the same job (HTTP vs in-process) compare.

    python benchmarks/load.py [--only SUBSTRING] [--requests 10000] [--clients 64] [--rate 200]
                              [--rate-seconds 50] [--runs ml-100k-BPR,amazon-book-BPR]
A capped size changes the job ids (``-n2000``, ``-r200x10s``), so capped and full results sit side by
side. Resumable: a job whose JSON exists is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import HOST, WORK, NotReady, ServerProcess, free_port, run_queue  # noqa: E402

RUNS = {"ml-100k-BPR": ("BPR", "ml-100k"), "ml-100k-LightGCN": ("LightGCN", "ml-100k"),
        "amazon-book-BPR": ("BPR", "amazon-book"),
        "amazon-book-LightGCN": ("LightGCN", "amazon-book")}
TRAIN = {"epochs": 1, "eval_step": 1, "stopping_step": 0, "embedding_size": 64,
         "train_batch_size": 2048, "learning_rate": 0.001, "eval_batch_size": 4096,
         "seed": 2020, "show_progress": False, "threads": 1}
RUN_DIR = Path("benchmarks") / "work" / "runs" / "load"  # from ROOT
FULL = {"requests": 10_000, "clients": 64, "rate": 200.0, "rate_seconds": 50.0}
K_RECOMMEND, K_SIMILAR = 20, 10
REPEATS = 3
FEEDBACK_EVENTS, FEEDBACK_CLIENTS = 1000, 8
DEADLINE_S = 900.0  # no loop runs longer than this
SIZE = dict(FULL)  # set from the command line


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def versions() -> dict:
    from mmkgrec.api import versions as v

    out = v()
    for mod in ("fastapi", "uvicorn", "starlette", "uvloop", "httptools"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:  # uvicorn then runs asyncio's loop and h11
            out[mod] = None
    return out


def arun(coro):
    """The client's event loop: uvloop where installed (less of the shared cores for the
    client), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def percentiles(ms) -> dict:
    a = np.asarray(ms, dtype=np.float64)
    if not len(a):
        return {"n": 0}
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()),
            "max_ms": float(a.max()), "n": int(len(a))}


def run_dir(name: str) -> Path:
    run = ROOT / RUN_DIR / name
    if not (run / "run.json").is_file():
        raise NotReady(f"{RUN_DIR / name} is missing: run the job train-{name} first")
    return run


# ---- the client ----------------------------------------------------------------------------
class Conn:
    """One keep-alive HTTP/1.1 connection to the server on loopback."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def _open(self):
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            await self._open()
        head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        try:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed by the server")
            status = int(line.split()[1])
            length, chunked, close = 0, False, False
            while True:
                h = await self.reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value:
                    chunked = True
                elif name == "connection" and value == "close":
                    close = True
            if chunked:
                data = b""
                while True:
                    size = int((await self.reader.readline()).strip(), 16)
                    if size == 0:
                        await self.reader.readline()
                        break
                    data += await self.reader.readexactly(size + 2)
            else:
                data = await self.reader.readexactly(length)
        except Exception:
            self.close()
            raise
        if close:
            self.close()
        return status, data


async def closed_loop(port: int, paths: list[str], clients: int) -> dict:
    """Every path once, ``clients`` at a time, each client on its own connection."""
    lat = np.full(len(paths), np.nan)
    status = np.zeros(len(paths), dtype=np.int32)
    nxt = iter(range(len(paths)))
    deadline = time.perf_counter() + DEADLINE_S

    async def client():
        conn = Conn(port)
        for i in nxt:
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            try:
                status[i], _ = await conn.request("GET", paths[i])
            except Exception:
                status[i] = -1
            lat[i] = (time.perf_counter() - t0) * 1000.0
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return _summary(lat, status, wall)


async def open_loop(port: int, paths: list[str], rate: float, max_conns: int) -> dict:
    """Path ``i`` sent at ``start + i / rate`` on a free connection (at most ``max_conns``); its
    latency counts from that scheduled time."""
    lat = np.full(len(paths), np.nan)
    status = np.zeros(len(paths), dtype=np.int32)
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(max_conns):
        idle.put_nowait(Conn(port))
    start = time.perf_counter() + 0.05
    deadline = start + DEADLINE_S

    async def one(i: int, at: float):
        conn = await idle.get()
        try:
            status[i], _ = await conn.request("GET", paths[i])
        except Exception:
            status[i] = -1
        finally:
            lat[i] = (time.perf_counter() - at) * 1000.0
            idle.put_nowait(conn)

    tasks = []
    for i in range(len(paths)):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.perf_counter() > deadline:
            break
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().close()
    res = _summary(lat, status, wall)
    late = (time.perf_counter() - start) - len(paths) / rate
    res.update(target_rate=rate, achieved_send_s=len(paths) / rate, finished_late_s=late)
    return res


def _summary(lat, status, wall) -> dict:
    done = ~np.isnan(lat)
    ok = done & (status == 200)
    errors = int((done & (status != 200)).sum())
    codes = {str(c): int((status[done] == c).sum()) for c in np.unique(status[done])}
    return {"requests": int(done.sum()), "not_sent": int((~done).sum()), "errors": errors,
            "status_counts": codes, "wall_s": wall,
            "throughput_rps": float(done.sum() / wall) if wall > 0 else None,
            "latency": percentiles(lat[ok])}


# ---- the server ----------------------------------------------------------------------------
class Server(ServerProcess):
    """``mmkgrec serve RUN`` in its own process on a free loopback port."""

    def __init__(self, run: Path, extra: list[str] | None = None):
        port = free_port()
        cmd = [sys.executable, "-m", "mmkgrec.cli", "serve", str(run), "--host", HOST,
               "--port", str(port), "--workers", "1", "--threads", "1", *(extra or [])]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
        super().__init__(cmd, port, env)


# ---- the requests --------------------------------------------------------------------------
def workload(run, n: int, seed: int = 0) -> dict:
    """``n`` requests of each kind: raw ids drawn with ``seed``; explain pairs are a user and
    one of their top-10 items."""
    rng = np.random.default_rng(seed)
    users = [str(run.dataset.user_ids[u]) for u in rng.integers(0, run.split.n_users, n)]
    items = [str(run.dataset.item_ids[i]) for i in rng.integers(0, run.split.n_items, n)]
    pool = sorted(set(users))[:500]
    tops = dict(zip(pool, run.recommend_batch(pool, 10)))
    pairs = []
    for k in range(n):
        u = pool[rng.integers(0, len(pool))]
        pairs.append((u, tops[u][rng.integers(0, len(tops[u]))][0]))
    return {"recommend": [{"user": u, "k": K_RECOMMEND} for u in users],
            "similar": [{"item": i, "k": K_SIMILAR} for i in items],
            "explain": [{"user": u, "item": i, "backend": "template"} for u, i in pairs]}


def paths_of(kind: str, params: list[dict]) -> list[str]:
    return [f"/v1/{kind}?{urlencode(p)}" for p in params]


def in_process(run, kind: str, params: list[dict]) -> dict:
    """The same calls on the Run, one thread, one after another (after 50 warm-up calls)."""
    import torch

    torch.set_num_threads(1)
    call = {"recommend": lambda p: run.recommend(p["user"], p["k"]),
            "similar": lambda p: run.similar_items(p["item"], p["k"]),
            "explain": lambda p: run.explain(p["user"], p["item"], backend=p["backend"])}[kind]
    for p in params[:50]:
        call(p)
    ms, said = [], 0
    c0 = time.thread_time()
    for p in params:
        t0 = time.perf_counter()
        out = call(p)
        ms.append((time.perf_counter() - t0) * 1000.0)
        said += bool(getattr(out, "text", True))
    res = {**percentiles(ms), "cpu_ms_per_request": (time.thread_time() - c0) * 1000.0 / len(params)}
    if kind == "explain":  # an empty text: the evidence held nothing verifiable (notes say why)
        res["share_with_text"] = said / len(params)
    return res


def _command(job: dict) -> str:
    args = [f"--only ={job['id']}"]
    for key, flag in (("requests", "--requests"), ("clients", "--clients"), ("rate", "--rate"),
                      ("rate_seconds", "--rate-seconds")):
        if SIZE[key] != FULL[key]:
            args.append(f"{flag} {SIZE[key]:g}")
    return "python benchmarks/load.py " + " ".join(args)


def _common(job: dict, run, before) -> dict:
    return {"run": job["run"], "model": str(run.config["model"]),
            "dataset": str(run.config["dataset"]), "n_users": int(run.split.n_users),
            "n_items": int(run.split.n_items), "server_workers": 1, "server_threads": 1,
            "cores": os.cpu_count(), "loadavg_before": before, "loadavg_after": loadavg(),
            "versions": versions(), "python": platform.python_version(),
            "command": _command(job)}


# ---- jobs ----------------------------------------------------------------------------------
def train_job(job: dict) -> dict:
    model, dataset = RUNS[job["run"]]
    run = ROOT / RUN_DIR / job["run"]
    cmd = [sys.executable, "-m", "mmkgrec.cli", "train", "--model", model, "--dataset", dataset,
           "--out", str(RUN_DIR / job["run"]),
           *[a for k, v in TRAIN.items() for a in ("--set", f"{k}={json.dumps(v)}")]]
    if not (run / "run.json").is_file():  # a run trained earlier with these settings is kept
        import shutil

        shutil.rmtree(run.with_name(run.name + ".partial"), ignore_errors=True)
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    m = json.loads((run / "metrics.json").read_text())
    return {"model": model, "dataset": dataset, "config": TRAIN, "test": m["test"],
            "timing": m["timing"], "versions": m["versions"],
            "command": "python " + " ".join(shlex.quote(c) for c in cmd[1:])}


def closed_job(job: dict) -> dict:
    import mmkgrec

    path = run_dir(job["run"])
    run = mmkgrec.load(path)
    work = workload(run, SIZE["requests"])
    run.explainer()
    out = {}
    before = loadavg()
    server = Server(path)
    try:
        out["cold_start_s"] = server.wait_ready("/health")
        for kind, params in work.items():
            c0 = server.cpu_s()
            http = arun(closed_loop(server.port, paths_of(kind, params), SIZE["clients"]))
            # what a request costs the server in CPU, whatever else competes for the cores
            http["server_cpu_ms_per_request"] = (server.cpu_s() - c0) * 1000.0 / max(
                http["requests"], 1)
            out[kind] = {"http": http, "loadavg_after": loadavg()}
            print(f"{job['id']} {kind}: {http['throughput_rps']:.0f} req/s, p50 "
                  f"{http['latency']['p50_ms']:.1f} ms, p99 {http['latency']['p99_ms']:.1f} ms, "
                  f"{http['errors']} errors, server CPU "
                  f"{http['server_cpu_ms_per_request']:.2f} ms/request", flush=True)
    finally:
        server.stop()
    for kind, params in work.items():  # the server is gone: the Run alone, same requests
        out[kind]["in_process"] = in_process(run, kind, params)
        print(f"{job['id']} {kind} in-process: p50 {out[kind]['in_process']['p50_ms']:.2f} ms, "
              f"p99 {out[kind]['in_process']['p99_ms']:.2f} ms, CPU "
              f"{out[kind]['in_process']['cpu_ms_per_request']:.2f} ms/request", flush=True)
    return {**_common(job, run, before), "requests_per_endpoint": SIZE["requests"],
            "clients": SIZE["clients"], "full_size": FULL["requests"], "k_recommend": K_RECOMMEND,
            "k_similar": K_SIMILAR, "explain_backend": "template", **out}


def rate_job(job: dict) -> dict:
    import mmkgrec

    path = run_dir(job["run"])
    run = mmkgrec.load(path)
    n = int(round(SIZE["rate"] * SIZE["rate_seconds"]))
    params = workload(run, n, seed=1)["recommend"]
    before = loadavg()
    server = Server(path)
    try:
        server.wait_ready("/health")
        warm = paths_of("recommend", params[:200])
        arun(closed_loop(server.port, warm, 8))  # warm-up, not counted
        c0 = server.cpu_s()
        res = arun(open_loop(server.port, paths_of("recommend", params), SIZE["rate"],
                             FULL["clients"]))
        res["server_cpu_ms_per_request"] = (server.cpu_s() - c0) * 1000.0 / max(res["requests"], 1)
    finally:
        server.stop()
    print(f"{job['id']}: {res['requests']} requests at {SIZE['rate']:g}/s, p50 "
          f"{res['latency']['p50_ms']:.1f} ms, p99 {res['latency']['p99_ms']:.1f} ms, "
          f"{res['errors']} errors", flush=True)
    return {**_common(job, run, before), "endpoint": "recommend", "k": K_RECOMMEND,
            "rate_rps": SIZE["rate"], "seconds": SIZE["rate_seconds"], "max_connections":
            FULL["clients"], "target_p99_ms": 50.0, "full_requests": int(FULL["rate"] *
                                                                          FULL["rate_seconds"]),
            "result": res}


def cold_job(job: dict) -> dict:
    import mmkgrec

    path = run_dir(job["run"])
    run = mmkgrec.load(path)
    user = str(run.dataset.user_ids[0])
    del run
    target = f"/v1/recommend?{urlencode({'user': user, 'k': K_RECOMMEND})}"
    reps = []
    before = loadavg()
    for _ in range(REPEATS):
        lb = loadavg()
        server = Server(path)
        try:
            reps.append({"seconds": server.wait_ready(target), "cpu_s": server.ready_cpu_s,
                         "loadavg_before": lb})
        finally:
            server.stop()
        print(f"{job['id']}: first 200 after {reps[-1]['seconds']:.2f} s, {reps[-1]['cpu_s']:.2f} "
              f"CPU s (load avg {lb[0]})", flush=True)
    s = [r["seconds"] for r in reps]
    import mmkgrec as m

    return {**_common(job, m.load(path), before), "target_s": 5.0, "repeats": reps,
            "median_s": statistics.median(s), "max_s": max(s), "min_s": min(s),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in reps),
            "what": "process start to the first 200 of /v1/recommend"}


def feedback_job(job: dict) -> dict:
    import mmkgrec
    from mmkgrec.serving.feedback import read_events

    path = run_dir(job["run"])
    run = mmkgrec.load(path)
    rng = np.random.default_rng(7)
    kill_after = int(rng.integers(FEEDBACK_EVENTS // 4, 3 * FEEDBACK_EVENTS // 4))
    users = [str(run.dataset.user_ids[u]) for u in rng.integers(0, run.split.n_users,
                                                                 FEEDBACK_EVENTS)]
    items = [str(run.dataset.item_ids[i]) for i in rng.integers(0, run.split.n_items,
                                                                 FEEDBACK_EVENTS)]
    folder = Path(tempfile.mkdtemp(prefix="mmkgrec-feedback-"))
    events_file = folder / "events.jsonl"
    before = loadavg()
    server = Server(path, ["--feedback", str(events_file)])
    acked: list[str] = []
    sent = [0]
    try:
        server.wait_ready("/health")

        async def stream():
            nxt = iter(range(FEEDBACK_EVENTS))
            t0 = time.perf_counter()

            async def client():
                conn = Conn(server.port)
                for k in nxt:
                    if time.perf_counter() - t0 > DEADLINE_S:
                        return
                    body = json.dumps({"user": users[k], "item": items[k], "event": "view",
                                       "value": k}).encode()
                    sent[0] += 1
                    try:
                        status, data = await conn.request("POST", "/v1/feedback", body)
                    except Exception:
                        return  # the server is gone
                    if status == 201:
                        acked.append(json.loads(data)["event_id"])
                        if len(acked) == kill_after:
                            os.kill(server.proc.pid, signal.SIGKILL)

            await asyncio.gather(*(client() for _ in range(FEEDBACK_CLIENTS)))
            return time.perf_counter() - t0

        wall = arun(stream())
        server.proc.wait(30)
        killed = server.proc.returncode == -signal.SIGKILL
    finally:
        server.stop()
    on_disk = read_events(events_file)
    ids = {e["event_id"] for e in on_disk}
    missing = [a for a in acked if a not in ids]
    res = {**_common(job, run, before), "events_planned": FEEDBACK_EVENTS,
           "clients": FEEDBACK_CLIENTS, "kill_after_acks": kill_after, "killed_by_sigkill": killed,
           "sent": sent[0], "acknowledged": len(acked), "on_disk": len(on_disk),
           "acknowledged_missing": len(missing), "unacknowledged_on_disk": len(ids - set(acked)),
           "stream_s": wall, "acked_per_s": len(acked) / wall if wall else None}
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    print(f"{job['id']}: {len(acked)} acknowledged before kill -9, {len(on_disk)} on disk, "
          f"{len(missing)} acknowledged but missing", flush=True)
    return res


def size_tag(kind: str) -> str:
    if kind == "closed" and (SIZE["requests"], SIZE["clients"]) != (FULL["requests"],
                                                                     FULL["clients"]):
        return f"-n{SIZE['requests']}" + (f"c{SIZE['clients']}" if SIZE["clients"] !=
                                          FULL["clients"] else "")
    if kind == "rate" and (SIZE["rate"], SIZE["rate_seconds"]) != (FULL["rate"],
                                                                    FULL["rate_seconds"]):
        return f"-r{SIZE['rate']:g}x{SIZE['rate_seconds']:g}s"
    return ""


JOBS = {"closed": closed_job, "rate": rate_job, "cold": cold_job, "feedback-kill9": feedback_job}


def jobs(runs: list[str]) -> list[dict]:
    out = [{"id": f"train-{r}", "run": r, "kind": "train"} for r in runs]
    for r in runs:
        for kind in ("closed", "rate", "cold"):
            out.append({"id": f"{r}-{kind}{size_tag(kind)}", "run": r, "kind": kind})
    if "ml-100k-BPR" in runs:
        out.append({"id": "ml-100k-BPR-feedback-kill9", "run": "ml-100k-BPR",
                    "kind": "feedback-kill9"})
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--only", help="a substring of job ids, or =ID1,ID2 for exactly those")
    p.add_argument("--requests", type=int, default=FULL["requests"],
                   help="requests per endpoint in the closed loop")
    p.add_argument("--clients", type=int, default=FULL["clients"])
    p.add_argument("--rate", type=float, default=FULL["rate"], help="requests/s of the rate job")
    p.add_argument("--rate-seconds", type=float, default=FULL["rate_seconds"])
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated runs of RUNS")
    a = p.parse_args()
    SIZE.update(requests=a.requests, clients=a.clients, rate=a.rate, rate_seconds=a.rate_seconds)
    runs = [r for r in a.runs.split(",") if r]
    unknown = sorted(set(runs) - set(RUNS))
    if unknown:
        p.error(f"unknown runs {unknown}; choose from {sorted(RUNS)}")
    (WORK / "runs" / "load").mkdir(parents=True, exist_ok=True)

    def runner(job):
        return train_job(job) if job["kind"] == "train" else JOBS[job["kind"]](job)

    run_queue("load", jobs(runs), runner, a.only)


if __name__ == "__main__":
    main()
