"""What the service shows of a loaded run besides its recommendations: item metadata, posters,
users' histories and the user search. Pure Python over a :class:`~mmkgrec.api.Run`, so it is
tested without a web framework.

Posters: the files of one folder (``--images DIR``, else the image folder the run recorded) named
``<raw item id>.<jpg|jpeg|png|webp|bmp|gif>``, found by listing the folder once. A request names an
item, never a path: the file served is one of the listed entries, and one whose real path (after
symbolic links) leaves the folder is not served.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from pathlib import Path

import numpy as np

from ..errors import MMKGRecError
from ..features.content import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

TITLE_COLUMNS = ("title", "movie_title", "item_name", "name", "book_title")
MEDIA_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".webp": "image/webp", ".bmp": "image/bmp", ".gif": "image/gif"}
PARTS = ("train", "valid", "test")


def _json_value(v):
    """An item-table cell as JSON: ``None`` for missing, lists of strings or numbers."""
    if v is None:
        return None
    if isinstance(v, float):
        return None if math.isnan(v) else v
    if isinstance(v, (np.floating, np.integer)):
        return _json_value(v.item())
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_value(x) for x in v]
    return str(v)


def poster_files(folder: Path) -> dict[str, str]:
    """``{raw item id: file name}`` of the image files directly inside ``folder`` (the first
    extension of IMAGE_EXTENSIONS wins when an item has several)."""
    rank = {e: k for k, e in enumerate(IMAGE_EXTENSIONS)}
    best: dict[str, tuple[int, str]] = {}
    with os.scandir(folder) as it:
        for entry in it:
            stem, ext = os.path.splitext(entry.name)
            r = rank.get(ext.lower())
            if r is None or not entry.is_file():
                continue
            if stem not in best or r < best[stem][0]:
                best[stem] = (r, entry.name)
    return {stem: name for stem, (_, name) in best.items()}


class Catalog:
    """Item metadata, posters, histories and user search for ``run``; ``images``: the poster
    folder (default: the run's recorded image folder, when it still exists)."""

    def __init__(self, run, images: str | Path | None = None):
        self.run = run
        ds = run.dataset
        self.item_ids = ds.item_ids
        self.user_ids = ds.user_ids
        cols = ds.item_features or {}
        self.title_column = next((c for c in TITLE_COLUMNS if c in cols), None)
        folder = images if images is not None else run.image_dir
        self.images: Path | None = None
        self.posters: dict[str, str] = {}
        if folder is not None:
            folder = Path(folder).expanduser()
            if folder.is_dir():
                self.images = folder.resolve()
                self.posters = poster_files(self.images)
            elif images is not None:
                raise MMKGRecError(f"--images {folder}: not a folder")
            else:
                log.warning("the run's image folder %s does not exist here; posters are "
                            "placeholders (serve with --images DIR)", folder)
        self.titles = [self._title(i) for i in range(len(self.item_ids))]
        self._users_sorted = sorted(str(u) for u in self.user_ids)
        self._history = self._history_csr()

    # ---- items ---------------------------------------------------------------------------
    def title(self, i: int) -> str:
        """The item's title (its title column's words joined), else its raw id."""
        return self.titles[i]

    def _title(self, i: int) -> str:
        if self.title_column is not None:
            v = self.run.dataset.item_features[self.title_column][i]
            v = _json_value(v)
            if isinstance(v, list):
                v = " ".join(str(x) for x in v if x is not None)
            if v:
                return str(v)
        return str(self.item_ids[i])

    def item(self, i: int) -> dict:
        """``{id, title, attributes, has_poster}`` of the dense item ``i``."""
        ds = self.run.dataset
        raw = str(self.item_ids[i])
        attrs = {name: _json_value(col[i]) for name, col in (ds.item_features or {}).items()
                 if name != self.title_column}
        return {"id": raw, "title": self.title(i), "attributes": attrs,
                "has_poster": raw in self.posters}

    def poster_path(self, raw_item: str) -> Path | None:
        """The poster file of ``raw_item``, or ``None`` (no poster, or a file whose real path
        leaves the image folder)."""
        name = self.posters.get(str(raw_item))
        if name is None or self.images is None:
            return None
        path = (self.images / name).resolve()
        if path.parent != self.images or not path.is_file():
            log.warning("poster of item %s leaves the image folder or is gone (%s); not served",
                        raw_item, path)
            return None
        return path

    # ---- users ---------------------------------------------------------------------------
    def search_users(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` raw user ids starting with ``prefix``, in string order."""
        users = self._users_sorted
        start = bisect.bisect_left(users, prefix)
        out = []
        for u in users[start:start + limit]:
            if not u.startswith(prefix):
                break
            out.append(u)
        return out

    def _history_csr(self):
        """Every interaction of the split (train, valid, test) grouped by user, the latest
        first (file order backwards where there are no timestamps)."""
        split = self.run.split
        users, items, ts, ratings, parts = [], [], [], [], []
        for k, name in enumerate(PARTS):
            inter = split.part(name)
            n = len(inter)
            users.append(np.asarray(inter.user, dtype=np.int64))
            items.append(np.asarray(inter.item, dtype=np.int64))
            t = inter.timestamp
            ts.append(np.asarray(t, dtype=np.float64) if t is not None else np.full(n, np.nan))
            r = inter.rating
            ratings.append(np.asarray(r, dtype=np.float64) if r is not None else np.full(n, np.nan))
            parts.append(np.full(n, k, dtype=np.int8))
        u, i, t, r, p = (np.concatenate(a) for a in (users, items, ts, ratings, parts))
        pos = np.arange(len(u))
        # by user, then the latest timestamp first, then the later row first
        order = np.lexsort((-pos, -np.nan_to_num(t, nan=-np.inf), u))
        indptr = np.zeros(len(self.user_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=len(self.user_ids)), out=indptr[1:])
        return indptr, i[order], t[order], r[order], p[order]

    def history(self, u: int, limit: int) -> tuple[int, list[dict]]:
        """``(total, rows)``: the dense user ``u``'s interactions, latest first, at most
        ``limit`` rows of ``{item, title, part, rating, timestamp}``."""
        indptr, items, ts, ratings, parts = self._history
        a, b = int(indptr[u]), int(indptr[u + 1])
        rows = []
        for j in range(a, min(b, a + limit)):
            i = int(items[j])
            rows.append({"item": str(self.item_ids[i]), "title": self.title(i),
                         "part": PARTS[int(parts[j])], "rating": _json_value(float(ratings[j])),
                         "timestamp": _json_value(float(ts[j])),
                         "has_poster": str(self.item_ids[i]) in self.posters})
        return b - a, rows
