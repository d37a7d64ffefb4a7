"""Settings whose packaged default changed after benchmark rows were computed with the old one.

A queue passes each job's overrides through :func:`pinned`, which names the old value as the last
override(s) of exactly the jobs the change would affect, so a resumed or extended queue trains its
new rows the way its stored rows were trained, and every other job is left exactly as it was.
The decision is the model's own, from the job's full configuration (defaults, model file,
``config_file`` variant, overrides), so no suite keeps a list of its rows by hand.

``image_encoder: descriptor``
    Every image-side row so far was computed while the hand-crafted poster descriptor was the
    default; once the default became a learned encoder, such a row's command would train on other
    features. Pinned where the model reads image features (``Model.requirements(config)`` holds
    ``image``) or the protocol keeps only items with an image (``require_item_content``). A job
    that names an encoder itself (``--features DIR`` on a GPU machine: ``file:`` features) keeps
    it.

``link_item_map: null``
    RecBole's ``ml-100k.link`` is keyed by MovieLens-1M movie ids, so read as given it links each
    ML-100K film to another film's Freebase entity; the packaged ML-100K settings now re-key it
    through the dataset's title map. Every stored row that reads ML-100K's external KG was
    computed with the link as given, and is pinned to it (``requirements`` holds ``kg`` and
    ``kg_merge`` takes the external KG).

Rows recorded before a pin lack it in their command; their recorded ``config`` shows the old
value, or lacks the key (tests/test_bench_queue.py checks that the rebuilt command differs from
the recorded one by exactly these pins and nothing else).
"""

from __future__ import annotations

IMAGE_PIN = {"image_encoder": "descriptor"}
LINK_PIN = {"link_item_map": None}


def _config(model: str, overrides: dict, dataset: str):
    from mmkgrec.config import load_config

    ov = {k: v for k, v in overrides.items() if k != "config_file"}
    return load_config(model, dataset, overrides.get("config_file"), ov)


def _reads_images(cfg, needs) -> bool:
    return "image" in needs or "image" in (cfg.get("require_item_content") or [])


def _reads_remapped_link(cfg, needs) -> bool:
    return (bool(cfg.get("link_item_map")) and cfg.get("load_kg", True)
            and cfg.get("kg_merge") in ("auto", "external", "both") and "kg" in needs)


def pinned(model: str | None, overrides: dict, dataset: str = "ml-100k") -> dict:
    """``overrides`` with the old values of :data:`IMAGE_PIN` and :data:`LINK_PIN` added last
    (in that order) where the job depends on them and names no value itself: the job reads image
    features, for its inputs or for the protocol's item filter; it reads an external KG whose
    ``.link`` the packaged settings of ``dataset`` re-key (``link_item_map``). ``model`` None: a
    split export, pinned to the descriptor when its ``require_item_content`` holds ``image``."""
    from mmkgrec.models import get_model_class

    out = dict(overrides)
    if model is None:
        if "image_encoder" not in overrides and "image" in (overrides.get("require_item_content")
                                                             or []):
            out.update(IMAGE_PIN)
        return out
    cfg = _config(model, overrides, dataset)
    needs = get_model_class(model).requirements(cfg)
    if "image_encoder" not in overrides and _reads_images(cfg, needs):
        out.update(IMAGE_PIN)
    if "link_item_map" not in overrides and _reads_remapped_link(cfg, needs):
        out.update(LINK_PIN)
    return out


def link_pinned(model: str, overrides: dict, dataset: str = "ml-100k") -> dict:
    """``overrides`` with :data:`LINK_PIN` added last where ``model`` reads the external KG whose
    link the packaged settings re-key and the job names no ``link_item_map`` itself (for queues
    whose jobs name their image encoder themselves)."""
    from mmkgrec.models import get_model_class

    cfg = _config(model, overrides, dataset)
    if "link_item_map" not in overrides and _reads_remapped_link(
            cfg, get_model_class(model).requirements(cfg)):
        return {**overrides, **LINK_PIN}
    return dict(overrides)
