"""Named datasets resolved under ``$MMKGREC_DATA``, and loading any dataset from a config.

Names: ``ml-100k`` (atomic), ``lastfm-kg`` (KGCN format), ``amazon-book`` (KGAT format),
``synthetic`` (generated), or a path to any folder of atomic files ``<name>.inter`` (+ optional
``.item``, ``.user``, ``.kg``, ``.link``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..config import config_value, task_of
from ..errors import ConfigError, DataFormatError, MMKGRecError
from .dataset import Dataset, Interactions, align_table, build_dataset
from .readers import (confined_path, read_atomic, read_id_map, read_int_triples,
                      read_kgat_interactions, read_named_triples)

log = logging.getLogger(__name__)

KNOWN = {"ml-100k": "atomic", "lastfm-kg": "kgcn", "amazon-book": "kgat", "synthetic": "synthetic"}


def data_root() -> Path | None:
    root = os.environ.get("MMKGREC_DATA")
    return Path(root) if root else None


def resolve_path(name: str, data_path: str | None = None) -> Path:
    """The folder of dataset ``name``: ``data_path`` if given, a path if ``name`` is one, else
    ``$MMKGREC_DATA/<name>``."""
    if data_path:
        return Path(data_path)
    p = Path(name)
    if p.is_dir():
        return p
    root = data_root()
    if root is None:
        raise MMKGRecError(f"dataset '{name}': MMKGREC_DATA is not set and '{name}' is not a folder; "
                           f"set MMKGREC_DATA to the folder holding {sorted(KNOWN)} or run "
                           f"`mmkgrec data download {name}`")
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise MMKGRecError(f"dataset '{name}': a dataset name is a folder under MMKGREC_DATA "
                           f"({root}), and this one points outside it; give the folder's own "
                           "path instead")
    if not path.is_dir():
        raise MMKGRecError(f"dataset '{name}' not found at {path}")
    return path


def detect_format(path: Path) -> str:
    name = path.name
    if (path / f"{name}.inter").is_file():
        return "atomic"
    if (path / "train.txt").is_file() and (path / "test.txt").is_file():
        return "kgat"
    if any(path.glob("*ratings_final*")):
        return "kgcn"
    raise MMKGRecError(f"cannot tell the format of {path}: expected {name}.inter (atomic), "
                       "train.txt + test.txt (KGAT) or ratings_final (KGCN)")


def load_dataset(name: str, config=None) -> Dataset:
    """Load and preprocess a dataset with the data keys of ``config`` (a Config or dict)."""
    def cfg(key):
        return config_value(config, key)

    fmt = cfg("data_format")
    base = Path(str(name)).name
    if fmt == "auto":
        fmt = KNOWN.get(base) or detect_format(resolve_path(name, cfg("data_path")))
    pre = {k: cfg(k) for k in ("rating_threshold", "dedup", "user_min_inter", "item_min_inter")}
    if fmt == "kgcn" and pre["rating_threshold"] is None and task_of(config) != "ctr":
        raise ConfigError("rating_threshold", f"dataset '{name}' is in KGCN format: labelled "
                          "(user, item, 0/1) pairs whose label-0 rows are sampled negatives; "
                          "without a label rule they would count as interactions. Set "
                          f"rating_threshold: 1 (in {base}.yaml beside its files, --config or "
                          "--set) to keep the positives, or task: ctr")
    load_kg = cfg("load_kg")
    link_map = cfg("link_item_map")
    if link_map and fmt != "atomic":
        raise ConfigError("link_item_map", f"dataset '{name}' is in {fmt} format; the map "
                          "translates the item ids of an atomic .link file only")
    if fmt == "synthetic":
        from .synthetic import make_synthetic

        ds = make_synthetic(seed=0, **pre)
    else:
        path = resolve_path(name, cfg("data_path"))
        loader = {"atomic": load_atomic, "kgat": load_kgat, "kgcn": load_kgcn}[fmt]
        extra = {}
        if link_map and load_kg:
            where = confined_path(path / os.path.expanduser(str(link_map)), path,
                                  f"link_item_map '{link_map}'", cfg("allow_outside_paths"))
            extra["link_item_map"] = (where, *cfg("link_item_map_columns"))
        ds = loader(path, load_kg=load_kg, **extra, **pre)
    content = cfg("require_item_content")
    if content:
        ds = keep_items_with_content(ds, content, config, pre)
    n_sub = cfg("subsample_users")
    if n_sub:
        ds = subsample_users(ds, int(n_sub), pre)
    return ds


def subsample_users(ds: Dataset, n: int, pre: dict) -> Dataset:
    """Keep ``n`` users chosen with a fixed seed (0); items re-indexed to those still used."""
    if n >= ds.n_users:
        return ds
    users = np.sort(np.random.default_rng(0).choice(ds.n_users, n, replace=False))
    rows = np.flatnonzero(np.isin(ds.inter.user, users))
    inter = ds.inter.take(rows)
    sub = build_dataset(ds.name, ds.user_ids[inter.user], ds.item_ids[inter.item], inter.rating,
                        inter.timestamp, **{**pre, "rating_threshold": None}, source=ds.source)
    _carry_item_side(ds, sub)
    sub.stats = {**ds.stats, "subsample_users": n}
    return sub


def keep_items_with_content(ds: Dataset, modalities, config, pre: dict) -> Dataset:
    """Keep only items that have content in every one of ``modalities`` (``text``, ``image``:
    the masks of :func:`mmkgrec.features.item_feature_matrix`, so features are computed, or
    read from the store, for the whole catalogue first), then re-run the k-core filter, which
    reaches the joint fixpoint (the content condition does not depend on counts). The numbers
    of items and interactions removed go into ``stats``."""
    from ..features import item_feature_matrix

    mods = [modalities] if isinstance(modalities, str) else list(modalities)
    bad = [m for m in mods if m not in ("text", "image")]
    if bad:
        raise MMKGRecError(f"require_item_content: unknown modality {bad}; use text and/or image")
    keep_item = np.ones(ds.n_items, dtype=bool)
    for m in mods:
        keep_item &= np.asarray(item_feature_matrix(ds, m, config)[1], dtype=bool)
    rows = np.flatnonzero(keep_item[ds.inter.item])
    if len(rows) == len(ds.inter):
        ds.stats["removed_by_content_filter"] = 0
        return ds
    inter = ds.inter.take(rows)
    out = build_dataset(ds.name, ds.user_ids[inter.user], ds.item_ids[inter.item], inter.rating,
                        inter.timestamp, **{**pre, "rating_threshold": None}, source=ds.source)
    _carry_item_side(ds, out)
    out.stats = {**ds.stats, "removed_by_content_filter": int(len(ds.inter) - len(rows)),
                 "items_without_content": int((~keep_item).sum()),
                 "removed_by_kcore_after_content": out.stats.get("removed_by_kcore", 0)}
    return out


def _carry_item_side(src: Dataset, dst: Dataset) -> None:
    """Copy item-aligned side information from ``src`` to ``dst`` (a subset of its items)."""
    pos = {str(r): k for k, r in enumerate(src.item_ids)}
    idx = np.asarray([pos[str(r)] for r in dst.item_ids], dtype=np.int64)
    for name, col in src.item_features.items():
        dst.item_features[name] = col[idx] if isinstance(col, np.ndarray) else [col[k] for k in idx]
    dst.item_feature_types = dict(src.item_feature_types)
    dst.kg = src.kg
    dst.item_entity = None if src.item_entity is None else src.item_entity[idx]


def load_atomic(path: Path, load_kg: bool = True, link_item_map: tuple | None = None,
                **pre) -> Dataset:
    """RecBole atomic files. ``link_item_map``: ``(csv path, item column, link column)``, the
    translation of this dataset's item ids into the ids the ``.link`` file is keyed by
    (:func:`translate_links`)."""
    name = path.name
    inter_path = path / f"{name}.inter"
    t = read_atomic(inter_path)
    t.require("user_id", "item_id")
    for col in ("rating", "timestamp"):
        if col in t.types and t.types[col] != "float":
            raise DataFormatError(inter_path, f"column '{col}' must be of type float, header says "
                                  f"'{t.types[col]}'", line=1)
    _check_columns(t, inter_path)
    ds = build_dataset(name, t.columns["user_id"], t.columns["item_id"], t.columns.get("rating"),
                       t.columns.get("timestamp"), source=str(path), **pre)
    for kind in ("item", "user"):
        side = path / f"{name}.{kind}"
        if side.is_file():
            _read_side_table(ds, side, kind)
    kg_path, link_path = path / f"{name}.kg", path / f"{name}.link"
    if load_kg and kg_path.is_file() and not link_path.is_file():
        raise DataFormatError(kg_path, f"has no {name}.link beside it, so its entities cannot be "
                              f"tied to the items; add {link_path.name} (item_id:token, "
                              "entity_id:token) or set load_kg: false")
    if load_kg and link_path.is_file() and not kg_path.is_file():
        raise DataFormatError(link_path, f"has no {name}.kg beside it: the items it links to "
                              f"entities have no KG; add {kg_path.name} or set load_kg: false")
    if load_kg and kg_path.is_file() and link_path.is_file():
        kg = read_atomic(kg_path)
        kg.require("head_id", "relation_id", "tail_id")
        ds.kg = np.stack([kg.columns["head_id"], kg.columns["relation_id"], kg.columns["tail_id"]], 1)
        link = read_atomic(link_path)
        link.require("item_id", "entity_id")
        items, entities = link.columns["item_id"], link.columns["entity_id"]
        if link_item_map is not None:
            items, entities = translate_links(ds, items, entities, *link_item_map)
        _set_links(ds, items, entities, str(link_path))
    return ds


def translate_links(ds: Dataset, items, entities, map_path: Path, item_col: str, link_col: str):
    """The ``.link`` rows re-keyed by this dataset's item ids through the map at ``map_path``.

    A ``.link`` file written for another catalogue (RecBole's ML-100K one is keyed by
    MovieLens-1M movie ids: its item 260 is Star Wars, ML-100K's is Event Horizon) links each
    item to another film's entity. With the map (``item_col`` this dataset's id, ``link_col`` the
    id the ``.link`` uses), item ``i`` takes the entity of link row ``map[i]``; items the map
    leaves out, or whose target the ``.link`` lacks, stay unlinked. Counts go into ``stats``
    and one log line."""
    if not Path(map_path).is_file():
        raise ConfigError("link_item_map", f"{map_path} not found: the map that re-keys "
                          f"{ds.name}.link by this dataset's item ids; add it, or set "
                          "link_item_map: null to read the .link as given")
    mapping = read_id_map(map_path, item_col, link_col)
    by_key = {str(k): e for k, e in zip(items, entities)}
    raw = [str(r) for r in ds.item_ids]
    out_items = [r for r in raw if mapping.get(r) in by_key]
    out_entities = [by_key[mapping[r]] for r in out_items]
    ds.stats["link_item_map"] = {"items_mapped": sum(r in mapping for r in raw),
                                 "items_linked": len(out_items),
                                 "map_rows_unknown_item": len(set(mapping) - set(raw))}
    log.info("%s: .link re-keyed through %s: %d of %d items mapped, %d linked", ds.name,
             map_path.name, ds.stats["link_item_map"]["items_mapped"], len(raw), len(out_items))
    return (np.asarray(out_items, dtype=object), np.asarray(out_entities, dtype=object))


def _check_columns(t, path: Path) -> None:
    """DataFormatError naming the file and line of the first empty user or item id, or of the
    first missing (NaN) rating or timestamp, of an ``.inter`` table."""
    from .readers import _line_of

    for col in ("user_id", "item_id"):
        ids = t.columns[col]
        empty = np.flatnonzero([not str(v).strip() for v in ids])
        if len(empty):
            raise DataFormatError(path, f"empty {col} (every interaction names its user and "
                                  "item)", line=_line_of(path, col, int(empty[0])))
    for col in ("rating", "timestamp"):
        v = t.columns.get(col)
        if v is not None and len(v) and not np.isfinite(v).all():
            k = int(np.flatnonzero(~np.isfinite(v))[0])
            raise DataFormatError(path, f"column '{col}' is missing or not finite ({v[k]}); every "
                                  f"row needs a {col}, or drop the column",
                                  line=_line_of(path, col, k))


def _read_side_table(ds: Dataset, path: Path, kind: str) -> None:
    """Read ``.item`` / ``.user`` and align its columns to the dataset's dense ids."""
    from .readers import _line_of

    table = read_atomic(path)
    id_col = f"{kind}_id"
    table.require(id_col)
    seen: dict = {}
    for k, v in enumerate(table.columns[id_col]):
        if v in seen:
            raise DataFormatError(path, f"{id_col} '{v}' appears again (first on line "
                                  f"{_line_of(path, id_col, seen[v])}); one row per {kind}",
                                  line=_line_of(path, id_col, k))
        seen[v] = k
    cols = {k: v for k, v in table.columns.items() if k != id_col}
    types = {k: table.types[k] for k in cols}
    ids = ds.item_ids if kind == "item" else ds.user_ids
    aligned, unknown = align_table(ids, table.columns[id_col], cols, types, kind, str(path))
    setattr(ds, f"{kind}_features", aligned)
    setattr(ds, f"{kind}_feature_types", types)
    ds.stats[f"{kind}_rows_unknown"] = unknown


def _set_links(ds: Dataset, items, entities, path: str) -> None:
    aligned, unknown = align_table(ds.item_ids, items, {"entity": entities}, {"entity": "token"},
                                   "item", path)
    ds.item_entity = aligned["entity"]
    ds.stats["link_rows_unknown_item"] = unknown


def load_kgat(path: Path, load_kg: bool = True, **pre) -> Dataset:
    """KGAT's ``train.txt`` / ``test.txt``; the test file becomes ``Dataset.given_test``.

    Preprocessing filters apply to the training file; test rows whose user is unknown after it
    are dropped and counted; items seen only in the test file join the catalogue."""
    tu, ti = read_kgat_interactions(path / "train.txt")
    su, si = read_kgat_interactions(path / "test.txt")
    ds = build_dataset(path.name, tu, ti, source=str(path), **pre)
    upos = {str(r): k for k, r in enumerate(ds.user_ids)}
    ipos = {str(r): k for k, r in enumerate(ds.item_ids)}
    # items that only appear in the test file are still part of the catalogue (ranked, never
    # trained on), as in KGAT's own evaluation; they are appended after the training items
    new_items = [t for t in dict.fromkeys(str(x) for x in si) if t not in ipos]
    if new_items:
        for t in new_items:
            ipos[t] = len(ipos)
        ds.item_ids = np.concatenate([ds.item_ids, np.asarray(new_items, dtype=object)])
    ds.stats["test_only_items"] = len(new_items)
    u = np.asarray([upos.get(str(x), -1) for x in su], dtype=np.int64)
    i = np.asarray([ipos.get(str(x), -1) for x in si], dtype=np.int64)
    ok = (u >= 0) & (i >= 0)
    ds.stats["test_rows_unknown"] = int((~ok).sum())
    test = Interactions(u[ok], i[ok])
    # de-duplicate the given test and drop pairs already in train (KGAT files have none)
    n_items = ds.n_items
    key = test.user * n_items + test.item
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)
    in_train = np.isin(key[first], ds.inter.keys(n_items))
    ds.stats["test_rows_in_train"] = int(in_train.sum())
    ds.given_test = test.take(first[~in_train])
    kg_path = path / "kg_final.txt"
    if load_kg and kg_path.is_file():
        kg = read_int_triples(kg_path).astype(str).astype(object)
        ds.kg = kg
        # KGAT: item ids are the first entity ids
        ds.item_entity = ds.item_ids.copy()
    return ds


def load_kgcn(path: Path, load_kg: bool = True, **pre) -> Dataset:
    """KGCN/RippleNet format: ``*ratings_final*`` (user item label), ``*kg_final*``.

    Labels become the ``rating`` column (0/1); top-N use keeps label 1 via rating_threshold."""
    rf = sorted(path.glob("*ratings_final*"))
    if not rf:
        raise DataFormatError(path, "no ratings_final file")
    r = read_int_triples(rf[0])
    ds = build_dataset(path.name, r[:, 0], r[:, 1], r[:, 2].astype(np.float32), source=str(path),
                       **pre)
    kf = sorted(p for p in path.glob("*kg_final*"))
    if load_kg and kf:
        kg = read_int_triples(kf[0]).astype(str).astype(object)
        ds.kg = kg
        # KGCN's preprocessing numbers items 0..n_items-1 and gives item k entity k
        ds.item_entity = ds.item_ids.copy()
    named = path / "kg.txt"
    if named.is_file():
        ds.stats["kg_named_relations"] = len(np.unique(read_named_triples(named)[:, 1]))
    return ds
