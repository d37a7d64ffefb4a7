"""The one trainer: epochs over a model's batches (:mod:`mmkgrec.data.batches`), validation,
early stopping, checkpoints and resume.

Every source of randomness in an epoch is seeded from ``(seed, epoch)``, and a checkpoint is
written after every epoch, so a run killed at any point and resumed repeats the interrupted epoch
exactly and ends with the same weights as an uninterrupted run.

Under ``torchrun`` (:mod:`mmkgrec.distributed`) every process draws the same epoch and trains on
its block of each global batch of ``train_batch_size`` (:func:`~mmkgrec.distributed.shard_batch`),
the model wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, which all-reduces the
gradients; the loss weights make a step the step of the undivided batch, so the epochs do not
depend on the number of processes (and a checkpoint resumes under any number). Validation is
collective (each process scores its own users), so every process takes the same early-stopping
decision; rank 0 alone writes checkpoints, logs and shows progress.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .. import distributed
from ..config import config_value
from ..data.batches import AlternatingBatches, LabelledBatches, PairwiseBatches
from ..errors import CheckpointError, ConfigError, NonFiniteError
from ..evaluation.common import check_finite_model, first_non_finite, progress
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
        return PairwiseBatches.from_split(split, config)
    labelled = LabelledBatches.from_split(split, config)
    if own is None:
        return labelled
    if isinstance(own, AlternatingBatches):
        own.cf = labelled
        return own
    raise ConfigError("train_loss", f"'bce' is not available for {model.name}: its training "
                      f"batches ({type(own).__name__}) have no separate CF part to replace")


class LossStep(torch.nn.Module):
    """The model's training loss as a module's ``forward``, so that
    :class:`~torch.nn.parallel.DistributedDataParallel` (which hooks ``forward``) can wrap it:
    ``pointwise_loss`` for labelled ``(user, item, 0/1)`` batches (``train_loss: bce``), else
    ``loss``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.pointwise_loss(batch) if "labels" in batch else self.model.loss(batch)


def data_parallel(step: LossStep, batches, device) -> torch.nn.Module:
    """``step`` wrapped for DDP: parameters and buffers broadcast from rank 0 at construction,
    gradients averaged in every backward pass. Buffers are not synchronised in each forward pass
    (every process builds the same ones from the same data and updates them alike). When one
    batch leaves a parameter without a gradient (the CF phase of a model that alternates CF and
    KG phases, say), DDP is told to look for unused parameters in every step."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [torch.device(device).index] if str(device).startswith("cuda") else None
    return DistributedDataParallel(step, device_ids=ids, forward_sync_buffers=False,
                                   find_unused_parameters=_leaves_parameters_unused(step, batches,
                                                                                    device))


def _leaves_parameters_unused(step: LossStep, batches, device) -> bool:
    """Whether the first training batch leaves a trainable parameter without a gradient (one
    forward and backward pass on this process, before DDP wraps the model; gradients dropped)."""
    params = [p for p in step.parameters() if p.requires_grad]
    first = next(iter(batches.epoch(np.random.default_rng(0), device)), None)
    if first is None:
        return False
    buffers = {k: v.detach().clone() for k, v in step.named_buffers()}  # a pass may update some
    step(first).backward()
    unused = any(p.grad is None for p in params)
    for p in params:
        p.grad = None
    with torch.no_grad():
        for k, v in step.named_buffers():
            v.copy_(buffers[k])
    return unused


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
        self.world = distributed.world_size()
        if model.input_type != "none":
            self.optimizer = make_optimizer(model.optimizer_groups(config), config)
            self.batches = training_batches(model, split, config)
            self.step = LossStep(model)
            if self.world > 1:
                self.step = data_parallel(self.step, self.batches, device)

    # ---- checkpoints ---------------------------------------------------------------------
    def _save(self, state: dict, best_state: dict | None) -> None:
        if self.ckpt_dir is None or not distributed.is_main():  # rank 0 writes the checkpoint
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
            batches = progress(self.batches.epoch(rng, self.device), f"epoch {epoch}",
                               cfg["show_progress"], total=len(self.batches))
            try:
                total, n = self._epoch(batches, epoch)
            except RuntimeError as e:
                if self.world == 1 or not _lost_peer(e):
                    raise
                last = (f"the checkpoint of epoch {state['epoch']} in {self.ckpt_dir} stays "
                        "loadable: rerun the same command with --resume"
                        if self.ckpt_dir is not None and state["epoch"] >= 0 else
                        "no checkpoint was written yet")
                raise distributed.DistributedError(
                    f"rank {distributed.rank()} of {self.world}: training stopped in epoch "
                    f"{epoch} because another process of this run stopped "
                    f"({distributed.peer_error(e)}); "
                    f"{last}") from None
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


    def _epoch(self, batches, epoch: int) -> tuple[float, int]:
        """One pass over ``batches``: (sum of the batches' mean losses, batches). With several
        processes each trains on its block of every batch, weighted (shard_batch); the sum is
        then the global one (one all-gather per epoch)."""
        cfg, total, n = self.config, 0.0, 0
        for batch in batches:
            weight = 1.0
            if self.world > 1:  # this process's block of the global batch (a batcher may cut its own)
                cut = getattr(self.batches, "shard", distributed.shard_batch)
                batch, weight = cut(batch, self.world, distributed.rank())
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.step(batch)
            if not bool(torch.isfinite(loss.detach())):
                raise NonFiniteError(f"epoch {epoch}, batch {n}: the training loss is "
                                     f"{float(loss.detach())}" + _cause(self.model))
            (loss * weight if weight != 1.0 else loss).backward()
            if cfg["clip_grad_norm"]:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg["clip_grad_norm"])
            self.optimizer.step()
            total += float(loss.detach()) * weight
            n += 1
        if self.world > 1:
            total = sum(distributed.all_gather_objects(total)) / self.world
        return total, n


def _lost_peer(err: RuntimeError) -> bool:
    """Whether ``err`` is a collective that failed because a peer vanished (gloo / NCCL)."""
    backend = getattr(torch.distributed, "DistBackendError", ())
    text = str(err).lower()
    return isinstance(err, backend) or any(w in text for w in (
        "connection closed", "connection reset", "peer", "gloo", "nccl", "broken pipe"))


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
