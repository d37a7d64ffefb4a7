"""The verifier: a draft is split into sentences, each sentence into claims, and every claim is
matched against the pair's evidence. Only a sentence whose claims all hold (and that makes at
least one) is shown, with the triples that support it.

Claims read from a sentence
    ``seen``: a catalogue title other than the candidate's must be in the user's training history;
    ``year``: a year belongs to the nearest item mentioned (a title, or "it" / "this film" for
    the candidate); a decade ("the 1980s") always fails: the evidence holds years, and a decade
    in a draft tends to date something else (a genre's popularity); ``genre``: a genre belongs
    to the nearest mention, an item (its genres) or the user ("you": their most watched
    genres); ``relation``: a role of
    :data:`.lexicon.RELATIONS` (or a KG relation written verbatim) links the candidate, which the
    sentence must mention, to the nearest history title through a KG path; ``rating``: "rated 5",
    "5 stars" is the user's rating of the nearest history title.
Claims that always fail (nothing in the evidence can support them)
    ``name``: a capitalised word that is no title, genre or function word (a person, an award);
    ``number``: a number that is no year or rating; ``negation``: a negated statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .evidence import Evidence, Triple
from .lexicon import FUNCTION_WORDS, GENRE_ALIASES, RELATION_OF_TOKEN, RELATIONS

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)*|\S")
_LEADING_ARTICLES = {"the", "a", "an"}
_CANDIDATE_REF = re.compile(r"\b(?:it|its|it's)\b|\b(?:this|the)\s+(?:[\w'-]+\s+){0,2}?"
                            r"(?:film|movie|picture|title|one)\b", re.I)
_USER_REF = re.compile(r"\b(?:you|your|yours|you've|you'll|you're|you'd)\b", re.I)
_YEAR = re.compile(r"(?<![\w.])(1[89]\d\d|20\d\d)(s)?(?![\w])")
_RATING = re.compile(
    r"\b(?:rated|gave|scored|give)\s+(?:it\s+|this\s+|them\s+|that\s+|\x01+\s+)?(?:an?\s+)?"
    r"(\d+(?:\.\d+)?)"
    r"(?:\s*(?:/|out of)\s*\d+)?(?:\s+stars?)?\b"
    r"|\b(?:a\s+)?rating\s+of\s+(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*\d+)?"
    r"|\b(\d+(?:\.\d+)?)\s*(?:stars?\b|/\s*5\b|out of 5\b)", re.I)
_CLAUSE_END = re.compile(r"[,;:]\s|\s(?:and|but|while|whereas|so)\s|\s-\s")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NEGATION = re.compile(r"\b(?:not|never|no|neither|nor|without|cannot)\b|n't\b", re.I)
_REL_PATTERNS = [(w.key, re.compile("|".join(w.patterns), re.I)) for w in RELATIONS]


def _normalise(text: str) -> str:
    return (text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"')
            .replace("\u201d", '"').replace("\u2013", "-").replace("\u2014", "-"))


@dataclass
class Claim:
    kind: str
    text: str
    ok: bool
    triples: list[Triple] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "text": self.text, "ok": self.ok, "reason": self.reason,
                "triples": [t.to_dict() for t in self.triples]}


@dataclass
class SentenceCheck:
    text: str
    claims: list[Claim]

    @property
    def verified(self) -> bool:
        return bool(self.claims) and all(c.ok for c in self.claims)

    @property
    def triples(self) -> list[Triple]:
        return list(dict.fromkeys(t for c in self.claims for t in c.triples))

    @property
    def failures(self) -> list[str]:
        """The reasons of the claims that fail (a sentence without claims fails none: it is
        simply not shown)."""
        return [c.reason for c in self.claims if not c.ok]


class TitleIndex:
    """Catalogue titles as token sequences, for a left-to-right longest match in a draft: exact
    tokens, except that a leading article may change case ("the Usual Suspects")."""

    def __init__(self, aliases: dict[str, list[int]]):
        self.exact: dict[tuple[str, ...], frozenset] = {}
        self.lengths: dict[str, list[int]] = {}  # first token (lower case) -> lengths, longest first
        for alias, items in aliases.items():
            toks = tuple(_TOKEN.findall(_normalise(alias)))
            if not toks:
                continue
            key = self._key(toks)
            self.exact[key] = self.exact.get(key, frozenset()) | frozenset(items)
            self.lengths.setdefault(toks[0].lower(), []).append(len(toks))
        for k, v in self.lengths.items():
            self.lengths[k] = sorted(set(v), reverse=True)

    @staticmethod
    def _key(toks) -> tuple[str, ...]:
        if len(toks) > 1 and toks[0].lower() in _LEADING_ARTICLES:
            return (toks[0].lower(),) + tuple(toks[1:])
        return tuple(toks)

    def find(self, text: str) -> list[tuple[int, int, frozenset]]:
        """Non-overlapping ``(start, end, items)`` title spans of ``text``."""
        toks = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
        words = [t[0] for t in toks]
        out, i = [], 0
        while i < len(toks):
            step = 1
            for n in self.lengths.get(words[i].lower(), ()):
                if i + n > len(toks):
                    continue
                items = self.exact.get(self._key(words[i:i + n]))
                if items is not None:
                    out.append((toks[i][1], toks[i + n - 1][2], items))
                    step = n
                    break
            i += step
        return out


def split_sentences(text: str, titles: list[tuple[int, int, frozenset]]) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence: ends at ``.``, ``!``, ``?`` followed by a space or the
    end (never inside a title), or at a line break."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        k = m.start()
        if any(a <= k < b for a, b, _ in titles):
            continue
        end = k if text[k] == "\n" else k + 1
        if text[start:end].strip():
            spans.append((start, end))
        start = k + 1
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


_BULLET = re.compile(r"\s*(?:[-*\u2022]|\d{1,2}[.)])?\s*")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


class Verifier:
    """Checks drafts against one run's evidence; built once per :class:`~.evidence.Catalog`."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.titles = TitleIndex(catalog.aliases)
        vocab = {g.lower(): g for g in catalog.genre_vocab}
        forms = dict(vocab)
        forms.update({a: vocab[t] for a, t in GENRE_ALIASES.items() if t in vocab})
        self.genre_of = forms
        names = sorted(forms, key=len, reverse=True)
        self.genre_re = (re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])",
                                    re.I) if names else None)
        toks = sorted(catalog.relation_tokens, key=len, reverse=True)
        self.reltok_re = (re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, toks)) + r")(?![\w])")
                          if toks else None)
        self.genre_words = {w for g in vocab for w in re.split(r"[^a-z']+", g) if w}

    # ---- the whole draft -----------------------------------------------------------------
    def check(self, draft: str, ev: Evidence, complete_only: bool = False) -> list[SentenceCheck]:
        """Every sentence of ``draft`` with its claims. ``complete_only``: a last sentence
        without its full stop (a language model cut off at its token limit) is left out."""
        text = _normalise(draft or "")
        titles = self.titles.find(text)
        out = []
        spans = split_sentences(text, titles)
        if complete_only and spans and text[spans[-1][0]:spans[-1][1]].rstrip()[-1:] not in ".!?":
            spans = spans[:-1]
        for a, b in spans:
            # leave out a list marker and the whitespace at the edges; offsets stay absolute
            m = _BULLET.match(text, a, b)
            a = m.end() if m else a
            while b > a and text[b - 1].isspace():
                b -= 1
            if not any(ch.isalnum() for ch in text[a:b]):
                continue
            sent_titles = [t for t in titles if t[0] >= a and t[1] <= b]
            out.append(SentenceCheck(text[a:b], self._claims(text, a, b, sent_titles, ev)))
        return out

    # ---- one sentence --------------------------------------------------------------------
    def _claims(self, text: str, a: int, b: int, titles, ev: Evidence) -> list[Claim]:
        cat = self.catalog
        s = text[a:b]
        taken = [False] * len(s)

        def free(x: int, y: int) -> bool:
            return not any(taken[x:y])

        def take(x: int, y: int) -> None:
            for k in range(x, y):
                taken[k] = True

        claims: list[Claim] = []
        user = f"user:{ev.user_id}"
        c = ev.item
        hist = ev.history_set
        # mentions: (start, end, kind, items) with offsets inside the sentence
        items_at: list[tuple[int, int, frozenset]] = []
        hist_at: list[tuple[int, int, frozenset]] = []
        for x, y, items in titles:
            x, y = x - a, y - a
            take(x, y)
            if c in items:
                items_at.append((x, y, frozenset([c])))
                continue
            items_at.append((x, y, items))
            hist_at.append((x, y, items))
            seen = sorted(i for i in items if i in hist)
            name = s[x:y]
            if seen:
                h = seen[0]
                claims.append(Claim("seen", name, True, [Triple(user, "rated" if ev.ratings else
                                                                "interacted_with", cat.node(h),
                                                                "history")]))
            else:
                claims.append(Claim("seen", name, False,
                                    reason=f"'{name}' is not in the user's history"))
        for m in _CANDIDATE_REF.finditer(s):
            if free(m.start(), m.end()):
                items_at.append((m.start(), m.end(), frozenset([c])))
        mentions_candidate = any(c in it for _, _, it in items_at)
        user_at = [(m.start(), m.end()) for m in _USER_REF.finditer(s) if free(m.start(), m.end())]

        clause = [0] * (len(s) + 1)  # clause number of each character
        k = 0
        for pos in range(len(s)):
            clause[pos] = k
            if _CLAUSE_END.match(s, pos):
                k += 1
        clause[len(s)] = k

        def nearest(x, y, spans):
            """The span nearest to [x, y): in the same clause first, then by characters."""
            best, dist = None, None
            for sp in spans:
                d = (clause[sp[0]] != clause[x], max(sp[0] - y, x - sp[1], 0))
                if dist is None or d < dist:
                    best, dist = sp, d
            return best, dist

        # KG relations written verbatim
        roles: dict[str, tuple[int, int]] = {}
        if self.reltok_re is not None:
            for m in self.reltok_re.finditer(s):
                if free(m.start(), m.end()):
                    tok = m.group(1)
                    words = RELATION_OF_TOKEN.get(tok)
                    roles.setdefault(words.key if words else f"rel:{tok}", (m.start(), m.end()))
                    take(m.start(), m.end())
        # ratings
        masked = "".join("\x01" if taken[k] else ch for k, ch in enumerate(s))  # titles
        for m in _RATING.finditer(masked):
            g = m.lastindex
            if not free(m.start(g), m.end(g)):
                continue
            take(m.start(), m.end())
            value = float(m.group(g))
            said = s[m.start():m.end()]
            spot, _ = nearest(m.start(), m.end(), hist_at)
            if spot is None:
                claims.append(Claim("rating", said, False,
                                    reason=f"'{said}' names no film of the history"))
                continue
            got = [i for i in spot[2] if i in ev.ratings and ev.ratings[i] == value]
            if got:
                claims.append(Claim("rating", said, True,
                                    [Triple(cat.node(got[0]), "user_rating", f"{value:g}",
                                            "history")]))
            else:
                have = [f"{ev.ratings[i]:g}" for i in spot[2] if i in ev.ratings]
                claims.append(Claim("rating", said, False, reason=(
                    f"the user rated '{s[spot[0]:spot[1]]}' {have[0]}, not {value:g}" if have
                    else f"no rating of '{s[spot[0]:spot[1]]}' is known")))
        # roles written in words
        for key, rx in _REL_PATTERNS:
            for m in rx.finditer(s):
                if free(m.start(), m.end()):
                    roles.setdefault(key, (m.start(), m.end()))
                    take(m.start(), m.end())
        for role, (x, y) in roles.items():
            phrase = s[x:y]
            if not mentions_candidate:
                claims.append(Claim("relation", phrase, False,
                                    reason=f"'{phrase}' is not said of the recommended item"))
                continue
            spot, _ = nearest(x, y, hist_at)
            if spot is None:
                claims.append(Claim("relation", phrase, False,
                                    reason=f"'{phrase}' names no film of the history to share it"))
                continue
            paths = [p for p in ev.all_paths if p.history in spot[2]
                     and (p.role == role or p.role == role + "~")]
            if paths:
                claims.append(Claim("relation", phrase, True, list(paths[0].triples)))
            else:
                claims.append(Claim("relation", phrase, False, reason=(
                    f"no {role.removeprefix('rel:')} links {cat.title(c)} to "
                    f"'{s[spot[0]:spot[1]]}' in the knowledge graph")))
        # genres
        if self.genre_re is not None:
            for m in self.genre_re.finditer(s):
                if not free(m.start(), m.end()):
                    continue
                take(m.start(), m.end())
                g = self.genre_of[m.group(1).lower()]
                item_spot, di = nearest(m.start(), m.end(), items_at)
                user_spot, du = nearest(m.start(), m.end(), [(x, y, None) for x, y in user_at])
                if user_spot is not None and (item_spot is None or du < di):
                    top = {k for k, _ in ev.interests}
                    if g in top:
                        n = dict(ev.interests)[g]
                        claims.append(Claim("genre", m.group(), True,
                                            [Triple(user, "watches_genre", g, "history")]
                                            if n else []))
                    else:
                        claims.append(Claim("genre", m.group(), False, reason=(
                            f"{g} is not among the user's most watched genres")))
                    continue
                targets = item_spot[2] if item_spot is not None else frozenset([c])
                hit = [i for i in sorted(targets) if g in cat.genres[i]]
                if hit:
                    claims.append(Claim("genre", m.group(), True,
                                        [Triple(cat.node(hit[0]), "genre", g, "item")]))
                else:
                    who = cat.title(min(targets))
                    claims.append(Claim("genre", m.group(), False,
                                        reason=f"{who} is not listed under {g}"))
        # years
        for m in _YEAR.finditer(s):
            if not free(m.start(), m.end()):
                continue
            take(m.start(), m.end())
            y, decade = m.group(1), bool(m.group(2))
            spot, _ = nearest(m.start(), m.end(), items_at)
            targets = spot[2] if spot is not None else frozenset([c])
            if decade:  # "popular in the 1980s": no year of the evidence says that
                claims.append(Claim("year", m.group(), False, reason=(
                    f"a decade ({m.group()}) is no fact of the evidence; only an item's year is")))
            elif hit := [i for i in sorted(targets) if cat.years[i] and cat.years[i] == y]:
                claims.append(Claim("year", m.group(), True,
                                    [Triple(cat.node(hit[0]), "year", cat.years[hit[0]], "item")]))
            else:
                who = cat.title(min(targets))
                known = cat.years[min(targets)]
                claims.append(Claim("year", m.group(), False, reason=(
                    f"{who} is from {known}, not {m.group()}" if known
                    else f"the year of {who} is not known")))
        # what nothing can support
        for m in _NUMBER.finditer(s):
            if free(m.start(), m.end()):
                take(m.start(), m.end())
                claims.append(Claim("number", m.group(), False,
                                    reason=f"the number {m.group()} is not in the evidence"))
        words = [(m.group(), m.start(), m.end()) for m in re.finditer(r"[A-Za-z][\w'-]*", s)]
        for k, (w, x, y) in enumerate(words):
            if k == 0 or not free(x, y) or not w[0].isupper():
                continue
            low = w.lower()
            if low in FUNCTION_WORDS or low in self.genre_words or low == "freebase":
                continue
            claims.append(Claim("name", w, False,
                                reason=f"'{w}' names something the evidence does not hold"))
        plain = "".join(" " if taken[k] and k < len(taken) else ch for k, ch in enumerate(s))
        neg = _NEGATION.search(plain)  # outside titles ("To Be or Not to Be" negates nothing)
        if claims and neg:
            claims.append(Claim("negation", neg.group(), False,
                                reason="a negated statement cannot be checked against the graph"))
        return claims


def verified_share(checks: list[SentenceCheck]) -> tuple[int, int]:
    """(claims that hold, claims made) over ``checks``."""
    claims = [c for s in checks for c in s.claims]
    return sum(c.ok for c in claims), len(claims)
