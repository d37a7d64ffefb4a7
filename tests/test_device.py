"""Every registered model trains and evaluates on an accelerator, and a run trained there scores
the same when it is loaded on the CPU (``api.load(run, device="cpu")``, the train-on-GPU,
serve-on-CPU path).

The device is ``cuda`` unless MMKGREC_TEST_DEVICE names another (``cpu`` checks the test itself,
``mps`` on Apple machines). Skipped, saying why, where torch sees no such device: CI has none;
run ``pytest tests/test_device.py`` on a GPU machine."""

from __future__ import annotations

import math
import os

import pytest
import torch

from mmkgrec import api
from mmkgrec.models import registered_models

DEVICE = os.environ.get("MMKGREC_TEST_DEVICE", "cuda")


def _available(device: str) -> bool:
    if device.startswith("cuda"):
        return torch.cuda.is_available()
    if device == "mps":
        return torch.backends.mps.is_available()
    return device == "cpu"


pytestmark = [pytest.mark.skipif(not _available(DEVICE),
                                 reason=f"torch sees no {DEVICE} device (set MMKGREC_TEST_DEVICE)"),
              pytest.mark.usefixtures("fake_features")]  # small fake item features

# small, quick settings; everything else is the model's own config
SMALL = {"epochs": 2, "eval_step": 1, "show_progress": False, "train_batch_size": 256,
         "seed": 3}
CLASSIFY = {"task": "classification", "target_column": "class"}
PER_MODEL = {"MultiKG4Rec": {"fusion_seq_len": 6, "fusion_blocks": 2, "layers": [16, 8]},
             "Majority": CLASSIFY, "ContentLR": CLASSIFY,
             "BiasedMF": {"task": "rating"}, "BiasOnly": {"task": "rating"}}


@pytest.mark.parametrize("name", registered_models())
def test_trains_on_the_device_and_scores_the_same_on_the_cpu(name, tmp_path):
    out = tmp_path / "run"
    run = api.train(name, "synthetic", out,
                    overrides={**SMALL, **PER_MODEL.get(name, {}), "device": DEVICE})
    kind = torch.device(DEVICE).type
    params = list(run.model.parameters())
    assert all(p.device.type == kind for p in params), name
    if params:  # Pop has none
        assert len(run.metrics["history"]) == 2
    on_device = run.evaluate("test")
    assert all(math.isfinite(v) for v in on_device.values()), on_device
    if PER_MODEL.get(name, {}).get("task") != "classification":  # a classifier ranks nothing
        assert run.recommend(run.dataset.user_ids[0], 5)

    served = api.load(out, device="cpu")
    assert all(p.device.type == "cpu" for p in served.model.parameters())
    on_cpu = served.evaluate("test")
    # the same weights: equal metrics up to floating-point ties between devices
    for k, v in on_device.items():
        assert abs(on_cpu[k] - v) <= 0.01, (name, k, v, on_cpu[k])
    assert on_device == pytest.approx(run.metrics["test"], abs=1e-6)
