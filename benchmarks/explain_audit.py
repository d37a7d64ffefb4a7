"""An independent audit of shown explanations on ML-100K: it shares no code with the verifier
(``mmkgrec.explain``) and looks every shown fact up in the dataset's own files
(``ml-100k.item``, ``.inter``, ``.kg``, ``.link``).

For each shown sentence it checks (a) that every triple the sentence cites is true in the files,
and (b) that every fact the sentence's text states is one of those triples: each catalogue title
is the candidate or a cited item, each year a cited year, each other number a cited rating, each
genre a cited genre (one the user is said to watch: a genre among the user's five most rated in
``.inter``), each relation phrase a cited KG relation that the candidate and another cited item
share through one entity. A sentence failing either is an unsupported shown fact.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from pathlib import Path

_ARTICLE_LAST = re.compile(r"^(.*), (The|A|An|Les|La|Le|Il|Das|Der|Die|El|L')( \(.*\))?$")
GENRE_WORDS = {"action": "Action", "adventure": "Adventure", "animation": "Animation",
               "children's": "Children's", "comedy": "Comedy", "crime": "Crime",
               "documentary": "Documentary", "drama": "Drama", "fantasy": "Fantasy",
               "film-noir": "Film-Noir", "horror": "Horror", "musical": "Musical",
               "mystery": "Mystery", "romance": "Romance", "sci-fi": "Sci-Fi",
               "thriller": "Thriller", "war": "War", "western": "Western"}
PHRASES = [  # a phrase of the text -> the Freebase relation it states
    (r"cinematograph", "film.film.cinematography"),
    (r"direct|filmmaker", "film.film.directed_by"),
    (r"written|writer|wrote|screenwriter", "film.film.written_by"),
    (r"produced|producer", "film.film.produced_by"),
    (r"cast member|\bstars?\b|\bactor", "film.film.actor"),
    (r"studio|production compan", "film.film.production_companies"),
    (r"award nomination|nominat", "film.film.award_nomination"),
    (r"award win|\bwon\b", "film.film.award_won"),
    (r"same language", "film.film.language"),
    (r"same country", "film.film.country"),
    (r"same subject", "film.film.subjects"),
    (r"content rating", "film.film.rating"),
    (r"freebase genre", "film.film.genre"),
    (r"sequel to", "film.film.prequel"),
    (r"prequel to", "film.film.sequel"),
]


def _rows(path: Path):
    with open(path, encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        yield from reader


def _forms(title: str) -> set[str]:
    out = {title}
    m = _ARTICLE_LAST.match(title)
    if m:
        out.add(f"{m.group(2)} {m.group(1)}{m.group(3) or ''}")
    for t in list(out):
        short = re.sub(r"\s*\([^()]*\)$", "", t)
        out.add(short)
        m = _ARTICLE_LAST.match(short)
        if m:
            out.add(f"{m.group(2)} {m.group(1)}")
    return {t for t in out if t}


class Audit:
    """``link_map``: ``(csv, this dataset's id column, the .link's id column)`` when the run read
    ``ml-100k.link`` re-keyed through such a map; ``None``: the link as given."""

    def __init__(self, folder: Path, link_map: tuple | None = None):
        folder = Path(folder)
        self.title, self.year, self.genres = {}, {}, {}
        self.by_form: dict[str, set[str]] = defaultdict(set)
        for item, title, year, genres in _rows(folder / "ml-100k.item"):
            self.title[item], self.year[item] = title, year
            self.genres[item] = set(genres.split()) - {"unknown"}
            for f in _forms(title):
                self.by_form[f].add(item)
        self.forms = sorted(self.by_form, key=len, reverse=True)
        self.rating: dict[tuple[str, str], float] = {}
        rated = defaultdict(list)
        for user, item, rating, _ in _rows(folder / "ml-100k.inter"):
            self.rating[(user, item)] = float(rating)
            rated[user].append(item)
        self.top_genres = {}
        for user, items in rated.items():
            counts = Counter(g for i in items for g in self.genres[i])
            ranked = sorted(counts.values(), reverse=True)
            fifth = ranked[min(4, len(ranked) - 1)] if ranked else 0
            self.top_genres[user] = {g for g, n in counts.items() if n >= fifth}
        self.link = {item: ent for item, ent in _rows(folder / "ml-100k.link")}
        if link_map is not None:
            path, ours, theirs = link_map
            with open(path, encoding="utf-8", newline="") as f:
                keyed = {row[ours]: row[theirs] for row in csv.DictReader(f)}
            self.link = {i: self.link[k] for i, k in keyed.items() if k in self.link}
        self.kg = {(h, r, t) for h, r, t in _rows(folder / "ml-100k.kg")}

    # ---- (a) the cited triples -------------------------------------------------------------
    def triple_ok(self, t: dict, user: str) -> bool:
        h, r, tail = t["head"], t["relation"], t["tail"]
        item = h[5:] if h.startswith("item:") else None
        if r == "title":
            return item in self.title and tail in _forms(self.title[item])
        if r == "year":
            return self.year.get(item) == tail
        if r == "genre":
            return tail in self.genres.get(item, ())
        if r in ("rated", "interacted_with"):
            return h == f"user:{user}" and (user, tail[5:]) in self.rating
        if r == "user_rating":
            return self.rating.get((user, item)) == float(tail)
        if r == "watches_genre":
            return h == f"user:{user}" and tail in self.top_genres.get(user, ())
        if item is not None and item in self.link:
            other = self.link.get(tail[5:]) if tail.startswith("item:") else tail
            return (self.link[item], r, other) in self.kg
        return False

    # ---- (b) the text ----------------------------------------------------------------------
    def text_problems(self, text: str, triples: list[dict], candidate: str) -> list[str]:
        cited = {t["head"][5:] for t in triples if t["head"].startswith("item:")} | {
            t["tail"][5:] for t in triples if t["tail"].startswith("item:")} | {candidate}
        problems, rest = [], text
        for form in self.forms:  # longest titles first, then blanked out
            if form not in rest:
                continue
            pat = re.compile(r"(?<![\w])" + re.escape(form) + r"(?![\w])")
            if pat.search(rest):
                if not self.by_form[form] & cited:
                    problems.append(f"title '{form}' is neither the candidate nor cited")
                rest = pat.sub(" # ", rest)
        years = {t["tail"] for t in triples if t["relation"] == "year"}
        ratings = {float(t["tail"]) for t in triples if t["relation"] == "user_rating"}
        for m in re.finditer(r"\d+(?:\.\d+)?", rest):
            n = m.group()
            if len(n) == 4 and n in years:
                continue
            if float(n) in ratings:
                continue
            problems.append(f"number {n} is not cited")
        genres = {t["tail"] for t in triples if t["relation"] == "genre"}
        watched = {t["tail"] for t in triples if t["relation"] == "watches_genre"}
        low = rest.lower()
        for word, g in GENRE_WORDS.items():
            for m in re.finditer(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", low):
                said_of_user = re.search(r"\byou (?:often )?watch(?:\w*)\s+(?:\S+\s+){0,2}$",
                                         low[:m.start()])
                if said_of_user and g not in watched:
                    problems.append(f"the user is said to watch {g}; not cited")
                elif not said_of_user and g not in genres | watched:
                    problems.append(f"genre {g} is not cited")
        for pat, rel in PHRASES:
            if re.search(pat, low):
                tails = defaultdict(set)
                for t in triples:
                    if t["relation"] == rel and t["head"].startswith("item:"):
                        tails[t["tail"]].add(t["head"][5:])
                shared = any(candidate in heads and len(heads) > 1 for heads in tails.values())
                direct = any(t["relation"] == rel and candidate in (t["head"][5:], t["tail"][5:])
                             and t["tail"].startswith("item:") for t in triples)
                if not (shared or direct):
                    problems.append(f"'{pat}' states {rel}, which no cited triple pair shows")
        return problems

    def audit(self, explanation: dict) -> list[str]:
        """Every problem of one shown explanation (``Explanation.to_dict()``): empty if every
        shown fact is in the files."""
        user, candidate = explanation["user"], explanation["item"]
        out = []
        for s in explanation["sentences"]:
            for t in s["triples"]:
                if not self.triple_ok(t, user):
                    out.append(f"{s['text']!r}: triple {t} is not in the dataset files")
            out += [f"{s['text']!r}: {p}" for p in self.text_problems(s["text"], s["triples"],
                                                                       candidate)]
        return out
