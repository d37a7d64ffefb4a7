"""The prompt of MM-RACL-KAL's eq. 17: task, history, candidate, the candidate's multimodal
keywords (text keywords: title words minus stop-words, plus genres; visual theme words), the
user's multimodal interests (top keywords, genres and theme words over the history), and the
evidence, written as the sentences the verifier can check.

A prompt longer than the backend's window loses history lines first, then evidence lines (the
weakest last); if even the shortest form does not fit, :class:`PromptTooLong` is raised and the
template answers, saying why.
"""

from __future__ import annotations

from ..errors import MMKGRecError
from .evidence import Evidence
from .template import template_sentences

TASK = ("Task: in two or three short sentences, tell the user why they may like the candidate "
        "film. Use only the facts listed under Evidence, in their own words; mention only the "
        "candidate and films from the user's history by their titles. Do not name people, "
        "awards, places or numbers that the evidence does not give.")
HISTORY_LINES = 10


class PromptTooLong(MMKGRecError):
    """Even the shortest prompt exceeds the backend's window."""


def _history_line(catalog, ev: Evidence, h: int) -> str:
    parts = [catalog.years[h]] if catalog.years[h] else []
    if h in ev.ratings:
        parts.append(f"rated {ev.ratings[h]:g}")
    return f"- {catalog.title(h)}" + (f" ({', '.join(parts)})" if parts else "")


def prompt_parts(catalog, ev: Evidence, feedback: list[str] | None = None,
                 n_history: int = HISTORY_LINES, n_evidence: int | None = None) -> str:
    name = catalog.title(ev.item)
    lines = [TASK, "", "User history (most recent first):"]
    hist = ev.history[:n_history]
    lines += [_history_line(catalog, ev, h) for h in hist] or ["- (none)"]
    cand = name + (f" ({ev.year})" if ev.year else "")
    lines += ["", f"Candidate: {cand}"]
    if ev.genres:
        lines.append(f"Candidate genres: {', '.join(ev.genres)}")
    lines.append(f"Candidate keywords: {', '.join(ev.keywords) or '(none)'}")
    if ev.theme_words:
        lines.append(f"Candidate visual themes: {', '.join(ev.theme_words)}")
    lines += ["", "User interests:"]
    if ev.interests:
        lines.append("- genres you watch most: " + ", ".join(g for g, _ in ev.interests))
    if ev.user_keywords:
        lines.append("- keywords: " + ", ".join(ev.user_keywords))
    if ev.user_theme_words:
        lines.append("- visual themes: " + ", ".join(ev.user_theme_words))
    evidence = template_sentences(catalog, ev, 1 + 1 + len(ev.paths))
    if n_evidence is not None:
        evidence = evidence[:n_evidence]
    lines += ["", "Evidence:"] + ([f"- {s}" for s in evidence] or ["- (none)"])
    if feedback:
        lines += ["", "Your previous draft was rejected because: " + "; ".join(feedback[:6])
                  + ". Write it again using only the evidence."]
    lines += ["", "Explanation:"]
    return "\n".join(lines)


def build_prompt(catalog, ev: Evidence, feedback: list[str] | None, fits) -> str:
    """The eq. 17 prompt for ``ev``, shortened until ``fits(prompt)``; PromptTooLong if even
    one history line and one evidence sentence do not fit."""
    full = prompt_parts(catalog, ev, feedback)
    if fits(full):
        return full
    for n_hist in (5, 2, 1):
        p = prompt_parts(catalog, ev, feedback, n_history=n_hist)
        if fits(p):
            return p
    for n_ev in (3, 2, 1):
        p = prompt_parts(catalog, ev, feedback[:1] if feedback else None, n_history=1,
                         n_evidence=n_ev)
        if fits(p):
            return p
    raise PromptTooLong("the prompt does not fit the language model's window even with one "
                        "history line and one evidence sentence (explain_prompt_max_tokens, or "
                        "a model with a longer context)")
