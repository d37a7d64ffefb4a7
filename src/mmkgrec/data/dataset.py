"""The in-memory dataset: interactions with dense user/item ids, side tables and the raw KG.

Every reader (atomic, KGAT, KGCN, synthetic) ends in :func:`build_dataset`, so preprocessing
(rating threshold, de-duplication, k-core filtering) and id mapping happen in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import MMKGRecError

log = logging.getLogger(__name__)


@dataclass
class Interactions:
    """Columnar interactions over dense ids. ``rating``/``timestamp`` are optional."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None = None
    timestamp: np.ndarray | None = None

    def __post_init__(self):
        self.user = np.asarray(self.user, dtype=np.int64)
        self.item = np.asarray(self.item, dtype=np.int64)
        if len(self.user) != len(self.item):
            raise ValueError("user and item columns differ in length")

    def __len__(self) -> int:
        return len(self.user)

    def take(self, idx) -> "Interactions":
        return Interactions(
            self.user[idx], self.item[idx],
            None if self.rating is None else self.rating[idx],
            None if self.timestamp is None else self.timestamp[idx],
        )

    def keys(self, n_items: int) -> np.ndarray:
        """Sorted unique ``user * n_items + item`` keys, for fast membership tests."""
        return np.unique(self.user * n_items + self.item)

    def csr(self, n_users: int, n_items: int):
        """Binary user x item matrix (scipy CSR), duplicates collapsed."""
        import scipy.sparse as sp

        m = sp.csr_matrix((np.ones(len(self), dtype=np.float32), (self.user, self.item)),
                          shape=(n_users, n_items))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m


@dataclass
class Dataset:
    """A recommendation dataset with dense ids ``0..n-1`` for users and items.

    ``user_ids[u]`` / ``item_ids[i]`` give the raw token of dense id ``u`` / ``i``.
    ``item_features`` holds the ``.item`` table's columns aligned to dense item ids (``None``,
    ``nan`` or ``[]`` where an item has no row); ``item_feature_types`` their atomic types.
    ``kg`` holds raw ``(head, relation, tail)`` triples and ``item_entity`` the raw entity linked
    to each dense item (``None`` where an item has no link).
    """

    name: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    inter: Interactions
    item_features: dict = field(default_factory=dict)
    item_feature_types: dict = field(default_factory=dict)
    user_features: dict = field(default_factory=dict)
    user_feature_types: dict = field(default_factory=dict)
    kg: np.ndarray | None = None
    item_entity: np.ndarray | None = None
    given_test: Interactions | None = None
    stats: dict = field(default_factory=dict)
    source: str = ""

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def user_index(self, raw) -> int:
        return self._index(self.user_ids, raw, "user")

    def item_index(self, raw) -> int:
        return self._index(self.item_ids, raw, "item")

    def _index(self, ids: np.ndarray, raw, kind: str) -> int:
        cache = self.__dict__.setdefault(f"_{kind}_map", None)
        if cache is None:
            cache = {str(r): k for k, r in enumerate(ids)}
            self.__dict__[f"_{kind}_map"] = cache
        try:
            return cache[str(raw)]
        except KeyError:
            raise KeyError(f"unknown {kind} id '{raw}' in dataset '{self.name}'") from None

    def describe(self) -> dict:
        n = len(self.inter)
        out = {"name": self.name, "source": self.source, "n_users": self.n_users,
               "n_items": self.n_items, "n_interactions": n,
               "density": n / max(1, self.n_users * self.n_items),
               "item_feature_columns": sorted(self.item_features),
               "has_timestamp": self.inter.timestamp is not None,
               "has_rating": self.inter.rating is not None}
        if self.kg is not None:
            out["kg_triples"] = len(self.kg)
            out["kg_relations"] = len(np.unique(self.kg[:, 1])) if len(self.kg) else 0
            out["items_linked"] = int(sum(e is not None for e in self.item_entity))
        if self.given_test is not None:
            out["given_test_interactions"] = len(self.given_test)
        out.update(self.stats)
        return out


def kcore_mask(users: np.ndarray, items: np.ndarray, user_min: int, item_min: int) -> np.ndarray:
    """Rows kept by k-core filtering on users and items, iterated to a fixpoint."""
    keep = np.ones(len(users), dtype=bool)
    if user_min <= 1 and item_min <= 1:
        return keep
    while True:
        u, i = users[keep], items[keep]
        ucount = np.bincount(u, minlength=users.max() + 1 if len(users) else 0)
        icount = np.bincount(i, minlength=items.max() + 1 if len(items) else 0)
        bad = (ucount[users] < user_min) | (icount[items] < item_min)
        new_keep = keep & ~bad
        if new_keep.sum() == keep.sum():
            return keep
        keep = new_keep


def build_dataset(
    name: str,
    users_raw,
    items_raw,
    rating=None,
    timestamp=None,
    *,
    rating_threshold: float | None = None,
    dedup: str = "first",
    user_min_inter: int = 0,
    item_min_inter: int = 0,
    source: str = "",
) -> Dataset:
    """Preprocess raw interaction columns and map ids densely.

    Order: rating threshold, de-duplication of (user, item) pairs (``first``/``last`` in time
    order, or ``none``), k-core filtering iterated to a fixpoint. Dense ids are assigned in sorted
    order of raw tokens (numeric tokens sort numerically), so the mapping is deterministic.
    Raises :class:`MMKGRecError` if nothing is left.
    """
    users_raw = as_tokens(users_raw)
    items_raw = as_tokens(items_raw)
    n0 = len(users_raw)
    stats: dict = {"raw_interactions": n0}
    keep = np.ones(n0, dtype=bool)
    if rating_threshold is not None:
        if rating is None:
            raise MMKGRecError(f"dataset '{name}': rating_threshold is set but the data has no rating "
                               "column")
        keep &= np.asarray(rating) >= rating_threshold
        stats["removed_by_rating_threshold"] = int(n0 - keep.sum())
    idx = np.flatnonzero(keep)
    u_tok, u_code = _factorize(users_raw[idx])
    i_tok, i_code = _factorize(items_raw[idx])
    if dedup != "none" and len(idx):
        order = np.arange(len(idx))
        if timestamp is not None:
            order = np.argsort(np.asarray(timestamp)[idx], kind="stable")
        key = u_code[order] * len(i_tok) + i_code[order]
        if dedup == "last":
            _, first = np.unique(key[::-1], return_index=True)
            sel = order[len(order) - 1 - first]
        else:
            _, first = np.unique(key, return_index=True)
            sel = order[first]
        sel = np.sort(sel)
        stats["removed_duplicates"] = int(len(idx) - len(sel))
        idx, u_code, i_code = idx[sel], u_code[sel], i_code[sel]
    core = kcore_mask(u_code, i_code, user_min_inter, item_min_inter)
    if user_min_inter > 1 or item_min_inter > 1:
        stats["removed_by_kcore"] = int((~core).sum())
    idx, u_code, i_code = idx[core], u_code[core], i_code[core]
    if len(idx) == 0:
        raise MMKGRecError(f"dataset '{name}' ({source}) is empty after filtering: {stats}; relax "
                           "rating_threshold / user_min_inter / item_min_inter")
    u_used, u_new = np.unique(u_code, return_inverse=True)
    i_used, i_new = np.unique(i_code, return_inverse=True)
    inter = Interactions(
        u_new, i_new,
        None if rating is None else np.asarray(rating, dtype=np.float32)[idx],
        None if timestamp is None else np.asarray(timestamp, dtype=np.float64)[idx],
    )
    ds = Dataset(name=name, user_ids=u_tok[u_used], item_ids=i_tok[i_used], inter=inter,
                 stats=stats, source=source)
    log.info("dataset %s: %d users, %d items, %d interactions (%s)", name, ds.n_users, ds.n_items,
             len(inter), stats)
    return ds


def as_tokens(values) -> np.ndarray:
    """``values`` as an object array of ``str`` (numbers as ``str(number)``), never through a
    fixed-width string array, so that one long id costs its own bytes and not the width of every
    row."""
    a = np.asarray(values) if not isinstance(values, np.ndarray) else values
    out = np.empty(len(a), dtype=object)
    out[:] = [v if isinstance(v, str) else str(v) for v in (a.tolist() if a.dtype != object
                                                             else a)]
    return out


def _sort_key(tokens) -> np.ndarray:
    """Order tokens numerically when all are integers, else lexicographically (by code point,
    as numpy sorts strings), without a fixed-width copy of the tokens."""
    tokens = list(tokens)
    lex = np.asarray(sorted(range(len(tokens)), key=tokens.__getitem__), dtype=np.int64)
    try:
        keys = np.asarray([int(tokens[k]) for k in lex], dtype=np.int64)
    except (ValueError, OverflowError):
        return lex
    return lex[np.argsort(keys, kind="stable")]  # numeric; equal numbers ("1", "01") by text


def unique_tokens(values) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values as str, return_inverse=True)`` (sorted by code point) without a
    fixed-width string array: tokens are interned through one dict."""
    codes_of: dict = {}
    codes = np.fromiter((codes_of.setdefault(v, len(codes_of)) for v in as_tokens(values)),
                        dtype=np.int64, count=len(values))
    uniq = list(codes_of)
    lex = sorted(range(len(uniq)), key=uniq.__getitem__)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[lex] = np.arange(len(uniq))
    out = np.empty(len(uniq), dtype=object)
    out[:] = [uniq[k] for k in lex]
    return out, rank[codes]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique tokens in deterministic order, code of each value); tokens are interned through
    one dict (no fixed-width string array)."""
    codes_of: dict = {}
    codes = np.fromiter((codes_of.setdefault(v, len(codes_of)) for v in values), dtype=np.int64,
                        count=len(values))
    uniq = np.empty(len(codes_of), dtype=object)
    uniq[:] = list(codes_of)
    order = _sort_key(uniq)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[codes]


def align_table(ds_ids: np.ndarray, table_ids, columns: dict, types: dict, what: str, path: str):
    """Align a side table's columns to the dataset's dense ids.

    Returns (aligned columns, number of table rows naming ids not in the dataset).
    """
    pos = {str(r): k for k, r in enumerate(ds_ids)}
    rows = np.asarray([pos.get(str(t), -1) for t in table_ids], dtype=np.int64)
    unknown = int((rows < 0).sum())
    if unknown:
        log.warning("%s: %d %s row(s) name %ss not in the interactions; ignored", path, unknown,
                    what, what)
    ok = rows >= 0
    out = {}
    n = len(ds_ids)
    for name, col in columns.items():
        typ = types[name]
        if typ == "float":
            a = np.full(n, np.nan)
            a[rows[ok]] = np.asarray(col)[ok]
        elif typ == "token":
            a = np.full(n, None, dtype=object)
            a[rows[ok]] = np.asarray(col, dtype=object)[ok]
        else:
            a = [[] for _ in range(n)]
            for r, v in zip(rows, col):
                if r >= 0:
                    a[r] = v
        out[name] = a
    return out, unknown
