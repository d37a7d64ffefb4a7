"""Shared pieces of the benchmark queues: the job queue, running mmkgrec and RecBole in their own
processes, and writing one JSON per run.

A queue is a list of jobs with stable ids; a job whose JSON already exists is skipped, so a killed
benchmark is resumed by running it again. Every JSON holds the config, metrics, per-user metrics,
versions, the git SHA and the command that produced it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work"
RESULTS = ROOT / "benchmarks" / "results"
if (ROOT.parent / "shared" / "data").is_dir():  # as the Makefile does
    os.environ.setdefault("MMKGREC_DATA", str(ROOT.parent / "shared" / "data"))


def git_sha() -> str:
    """HEAD (``-dirty`` with uncommitted changes); ``$MMKGREC_GIT_SHA`` where the tree was copied
    without its repository (a GPU machine)."""
    if os.environ.get("MMKGREC_GIT_SHA"):
        return os.environ["MMKGREC_GIT_SHA"]
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return sha + ("-dirty" if dirty else "")


def write_json(path: Path, data: dict) -> None:
    """Readable JSON with the (long) per-user arrays kept on one line each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(data)
    per_user = data.pop("per_user", None)
    text = json.dumps(data, indent=1, default=_default)
    if per_user is not None:
        rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'), default=_default)}"
                          for k, v in per_user.items())
        text = text[:-2] + ',\n "per_user": {\n' + rows + "\n }\n}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def _default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


class NotReady(RuntimeError):
    """A job that needs other jobs' results first (its tuning runs): skipped, run it again later."""


def loadavg() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages, kept beside a run's timings so that a
    reader can tell a quiet machine's seconds from a busy one's."""
    return [round(x, 2) for x in os.getloadavg()]


def run_queue(suite: str, jobs: list[dict], runner, only: str | None = None, workers: int = 1) -> None:
    """Run every job of ``suite`` whose result file is missing. ``runner(job) -> dict``.
    ``only``: a substring of the job ids to run, or ``=ID1,ID2`` for exactly those ids.
    ``workers``: jobs run at once (each job trains in its own process; for a machine with the
    cores or a GPU to spare; timings of concurrent jobs are not speed figures)."""
    from concurrent.futures import ThreadPoolExecutor

    out_dir = RESULTS / suite
    exact = set(only[1:].split(",")) if only and only.startswith("=") else None
    todo = [j for j in jobs if not (out_dir / f"{j['id']}.json").exists()
            and (only is None or (j["id"] in exact if exact else only in j["id"]))]
    done = sum((out_dir / f"{j['id']}.json").exists() for j in jobs)
    print(f"[{suite}] {len(jobs)} jobs, {done} done, {len(todo)} to run now", flush=True)

    def one(k: int, job: dict) -> None:
        t0 = time.time()
        if (out_dir / f"{job['id']}.json").exists():  # another process of the queue ran it
            print(f"[{suite}] ({k}/{len(todo)}) {job['id']} done meanwhile", flush=True)
            return
        print(f"[{suite}] ({k}/{len(todo)}) {job['id']} ...", flush=True)
        load_before = loadavg()
        try:
            result = runner(job)
        except subprocess.CalledProcessError as e:
            print(f"[{suite}] {job['id']} FAILED (exit {e.returncode}); see {e.cmd}", flush=True)
            return
        except NotReady as e:
            print(f"[{suite}] {job['id']} skipped: {e}", flush=True)
            return
        if "command" in result:
            result["command"] = relative_command(result["command"], ROOT)
        result = {"job": job["id"], "suite": suite, "load_before": load_before,
                  "load_after": loadavg(), **result, "git_sha": git_sha(),
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "wall_s": time.time() - t0}
        write_json(out_dir / f"{job['id']}.json", result)
        print(f"[{suite}] {job['id']} done in {time.time() - t0:.0f} s", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for f in [pool.submit(one, k, job) for k, job in enumerate(todo, 1)]:
            f.result()


_ABSOLUTE = re.compile(r"(?<![\w.~-])/[^\s'\",;=:]+")  # an absolute path inside an argument


def relative_command(command: str | list[str], root: Path | str | None = None) -> str:
    """``command`` (a string or an argument list) with every path under the repository written
    relative to its root and an interpreter outside it written as ``python``, so that a command
    names the repository, not the machine it ran on, and reruns from the root of any checkout.
    ``root``: where it ran; by default the folder above the first ``benchmarks/`` the command
    names (a stored command from another machine or checkout), else this repository. Other
    absolute paths (inputs outside the repository) stay as they are."""
    args = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
    paths = [os.path.normpath(m) for a in args for m in _ABSOLUTE.findall(a)]
    if root is None:
        root = next((p[:p.index("/benchmarks/")] for p in paths if "/benchmarks/" in p), ROOT)
    root = os.path.normpath(str(root))

    def rel(m: re.Match) -> str:
        p = os.path.normpath(m.group(0))
        return os.path.relpath(p, root) if p.startswith(root + os.sep) else m.group(0)

    out = [_ABSOLUTE.sub(rel, a) for a in args]
    if out and os.path.isabs(out[0]):  # every recorded command starts with its interpreter
        out[0] = "python"  # one of that machine's environments
    return " ".join(shlex.quote(a) for a in out)


HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server command in its own process on loopback (``port``: where it listens), its output
    in a temporary file; ``with`` stops it whatever happens."""

    def __init__(self, cmd: list[str], port: int, env: dict | None = None):
        self.cmd, self.port = cmd, port
        self.log = tempfile.TemporaryFile()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_ready(self, path: str, timeout: float = 300.0) -> float:
        """Seconds from the process start to the first 200 of ``GET path``."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}): "
                                   f"{self.output()[-2000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                              .encode())
                    if s.recv(16).split(b" ")[1:2] == [b"200"]:  # HTTP/1.0 or 1.1
                        wall = time.perf_counter() - self.t0
                        self.ready_cpu_s = self.cpu_s()  # CPU seconds the start cost
                        return wall
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"the server did not answer {path} within {timeout} s")

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.log.close()


def tune_cmd(model: str, dataset: str, out: Path, grid: dict, fixed: dict,
             folds: int | None = None) -> list[str]:
    """The ``mmkgrec tune`` command line of a benchmark's tuning job: ``grid`` (``{key:
    [values]}``) as ``--grid``, ``fixed`` as ``--set``, values written as JSON (YAML reads them
    back unchanged), ``folds`` as ``--folds``."""
    cmd = [sys.executable, "-m", "mmkgrec.cli", "tune", model, dataset, "--out", str(out)]
    if folds is not None:
        cmd += ["--folds", str(folds)]
    for key, values in grid.items():
        cmd += ["--grid", f"{key}=" + ",".join(json.dumps(v) for v in values)]
    for key, value in fixed.items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    return cmd


def run_cmd(cmd: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        f.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True,
                       env={**os.environ, **(env or {})}, cwd=cwd)


def mmkgrec_run(model: str, dataset: str, overrides: dict, run_dir: Path, log: Path,
                per_user_keys: list[str] | None = None) -> dict:
    """Train with the mmkgrec CLI in its own process; return the result fields. An
    ``overrides["config_file"]`` is passed as ``--config`` (layered under the ``--set`` values)."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(run_dir.with_name(run_dir.name + ".partial"), ignore_errors=True)
    overrides = dict(overrides)
    config_file = overrides.pop("config_file", None)  # a YAML layer (a variant), under the --set's
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    cmd = [sys.executable, "-m", "mmkgrec.cli", "train", "--model", model, "--dataset", dataset,
           "--out", str(run_dir), *(["--config", config_file] if config_file else []), *sets]
    run_cmd(cmd, log)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with np.load(run_dir / "per_user_test.npz", allow_pickle=False) as z:
        ids = "item_ids" if "item_ids" in z.files else "user_ids"  # items: classification's unit
        keys = per_user_keys or [k for k in z.files if k != ids]
        per_user = {ids: z[ids].tolist(), **{k: np.round(z[k], 6).tolist() for k in keys}}
    config = __import__("yaml").safe_load((run_dir / "config.yaml").read_text())
    return {"library": "mmkgrec", "model": model, "dataset": dataset, "config": config,
            "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
            "valid": metrics["valid"], "test": metrics["test"], "per_user": per_user,
            "timing": metrics["timing"], "peak_rss_mb": metrics["peak_rss_mb"],
            "history": [{"epoch": h["epoch"], "train_s": h.get("train_s"), "eval_s": h.get("eval_s"),
                         "valid": h.get("valid")} for h in metrics.get("history", [])],
            "versions": metrics["versions"], "command": " ".join(shlex.quote(c) for c in cmd)}


def recbole_python() -> str:
    """The reference library's interpreter: ``$RECBOLE_PYTHON`` when set (a machine where RecBole
    is installed some other way), else the venv that ``recbole_env.sh`` builds or reuses."""
    if os.environ.get("RECBOLE_PYTHON"):
        return os.environ["RECBOLE_PYTHON"]
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "recbole_env.sh")], capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()
    return out[-1]


def recbole_run(model: str, export_dir: Path, dataset: str, overrides: dict, out_json: Path,
                log: Path, per_user_keys: list[str] | None = None) -> dict:
    py = recbole_python()
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    cmd = [py, str(ROOT / "benchmarks" / "recbole_runner.py"), "--data-dir", str(export_dir),
           "--dataset", dataset, "--model", model, "--out", str(out_json), *sets]
    run_cmd(cmd, log)
    r = json.loads(out_json.read_text())
    if per_user_keys and "per_user" in r:
        r["per_user"] = {k: v for k, v in r["per_user"].items() if k == "user_ids" or k in per_user_keys}
    r["command"] = " ".join(shlex.quote(c) for c in cmd)
    r.setdefault("versions", {"recbole": r.get("recbole_version"), "torch": r.get("torch_version")})
    return r


def export_split(dataset: str, out_dir: Path, overrides: dict, sequential: bool = False,
                 max_len: int = 50) -> Path:
    """Export mmkgrec's split of ``dataset`` as RecBole benchmark files (cached by folder); with
    ``sequential``, one row per next-item sample (history of at most ``max_len`` items), for
    RecBole's sequential models. Give each kind of export its own folder."""
    target = out_dir / dataset
    if (target / f"{dataset}.test.inter").exists():
        return out_dir
    sets = [a for k, v in overrides.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    seq = ["--sequential", "--max-len", str(max_len)] if sequential else []
    run_cmd([sys.executable, "-m", "mmkgrec.cli", "data", "export-recbole", dataset, "--out",
             str(out_dir), *seq, *sets], out_dir.with_suffix(".log"))
    return out_dir


def best_on_validation(suite: str, ids: list[str], metric: str, what: str) -> tuple[int, dict]:
    """The result ``ids[k]`` of ``suite`` with the best validation ``metric`` (the first on a tie;
    the lowest for a metric where lower is better, such as ``rmse``): ``k`` and its JSON.
    NotReady, naming ``what`` and the missing file, while any is missing."""
    from mmkgrec.evaluation.metric_names import is_better

    best = None
    for k, job_id in enumerate(ids):
        p = RESULTS / suite / f"{job_id}.json"
        if not p.exists():
            raise NotReady(f"{what} incomplete ({p.name} missing)")
        r = json.loads(p.read_text())
        if best is None or is_better(r["valid"][metric], best[1]["valid"][metric], metric):
            best = (k, r)
    return best


def chosen_lr(suite: str, name: str, lrs, metric: str) -> float:
    """The learning rate whose tuning run ``tune-<name>-lr<lr>`` had the best validation
    ``metric`` (the tuning budget every row of a suite gets)."""
    k, _ = best_on_validation(suite, [f"tune-{name}-lr{lr}" for lr in lrs], metric, f"tuning of {name}")
    return list(lrs)[k]


def random_trials(space: dict[str, list], n: int, name: str) -> list[dict]:
    """``n`` settings of a search space (key -> candidate values): trial 0 is the model's defaults
    (``{}``), the others draw every key uniformly, seeded by ``name`` (the same trials on every
    machine and rerun), without repeats. Every model of a suite gets the same ``n``."""
    import random

    rng = random.Random(f"trials:{name}")
    size = 1
    for values in space.values():
        size *= len(values)
    out, seen = [{}], set()
    while len(out) < min(n, size + 1):
        trial = {k: rng.choice(v) for k, v in space.items()}
        key = tuple(sorted(trial.items()))
        if key not in seen:
            seen.add(key)
            out.append(trial)
    return out


def chosen_trial(suite: str, prefix: str, n: int, metric: str) -> tuple[int, dict]:
    """The tuning run ``<prefix>-t<k>`` (k < n) with the best validation ``metric``: its index and
    its settings (``trial`` in its JSON). NotReady while any of them is missing."""
    k, r = best_on_validation(suite, [f"{prefix}-t{k}" for k in range(n)], metric, "tuning")
    return k, r["trial"]


def queue_main(suite: str, jobs: list[dict], runner) -> None:
    """The command line of a queue: ``--only SUBSTRING`` runs the matching jobs only."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--only", help="a substring of job ids, or =ID1,ID2 for exactly those")
    p.add_argument("--workers", type=int, default=1, help="jobs at once")
    a = p.parse_args()
    run_queue(suite, jobs, runner, a.only, a.workers)


def feature_files(folder: str | None, dataset: str = "ml-100k") -> dict:
    """Encoder overrides that read ``dataset``'s item features from ``folder/<dataset>-text.npz``
    and ``-image.npz`` (``mmkgrec features export``), for a machine without the posters or the
    text encoder's weights (a GPU machine); empty without ``folder``."""
    if not folder:
        return {}
    d = Path(folder).resolve()
    return {f"{m}_encoder": f"file:{d / f'{dataset}-{m}.npz'}" for m in ("text", "image")}


def variant_file(name: str) -> str:
    """The path of ``configs/variant/<name>.yaml`` (a layer passed as ``config_file``)."""
    p = ROOT / "src" / "mmkgrec" / "configs" / "variant" / f"{name}.yaml"
    if not p.exists():
        raise RuntimeError(f"variant config {p} is missing")
    return str(p)
