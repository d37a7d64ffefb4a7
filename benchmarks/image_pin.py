"""The image encoder of the benchmark rows computed with the hand-crafted poster descriptor.

Every image-side row so far was computed while ``image_encoder: descriptor`` was the packaged
default, so its recorded command does not name the encoder. Once the default is a learned encoder,
that command would train on other features. Each queue therefore passes its job's overrides
through :func:`pinned`: a job whose model reads image features (``Model.requirements(config)``
holds ``image``) or whose protocol keeps only items with an image (``require_item_content``)
names the descriptor explicitly, as the last override, and every other job is left exactly as it
was. The decision is the model's own, from the job's full configuration (defaults, model file,
``config_file`` variant, overrides), so no suite keeps a list of its image rows by hand.

A job that names an encoder itself (``--features DIR`` on a GPU machine: ``file:`` features) keeps
it. Rows recorded before the pin lack it in their command; their recorded ``config`` shows the
descriptor (tests/test_bench_queue.py checks that the rebuilt command differs from the recorded
one by exactly this pin and nothing else).
"""

from __future__ import annotations

PIN = {"image_encoder": "descriptor"}


def uses_images(model: str, overrides: dict, dataset: str = "ml-100k") -> bool:
    """Whether ``model`` trained with ``overrides`` (``config_file`` a YAML layer) on ``dataset``
    reads image features, for its inputs or for the protocol's item filter."""
    from mmkgrec.config import load_config
    from mmkgrec.models import get_model_class

    ov = {k: v for k, v in overrides.items() if k != "config_file"}
    cfg = load_config(model, dataset, overrides.get("config_file"), ov)
    needs = get_model_class(model).requirements(cfg)
    return "image" in needs or "image" in (cfg.get("require_item_content") or [])


def pinned(model: str | None, overrides: dict, dataset: str = "ml-100k") -> dict:
    """``overrides`` with ``image_encoder: descriptor`` added last when the job reads image
    features and names no encoder itself. ``model`` None: a split export, pinned when its
    ``require_item_content`` holds ``image``."""
    if "image_encoder" in overrides:
        return dict(overrides)
    if model is None:
        needs = "image" in (overrides.get("require_item_content") or [])
    else:
        needs = uses_images(model, overrides, dataset)
    return {**overrides, **PIN} if needs else dict(overrides)
