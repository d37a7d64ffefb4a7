"""The one trainer: epochs over a model's batches (:mod:`mmkgrec.data.batches`), validation,
early stopping, checkpoints and resume.

Every source of randomness in an epoch is seeded from ``(seed, epoch)``, and a checkpoint is
written after every epoch, so a run killed at any point and resumed repeats the interrupted epoch
exactly and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..config import config_value
from ..data.batches import AlternatingBatches, LabelledBatches, PairwiseBatches
from ..errors import CheckpointError, ConfigError, NonFiniteError
from ..evaluation.common import check_finite_model, first_non_finite
from ..evaluation.evaluator import make_evaluator
from ..evaluation.metric_names import is_better, worst_value

log = logging.getLogger("mmkgrec.train")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**31)


def make_optimizer(params, config) -> torch.optim.Optimizer:
    kw = dict(lr=config["learning_rate"], weight_decay=config["weight_decay"])
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError):  # fused kernels missing for this device/build
        return torch.optim.Adam(params, **kw)


def training_batches(model, split, config):
    """The batches the trainer iterates: the model's own (``make_batches``) or pairwise ones for
    ``train_loss: bpr``; for ``bce``, :class:`~mmkgrec.data.batches.LabelledBatches` (a CTR
    split's labelled training pairs, fixed negatives drawn once as in KGCN; for any other split
    the training positives plus ``num_neg`` uniform negatives per positive drawn afresh every
    epoch), which also replace the CF phase of a model that alternates CF and KG phases (KGAT's
    :class:`~mmkgrec.data.batches.AlternatingBatches`; its KG phase is unchanged)."""
    own = model.make_batches(split, config)
    if config_value(config, "train_loss") != "bce":
        if own is not None:
            return own
        return PairwiseBatches(split.train, split.n_items, config["train_batch_size"],
                               config["num_neg"])
    labelled = LabelledBatches.from_split(split, config)
    if own is None:
        return labelled
    if isinstance(own, AlternatingBatches):
        own.cf = labelled
        return own
    raise ConfigError("train_loss", f"'bce' is not available for {model.name}: its training "
                      f"batches ({type(own).__name__}) have no separate CF part to replace")


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict
    history: list = field(default_factory=list)
    train_epoch_s: list = field(default_factory=list)
    eval_s: list = field(default_factory=list)
    stopped_early: bool = False


class Trainer:
    """Train ``model`` on ``split`` with the training keys of ``config``.

    ``ckpt_dir`` (optional) receives a checkpoint after every epoch; ``fit(resume=True)`` continues
    from the newest one."""

    def __init__(self, model, split, config, ckpt_dir: str | Path | None = None, device="cpu"):
        self.model, self.split, self.config = model, split, config
        self.device = device
        self.ckpt_dir = Path(ckpt_dir) if ckpt_dir else None
        self.valid_metric = config["valid_metric"]
        self.evaluator = make_evaluator(split, "valid", config, model)
        if self.valid_metric not in self.evaluator.metrics:
            self.evaluator.metrics.append(self.valid_metric)
            from ..evaluation.metrics import parse_metric

            if hasattr(self.evaluator, "max_k"):
                self.evaluator.max_k = max(self.evaluator.max_k, parse_metric(self.valid_metric)[1])
        self.optimizer = None
        if model.input_type != "none":
            self.optimizer = make_optimizer(model.parameters(), config)
            self.batches = training_batches(model, split, config)

    # ---- checkpoints ---------------------------------------------------------------------
    def _save(self, state: dict, best_state: dict | None) -> None:
        if self.ckpt_dir is None:
            return
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        epoch = state["epoch"]
        tmp = self.ckpt_dir / f".epoch-{epoch}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file(_contiguous(self.model.state_dict()), str(tmp / "model.safetensors"))
        if best_state is not None:
            save_file(best_state, str(tmp / "best.safetensors"))
        if self.optimizer is not None:
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state))
        final = self.ckpt_dir / f"epoch-{epoch}"
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _write_text_atomic(self.ckpt_dir / "LATEST", final.name)
        for old in self.ckpt_dir.glob("epoch-*"):
            if old.name != final.name:
                shutil.rmtree(old, ignore_errors=True)

    def _load_latest(self):
        if self.ckpt_dir is None or not (self.ckpt_dir / "LATEST").is_file():
            return None
        d = self.ckpt_dir / (self.ckpt_dir / "LATEST").read_text().strip()
        what = d / "state.json"
        try:  # a checkpoint of another model, or damaged: one error naming its file
            state = json.loads(what.read_text())
            if not isinstance(state, dict) or "epoch" not in state:
                raise ValueError("not a checkpoint state")
            what = d / "model.safetensors"
            self.model.load_state_dict(load_file(str(what)))
            what = d / "optimizer.pt"
            if self.optimizer is not None and what.is_file():
                self.optimizer.load_state_dict(torch.load(what, weights_only=True))
            what = d / "best.safetensors"
            best = load_file(str(what)) if what.is_file() else None
        except Exception as e:  # noqa: BLE001 - json, safetensors and torch raise their own types
            raise CheckpointError(f"{what}: cannot resume from this checkpoint "
                                  f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}); "
                                  "remove the .partial folder to start again") from None
        return state, best

    # ---- training -----------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        cfg = self.config
        model = self.model
        if model.input_type == "none" or cfg["epochs"] == 0:
            try:
                metrics, _, secs = self.evaluator.evaluate(model, self.device)
            except NonFiniteError as e:
                raise NonFiniteError(f"epoch 0 (no training), validation: {e}") from None
            log.info("no training epochs | eval %.2fs | valid %s", secs, _fmt(metrics))
            return TrainResult(0, metrics, [{"epoch": 0, "valid": metrics}], [], [secs])
        state = {"epoch": -1, "best_epoch": -1, "best_score": worst_value(self.valid_metric),
                 "bad": 0, "history": [], "best_valid": {}, "train_epoch_s": [], "eval_s": []}
        best_state = None
        if resume:
            loaded = self._load_latest()
            if loaded is not None:
                state, best_state = loaded
                log.info("resumed after epoch %d", state["epoch"])
        stopped = False
        for epoch in range(state["epoch"] + 1, cfg["epochs"]):
            if state["bad"] >= cfg["stopping_step"] > 0:
                stopped = True
                break
            seed = epoch_seed(cfg["seed"], epoch)
            torch.manual_seed(seed)
            rng = np.random.default_rng(seed)
            model.train()
            t0 = time.perf_counter()
            model.on_epoch_start(epoch)
            total, n = 0.0, 0
            batches = self.batches.epoch(rng, self.device)
            if cfg["show_progress"] and sys.stderr.isatty():  # no bar in logs and pipes
                from tqdm import tqdm

                batches = tqdm(batches, total=len(self.batches), desc=f"epoch {epoch}", leave=False)
            for batch in batches:
                self.optimizer.zero_grad(set_to_none=True)
                # labelled (user, item, 0/1) batches: train_loss bce (training_batches)
                loss = model.pointwise_loss(batch) if "labels" in batch else model.loss(batch)
                if not bool(torch.isfinite(loss.detach())):
                    raise NonFiniteError(f"epoch {epoch}, batch {n}: the training loss is "
                                         f"{float(loss.detach())}" + _cause(model))
                loss.backward()
                if cfg["clip_grad_norm"]:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip_grad_norm"])
                self.optimizer.step()
                total += float(loss.detach())
                n += 1
            train_s = time.perf_counter() - t0
            check_finite_model(model, f"epoch {epoch}")
            state["train_epoch_s"].append(train_s)
            entry = {"epoch": epoch, "loss": total / max(n, 1), "train_s": train_s}
            if (epoch + 1) % cfg["eval_step"] == 0 or epoch == cfg["epochs"] - 1:
                try:
                    metrics, _, eval_s = self.evaluator.evaluate(model, self.device)
                except NonFiniteError as e:
                    raise NonFiniteError(f"epoch {epoch}, validation: {e}") from None
                state["eval_s"].append(eval_s)
                score = metrics[self.valid_metric]
                entry.update(valid=metrics, eval_s=eval_s)
                improved = is_better(score, state["best_score"], self.valid_metric)
                if improved:
                    state.update(best_score=score, best_epoch=epoch, best_valid=metrics, bad=0)
                    best_state = {k: v.detach().clone() for k, v in _contiguous(model.state_dict()).items()}
                else:
                    state["bad"] += 1
                log.info("epoch %d | loss %.4f | train %.2fs | eval %.2fs | valid %s=%.4f%s", epoch,
                         entry["loss"], train_s, eval_s, self.valid_metric, score,
                         " *" if improved else "")
            else:
                log.info("epoch %d | loss %.4f | train %.2fs", epoch, entry["loss"], train_s)
            state["history"].append(entry)
            state["epoch"] = epoch
            self._save(state, best_state)
        if best_state is not None:
            model.load_state_dict(best_state)
        return TrainResult(state["best_epoch"], state["best_valid"], state["history"],
                           state["train_epoch_s"], state["eval_s"], stopped)


def _cause(model) -> str:
    bad = first_non_finite(model)
    return (f"; {type(model).__name__}'s {bad} is not finite" if bad else "") + (
        " (lower learning_rate, set clip_grad_norm, or check the item features)")


def median(xs) -> float | None:
    return float(statistics.median(xs)) if xs else None


def _contiguous(sd: dict) -> dict:
    return {k: v.detach().contiguous() for k, v in sd.items()}


def _fmt(metrics: dict) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items())


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
