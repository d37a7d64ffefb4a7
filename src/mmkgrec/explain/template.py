"""The deterministic template backend: sentences written from the evidence alone, no model.

It writes at most one sentence on the candidate's attributes, one tying its genre to the user's
most watched genres, and one per shown KG path (``explain_max_paths``), each in the words of
:mod:`.lexicon` so that the verifier reads back exactly what was written. A relation the lexicon
does not name is written verbatim ("is linked to Heat through film.film.language").
"""

from __future__ import annotations

from .evidence import Evidence
from .lexicon import RELATION_BY_KEY


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _history_clause(catalog, ev: Evidence, h: int) -> str:
    title = catalog.title(h)
    r = catalog.rating_text(ev, h)
    return f"{title}, which you rated {r}" if r is not None else f"{title}, which you watched"


def template_sentences(catalog, ev: Evidence, max_sentences: int) -> list[str]:
    """The template's sentences for ``ev`` (possibly none: a pair without a title, attributes or
    evidence has nothing to say; the notes say why)."""
    out: list[str] = []
    name = catalog.titles[ev.item]
    if name is None:
        return out
    year = f" ({ev.year})" if ev.year else ""
    if ev.genres:
        out.append(f"{name}{year} is listed under {_join(ev.genres)}.")
    elif ev.year:
        out.append(f"{name} came out in {ev.year}.")
    top = [g for g, n in ev.interests[:3] if n >= 2]  # clearly among the most watched
    shared = [g for g in top if g in ev.genres]
    if shared:
        g = shared[0]
        out.append(f"You often watch {g} films, and {name} is {_article(g)} {g} film too.")
    for p in ev.paths:
        words = RELATION_BY_KEY.get(p.role)
        clause = _history_clause(catalog, ev, p.history)
        if words is not None:
            out.append(f"{name} {words.template.format(h=clause)}.")
        elif p.role.endswith("~"):  # a direct link from the history item
            out.append(f"{catalog.title(p.history)} is linked to {name} through {p.relation}.")
        else:
            verb = "is linked to" if p.entity is None else "shares an entity with"
            out.append(f"{name} {verb} {clause} through {p.relation}.")
    return out[:max_sentences]
