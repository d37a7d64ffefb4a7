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


def uses_images(model: str, overrides: dict, dataset: str = "ml-100k") -> bool:
    """Whether ``model`` trained with ``overrides`` (``config_file`` a YAML layer) on ``dataset``
    reads image features, for its inputs or for the protocol's item filter."""
    from mmkgrec.models import get_model_class

    cfg = _config(model, overrides, dataset)
    needs = get_model_class(model).requirements(cfg)
    return "image" in needs or "image" in (cfg.get("require_item_content") or [])


def reads_remapped_link(model: str, overrides: dict, dataset: str = "ml-100k") -> bool:
    """Whether ``model`` with ``overrides`` reads an external KG whose ``.link`` the packaged
    settings of ``dataset`` re-key (``link_item_map``), so that the change of default moves it."""
    from mmkgrec.models import get_model_class

    cfg = _config(model, overrides, dataset)
    return (bool(cfg.get("link_item_map")) and cfg.get("load_kg", True)
            and cfg.get("kg_merge") in ("auto", "external", "both")
            and "kg" in get_model_class(model).requirements(cfg))


def pinned(model: str | None, overrides: dict, dataset: str = "ml-100k") -> dict:
    """``overrides`` with the old values of :data:`IMAGE_PIN` and :data:`LINK_PIN` added last
    (in that order) where the job depends on them and names no value itself. ``model`` None: a
    split export, pinned to the descriptor when its ``require_item_content`` holds ``image``."""
    out = dict(overrides)
    if "image_encoder" not in overrides:
        if model is None:
            needs = "image" in (overrides.get("require_item_content") or [])
        else:
            needs = uses_images(model, overrides, dataset)
        if needs:
            out.update(IMAGE_PIN)
    return link_pinned(model, out, dataset) if model is not None else out


def link_pinned(model: str, overrides: dict, dataset: str = "ml-100k") -> dict:
    """``overrides`` with :data:`LINK_PIN` added last where ``model`` reads the external KG whose
    link the packaged settings re-key and the job names no ``link_item_map`` itself (for queues
    whose jobs name their image encoder themselves)."""
    if "link_item_map" not in overrides and reads_remapped_link(model, overrides, dataset):
        return {**overrides, **LINK_PIN}
    return dict(overrides)
