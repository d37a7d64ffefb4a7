"""The Python API: ``train`` a model into a run directory, ``load`` a run, ``recommend`` and
``similar_items``.

A run directory holds ``config.yaml`` (resolved), ``log.txt``, ``model.safetensors`` (the
weights), ``per_user_test.npz``, ``metrics.json``, and the data it needs to answer on its own
(:mod:`mmkgrec.runs`: ``run.json`` and the id maps, split, pairs to exclude, item table, KG, item
features, item vectors and their index). It is built under ``<out>.partial`` (with
``checkpoint/`` while training) and renamed when the run completes, so ``<out>`` is never
half-written; a killed run resumes from ``<out>.partial`` with ``resume=True``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml

from . import distributed, runs
from .config import Config, load_config, load_run_config
from .data import load_dataset
from .data.dataset import Dataset, Interactions
from .data.split_factory import split_from_config
from .errors import ConfigError, MMKGRecError
from .evaluation.evaluator import make_evaluator
from .inputs import CONTENT_INPUTS, build_inputs, content_features
from .models import get_model_class
from .training.trainer import Trainer, median, seed_everything

log = logging.getLogger("mmkgrec")


def versions() -> dict:
    import numpy
    import scipy

    from ._version import __version__

    return {"mmkgrec": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__}


def git_sha() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prepare(config: Config):
    """Dataset, split, model inputs and an initialised model for ``config`` (seeded): returns
    ``(dataset, split, model, features, kg)``, the last two being the raw item features and the
    knowledge graph the model was built from (empty / ``None`` when it needs none), which the run
    directory keeps.

    The inputs are built on ``config['device']``; the model's parameters are initialised on the
    CPU and then moved there, so that a seed gives the same initial weights on every device (the
    CPU and CUDA generators draw different numbers), at the cost of one host-to-device copy of
    the parameters."""
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    cls = get_model_class(config["model"])
    cls.check_task(config)  # before the data is read
    ds = load_dataset(config["dataset"], config)
    split = split_from_config(ds, config)
    seed_everything(config["seed"])
    requires = cls.requirements(config)
    features = content_features(split, requires, config)
    inputs = build_inputs(split, requires, config["device"], config, features=features)
    model = cls(config, inputs).to(config["device"])
    return ds, split, model, features, inputs.kg


def _prepare_in_turn(config: Config):
    """:func:`prepare`, by rank 0 first in a distributed run, then by the other processes: rank 0
    alone fills the feature store (extracting item features where they are missing), the others
    read what it wrote; an error of rank 0 stops every process."""
    if not distributed.active():
        return prepare(config)
    out, err = None, None
    if distributed.is_main():
        try:
            out = prepare(config)
        except (MMKGRecError, OSError, KeyError) as e:
            err = e
    distributed.agree(err, "the data")
    return out if out is not None else prepare(config)


VARIANT_PREFIX = "variant:"


def variant_names() -> list[str]:
    """The packaged variant configs (``configs/variant/NAME.yaml``), by name."""
    folder = resources.files("mmkgrec") / "configs" / "variant"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


@contextlib.contextmanager
def config_file_path(spec):
    """The path of a ``--config`` value: a file path, or ``variant:NAME`` for the packaged
    ``configs/variant/NAME.yaml`` (found in the installed package, not in a checkout)."""
    if spec is None or not str(spec).startswith(VARIANT_PREFIX):
        yield spec
        return
    name = str(spec)[len(VARIANT_PREFIX):]
    names = variant_names()
    if name not in names:
        raise ConfigError("<file>", f"--config {spec}: no packaged variant '{name}'; variants: "
                          f"{', '.join(names)}")
    with resources.as_file(resources.files("mmkgrec") / "configs" / "variant" / f"{name}.yaml") as p:
        yield p


class _LogToFile:
    def __init__(self, path: Path, level: str):
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.level = getattr(logging, level.upper())

    def __enter__(self):
        root = logging.getLogger("mmkgrec")
        root.addHandler(self.handler)
        self._old = root.level
        root.setLevel(self.level)
        return self

    def __exit__(self, *exc):
        root = logging.getLogger("mmkgrec")
        root.removeHandler(self.handler)
        root.setLevel(self._old)
        self.handler.close()


def train(model: str, dataset: str, out: str | Path | None = None, config_file=None,
          overrides: dict | list | None = None, resume: bool = False,
          command: str | None = None, overwrite: bool = False) -> "Run":
    """Train ``model`` on ``dataset`` and evaluate it on the test part.

    With ``out``, everything is written to that run directory (see the module docstring).
    ``config_file``: a YAML path, or ``variant:NAME`` for a packaged variant config.
    Configuration and data errors are raised before anything is written. An existing ``out``
    is refused unless it is an empty folder, or a run and ``overwrite`` is set (then only the
    run's own files are replaced; anything else in the folder stays). ``resume`` continues
    ``<out>.partial`` when its configuration and data are those of the interrupted run
    (:func:`mmkgrec.runs.check_resume`). A failure removes ``<out>.partial`` unless it holds a
    checkpoint to resume from (a run interrupted, or stopped by the system, while training) or
    it is the interrupted run this call continued.

    Under ``torchrun`` (several processes, :mod:`mmkgrec.distributed`) every process calls this
    with the same arguments: they are compared first (a difference is refused on every process),
    each trains on its block of every global batch and evaluates its own users, and rank 0 alone
    writes the run directory."""
    t_start = time.perf_counter()
    distributed.init_from_env()
    config, err = None, None
    try:
        with config_file_path(config_file) as path:
            config = load_config(model, dataset, path, overrides)
        check_device(config["device"])
    except (MMKGRecError, OSError, KeyError) as e:
        err = e
    distributed.agree(err, "its configuration")  # no process waits for one that stopped here
    out = Path(out) if out else None
    if distributed.active():
        distributed.check_same_config({**config.to_dict(), "(--out)": str(out),
                                       "(--resume)": bool(resume)})
        device = distributed.local_device(config["device"])
        if device != config["device"]:
            config = config.updated(device=device)
    partial = None
    if out is not None:
        runs.check_out(out, overwrite)
        partial = out.with_name(out.name + ".partial")
        runs.check_partial(partial, resume)
    ds, split, net, features, kg = _prepare_in_turn(config)
    if distributed.world_size() > split.n_users:
        raise distributed.DistributedError(
            f"{distributed.world_size()} processes for the {split.n_users} users of "
            f"{config['dataset']}: every process needs users of its own; start at most "
            f"{split.n_users}")
    fingerprint = runs.fingerprint(ds, split)
    if features:  # recorded, not checked: --resume and load compare the data and split only
        fingerprint["features"] = runs.features_digest(features)
    if partial is not None and resume:
        runs.check_resume(partial, config, fingerprint)
    continued = partial is not None and resume and runs.resumable(partial)
    main = distributed.is_main()
    try:
        if partial is not None and main:
            if partial.exists() and not resume:
                runs.remove_partial(partial)
            partial.mkdir(parents=True, exist_ok=True)
            runs.write_text_atomic(partial / "config.yaml",
                                   yaml.safe_dump(config.to_dict(), sort_keys=True))
            runs.write_text_atomic(partial / runs.FINGERPRINT, json.dumps(fingerprint))
        distributed.barrier()
        metrics, run_id = _train_and_test(config, ds, split, net, features, kg, partial, resume,
                                          command, t_start, fingerprint)
        if partial is not None and main:
            shutil.rmtree(partial / "checkpoint", ignore_errors=True)
            runs.commit(partial, out)
        distributed.barrier()  # the run directory is complete before any process returns
    except BaseException as e:
        if partial is not None and main:
            runs.after_failure(partial, e, keep=continued)
        raise
    return Run(config, ds, split, net, metrics, out,
               data=runs.RunData(out) if out is not None else None)


def _train_and_test(config, ds, split, net, features, kg, partial, resume, command, t_start,
                    fingerprint):
    """Fit, test and (with ``partial``, on rank 0) write the run's files; returns
    (metrics, run_id)."""
    ctx = (_LogToFile(partial / "log.txt", config["log_level"])
           if partial and distributed.is_main() else _NullCtx())
    run_id = None
    with ctx, _quiet_unless_main():
        log.info("data %s | split %s", ds.describe(), split.describe())
        trainer = Trainer(net, split, config, partial / "checkpoint" if partial else None,
                          config["device"])
        result = trainer.fit(resume=resume)
        test_eval = make_evaluator(split, "test", config, net)
        test_metrics, acc, test_s = test_eval.evaluate(net, config["device"])
        log.info("test %s", " ".join(f"{k}={v:.4f}" for k, v in test_metrics.items()))
        eval_times = result.eval_s + [test_s]
        metrics = {
            "model": config["model"], "dataset": config["dataset"], "seed": config["seed"],
            "best_epoch": result.best_epoch, "epochs_run": len(result.train_epoch_s),
            "valid": result.best_valid, "test": test_metrics,
            "n_test_users": len(acc.user_ids), "n_test_users_excluded": acc.n_excluded,
            "timing": {"train_epoch_s": median(result.train_epoch_s), "eval_s": median(eval_times),
                       "total_s": time.perf_counter() - t_start},
            "peak_rss_mb": peak_rss_mb(), "versions": versions(), "git_sha": git_sha(),
            "command": command or " ".join(sys.argv),
            "data": ds.describe(), "split": split.describe(), "history": result.history,
            "fingerprint": fingerprint,
        }
        if hasattr(test_eval, "details"):  # e.g. classification's per-label table
            metrics["test_details"] = test_eval.details()
        if distributed.world_size() > 1:
            metrics["world_size"] = distributed.world_size()
        if partial is not None and distributed.is_main():
            run_id = runs.new_run_id()
            runs.save_weights(partial / WEIGHTS,
                              {k: v.detach().contiguous() for k, v in net.state_dict().items()},
                              _weights_meta(run_id, config, ds))
            per_user = acc.per_user()
            ids = ds.item_ids if acc.unit == "item" else ds.user_ids  # classification: per item
            tmp = partial / ".per_user_test.tmp.npz"
            np.savez(tmp, **{f"{acc.unit}_ids": np.asarray(ids[acc.user_ids], dtype=str)},
                     **{k: v for k, v in per_user.items()})
            os.replace(tmp, partial / "per_user_test.npz")
            runs.write_text_atomic(partial / "metrics.json",
                                   json.dumps(metrics, indent=2, default=float))
            runs.write_run_data(partial, run_id, config, ds, split, net, features, kg,
                                fingerprint=fingerprint)
    return metrics, run_id


def check_device(device: str) -> None:
    """ConfigError naming ``device`` when this machine has no such device (``cuda`` without a
    GPU, ``cuda:3`` on a machine with two, ``mps`` off Apple silicon)."""
    kind, _, index = str(device).partition(":")
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError("device", f"'{device}': this machine has no CUDA device (torch "
                              f"{torch.__version__}); use device=cpu")
        if index and int(index) >= n:
            raise ConfigError("device", f"'{device}': this machine has {n} CUDA device(s), "
                              f"cuda:0 .. cuda:{n - 1}")
    elif kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("device", f"'{device}': MPS is not available on this machine; use "
                          "device=cpu")


WEIGHTS = "model.safetensors"


def _weights_meta(run_id: str, config, ds) -> dict:
    return {"format": runs.FORMAT, "run_id": run_id, "kind": "weights",
            "model": str(config["model"]), "dataset": str(ds.name)}


@contextlib.contextmanager
def _quiet_unless_main():
    """Ranks other than 0 of a distributed run log warnings only (rank 0 reports the run)."""
    if distributed.is_main():
        yield
        return
    root = logging.getLogger("mmkgrec")
    old = root.level
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(old)


class _NullCtx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


EVAL_KEYS = frozenset({"eval_protocol", "sampled_negatives", "metrics", "topk", "eval_batch_size",
                       "eval_next_item", "mask_history_seq"})
RECOMMEND_FORMATS = ("csv", "parquet")
# scores of one chunk of users stay under this many bytes (float32 [chunk, n_items])
CHUNK_BYTES = 1 << 28


class Run:
    """A trained model with its data: ``recommend``, ``recommend_batch``, ``recommend_all``,
    ``similar_items``, ``evaluate``, ``metrics``.

    ``recommend`` leaves out every item the user interacted with anywhere in the dataset (the
    run's ``exclude.safetensors``); ``data`` (a :class:`~mmkgrec.runs.RunData`) is the run
    directory's stored data, when there is one."""

    def __init__(self, config, dataset, split, model, metrics=None, path=None, data=None,
                 exclude: tuple | None = None):
        self.config, self.dataset, self.split, self.model = config, dataset, split, model
        self.metrics, self.path = metrics or {}, path
        self.data = data
        if exclude is None:
            exclude = runs.exclusion_csr(dataset)
        self._exclude = (torch.from_numpy(np.asarray(exclude[0], dtype=np.int64)),
                         torch.from_numpy(np.asarray(exclude[1], dtype=np.int64)))
        self._ready = False  # model.prepare_eval() done and still valid
        self._vectors = self._index = None

    # ---- ids ---------------------------------------------------------------------------
    def _index_of(self, raw, kind: str) -> int:
        try:
            return self.dataset.user_index(raw) if kind == "user" else self.dataset.item_index(raw)
        except KeyError:
            where = f"run {self.path}" if self.path else "this run"
            raise runs.UnknownIdError(f"unknown {kind} id '{raw}': {where} (dataset "
                                      f"'{self.dataset.name}') does not know it") from None

    def user_index(self, user) -> int:
        """The dense id of the raw user id ``user`` (UnknownIdError naming it otherwise)."""
        return self._index_of(user, "user")

    def item_index(self, item) -> int:
        """The dense id of the raw item id ``item`` (UnknownIdError naming it otherwise)."""
        return self._index_of(item, "item")

    # ---- recommendation ------------------------------------------------------------------
    def _prepare(self) -> None:
        """``prepare_eval`` once (a graph model propagates here, not per request)."""
        if not self._ready:
            self.model.eval()
            from .evaluation.common import check_finite_model

            check_finite_model(self.model, f"run {self.path}" if self.path else "")
            with torch.no_grad():
                self.model.prepare_eval()
            self._ready = True

    @torch.no_grad()
    def _top(self, users: torch.Tensor, k: int, exclude_seen: bool = True):
        """``(items [B, k'], scores [B, k'])`` (k' = min(k, n_items)) for dense ``users``, best
        first, ties by lower item id; excluded items score ``-inf``."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self._prepare()
        scores = self.model.score_all(users.to(self.config["device"])).float().cpu()
        if exclude_seen:
            scores[self._excluded(users)] = -torch.inf
        top = _topk(scores, k)
        return top, scores.gather(1, top)

    def _excluded(self, users: torch.Tensor):
        """(rows, columns) of ``users``' excluded items in a ``[len(users), n_items]`` matrix; a
        run of consecutive users (the batch paths) slices the CSR directly."""
        indptr, indices = self._exclude
        first, n = int(users[0]), len(users)
        if n == 1 or bool((users == torch.arange(first, first + n)).all()):
            a, b = int(indptr[first]), int(indptr[first + n])
            rows = torch.repeat_interleave(torch.arange(n), indptr[first + 1:first + n + 1]
                                           - indptr[first:first + n], output_size=b - a)
            return rows, indices[a:b]
        from .evaluation.ranking import _rows_of

        return _rows_of(indptr, indices, users)

    def _pairs(self, items: torch.Tensor, scores: torch.Tensor) -> list[tuple[str, float]]:
        ids = self.dataset.item_ids
        return [(str(ids[i]), s) for i, s in zip(items.tolist(), scores.tolist())
                if math.isfinite(s)]

    def recommend(self, user, k: int = 20, exclude_seen: bool = True) -> list[tuple[str, float]]:
        """Top-``k`` (raw item id, score) for the raw user id ``user``: one user's scoring; by
        default items the user interacted with anywhere in the dataset are left out."""
        u = self.user_index(user)
        items, scores = self._top(torch.tensor([u]), k, exclude_seen)
        return self._pairs(items[0], scores[0])

    def chunk_size(self) -> int:
        """Users scored at once by the batch paths: ``[chunk, n_items]`` float32 scores stay
        under 256 MiB (and at most 4,096 users)."""
        return max(1, min(4096, CHUNK_BYTES // (4 * max(self.split.n_items, 1))))

    def recommend_batch(self, users, k: int = 20,
                        exclude_seen: bool = True) -> list[list[tuple[str, float]]]:
        """:meth:`recommend` for each raw user id of ``users``, scored in chunks."""
        dense = torch.tensor([self.user_index(u) for u in users], dtype=torch.long)
        out = []
        for s in range(0, len(dense), self.chunk_size()):
            items, scores = self._top(dense[s:s + self.chunk_size()], k, exclude_seen)
            out += [self._pairs(i, sc) for i, sc in zip(items, scores)]
        return out

    def iter_recommendations(self, k: int = 20, users=None, exclude_seen: bool = True,
                             chunk: int | None = None):
        """``(users, items, scores)`` per chunk of dense user ids (default: every user), as
        :meth:`recommend` ranks them (dense ids; excluded items score ``-inf``)."""
        dense = (torch.arange(self.split.n_users) if users is None
                 else torch.as_tensor(np.asarray(users, dtype=np.int64)))
        chunk = chunk or self.chunk_size()
        for s in range(0, len(dense), chunk):
            u = dense[s:s + chunk]
            items, scores = self._top(u, k, exclude_seen)
            yield u, items, scores

    def recommend_all(self, out: str | Path, k: int = 20, fmt: str | None = None,
                      exclude_seen: bool = True, chunk: int | None = None) -> int:
        """Write the top-``k`` of every user to ``out``: one row per (user, rank) with columns
        ``user, rank, item, score``; ``fmt`` ``csv`` or ``parquet`` (default: by the suffix;
        Parquet needs ``pyarrow``, the ``parquet`` extra). Users are scored in chunks (bounded
        memory) and rows written as they come, to a temporary file renamed at the end. Returns
        the number of rows."""
        out = Path(out)
        fmt = fmt or ("parquet" if out.suffix.lower() in (".parquet", ".pq") else "csv")
        if fmt not in RECOMMEND_FORMATS:
            raise MMKGRecError(f"unknown output format '{fmt}'; choose one of {RECOMMEND_FORMATS}")
        writer_cls = _ParquetRows if fmt == "parquet" else _CsvRows
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        n = 0
        try:
            with writer_cls(tmp) as w:
                for users, items, scores in self.iter_recommendations(k, None, exclude_seen, chunk):
                    n += w.write(self.dataset.user_ids, self.dataset.item_ids, users, items, scores)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return n

    # ---- similar items -------------------------------------------------------------------
    def item_vectors(self) -> np.ndarray:
        """The model's item vectors ``[n_items, d]`` (stored in the run directory, or computed);
        MMKGRecError for a model that has none."""
        if self._vectors is None:
            v = self.data.item_vectors() if self.data is not None else None
            if v is None and self.data is None:
                v = runs.item_vectors_of(self.model)
            if v is None:
                raise MMKGRecError(f"{self.config['model']} exposes no item vectors, so it has no "
                                   "item-to-item similarity; similar_items needs a model with "
                                   "item_vectors() (vector models such as BPR, LightGCN, VBPR, "
                                   "KGAT, and the sequential models)")
            self._vectors = np.asarray(v, dtype=np.float32)
        return self._vectors

    def similarity_index(self):
        """The cosine :class:`~mmkgrec.retrieval.ItemIndex` over :meth:`item_vectors`."""
        if self._index is None:
            vectors = self.item_vectors()
            index = self.data.index() if self.data is not None else None
            if index is None:
                from .retrieval import ItemIndex

                index = ItemIndex(vectors, metric="cosine", kind="flat")
            self._index = index
        return self._index

    def similar_items(self, item, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` items nearest to the raw item id ``item`` by cosine similarity of the
        model's item vectors (the item itself left out), as (raw item id, similarity)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        i = self.item_index(item)
        index = self.similarity_index()
        scores, ids = index.search(self.item_vectors()[i:i + 1], k + 1)
        keep = (ids[0] >= 0) & (ids[0] != i)
        ids, scores = ids[0][keep][:k], scores[0][keep][:k]
        return [(str(self.dataset.item_ids[j]), float(s)) for j, s in zip(ids, scores)]

    # ---- evaluation ----------------------------------------------------------------------
    def _eval_config(self, overrides) -> Config:
        """The run's config with ``overrides`` of evaluation settings (EVAL_KEYS) only."""
        from .config import parse_overrides

        ov = parse_overrides(overrides)
        bad = sorted(set(ov) - EVAL_KEYS)
        if bad:
            raise ConfigError(bad[0], f"not an evaluation setting; re-evaluation may change only "
                              f"{sorted(EVAL_KEYS)}", "--set")
        return self.config.updated(**ov) if ov else self.config

    def evaluate(self, part: str = "test", overrides: dict | list[str] | None = None) -> dict:
        """Metrics of ``part``; ``overrides`` change evaluation settings only (EVAL_KEYS), e.g.
        ``{"eval_protocol": "sampled"}`` for the sampled mode beside the full ranking."""
        evaluator = make_evaluator(self.split, part, self._eval_config(overrides), self.model)
        self._ready = False  # evaluation leaves the model's caches as it found them
        metrics, _, _ = evaluator.evaluate(self.model, self.config["device"])
        return metrics

    def evaluate_by_popularity(self, n_groups: int = 3, part: str = "test",
                               overrides: dict | list[str] | None = None) -> list[dict]:
        """Metrics of ``part`` per item-popularity group, most popular first
        (:func:`~mmkgrec.evaluation.popularity.evaluate_by_popularity`); ``overrides`` as for
        :meth:`evaluate` (e.g. ``topk``)."""
        from .evaluation.popularity import evaluate_by_popularity

        self._ready = False
        return evaluate_by_popularity(self.split, self.model, self._eval_config(overrides),
                                      n_groups, part)

    def evaluate_cold(self, part: str = "test",
                      overrides: dict | list[str] | None = None) -> dict[str, dict]:
        """Metrics of ``part`` on the cold items or users of a cold-start split alone (empty for
        another split; :func:`~mmkgrec.evaluation.cold.evaluate_cold`); ``overrides`` as for
        :meth:`evaluate`."""
        from .evaluation.cold import evaluate_cold

        return evaluate_cold(self.split, self.model, self._eval_config(overrides), part)

    # ---- explanations --------------------------------------------------------------------
    def _explain_config(self, backend, options) -> Config:
        """The run's config with ``explain_*`` options (and ``backend``) applied, each checked."""
        from .config import parse_overrides

        ov = parse_overrides(options)
        bad = sorted(k for k in ov if not k.startswith("explain_"))
        if bad:
            raise ConfigError(bad[0], "not an explanation setting; explain takes only explain_* "
                              "keys", "--set")
        if backend is not None:
            ov["explain_backend"] = backend
        return self.config.updated(**ov) if ov else self.config

    def explainer(self):
        """The run's :class:`~mmkgrec.explain.Explainer` (evidence tables built once)."""
        if getattr(self, "_explainer", None) is None:
            from .explain import Explainer

            self._explainer = Explainer(self, self.config)
        return self._explainer

    def explain(self, user, item, backend: str | None = None, **options):
        """Why ``item`` suits ``user`` (raw ids), in sentences the run's evidence supports: an
        :class:`~mmkgrec.explain.Explanation` (``text``, ``sentences`` each with its supporting
        triples, ``backend``, ``verified``, ``notes``; ``to_dict()`` for JSON). ``backend``:
        ``template`` (default, deterministic), ``transformers`` or ``http``; ``options``:
        ``explain_*`` keys (e.g. ``explain_http_url``). Post-processing only: no score changes."""
        config = self._explain_config(backend, options)
        u, i = self.user_index(user), self.item_index(item)
        return self.explainer().explain(u, i, config["explain_backend"], config)

    def explain_top(self, user, k: int = 5, backend: str | None = None, **options):
        """:meth:`explain` for each of the user's top-``k`` recommendations, best first."""
        config = self._explain_config(backend, options)
        u = self.user_index(user)
        ex = self.explainer()
        return [ex.explain(u, self.item_index(item), config["explain_backend"], config)
                for item, _ in self.recommend(user, k)]

    # ---- stored data ---------------------------------------------------------------------
    @property
    def kg(self):
        """The run's :class:`~mmkgrec.graph.kg.KnowledgeGraph` (``None`` when it has none)."""
        return self.data.kg() if self.data is not None else None

    @property
    def image_dir(self) -> str | None:
        """The dataset's image folder, as the run recorded it."""
        return self.data.manifest.get("image_dir") if self.data is not None else None


def _topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """:func:`~mmkgrec.evaluation.metrics.topk_with_ties` (ties by lower item id), with a fast
    path: where the ``k + 1`` best scores of a row are all distinct, ``torch.topk``'s order is
    already that order; only rows holding a tie go through ``topk_with_ties``."""
    from .evaluation.metrics import topk_with_ties

    if k + 1 >= scores.shape[1]:
        return topk_with_ties(scores, k)
    vals, idx = torch.topk(scores, k + 1, dim=1, sorted=True)
    top = idx[:, :k].contiguous()
    tied = (vals[:, 1:] == vals[:, :-1]).any(1)
    if bool(tied.any()):
        rows = tied.nonzero(as_tuple=True)[0]
        top[rows] = topk_with_ties(scores[rows], k)
    return top


class _CsvRows:
    """Rows ``user,rank,item,score`` to a CSV file (ids quoted where they need it)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import csv

        self.f = open(self.path, "w", newline="", encoding="utf-8")
        self.w = csv.writer(self.f)
        self.w.writerow(["user", "rank", "item", "score"])
        return self

    def write(self, user_ids, item_ids, users, items, scores) -> int:
        ok = torch.isfinite(scores)
        n = 0
        for u, row, sc, keep in zip(user_ids[users.numpy()], items.tolist(), scores.tolist(),
                                    ok.tolist()):
            rows = [(u, r, item_ids[i], f"{s:.7g}")
                    for r, (i, s, o) in enumerate(zip(row, sc, keep), 1) if o]
            self.w.writerows(rows)
            n += len(rows)
        return n

    def __exit__(self, *exc):
        self.f.close()
        return False


class _ParquetRows:
    """The same rows to a Parquet file (``pyarrow``), one row group per chunk of users."""

    def __init__(self, path: Path):
        try:
            import pyarrow  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise MMKGRecError("writing Parquet needs pyarrow, which is not installed: pip "
                               "install 'mmkgrec[parquet]' (or write CSV: --out FILE.csv)") from None
        self.path = path

    def __enter__(self):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.schema = pa.schema([("user", pa.string()), ("rank", pa.int32()),
                                 ("item", pa.string()), ("score", pa.float32())])
        self.w = pq.ParquetWriter(str(self.path), self.schema)
        return self

    def write(self, user_ids, item_ids, users, items, scores) -> int:
        ok = torch.isfinite(scores).numpy()
        b, k = items.shape
        cols = {"user": np.repeat(user_ids[users.numpy()], k)[ok.ravel()],
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), b)[ok.ravel()],
                "item": item_ids[items.numpy().ravel()][ok.ravel()],
                "score": scores.numpy().ravel()[ok.ravel()]}
        table = self.pa.table({"user": self.pa.array(cols["user"].astype(str).tolist()),
                               "rank": cols["rank"], "item": self.pa.array(cols["item"].astype(str).tolist()),
                               "score": cols["score"]}, schema=self.schema)
        self.w.write_table(table)
        return table.num_rows

    def __exit__(self, *exc):
        self.w.close()
        return False


def load(run_dir: str | Path, device: str | None = None) -> Run:
    """Load a finished run from its directory alone: config, weights, and the stored data
    (:mod:`mmkgrec.runs`: id maps, split, pairs to exclude, item table, KG, item features); the
    dataset is neither read nor split, so a run copied to a machine without the data still
    recommends and evaluates. ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``) replaces the
    device the run was trained on, e.g. to serve a GPU-trained run on a CPU machine.

    A missing, truncated or foreign file raises :class:`~mmkgrec.runs.RunFileError` naming it.
    ``run.dataset.inter`` holds the pairs to exclude (every interaction of the dataset, without
    duplicates, ratings or timestamps); the split holds the interactions as trained."""
    run_dir = Path(run_dir)
    if device is not None:
        check_device(device)
    if not run_dir.is_dir():
        raise runs.RunFileError(run_dir, "not a run directory (no such folder)")
    data = runs.RunData(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise runs.RunFileError(cfg_path, "missing: not a finished run directory")
    try:
        config = load_run_config(cfg_path, device)
    except MMKGRecError as e:
        msg = _first_line(e)  # one line (a YAML parser's message spans several)
        if str(cfg_path) in msg:  # it names the file already
            raise runs.RunFileError(cfg_path, msg.split(f"{cfg_path}: ", 1)[-1]) from None
        raise runs.RunFileError(cfg_path, msg) from None
    model, dataset = config["model"], config["dataset"]
    m = data.manifest
    if (model, str(dataset)) != (m["model"], m["dataset"]):
        raise runs.RunFileError(cfg_path, f"configures {model} on '{dataset}', but the run is "
                                f"{m['model']} on '{m['dataset']}' ({runs.MANIFEST})")
    metrics = runs.read_json(run_dir / "metrics.json", "metrics")
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    user_ids, item_ids = data.ids()
    columns, types, entity = data.items()
    indptr, indices = data.exclusion()
    known = Interactions(np.repeat(np.arange(data.n_users), np.diff(indptr)), indices)
    ds = Dataset(name=m.get("dataset_name", m["dataset"]), user_ids=user_ids, item_ids=item_ids, inter=known,
                 item_features=columns, item_feature_types=types, item_entity=entity,
                 source=m.get("source", ""))
    split = data.split(ds)
    data.check_fingerprint(ds, split)
    cls = get_model_class(config["model"])
    requires = cls.requirements(config)
    kg = None
    if "kg" in requires:
        kg = data.kg()
        if kg is None:
            raise runs.RunFileError(data.path("kg"), f"missing: {model} is built from a KG")
    features = data.features()
    absent = sorted(set(requires) & set(CONTENT_INPUTS) - set(features))
    if absent:
        raise runs.RunFileError(data.path("features"), f"holds no {absent} features, which "
                                f"{model} is built from")
    seed_everything(config["seed"])
    net = cls(config, build_inputs(split, requires, config["device"], config, features=features,
                                   kg=kg)).to(config["device"])
    w_path = run_dir / WEIGHTS
    state = data.weights(w_path)
    try:
        net.load_state_dict(state)  # read on the CPU, copied to the model's device
    except RuntimeError as e:
        raise runs.RunFileError(w_path, f"the weights do not fit {model} on '{dataset}' "
                                f"({_first_line(e)})") from None
    return Run(config, ds, split, net, metrics, run_dir, data=data, exclude=(indptr, indices))


def _first_line(e: Exception) -> str:
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    return " ".join(lines[:2])[:300]
