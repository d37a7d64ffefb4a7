"""Evidence for a (user, item) pair: facts as (head, relation, tail) triples with their source.

Sources
    ``item``: the item table (title, year, genres: config ``explain_title_column``,
    ``explain_year_column``, ``explain_genre_column``); ``kg``: the run's knowledge graph (paths of
    one hop, an item linked to a history item, and of two hops, both linked to one entity through
    a named relation); ``history``: the user's training interactions (what they rated, and how)
    and the interests drawn from them (their most watched genres, their keywords).

Node names in triples: ``item:<raw id>``, ``user:<raw id>``, a KG entity's own token, or a literal
value (a year, a genre). The ML-100K Freebase KG names its relations but not its entities, so a
verifiable KG fact is relation-level: "directed by the same person as Heat, which you rated 5".

:class:`Catalog` holds what every pair shares (built once per run); :meth:`Catalog.evidence`
builds one pair's :class:`Evidence`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from . import lexicon
from .lexicon import RELATION_BY_KEY, RELATION_OF_TOKEN


@dataclass(frozen=True)
class Triple:
    head: str
    relation: str
    tail: str
    source: str

    def to_dict(self) -> dict:
        return {"head": self.head, "relation": self.relation, "tail": self.tail,
                "source": self.source}


@dataclass(frozen=True)
class Path:
    """A KG path from the candidate to a history item: ``role`` is a lexicon key (``director``)
    or ``rel:<token>`` for a relation the lexicon does not name; ``entity`` the shared entity
    (``None`` for a direct link); ``degree`` the number of items linked to that entity."""

    history: int
    role: str
    relation: str
    entity: str | None
    degree: int
    triples: tuple[Triple, ...]
    score: float


@dataclass
class Evidence:
    user: int
    item: int
    user_id: str
    item_id: str
    title: str | None
    year: str | None
    genres: list[str]
    history: list[int]  # dense items of the training history, most recent first
    ratings: dict[int, float]  # dense item -> rating (empty without ratings)
    interests: list[tuple[str, int]]  # the user's most watched genres and their counts
    keywords: list[str]  # the candidate's text keywords: title words minus stop-words, genres
    user_keywords: list[str]  # the user's top keywords over the history
    paths: list[Path]
    kg_linked: bool
    notes: list[str] = field(default_factory=list)
    reasons: dict[int, float] = field(default_factory=dict)  # the model's: item -> score drop
    theme_words: list[str] = field(default_factory=list)
    user_theme_words: list[str] = field(default_factory=list)

    @property
    def history_set(self) -> set[int]:
        return set(self.history)

    def paths_to(self, history_item: int, role: str) -> list[Path]:
        return [p for p in self.all_paths if p.history == history_item and p.role == role]

    all_paths: list[Path] = field(default_factory=list)  # every path found (paths: the shown ones)


def _fmt_rating(r: float) -> str:
    return f"{float(r):g}"


class Catalog:
    """What every pair of one run shares: titles, years, genres, the KG's item adjacency and the
    training histories. ``run`` is a :class:`mmkgrec.api.Run`; ``config`` its resolved config
    (with the ``explain_*`` keys)."""

    def __init__(self, run, config, kg=None):
        ds, split = run.dataset, run.split
        self.n_items, self.n_users = int(ds.n_items), int(ds.n_users)
        self.user_ids, self.item_ids = ds.user_ids, ds.item_ids
        cols = ds.item_features or {}
        ignore = {str(v).lower() for v in config["explain_genre_ignore"]}

        def text(v):
            if v is None or (isinstance(v, float) and v != v):
                return None
            if isinstance(v, (list, tuple, np.ndarray)):
                v = " ".join(str(x) for x in v)
            v = " ".join(str(v).split())
            return v or None

        tcol, ycol, gcol = (config["explain_title_column"], config["explain_year_column"],
                            config["explain_genre_column"])
        raw_titles = [text(v) for v in cols[tcol]] if tcol in cols else [None] * self.n_items
        self.titles = [lexicon.display_title(t) if t else None for t in raw_titles]
        self.years = ([text(v) for v in cols[ycol]] if ycol in cols else [None] * self.n_items)
        self.years = [y if y and y.isdigit() else None for y in self.years]
        self.genres: list[list[str]] = [[] for _ in range(self.n_items)]
        if gcol in cols:
            for i, v in enumerate(cols[gcol]):
                vals = (list(v) if isinstance(v, (list, tuple, np.ndarray))
                        else [] if v is None or (isinstance(v, float) and v != v) else str(v).split())
                self.genres[i] = [str(g) for g in vals if str(g).lower() not in ignore]
        self.genre_vocab = sorted({g for gs in self.genres for g in gs})
        self.aliases: dict[str, list[int]] = {}
        for i, t in enumerate(raw_titles):
            if t:
                for a in lexicon.title_aliases(t):
                    self.aliases.setdefault(a, []).append(i)
        self._title_keywords = [lexicon.keywords(t or "") for t in self.titles]
        self._profiles: dict = {}
        self._kg(kg, config)
        self._history(split)

    # ---- KG ------------------------------------------------------------------------------
    def _kg(self, kg, config) -> None:
        n = self.n_items
        self.has_kg = kg is not None and len(kg.triples) > 0
        if not self.has_kg:
            self.out_ptr = np.zeros(n + 1, dtype=np.int64)
            self.out_rel = self.out_tail = np.zeros(0, dtype=np.int64)
            self.in_ptr = np.zeros(1, dtype=np.int64)
            self.in_item = self.in_rel = np.zeros(0, dtype=np.int64)
            self.entity_tokens, self.relation_tokens = [], []
            self.degree = np.zeros(0, dtype=np.int64)
            self.linked = np.zeros(n, dtype=bool)
            self.direct_in = {}
            self.max_degree = int(config["explain_max_entity_degree"])
            return
        t = np.asarray(kg.triples, dtype=np.int64).reshape(-1, 3)
        self.entity_tokens = list(kg.entity_tokens)
        self.relation_tokens = [str(r) for r in kg.relation_tokens]
        n_ent = len(self.entity_tokens)
        item_head = t[t[:, 0] < n]  # item -> anything
        order = np.lexsort((item_head[:, 2], item_head[:, 1], item_head[:, 0]))
        item_head = item_head[order]
        self.out_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(item_head[:, 0], minlength=n), out=self.out_ptr[1:])
        self.out_rel, self.out_tail = item_head[:, 1], item_head[:, 2]
        # per tail entity: the items that point to it (and through which relation)
        order = np.lexsort((item_head[:, 0], item_head[:, 2]))
        by_tail = item_head[order]
        self.in_ptr = np.zeros(n_ent + 1, dtype=np.int64)
        np.cumsum(np.bincount(by_tail[:, 2], minlength=n_ent), out=self.in_ptr[1:])
        self.in_item, self.in_rel = by_tail[:, 0], by_tail[:, 1]
        pairs = np.unique(by_tail[:, 2] * n + by_tail[:, 0])  # distinct (entity, item)
        self.degree = np.bincount(pairs // n, minlength=n_ent).astype(np.int64)
        self.linked = np.diff(self.out_ptr) > 0
        tails = t[(t[:, 2] < n)]
        self.linked[tails[:, 2]] = True
        self.direct_in: dict[int, list[tuple[int, int]]] = {}  # item -> [(item linking to it, r)]
        for h, r, c in item_head[item_head[:, 2] < n].tolist():
            self.direct_in.setdefault(c, []).append((h, r))
        self.max_degree = int(config["explain_max_entity_degree"])

    def _history(self, split) -> None:
        train = split.part("train") if hasattr(split, "part") else split.train
        u, i = np.asarray(train.user, dtype=np.int64), np.asarray(train.item, dtype=np.int64)
        ts = None if train.timestamp is None else np.asarray(train.timestamp, dtype=np.float64)
        key = np.arange(len(u)) if ts is None else ts
        order = np.lexsort((-np.arange(len(u)), -key, u))  # per user, most recent first
        self.h_ptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=self.n_users), out=self.h_ptr[1:])
        self.h_item = i[order]
        self.h_rating = (None if train.rating is None
                         else np.asarray(train.rating, dtype=np.float64)[order])

    # ---- per pair ------------------------------------------------------------------------
    def title(self, i: int) -> str:
        return self.titles[i] or f"item {self.item_ids[i]}"

    def history(self, u: int) -> tuple[np.ndarray, np.ndarray | None]:
        a, b = self.h_ptr[u], self.h_ptr[u + 1]
        return self.h_item[a:b], None if self.h_rating is None else self.h_rating[a:b]

    def node(self, i: int) -> str:
        return f"item:{self.item_ids[i]}"

    def item_triples(self, i: int) -> list[Triple]:
        out = []
        if self.titles[i]:
            out.append(Triple(self.node(i), "title", self.titles[i], "item"))
        if self.years[i]:
            out.append(Triple(self.node(i), "year", self.years[i], "item"))
        out += [Triple(self.node(i), "genre", g, "item") for g in self.genres[i]]
        return out

    def _paths(self, c: int, hist: np.ndarray, ratings: dict[int, float],
               reasons: dict[int, float] | None = None) -> list[Path]:
        if not self.has_kg or len(hist) == 0:
            return []
        mask = np.zeros(self.n_items, dtype=bool)
        mask[hist] = True
        mask[c] = False
        paths: list[Path] = []
        cn = self.node(c)
        a, b = self.out_ptr[c], self.out_ptr[c + 1]
        rels, tails = self.out_rel[a:b], self.out_tail[a:b]
        for r, e in zip(rels[tails < self.n_items].tolist(), tails[tails < self.n_items].tolist()):
            if mask[e]:  # a direct link candidate -> history item
                rtok = self.relation_tokens[r]
                words = RELATION_OF_TOKEN.get(rtok)
                role = words.key if words is not None and words.direct else f"rel:{rtok}"
                paths.append(Path(e, role, rtok, None, 1,
                                  (Triple(cn, rtok, self.node(e), "kg"),), 1.0))
        keep = tails >= self.n_items
        rels, tails = rels[keep], tails[keep]
        keep = self.degree[tails] <= self.max_degree
        rels, tails = rels[keep], tails[keep]
        # every item linked to one of the candidate's entities, in one gather
        starts, lens = self.in_ptr[tails], self.in_ptr[tails + 1] - self.in_ptr[tails]
        owner = np.repeat(np.arange(len(tails)), lens)
        offsets = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        idx = np.repeat(starts, lens) + offsets
        items, r2 = self.in_item[idx], self.in_rel[idx]
        hit = mask[items] & (r2 == rels[owner])  # the same role on both sides
        items, owner = items[hit], owner[hit]
        # one path per (history item, relation): through its most specific entity
        order = np.lexsort((self.degree[tails[owner]], rels[owner], items))
        items, owner = items[order], owner[order]
        first = np.ones(len(items), dtype=bool)
        first[1:] = (items[1:] != items[:-1]) | (rels[owner][1:] != rels[owner][:-1])
        for h, k in zip(items[first].tolist(), owner[first].tolist()):
            e, r = int(tails[k]), int(rels[k])
            rtok = self.relation_tokens[r]
            words = RELATION_OF_TOKEN.get(rtok)
            role = words.key if words is not None and not words.direct else f"rel:{rtok}"
            ent, deg = self.entity_tokens[e], int(self.degree[e])
            paths.append(Path(h, role, rtok, ent, deg,
                              (Triple(cn, rtok, ent, "kg"), Triple(self.node(h), rtok, ent, "kg")),
                              1.0 / deg))
        # direct links history item -> candidate, read from the candidate's side
        for h, r in self.direct_in.get(c, ()):
            if mask[h]:
                rtok = self.relation_tokens[r]
                words = RELATION_OF_TOKEN.get(rtok)
                role = (words.inverse if words is not None and words.direct and words.inverse
                        else f"rel:{rtok}~")
                paths.append(Path(h, role, rtok, None, 1,
                                  (Triple(self.node(h), rtok, cn, "kg"),), 1.0))
        best = max(ratings.values()) if ratings else 1.0
        rank = {w.key: k for k, w in enumerate(lexicon.RELATIONS)}  # lexicon order breaks ties
        reasons = reasons or {}
        return sorted(paths, key=lambda p: (-reasons.get(p.history, -np.inf) if reasons else 0.0,
                                            -(p.score * (ratings.get(p.history, best) / best)),
                                            rank.get(p.role, len(rank)), p.role, p.history))

    def profile(self, u: int, top: int) -> tuple[dict, list, list]:
        """The user's ratings, most watched genres and top keywords (kept for the last users)."""
        key = (u, top)
        got = self._profiles.get(key)
        if got is not None:
            return got
        hist, rat = self.history(u)
        ratings = {} if rat is None else {int(i): float(r) for i, r in zip(hist, rat)}
        counts = Counter(g for i in hist.tolist() for g in self.genres[i])
        interests = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        kw = Counter()
        for i in hist.tolist():
            kw.update(self._title_keywords[i])
            kw.update(g.lower() for g in self.genres[i])
        user_kw = [w for w, _ in sorted(kw.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
        if len(self._profiles) >= 4096:
            self._profiles.clear()
        self._profiles[key] = got = (ratings, interests, user_kw)
        return got

    def evidence(self, u: int, c: int, config, reasons: dict[int, float] | None = None
                 ) -> Evidence:
        """The evidence of (user ``u``, item ``c``), dense ids; ``reasons``: the model's own
        (history item -> how much ``c``'s score rests on it), which order the cited history."""
        hist, _ = self.history(u)
        ratings, interests, user_kw = self.profile(u, config["explain_top_interests"])
        cand_kw = list(dict.fromkeys(lexicon.keywords(self.titles[c] or "")
                                     + [g.lower() for g in self.genres[c]]))
        all_paths = self._paths(c, hist, ratings, reasons)
        shown, per_role, used = [], Counter(), set()
        for p in all_paths:
            if p.history in used or per_role[p.role] >= 2:
                continue
            shown.append(p)
            used.add(p.history)
            per_role[p.role] += 1
            if len(shown) >= config["explain_max_paths"]:
                break
        ev = Evidence(u, c, str(self.user_ids[u]), str(self.item_ids[c]), self.titles[c],
                      self.years[c], list(self.genres[c]), [int(i) for i in hist], ratings,
                      interests, cand_kw, user_kw, shown, bool(self.linked[c]) if self.has_kg
                      else False, all_paths=all_paths, reasons=dict(reasons or {}))
        name = self.title(c)
        if len(hist) == 0:
            ev.notes.append(f"user {ev.user_id} has no interactions in this run's training data, "
                            f"so the explanation rests on {name}'s own attributes only")
        if not self.has_kg:
            ev.notes.append("this run holds no knowledge graph, so no shared people, studios or "
                            "subjects can be named")
        elif not ev.kg_linked:
            ev.notes.append(f"{name} has no link to the knowledge graph, so no shared people, "
                            "studios or subjects can be named")
        elif len(hist) and not all_paths:
            ev.notes.append(f"no film of the user's history shares a knowledge-graph entity with "
                            f"{name} (entities linked to more than {self.max_degree} items, such "
                            "as a language, are not counted)")
        if not self.titles[c] and not self.years[c] and not self.genres[c]:
            ev.notes.append(f"item {ev.item_id} has no title, year or genre in the item table")
        return ev

    def rating_text(self, ev: Evidence, h: int) -> str | None:
        r = ev.ratings.get(h)
        return None if r is None else _fmt_rating(r)


def relation_words(role: str):
    """The lexicon entry of a path role, or ``None`` for a ``rel:`` role."""
    return RELATION_BY_KEY.get(role)

