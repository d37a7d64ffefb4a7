"""The Python API: ``train`` a model into a run directory, ``load`` a run and ``recommend``.

A run directory holds ``config.yaml`` (resolved), ``log.txt``, ``checkpoint/`` (weights in
safetensors), ``per_user_test.npz`` and ``metrics.json``. It is built under ``<out>.partial`` and
renamed when the run completes, so ``<out>`` is never half-written; a killed run resumes from
``<out>.partial`` with ``resume=True``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file

from .config import Config, load_config, load_run_config
from .data import load_dataset
from .data.split_factory import split_from_config
from .evaluation.evaluator import make_evaluator
from .models import build_inputs, get_model_class
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
    """Dataset, split, model inputs and an initialised model for ``config`` (seeded).

    The inputs are built on ``config['device']``; the model's parameters are initialised on the
    CPU and then moved there, so that a seed gives the same initial weights on every device (the
    CPU and CUDA generators draw different numbers), at the cost of one host-to-device copy of
    the parameters."""
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    ds = load_dataset(config["dataset"], config)
    split = split_from_config(ds, config)
    cls = get_model_class(config["model"])
    seed_everything(config["seed"])
    inputs = build_inputs(split, cls.requirements(config), config["device"], config)
    model = cls(config, inputs).to(config["device"])
    return ds, split, model


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
          command: str | None = None) -> "Run":
    """Train ``model`` on ``dataset`` and evaluate it on the test part.

    With ``out``, everything is written to that run directory (see the module docstring).
    Configuration and data errors are raised before anything is written."""
    t_start = time.perf_counter()
    config = load_config(model, dataset, config_file, overrides)
    ds, split, net = prepare(config)
    out = Path(out) if out else None
    partial = None
    if out is not None:
        if out.exists():
            raise FileExistsError(f"run directory {out} already exists; choose another --out")
        partial = out.with_name(out.name + ".partial")
        if partial.exists() and not resume:
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=True))
    ctx = _LogToFile(partial / "log.txt", config["log_level"]) if partial else _NullCtx()
    with ctx:
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
        }
        run = Run(config, ds, split, net, metrics, out)
        if partial is not None:
            save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()},
                      str(partial / "model.safetensors"))
            per_user = acc.per_user()
            np.savez(partial / "per_user_test.npz",
                     user_ids=np.asarray(ds.user_ids[acc.user_ids], dtype=str),
                     **{k: v for k, v in per_user.items()})
            (partial / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    if partial is not None:
        shutil.rmtree(partial / "checkpoint", ignore_errors=True)
        os.replace(partial, out)
    return run


class _NullCtx:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


EVAL_KEYS = frozenset({"eval_protocol", "sampled_negatives", "metrics", "topk", "eval_batch_size",
                       "eval_next_item", "mask_history_seq"})


class Run:
    """A trained model with its data: ``recommend``, ``evaluate``, ``metrics``."""

    def __init__(self, config, dataset, split, model, metrics=None, path=None):
        self.config, self.dataset, self.split, self.model = config, dataset, split, model
        self.metrics, self.path = metrics or {}, path
        self._seen = None

    def recommend(self, user, k: int = 20, exclude_seen: bool = True) -> list[tuple[str, float]]:
        """Top-``k`` (raw item id, score) for the raw user id ``user``; by default items the user
        interacted with anywhere in the dataset are left out."""
        u = self.dataset.user_index(user)
        self.model.eval()
        with torch.no_grad():
            self.model.prepare_eval()
            scores = self.model.score_all(torch.tensor([u], device=self.config["device"]))[0].float().cpu()
        if exclude_seen:
            inter = self.dataset.inter
            scores[torch.from_numpy(inter.item[inter.user == u])] = -torch.inf
        from .evaluation.metrics import topk_with_ties

        top = topk_with_ties(scores.unsqueeze(0), k)[0]
        top = top[torch.isfinite(scores[top])]
        return [(str(self.dataset.item_ids[i]), float(scores[i])) for i in top]

    def _eval_config(self, overrides) -> Config:
        """The run's config with ``overrides`` of evaluation settings (EVAL_KEYS) only."""
        from .config import parse_overrides

        ov = parse_overrides(overrides)
        bad = sorted(set(ov) - EVAL_KEYS)
        if bad:
            from .errors import ConfigError

            raise ConfigError(bad[0], f"not an evaluation setting; re-evaluation may change only "
                              f"{sorted(EVAL_KEYS)}", "--set")
        return self.config.updated(**ov) if ov else self.config

    def evaluate(self, part: str = "test", overrides: dict | list[str] | None = None) -> dict:
        """Metrics of ``part``; ``overrides`` change evaluation settings only (EVAL_KEYS), e.g.
        ``{"eval_protocol": "sampled"}`` for the sampled mode beside the full ranking."""
        evaluator = make_evaluator(self.split, part, self._eval_config(overrides), self.model)
        metrics, _, _ = evaluator.evaluate(self.model, self.config["device"])
        return metrics

    def evaluate_by_popularity(self, n_groups: int = 3, part: str = "test",
                               overrides: dict | list[str] | None = None) -> list[dict]:
        """Metrics of ``part`` per item-popularity group, most popular first
        (:func:`~mmkgrec.evaluation.popularity.evaluate_by_popularity`); ``overrides`` as for
        :meth:`evaluate` (e.g. ``topk``)."""
        from .evaluation.popularity import evaluate_by_popularity

        return evaluate_by_popularity(self.split, self.model, self._eval_config(overrides),
                                      n_groups, part)

    def evaluate_cold(self, part: str = "test",
                      overrides: dict | list[str] | None = None) -> dict[str, dict]:
        """Metrics of ``part`` on the cold items or users of a cold-start split alone (empty for
        another split; :func:`~mmkgrec.evaluation.cold.evaluate_cold`); ``overrides`` as for
        :meth:`evaluate`."""
        from .evaluation.cold import evaluate_cold

        return evaluate_cold(self.split, self.model, self._eval_config(overrides), part)


def load(run_dir: str | Path, device: str | None = None) -> Run:
    """Load a finished run: its config, the data (re-read and re-split deterministically) and the
    weights (safetensors). ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``) replaces the device
    the run was trained on, e.g. to serve a GPU-trained run on a CPU machine."""
    run_dir = Path(run_dir)
    cfg_path, w_path = run_dir / "config.yaml", run_dir / "model.safetensors"
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: {run_dir} is not a finished run directory")
    config = load_run_config(cfg_path, device)
    ds, split, net = prepare(config)
    net.load_state_dict(load_file(str(w_path)))  # read on the CPU, copied to the model's device
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    return Run(config, ds, split, net, metrics, run_dir)
