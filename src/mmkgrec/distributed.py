"""Several processes on PyTorch's own distributed engine (``torchrun``, DDP; gloo on CPUs, NCCL on
GPUs): which process this is, how work is cut between processes, and how results come together.

Nothing here invents a scheme of its own: the processes are started by ``torchrun`` (or by
``mmkgrec train --nproc N``, which calls it), they find each other through the environment
variables it sets, gradients are all-reduced by :class:`~torch.nn.parallel.DistributedDataParallel`
and results are gathered with ``torch.distributed`` collectives.

* Work is cut into **contiguous blocks that differ in size by at most one** (:func:`shard_bounds`):
  no element is duplicated or dropped, so 10 users on 3 processes are 4 + 3 + 3 users, never 12.
* Results are gathered **in rank order** (:func:`gather_concat`): the concatenation of the blocks
  is the undivided array, so every metric computed from it (per-user means, a global AUC over
  gathered scores) is the single-process one.
* A training batch is the **global** batch (``train_batch_size``): every process draws the same
  epoch (same seed) and keeps its block of each batch (:func:`shard_batch`), with a loss weight
  that makes DDP's mean of the gradients the gradient of the global batch's mean loss.

Without an initialised process group (one process) every function here is the identity.
"""

from __future__ import annotations

import datetime
import json
import os
import re

import numpy as np
import torch
import torch.distributed as dist

from .errors import MMKGRecError


class DistributedError(MMKGRecError, RuntimeError):
    """The processes of a distributed run disagree, or one of them stopped (``reason``: what the
    collective that noticed it reported)."""

    reason: str | None = None


def active() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files, logs and shows progress."""
    return rank() == 0


def launched() -> bool:
    """Whether the environment was set by ``torchrun`` for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(timeout_s: float = 1800.0) -> None:
    """Join the process group ``torchrun`` described in the environment (no-op when already
    joined or when there is one process): gloo, and NCCL besides for CUDA tensors where CUDA is
    available (each process then uses the GPU of its ``LOCAL_RANK``). A process that is gone or
    never comes makes the others fail after ``timeout_s`` at the latest."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return
    _import_group_defaults()
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))


def _import_group_defaults() -> None:
    """Import, before the process group exists, the parts of torch that take ``group.WORLD`` as a
    default argument (``torch.distributed.nn.functional`` and the modules importing it, all
    pulled in by ``torch._dynamo``, which the first optimiser or DDP imports). Imported after
    ``init_process_group``, such a default holds the group itself: ``destroy_process_group``
    then cannot free it, its gloo threads outlive :func:`shutdown`, and at interpreter exit one
    of them can release a tensor while Python finalises, which aborts a process whose work is
    done ("terminate called without an active exception"). Imported before, the default is
    ``None`` (the current group at each call)."""
    import torch._dynamo  # noqa: F401


def local_device(device: str) -> str:
    """The device of this process for a run configured on ``device``: a CUDA run puts process
    ``LOCAL_RANK`` on GPU ``LOCAL_RANK`` (one GPU per process, as NCCL requires)."""
    if active() and str(device) in ("cuda", "cuda:0"):
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_bounds(n: int, world: int | None = None, r: int | None = None) -> tuple[int, int]:
    """``[lo, hi)`` of process ``r``'s contiguous block of ``n`` elements over ``world``
    processes: the first ``n % world`` blocks hold one element more; no padding."""
    world = world_size() if world is None else world
    r = rank() if r is None else r
    q, extra = divmod(int(n), world)
    lo = r * q + min(r, extra)
    return lo, lo + q + (1 if r < extra else 0)


def shard(n: int) -> slice:
    """This process's block of ``n`` elements as a slice (everything with one process)."""
    return slice(*shard_bounds(n))


def peer_error(err: BaseException) -> str:
    """The gist of a failed collective's message: gloo's source location and advice dropped
    ("Read error [127.0.0.1]:9436: Connection reset by peer")."""
    if isinstance(err, DistributedError) and err.reason:
        return err.reason
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    return text.split(". This is typically")[0].rstrip(".")


def _lost(err: BaseException) -> DistributedError:
    reason = peer_error(err)
    out = DistributedError(f"rank {rank()} of {world_size()}: another process of this run "
                           f"stopped or cannot be reached ({reason})")
    out.reason = reason
    return out


def all_gather_objects(obj) -> list:
    """``obj`` of every process, in rank order (``[obj]`` with one process)."""
    if not active():
        return [obj]
    out = [None] * world_size()
    try:
        dist.all_gather_object(out, obj)
    except RuntimeError as e:  # gloo/NCCL report a vanished peer as RuntimeError subclasses
        raise _lost(e) from None
    return out


def gather_concat(*arrays):
    """Each array concatenated over the processes in rank order (numpy arrays or tensors; a
    tensor comes back as a CPU tensor). With one process, the arrays unchanged."""
    if not active():
        return arrays if len(arrays) != 1 else arrays[0]
    as_np = [a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
             for a in arrays]
    parts = all_gather_objects(as_np)
    out = []
    for j, a in enumerate(arrays):
        cat = np.concatenate([p[j] for p in parts])
        out.append(torch.from_numpy(cat) if isinstance(a, torch.Tensor) else cat)
    return tuple(out) if len(out) != 1 else out[0]


def barrier() -> None:
    if active():
        try:
            dist.barrier()
        except RuntimeError as e:
            raise _lost(e) from None


def agree(error: BaseException | None, what: str) -> None:
    """Every process reports whether ``what`` failed for it; if any did, every process raises:
    its own error, or one naming the first rank that failed (so no process waits forever in a
    collective another will never reach)."""
    if not active():
        if error is not None:
            raise error
        return
    msgs = all_gather_objects(None if error is None else str(error))
    if error is not None:
        raise error
    bad = [(r, m) for r, m in enumerate(msgs) if m is not None]
    if bad:
        r, m = bad[0]
        raise DistributedError(f"rank {r} refused {what}: {m}")


def check_same_config(config: dict) -> None:
    """Refuse to start when the processes were given different configurations (a process
    started with another ``--set``, say): every rank raises, naming the differing keys."""
    if not active():
        return
    mine = json.loads(json.dumps(config, sort_keys=True, default=str))
    allc = all_gather_objects(mine)
    for r, other in enumerate(allc):
        if other != allc[0]:
            keys = sorted(k for k in set(other) | set(allc[0]) if other.get(k) != allc[0].get(k))
            raise DistributedError(
                f"rank {r} was started with another configuration than rank 0 (keys "
                f"{', '.join(keys)}: {', '.join(f'{k}={other.get(k)!r} vs {allc[0].get(k)!r}' for k in keys[:3])}); "
                "every process of a run must get the same command")


def shard_batch(batch: dict, world: int | None = None, r: int | None = None) -> tuple[dict, float]:
    """``(this process's part of a global batch, its loss weight)``.

    Every tensor of ``batch`` is cut along its first dimension into contiguous blocks
    (:func:`shard_bounds`); other values (a phase tag) are kept. The weight ``W * n_r / n`` (``n``
    rows in the batch's first tensor, ``n_r`` in this block) times the block's mean loss, averaged
    over the ``W`` processes by DDP, is the global batch's mean loss. A block left empty (a last
    batch smaller than ``W``) gets the batch's first row with weight 0, so that the process still
    takes part in the gradient all-reduce."""
    world = world_size() if world is None else world
    r = rank() if r is None else r
    tensors = [v for v in batch.values() if isinstance(v, torch.Tensor) and v.dim() > 0]
    if world == 1 or not tensors:
        return batch, 1.0
    n = len(tensors[0])
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            lo, hi = shard_bounds(len(v), world, r)
            out[k] = v[lo:hi] if hi > lo else v[:1]
        else:
            out[k] = v
    lo, hi = shard_bounds(n, world, r)
    return out, (world * (hi - lo) / n if n else 0.0)
