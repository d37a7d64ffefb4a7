"""A synthetic dataset with planted structure, for unit tests and for demos with no data at all.

Users prefer one or two of ``n_categories`` item categories; items belong to a category and carry
text built from category-specific words; a small knowledge graph links items to their category,
to a "creator" entity shared by items of one category and to a decade entity. Interactions are drawn
mostly from a user's preferred categories with a popularity skew, in time order, so that
collaborative, content, knowledge-graph and sequential models all have signal to find.
"""

from __future__ import annotations

import numpy as np

from .dataset import build_dataset

_WORDS = ["space", "love", "crime", "war", "magic", "robot", "ocean", "horse", "music", "ghost",
          "court", "heist", "school", "dragon", "storm", "desert"]


def make_synthetic(n_users: int = 300, n_items: int = 200, n_categories: int = 8,
                   inter_per_user: tuple[int, int] = (10, 40), seed: int = 0, **pre):
    rng = np.random.default_rng(seed)
    item_cat = rng.integers(0, n_categories, n_items)
    pop = rng.zipf(1.6, n_items).astype(np.float64).clip(1, 50)
    users, items, times, ratings = [], [], [], []
    for u in range(n_users):
        prefs = rng.choice(n_categories, size=rng.integers(1, 3), replace=False)
        n = int(rng.integers(*inter_per_user))
        w = pop * np.where(np.isin(item_cat, prefs), 20.0, 1.0)
        chosen = rng.choice(n_items, size=min(n, n_items), replace=False, p=w / w.sum())
        # sequential signal: order the history by category, so consecutive items share one
        chosen = chosen[np.argsort(item_cat[chosen] + rng.random(len(chosen)) * 0.5, kind="stable")]
        t0 = rng.integers(0, 10_000)
        users += [u] * len(chosen)
        items += chosen.tolist()
        times += (t0 + np.arange(len(chosen)) * 10).tolist()
        ratings += np.where(np.isin(item_cat[chosen], prefs), rng.integers(4, 6, len(chosen)),
                            rng.integers(1, 4, len(chosen))).tolist()
    ds = build_dataset("synthetic", np.asarray(users), np.asarray(items),
                       np.asarray(ratings, dtype=np.float32), np.asarray(times, dtype=np.float64),
                       source="generated (mmkgrec.data.synthetic, seed %d)" % seed, **pre)
    raw_item = np.asarray(ds.item_ids, dtype=np.int64)
    cats = item_cat[raw_item]
    words = [[_WORDS[(c * 2) % len(_WORDS)], _WORDS[(c * 2 + 1) % len(_WORDS)],
              _WORDS[int(rng.integers(len(_WORDS)))]] for c in cats]
    ds.item_features = {
        "movie_title": [[f"item{r}"] + w for r, w in zip(raw_item, words)],
        "class": [[f"cat{c}"] for c in cats],
        "release_year": np.asarray([str(1950 + 10 * (r % 6)) for r in raw_item], dtype=object),
    }
    ds.item_feature_types = {"movie_title": "token_seq", "class": "token_seq",
                             "release_year": "token"}
    triples = []
    for r, c in zip(raw_item, cats):
        e = f"e{r}"
        triples.append((e, "item.category", f"cat{c}"))
        triples.append((e, "item.creator", f"creator{c}_{r % 3}"))
        triples.append((e, "item.decade", f"decade{r % 6}"))
    ds.kg = np.asarray(triples, dtype=object)
    ds.item_entity = np.asarray([f"e{r}" for r in raw_item], dtype=object)
    return ds
