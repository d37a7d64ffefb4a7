"""The words of explanations, in one place: how a relation is written and read, genre names and
their other forms, stop-words, and the display form of titles.

The template backend writes a relation with ``RELATIONS[key].template``; the verifier reads a
relation back with ``RELATIONS[key].patterns``, so both sides share one table. A KG relation that
no entry names is written and read verbatim (``"through film.film.language"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class RelationWords:
    """One role two items can share through a KG entity (or one direct link between items).

    ``relations``: the KG relation tokens it covers (item -> entity); ``template``: the phrase the
    template backend writes between the candidate and the history title (``{h}``); ``patterns``:
    regular expressions (case-insensitive) the verifier reads as an assertion of this role;
    ``direct``: a link item -> item (sequel, prequel) rather than a shared entity."""

    key: str
    relations: tuple[str, ...]
    template: str
    patterns: tuple[str, ...]
    direct: bool = False
    inverse: str | None = None  # a direct link read the other way round (sequel <-> prequel)


RELATIONS: tuple[RelationWords, ...] = (
    # cinematography first: "director of photography" must not read as a director
    RelationWords("cinematographer", ("film.film.cinematography",),
                  "was shot by the same cinematographer as {h}",
                  (r"cinematograph\w*", r"directors? of photography", r"\bshot by\b",
                   r"camera ?(?:man|men|work|operator)")),
    RelationWords("director", ("film.film.directed_by",),
                  "was directed by the same person as {h}",
                  (r"\bdirect(?:ed|s|ing|or|ors|orial)?\b", r"\bhelm(?:ed|s)?\b",
                   r"\bfilm-?makers?\b", r"\bfrom the (?:same )?(?:maker|mind)s? (?:of|behind)\b")),
    RelationWords("writer", ("film.film.written_by",),
                  "was written by the same writer as {h}",
                  (r"\bwr(?:i|o)t(?:e|ten|er|ers|ing)\b", r"\bscreen ?(?:writer|play)s?\b",
                   r"\bscripts?\b", r"\bscripted\b", r"\bpenned\b", r"\bauthor(?:ed)?\b")),
    RelationWords("producer", ("film.film.produced_by",),
                  "was produced by the same producer as {h}",
                  (r"\bproduc(?:ed|er|ers|es|ing)\b",)),
    RelationWords("actor", ("film.film.actor",),
                  "shares a cast member with {h}",
                  (r"\bstar(?:s|red|ring)?\b", r"\bact(?:or|ors|ress|resses|ed|s)\b",
                   r"\bcast\b", r"\bcast members?\b", r"\bappear(?:s|ed)?\b", r"\bperformers?\b")),
    RelationWords("studio", ("film.film.production_companies",),
                  "comes from the same studio as {h}",
                  (r"\bstudios?\b", r"\bproduction compan(?:y|ies)\b", r"\bcompan(?:y|ies)\b")),
    RelationWords("award_won", ("film.film.award_won",),
                  "shares an award win with {h}",
                  (r"\bwon\b", r"\bwin(?:s|ner|ners)?\b")),
    RelationWords("award_nomination", ("film.film.award_nomination",),
                  "shares an award nomination with {h}",
                  (r"\bnominat\w*",)),
    RelationWords("subject", ("film.film.subjects",),
                  "deals with the same subject as {h}",
                  (r"\bsubjects?\b", r"\bthemes?\b", r"\btopics?\b")),
    RelationWords("language", ("film.film.language",),
                  "is in the same language as {h}",
                  (r"\blanguages?\b",)),
    RelationWords("country", ("film.film.country",),
                  "comes from the same country as {h}",
                  (r"\bcountr(?:y|ies)\b",)),
    RelationWords("content_rating", ("film.film.rating",),
                  "has the same content rating as {h}",
                  (r"\bcontent ratings?\b", r"\bmpaa\b", r"\bcertificat\w*")),
    RelationWords("kg_genre", ("film.film.genre",),
                  "shares a Freebase genre with {h}",
                  (r"\bfreebase genres?\b",)),
    # direct links: (candidate, film.film.prequel, h) says h is the candidate's prequel
    RelationWords("sequel_of", ("film.film.prequel",), "is a sequel to {h}",
                  (r"\bsequel (?:to|of)\b", r"\bfollow[- ]?up (?:to|of)\b", r"\bfollows\b",
                   r"\bcontinu(?:es|ation of)\b"), direct=True, inverse="prequel_of"),
    RelationWords("prequel_of", ("film.film.sequel",), "is the prequel to {h}",
                  (r"\bprequel (?:to|of)\b", r"\bprecedes\b", r"\bcomes before\b"), direct=True, inverse="sequel_of"),
)
RELATION_BY_KEY = {r.key: r for r in RELATIONS}
RELATION_OF_TOKEN = {tok: r for r in RELATIONS for tok in r.relations}

#: other written forms of genre names (lower case) -> the form to look up in the catalogue's
#: genres (lower case); plurals and adjectives of the ML-100K genres, and common synonyms
GENRE_ALIASES = {
    "comedies": "comedy", "comedic": "comedy", "funny": "comedy",
    "dramas": "drama", "dramatic": "drama",
    "thrillers": "thriller", "thrilling": "thriller",
    "romances": "romance", "romantic": "romance",
    "musicals": "musical", "westerns": "western",
    "documentaries": "documentary", "documentary": "documentary",
    "animated": "animation", "cartoon": "animation", "cartoons": "animation",
    "children": "children's", "childrens": "children's", "kids": "children's",
    "family": "children's",
    "science fiction": "sci-fi", "scifi": "sci-fi", "sci fi": "sci-fi", "science-fiction": "sci-fi",
    "noir": "film-noir", "film noir": "film-noir", "noirs": "film-noir",
    "mysteries": "mystery", "adventures": "adventure", "fantasies": "fantasy",
    "war films": "war", "war movies": "war", "horror": "horror", "scary": "horror",
    "crime": "crime", "criminal": "crime", "action-packed": "action",
}

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
don't down during each few for from further had hadn't has hasn't have haven't having he he'd
he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into
is isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only
or other ought our ours ourselves out over own same shan't she she'd she'll she's should
shouldn't so some such than that that's the their theirs them themselves then there there's these
they they'd they'll they're they've this those through to too under until up very was wasn't we
we'd we'll we're we've were weren't what what's when when's where where's which while who who's
whom why why's with won't would wouldn't you you'd you'll you're you've your yours yourself
yourselves le la les el los das der die de du des il
""".split())

#: capitalised words that name nothing (sentence openers, pronouns, months are not here on
#: purpose: a month is a fact)
FUNCTION_WORDS = frozenset("""
a an and as at because before both but by for from given if in it its it's like since so that
the their these this those though to too what when where which while who with yet you your
yours you'll you've you're we i our my also fans fan released release based although after
however moreover plus then thus there here each every one many much more most its
""".split())

_ARTICLES = ("The", "A", "An", "Les", "La", "Le", "Il", "Das", "Der", "Die", "El", "L'")
_TRAILING_ARTICLE = re.compile(r"^(?P<main>.+), (?P<art>" + "|".join(map(re.escape, _ARTICLES))
                               + r")(?P<rest>\s*\(.*\))?$")


def display_title(raw: str) -> str:
    """MovieLens writes "Usual Suspects, The"; people write "The Usual Suspects"."""
    raw = " ".join(str(raw).split())
    m = _TRAILING_ARTICLE.match(raw)
    if not m:
        return raw
    art = m.group("art")
    sep = "" if art.endswith("'") else " "
    return f"{art}{sep}{m.group('main')}{m.group('rest') or ''}"


def title_aliases(raw: str) -> set[str]:
    """The written forms of a title the verifier recognises: the raw and display forms, and
    each without a trailing parenthesised alternative title ("Seven (Se7en)" -> "Seven")."""
    out = set()
    for t in {" ".join(str(raw).split()), display_title(raw)}:
        out.add(t)
        short = re.sub(r"\s*\([^()]*\)\s*$", "", t).strip()
        if short:
            out.add(short)
            out.add(display_title(short))
    return {a for a in out if a}


_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


def keywords(text: str) -> list[str]:
    """The words of ``text`` (lower case) without stop-words and one-letter words, in order."""
    return [w.lower() for w in _WORD.findall(text)
            if len(w) > 1 and w.lower() not in STOP_WORDS]
