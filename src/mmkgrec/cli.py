"""The ``mmkgrec`` command.

    mmkgrec [--debug] COMMAND ...   (--debug: a failure shows its traceback, not one line)
    mmkgrec train --model NAME --dataset NAME --out RUN_DIR [--config FILE|variant:NAME]
                  [--set k=v ...] [--resume] [--overwrite] [--nproc N]
    torchrun --nproc-per-node N -m mmkgrec.cli train ...   (the same as --nproc N)
    mmkgrec evaluate RUN_DIR [--part test|valid] [--device cpu|cuda] [--set eval_protocol=sampled ...]
                     [--by-popularity N]       (a cold-start split: also the cold-only metrics)
    mmkgrec recommend RUN_DIR --user U [-k 20] [--device cpu|cuda]
    mmkgrec recommend RUN_DIR --all --out FILE.csv|FILE.parquet [-k 20]
    mmkgrec similar RUN_DIR --item I [-k 10]
    mmkgrec serve RUN_DIR [--host 127.0.0.1] [--port 8000] [--workers N] [--feedback FILE]
                  [--images DIR] [--cors-origin ORIGIN ...] [--protect-all]
    mmkgrec explain RUN_DIR --user U [--item I | -k 5] [--backend template|transformers|http]
                    [--set explain_k=v ...] [--json]
    mmkgrec compare RUN_DIR [RUN_DIR ...] [--metric ndcg@10] [--plot FILE.png|.svg|.pdf]
    mmkgrec tune MODEL DATASET --grid KEY=V1,V2 [--grid ...] [--trials N] [--sampler grid|random|tpe]
                 [--folds K] [--out DIR] [--config FILE] [--set k=v ...] [--keep-runs]
    mmkgrec data info NAME
    mmkgrec data export-recbole NAME --out DIR [--sequential [--max-len 50]] [--set k=v ...]
    mmkgrec data download ml-100k [--dest DIR]
    mmkgrec features extract --dataset NAME [--text SPEC|none] [--image SPEC|none] [--set k=v ...]
    mmkgrec features info [--dataset NAME]
    mmkgrec features export --dataset NAME --modality text|image --out FILE.npz [--encoder SPEC]
    mmkgrec models
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import shlex
import sys
from pathlib import Path

from .errors import MMKGRecError


# ``--set a=1 b=2 --set c=3``: several pairs after one flag, and repeated flags, all kept
SET = {"dest": "overrides", "action": "extend", "nargs": "+", "default": [], "metavar": "KEY=VALUE"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmkgrec", description="Multimodal, knowledge-graph-enhanced "
                                "recommendation: train, evaluate, compare and serve models.")
    p.add_argument("--debug", action="store_true", help="on an error, show the Python traceback "
                   "instead of the one-line message (accepted anywhere on the line)")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a model and evaluate it on the test part")
    t.add_argument("--model", required=True)
    t.add_argument("--dataset", required=True, help="a registered name or a folder of atomic files")
    t.add_argument("--out", required=True, help="run directory to create")
    t.add_argument("--config", help="YAML file layered over the model and dataset defaults, or "
                   "variant:NAME for a packaged variant (configs/variant/NAME.yaml)")
    t.add_argument("--set", **SET)
    t.add_argument("--resume", action="store_true", help="continue from RUN_DIR.partial (the "
                   "same configuration; only epochs (upwards), threads, device, show_progress and "
                   "eval_batch_size may change)")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --out "
                   "(its own files only; a folder that is not a run is never written into)")
    t.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train on N processes of this machine with DDP (torchrun --standalone "
                   "--nproc-per-node N); train_batch_size stays the global batch")

    e = sub.add_parser("evaluate", help="re-evaluate a finished run (with a cold-start split, "
                       "also the metrics of its cold items or users alone)")
    e.add_argument("run_dir")
    e.add_argument("--part", default="test", choices=["test", "valid"])
    e.add_argument("--set", **SET,
                   help="evaluation setting, e.g. eval_protocol=sampled")
    e.add_argument("--by-popularity", type=int, metavar="N",
                   help="metrics per group of items: N groups of equal size by training "
                   "interactions, most popular first")

    r = sub.add_parser("recommend", help="top-k items for a user, or for every user into a file")
    r.add_argument("run_dir")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a raw user id")
    who.add_argument("--all", action="store_true", help="every user of the run, into --out")
    r.add_argument("--out", help="with --all: the file to write (user, rank, item, score); CSV, "
                   "or Parquet for a .parquet name (needs pyarrow: the parquet extra)")
    r.add_argument("--format", choices=["csv", "parquet"], help="with --all: the file format "
                   "(default: from the --out suffix)")
    r.add_argument("-k", type=int, default=20)

    s = sub.add_parser("similar", help="the items nearest to an item (cosine of the model's item "
                       "vectors)")
    s.add_argument("run_dir")
    s.add_argument("--item", required=True, help="a raw item id")
    s.add_argument("-k", type=int, default=10)
    x = sub.add_parser("explain", help="why an item suits a user, in sentences checked against "
                       "the run's knowledge graph and item table")
    x.add_argument("run_dir")
    x.add_argument("--user", required=True, help="a raw user id")
    x.add_argument("--item", help="a raw item id (default: the user's top -k recommendations)")
    x.add_argument("-k", type=int, default=5, help="without --item: explain the top k")
    x.add_argument("--backend", choices=["template", "transformers", "http"],
                   help="who drafts (default: the explain_backend key, template)")
    x.add_argument("--set", **SET, help="explain_* settings, e.g. explain_http_url=URL")
    x.add_argument("--json", action="store_true", help="print the explanations as JSON")
    for one in (e, r, s, x):
        one.add_argument("--device", help="run on this device instead of the one the run was trained "
                       "on (cpu, cuda, cuda:N, mps)")

    sv = sub.add_parser("serve", help="serve a run: JSON API under /v1, a web page at /, "
                        "/health, /metrics and the OpenAPI page /docs (needs the serve extra)")
    sv.add_argument("run_dir")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback "
                    "only; 0.0.0.0 opens it to the network)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--workers", type=int, default=1, help="server processes, each holding the "
                    "run in memory")
    sv.add_argument("--feedback", metavar="FILE", help="append feedback events (POST "
                    "/v1/feedback) to this JSON-lines file, fsync-ed before each reply; outside "
                    "the run directory")
    sv.add_argument("--images", metavar="DIR", help="poster folder (<item id>.jpg|png|...; "
                    "default: the image folder the run recorded)")
    sv.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    sv.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                    help="allow browser calls from this origin (CORS is off by default)")
    sv.add_argument("--protect-all", action="store_true", help="require the API key "
                    "($MMKGREC_API_KEY) on every /v1 endpoint, not only the admin ones")
    sv.add_argument("--max-body", type=int, default=64 * 1024, metavar="BYTES",
                    help="largest request body accepted (413 beyond)")
    sv.add_argument("--limit-concurrency", type=int, default=512, help="connections and "
                    "requests at once per worker before 503")
    sv.add_argument("--device", help="cpu (default: the run's device), cuda, cuda:N, mps")
    sv.add_argument("--explain-backend", action="append", default=[], metavar="NAME",
                    choices=["template", "transformers", "http"], help="an explanation backend "
                    "requests may ask for besides the template (repeatable)")

    c = sub.add_parser("compare", help="a table of runs with paired tests over users")
    c.add_argument("run_dirs", nargs="+")
    c.add_argument("--metric", default="ndcg@10")
    c.add_argument("--plot", metavar="FILE", help="also draw the runs' validation curves and "
                   "per-user test metric distributions to FILE (.png, .svg or .pdf; needs matplotlib)")

    tu = sub.add_parser("tune", help="search a grid of configuration values (Optuna), each trial "
                        "scored on validation; writes one JSON per trial and DIR/best.yaml")
    tu.add_argument("model")
    tu.add_argument("dataset", help="a registered name or a folder of atomic files")
    tu.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                    help="values of one key to try (YAML values; a list as [64, 32]); repeat "
                    "for more keys")
    tu.add_argument("--trials", type=int, help="most trials (default: every point of the grid)")
    tu.add_argument("--sampler", default="grid", choices=["grid", "random", "tpe"])
    tu.add_argument("--folds", type=int, metavar="K", help="score each trial by the mean "
                    "validation metric over folds 0..K-1 of the kfold split; with --set "
                    "split=kfold, over K inner folds of that fold's training part (nested: the "
                    "outer test fold is never read)")
    tu.add_argument("--out", help="folder of the tune (default: tune-MODEL-DATASET); rerun the "
                    "same command to continue a killed tune")
    tu.add_argument("--config", help="YAML file layered under every trial")
    tu.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a value fixed for every trial")
    tu.add_argument("--keep-runs", action="store_true", help="keep every trial's run directory "
                    "under DIR/runs/")

    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    di = dsub.add_parser("info", help="statistics of a dataset")
    di.add_argument("name")
    di.add_argument("--set", **SET)
    dx = dsub.add_parser("export-recbole", help="write the split as RecBole benchmark files")
    dx.add_argument("name")
    dx.add_argument("--out", required=True)
    dx.add_argument("--sequential", action="store_true",
                    help="one row per next-item sample (user, item_id_list, item_id), the "
                         "pre-augmented files RecBole's sequential models read")
    dx.add_argument("--max-len", type=int, default=50,
                    help="longest history of a sequential row (RecBole's MAX_ITEM_LIST_LENGTH)")
    dx.add_argument("--set", **SET)
    dd = dsub.add_parser("download", help="fetch a public dataset (needs a network)")
    dd.add_argument("name")
    dd.add_argument("--dest", help="folder to put it in (default: $MMKGREC_DATA)")

    f = sub.add_parser("features", help="item text and image features (the feature store)")
    fsub = f.add_subparsers(dest="features_cmd", required=True)
    fx = fsub.add_parser("extract", help="compute the item features of a dataset into the store "
                         "under $MMKGREC_CACHE (reusing what is there)")
    fx.add_argument("--dataset", required=True)
    fx.add_argument("--text", help="text encoder spec (default: config text_encoder; none skips)")
    fx.add_argument("--image", help="image encoder spec (default: config image_encoder; none "
                    "skips)")
    fx.add_argument("--set", **SET)
    fe = fsub.add_parser("export", help="write a dataset's features of one modality to an .npz "
                         "(item_ids, features), read elsewhere with <modality>_encoder: file:<path>")
    fe.add_argument("--dataset", required=True)
    fe.add_argument("--modality", required=True, choices=["text", "image"])
    fe.add_argument("--out", required=True, help="the .npz to write")
    fe.add_argument("--encoder", help="encoder spec (default: config <modality>_encoder)")
    fe.add_argument("--set", **SET)
    fi = fsub.add_parser("info", help="list the feature stores under $MMKGREC_CACHE")
    fi.add_argument("--dataset", help="only stores of this dataset name")

    sub.add_parser("models", help="list registered models")

    dm = sub.add_parser("demo", help="train Multi-KG4Rec beside Pop, BPR and KGAT on ML-100K (or "
                        "synthetic data when no data folder exists) and print their test table")
    dm.add_argument("--out", default="runs/demo", help="folder for the demo's runs: new, empty, "
                    "or an earlier demo's, whose runs are replaced (nothing else in it is touched)")
    dm.add_argument("--epochs", type=int, default=None,
                    help="lower every model's epoch cap to this (default: each model's own cap)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure ends as one line ``mmkgrec: error: ...`` on stderr and a
    non-zero exit (2: bad input or a refused operation, 1: an internal error, 130: interrupted),
    never a traceback unless ``--debug`` is given."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # accepted anywhere on the line, before or after the command
    argv = [a for a in argv if a != "--debug"]
    args = _parser().parse_args(argv)
    args.debug = debug
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    command = "mmkgrec " + " ".join(shlex.quote(a) for a in argv)
    from . import distributed

    try:
        return _run(args, command)
    except BaseException as e:  # noqa: BLE001 - the one place every failure becomes one line
        if args.debug or isinstance(e, SystemExit):
            raise
        code, msg = error_line(e)
        # every process of a distributed run meets the same bad input: rank 0 says it once;
        # what concerns one process (a peer that stopped) each says for itself
        if distributed.is_main() or isinstance(e, distributed.DistributedError):
            print(f"mmkgrec: error: {msg}", file=sys.stderr)
        return code
    finally:
        distributed.shutdown()


def error_line(e: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message of the failure ``e`` (see :func:`main`)."""
    if isinstance(e, KeyboardInterrupt):
        return 130, ("interrupted; a run killed while training resumes from RUN_DIR.partial "
                     "with --resume")
    if isinstance(e, MMKGRecError):
        return 2, _one_line(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))
    if isinstance(e, MemoryError):
        return 2, "out of memory; try a smaller eval_batch_size / train_batch_size or dataset"
    if isinstance(e, OSError):
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        if e.errno == errno.ENOSPC:
            return 2, f"no space left on device{where}; nothing was kept but a resumable run"
        reason = e.strerror or str(e) or type(e).__name__
        return 2, _one_line(f"{reason}{where}")
    return 1, _one_line(f"internal error ({type(e).__name__}: {e}); rerun with --debug for the "
                        "traceback and please report it")


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " ".join(lines)[:2000] or "(no message)"


def _run(args, command: str) -> int:
    from . import api

    if args.cmd == "train" and args.nproc != 1:
        return _launch(args, argv_of_train(command))
    if args.cmd == "train":
        run = api.train(args.model, args.dataset, args.out, args.config, args.overrides,
                        resume=args.resume, command=command, overwrite=args.overwrite)
        from . import distributed

        if distributed.is_main():
            print(format_table([run.metrics]))
            print(f"run written to {args.out}")
        return 0
    if args.cmd == "evaluate":
        run = api.load(args.run_dir, args.device)
        if args.by_popularity is None:
            metrics = run.evaluate(args.part, args.overrides)
            for name, res in run.evaluate_cold(args.part, args.overrides).items():
                metrics[name] = {k: v for k, v in res.items() if k != "per_user"}
            print(json.dumps(metrics, indent=2))
            return 0
        if not 1 <= args.by_popularity <= run.split.n_items:
            print(f"mmkgrec: error: --by-popularity takes a number of groups from 1 to the "
                  f"{run.split.n_items} items, got {args.by_popularity}", file=sys.stderr)
            return 2
        groups = run.evaluate_by_popularity(args.by_popularity, args.part, args.overrides)
        print(json.dumps([{k: v for k, v in g.items() if k != "per_user"} for g in groups],
                         indent=2))
        return 0
    if args.cmd in ("recommend", "similar"):
        if args.k < 1:
            print(f"mmkgrec: error: -k must be >= 1, got {args.k}", file=sys.stderr)
            return 2
        if args.cmd == "recommend" and bool(args.all) != bool(args.out):
            print("mmkgrec: error: recommend --all writes to --out FILE; give both or neither",
                  file=sys.stderr)
            return 2
        run = api.load(args.run_dir, args.device)
        if args.cmd == "similar":
            rows = run.similar_items(args.item, args.k)
        elif args.all:
            n = run.recommend_all(args.out, args.k, args.format)
            print(f"{n} recommendations for {run.split.n_users} users written to {args.out}")
            return 0
        else:
            rows = run.recommend(args.user, args.k)
        for rank, (item, score) in enumerate(rows, 1):
            print(f"{rank}\t{item}\t{score:.4f}")
        return 0
    if args.cmd == "explain":
        return _explain(args)
    if args.cmd == "compare":
        from .evaluation.report import compare_runs

        table = compare_runs(args.run_dirs, args.metric)
        if args.plot:
            from .evaluation.plots import plot_runs

            plot_runs(args.run_dirs, args.metric, args.plot)
        print(table)
        if args.plot:
            print(f"figure written to {args.plot}")
        return 0
    if args.cmd == "tune":
        return _tune(args, command)
    if args.cmd == "serve":
        return _serve(args)
    if args.cmd == "models":
        from .models import registered_models

        print("\n".join(registered_models()))
        return 0
    if args.cmd == "data":
        return _data(args)
    if args.cmd == "features":
        return _features(args)
    if args.cmd == "demo":
        return _demo(args)
    return 2


def argv_of_train(command: str) -> list[str]:
    """The arguments of ``mmkgrec train ...`` without ``--nproc N`` (what every process gets)."""
    argv = shlex.split(command)[1:]
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _launch(args, argv: list[str]) -> int:
    """``mmkgrec train --nproc N``: ``torchrun --standalone --nproc-per-node N -m mmkgrec.cli
    train ...`` through torch's own launcher; a process that fails stops the others and is
    named in one line."""
    from . import distributed

    if args.nproc < 1:
        print(f"mmkgrec: error: --nproc takes a number of processes >= 1, got {args.nproc}",
              file=sys.stderr)
        return 2
    if distributed.launched():
        print("mmkgrec: error: --nproc starts the processes itself; under torchrun leave it out",
              file=sys.stderr)
        return 2
    import os

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # threads per process: set `threads` to change
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)  # the line below says it
    targs = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={args.nproc}",
                                          "-m", "mmkgrec.cli", *argv])
    try:
        run(targs)
    except ChildFailedError as e:
        rank, first = e.get_first_failure()  # the root cause; the agent then stopped the others
        how = (f"was killed by {first.signal_name()}" if first.exitcode < 0
               else f"exited with code {first.exitcode}")
        partial = Path(args.out).with_name(Path(args.out).name + ".partial")
        hint = (f"; the last checkpoint in {partial}/checkpoint stays loadable: rerun with "
                "--resume (under any --nproc)" if (partial / "checkpoint" / "LATEST").is_file()
                else "")
        print(f"mmkgrec: error: the distributed run stopped: rank {rank} {how} and the other "
              f"processes were stopped{hint}", file=sys.stderr)
        return 2
    return 0


def _explain(args) -> int:
    from . import api

    if args.item is None and args.k < 1:
        print(f"mmkgrec: error: -k must be >= 1, got {args.k}", file=sys.stderr)
        return 2
    run = api.load(args.run_dir, args.device)
    from .config import parse_overrides

    options = dict(parse_overrides(args.overrides))
    if args.item is not None:
        out = [run.explain(args.user, args.item, args.backend, **options)]
    else:
        out = run.explain_top(args.user, args.k, args.backend, **options)
    if args.json:
        print(json.dumps([e.to_dict() for e in out], indent=1))
        return 0
    for rank, e in enumerate(out, 1):
        head = f"{rank}. {e.title or e.item} (item {e.item})" if args.item is None else \
            f"{e.title or e.item} (item {e.item})"
        print(f"{head} [{e.backend}{', corrected' if e.corrected else ''}]")
        for s in e.sentences:
            print(f"  {s.text}")
            for t in s.triples:
                print(f"      ({t.head}, {t.relation}, {t.tail})  [{t.source}]")
        for n in e.notes:
            print(f"  note: {n}")
    return 0


def _tune(args, command: str) -> int:
    from .tuning import tune

    # the console shows the tune's own lines; each trial's training log is kept beside its JSON
    def tune_lines(record) -> bool:
        return record.name.startswith("mmkgrec.tune") or record.levelno >= logging.WARNING

    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(tune_lines)
    try:
        res = tune(args.model, args.dataset, args.grid, args.out, args.trials, args.sampler,
                   args.folds, args.config, args.overrides, args.keep_runs, command)
    finally:
        for handler in handlers:
            handler.removeFilter(tune_lines)
    b = res.budget
    print(f"budget: {b['name']}")
    keys = list(b["space"])
    rows = [["trial"] + keys + [b["valid_metric"], "best_epoch", "seconds"]]
    for r in res.trials:
        note = f" (= {r['duplicate_of']})" if r.get("duplicate_of") is not None else ""
        rows.append([str(r["number"])] + [json.dumps(r["params"][k]) for k in keys]
                    + [f"{r['value']:.4f}{note}", str(r["best_epoch"]), f"{r['seconds']:.1f}"])
    widths = [max(len(row[j]) for row in rows) for j in range(len(rows[0]))]
    print("\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows))
    print(f"best: trial {res.best['number']} ({b['valid_metric']} {res.best_value:.4f}); "
          f"rerun it: mmkgrec train --model {args.model} --dataset {args.dataset} --config "
          f"{res.best_yaml} --out RUN_DIR")
    return 0


def _serve(args) -> int:
    import ipaddress
    import os
    import socket
    import tempfile

    from .serving import require_serve_extra

    require_serve_extra()
    if not 0 < args.port < 65536:
        raise MMKGRecError(f"--port must be from 1 to 65535, got {args.port}")
    for flag, v in (("--workers", args.workers), ("--threads", args.threads),
                    ("--max-body", args.max_body), ("--limit-concurrency", args.limit_concurrency)):
        if v < 1:
            raise MMKGRecError(f"{flag} must be >= 1, got {v}")
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:  # a clear line before any loading
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((args.host, args.port))
        except OSError as e:
            raise MMKGRecError(f"cannot listen on {args.host}:{args.port}: {e.strerror}") from None
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"mmkgrec serve: warning: listening on {args.host}, reachable from the network; "
              "set MMKGREC_API_KEY and --protect-all unless that network is trusted",
              file=sys.stderr)
    import uvicorn

    tmp = tempfile.mkdtemp(prefix="mmkgrec-serve-")
    settings = {"run_dir": str(Path(args.run_dir).resolve()), "feedback": args.feedback,
                "images": args.images, "device": args.device, "threads": args.threads,
                "protect_all": args.protect_all, "cors_origins": args.cors_origin,
                "max_body": args.max_body, "control": os.path.join(tmp, "control.json"),
                "explain_backends": ["template", *[b for b in args.explain_backend
                                                   if b != "template"]]}
    common = {"host": args.host, "port": args.port, "log_level": "info", "access_log": False,
              "server_header": False, "limit_concurrency": args.limit_concurrency}
    if args.workers > 1:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(tmp, "metrics")
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    from .serving.app import SERVE_ENV, Loaded, create_app

    loaded = Loaded(settings["run_dir"], args.images, args.device)  # bad input stops here
    where = f"http://{'[' + args.host + ']' if family == socket.AF_INET6 else args.host}:{args.port}"
    print(f"mmkgrec serve: {loaded.model} on '{loaded.dataset}' ({loaded.run.split.n_users} "
          f"users, {loaded.run.split.n_items} items) loaded in {loaded.load_s:.1f} s; page "
          f"{where}/ , API {where}/docs , {args.workers} worker(s)", file=sys.stderr, flush=True)
    if args.workers == 1:
        app = create_app(**settings, loaded=loaded)
        uvicorn.run(app, **common)
    else:
        if args.feedback:  # checked here, once, before the workers start
            from .serving.feedback import FeedbackLog

            FeedbackLog(args.feedback, forbidden=loaded.run_dir).close()
        del loaded
        os.environ[SERVE_ENV] = json.dumps(settings)
        uvicorn.run("mmkgrec.serving.app:app_from_env", factory=True, workers=args.workers,
                    **common)
    return 0


# (model, overrides, epoch cap): the cap keeps `make demo` under 10 minutes on 2 cores
DEMO_MODELS = [("Pop", {}, 0), ("BPR", {"learning_rate": 0.005}, 60),
               ("KGAT", {"learning_rate": 0.005}, 25), ("MultiKG4Rec", {"learning_rate": 0.005}, 10)]
# the full run the demo suggests: the settings ML-100K's validation chose for Multi-KG4Rec in
# benchmarks/kg.py (learning rate, then L2; docs/BENCHMARKS.md), not the demo's fast-start rate
FULL_RUN = {"learning_rate": 0.001, "reg_weight": 0.001, "valid_metric": "ndcg@20"}


DEMO_MARK = ".mmkgrec-demo"


def _claim_demo_folder(out: Path) -> None:
    """Refuse a demo folder that exists, is not empty and is not an earlier demo's (marked by
    DEMO_MARK); in an earlier demo's, each model's run is replaced by ``train(overwrite=True)``,
    which refuses a model folder that is not a run, and nothing else is touched."""
    from .errors import OutputExistsError

    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder; choose another --out")
    from .runs import check_out, is_run

    names = {m for m, _, _ in DEMO_MODELS}
    earlier = (out / DEMO_MARK).is_file() or (out.is_dir() and all(  # a demo's before the mark
        (p.name in names and is_run(p)) or p.name.removesuffix(".partial") in names - {p.name}
        for p in out.iterdir()))
    if out.is_dir() and any(out.iterdir()) and not earlier:
        raise OutputExistsError(f"{out}: exists, is not empty and is not an earlier demo's "
                                "folder; refusing to write into it (choose another --out)")
    for model, _, _ in DEMO_MODELS:  # before anything is trained: every run can be replaced
        check_out(out / model, overwrite=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARK).write_text("runs of `mmkgrec demo`; a later demo replaces them\n")


def _demo(args) -> int:
    import time

    from . import api
    from .data.registry import data_root

    root = data_root()
    extra = {}
    if root is not None and (root / "ml-100k").is_dir():
        dataset = "ml-100k"
        print(f"demo: ML-100K from {root / 'ml-100k'} with its Freebase KG, MiniLM text features "
              "and EfficientNet-Lite1 poster features (extracted on first use, then cached); "
              "random 8:1:1 per user, full ranking")
    else:
        dataset = "synthetic"
        extra = {"MultiKG4Rec": {"modalities": ["text"]}}  # generated items have no images
        print("demo: MMKGREC_DATA does not hold ml-100k, so this demo runs on the SYNTHETIC "
              "dataset (generated, planted structure; text only, no images); its figures say "
              "nothing about real data")
    out = Path(args.out)
    _claim_demo_folder(out)
    rows = []
    t0 = time.perf_counter()
    for model, ov, cap in DEMO_MODELS:
        epochs = min(cap, args.epochs) if args.epochs is not None else cap
        ov = {**ov, **extra.get(model, {}), "epochs": epochs, "show_progress": False}
        print(f"demo: training {model} ({epochs} epochs at most) ...", flush=True)
        t1 = time.perf_counter()
        run = api.train(model, dataset, out / model, overrides=ov,
                        command=f"mmkgrec demo ({model})", overwrite=True)
        print(f"demo: {model} done in {time.perf_counter() - t1:.0f} s", flush=True)
        rows.append(run.metrics)
    print()
    print(format_table(rows))
    print(f"\n{len(rows)} models in {time.perf_counter() - t0:.0f} s; runs in {out}/ "
          "(epoch caps: these are not converged figures; docs/BENCHMARKS.md has the tuned ones)")
    print("compare with paired tests:  mmkgrec compare "
          + " ".join(str(out / m) for m, _, _ in DEMO_MODELS))
    print(f"a full run (no epoch cap):  mmkgrec train --model MultiKG4Rec --dataset {dataset} "
          "--out runs/multikg4rec " + " ".join(f"--set {k}={v}" for k, v in FULL_RUN.items()))
    served = out / DEMO_MODELS[-1][0]
    print(f"serve it, with its page at http://127.0.0.1:8000/:  mmkgrec serve {served}"
          + ("   (or: make serve)" if str(out) == "runs/demo" else ""))
    return 0


def _data_config(name: str, overrides):
    from .config import load_config

    return load_config("Pop", name, overrides=overrides)


def _data(args) -> int:
    from .data import load_dataset
    from .data.split_factory import split_from_config

    if args.data_cmd == "download":
        from .data.download import download

        path = download(args.name, args.dest)
        print(f"{args.name} ready at {path}")
        return 0
    cfg = _data_config(args.name, args.overrides)
    ds = load_dataset(args.name, cfg)
    split = split_from_config(ds, cfg)
    if args.data_cmd == "info":
        from .graph.kg import kg_summary

        info = {"dataset": ds.describe(), "split": split.describe()}
        kg = kg_summary(ds, split, cfg)
        if kg is not None:
            info["kg"] = kg
        print(json.dumps(info, indent=2, default=str))
        return 0
    if args.data_cmd == "export-recbole":
        from .data.export import export_recbole

        out = export_recbole(split, args.out, ds.name, sequential=args.sequential,
                             max_len=args.max_len)
        print(f"RecBole benchmark files written to {out}")
        return 0
    return 2


def _features(args) -> int:
    from .features import cache_root, export_features, extract_features, store_info

    if args.features_cmd == "info":
        rows = [r for r in store_info() if not args.dataset or r["dataset"] == args.dataset]
        if not rows:
            print(f"no feature stores under {cache_root() / 'features'}")
            return 0
        for r in rows:
            last = r["last_run"] or {}
            print(f"{r['dataset']}\t{r['modality']}\t{r['encoder']}\tdim {r['dim']}\t"
                  f"{r['rows']} items\t{r['size_mb']} MiB\tupdated {r['updated_at']}\t"
                  f"last run: {last.get('encoded')} encoded, {last.get('reused')} reused, "
                  f"{last.get('missing')} missing, {last.get('failed')} failed\t{r['path']}")
        return 0
    from .data import load_dataset

    cfg = _data_config(args.dataset, args.overrides)
    ds = load_dataset(args.dataset, cfg)
    if args.features_cmd == "export":
        res = export_features(ds, args.modality, cfg, args.out, encoder=args.encoder)
        print(f"{args.modality}: {int(res.mask.sum())} of {len(res.mask)} items, dim "
              f"{res.matrix.shape[1]} ({res.stats['encoder']}) written to {args.out}")
        return 0
    for modality, flag in (("text", args.text), ("image", args.image)):
        spec = flag or cfg[f"{modality}_encoder"]
        if spec.lower() == "none":
            continue
        res = extract_features(ds, modality, cfg, encoder=spec)
        s = res.stats
        rate = f"{s['items_per_s']:.1f} items/s" if s["items_per_s"] else "-"
        print(f"{modality}: {s['encoder']} (version {s['version']}), dim {s['dim']}: "
              f"{s['items']} items, {s['encoded']} encoded, {s['reused']} reused, "
              f"{s['missing']} without content, {s['failed']} unreadable; {s['seconds']:.2f} s, "
              f"{rate}; store {s['store']}")
    return 0


def format_table(rows: list[dict], keys=None) -> str:
    """A plain-text table of test metrics, one row per run."""
    keys = keys or [k for k in rows[0]["test"]]
    head = ["model", "dataset"] + keys + ["best_epoch", "s/epoch"]
    lines = [head]
    for m in rows:
        t = m.get("timing", {}).get("train_epoch_s")
        lines.append([m["model"], str(m["dataset"])] + [f"{m['test'].get(k, float('nan')):.4f}" for k in keys]
                     + [str(m.get("best_epoch")), "-" if t is None else f"{t:.3f}"])
    widths = [max(len(r[j]) for r in lines) for j in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in lines)


if __name__ == "__main__":
    sys.exit(main())
