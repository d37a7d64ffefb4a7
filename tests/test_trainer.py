import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import mmkgrec
from mmkgrec.data import load_dataset, split_dataset
from mmkgrec.data import sampling
from mmkgrec.data.sampling import sample_negatives

QUIET = {"show_progress": False}


def test_negative_sampling_excludes_positives(monkeypatch):
    rng = np.random.default_rng(0)
    n_items = 6
    users = np.repeat(np.arange(3), 200)
    pairs = ([0, 0, 0, 0, 0, 1], [0, 1, 2, 3, 4, 5])
    for limit in (10**9, 0):  # dense table, then sorted keys
        monkeypatch.setattr(sampling, "DENSE_LIMIT", limit)
        known = sampling.KnownPairs(*pairs, 3, n_items)
        assert (known.dense is None) == (limit == 0)
        neg = sample_negatives(users, n_items, known, rng, n=2)
        assert neg.shape == (600, 2)
        assert np.all(neg[users == 0] == 5)  # user 0 knows items 0-4: only item 5 is left
        assert not np.any(neg[users == 1] == 5)
        assert set(np.unique(neg[users == 2])) == set(range(6))  # uniform over all items


def test_early_stopping_restores_best_epoch():
    run = mmkgrec.train("BPR", "synthetic", overrides={**QUIET, "epochs": 40, "stopping_step": 2,
                                                       "learning_rate": 0.05})
    hist = [h for h in run.metrics["history"] if "valid" in h]
    best = max(hist, key=lambda h: h["valid"]["mrr@10"])
    assert run.metrics["best_epoch"] == best["epoch"]
    assert run.metrics["epochs_run"] == best["epoch"] + 3  # two more evaluations, then stop
    assert run.evaluate("valid")["mrr@10"] == pytest.approx(best["valid"]["mrr@10"])


def _cli(*args, env=None):
    return [sys.executable, "-m", "mmkgrec.cli", *args]


# A training process that kills itself with SIGKILL at the third optimiser step after the
# checkpoint of epoch 1 was written: inside epoch 2 whatever an epoch takes on this machine.
KILL_INSIDE_EPOCH_2 = """
import os, signal, sys
from pathlib import Path
from mmkgrec.training import trainer

latest = Path(sys.argv[sys.argv.index("--out") + 1] + ".partial") / "checkpoint" / "LATEST"
make_optimizer, steps = trainer.make_optimizer, []

def killing_optimizer(params, config):
    opt = make_optimizer(params, config)
    step = opt.step

    def counted(*args, **kwargs):
        if latest.is_file() and latest.read_text().strip() == "epoch-1":
            steps.append(1)
            if len(steps) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        return step(*args, **kwargs)

    opt.step = counted
    return opt

trainer.make_optimizer = killing_optimizer
from mmkgrec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path):
    common = ["--model", "LightGCN", "--dataset", "synthetic", "--set", "epochs=4",
              "--set", "train_batch_size=32", "--set", "show_progress=false",
              "--set", "stopping_step=0"]
    env = {**os.environ, "PYTHONPATH": str(Path(mmkgrec.__file__).parents[1])}
    ref = tmp_path / "ref"
    subprocess.run(_cli("train", *common, "--out", str(ref)), check=True, env=env,
                   capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILL_INSIDE_EPOCH_2, "train", *common, "--out",
                           str(killed)], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not killed.exists()  # no half-written run directory
    latest = killed.with_name("killed.partial") / "checkpoint" / "LATEST"
    assert latest.read_text().strip() == "epoch-1"  # killed inside epoch 2
    subprocess.run(_cli("train", *common, "--out", str(killed), "--resume"), check=True, env=env,
                   capture_output=True)
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log = (killed / "log.txt").read_text()
    assert "resumed after epoch 1" in log


def test_run_is_deterministic_for_a_seed():
    a = mmkgrec.train("BPR", "synthetic", overrides={**QUIET, "epochs": 2})
    b = mmkgrec.train("BPR", "synthetic", overrides={**QUIET, "epochs": 2})
    assert a.metrics["test"] == b.metrics["test"]
