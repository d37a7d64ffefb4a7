"""Knowledge-anchored explanations (MM-RACL-KAL section 3.5, eq. 17): a backend drafts, the
verifier checks every claim against the evidence, a failing draft is corrected, and only
verified sentences reach the user, each with its supporting triples.

Flow for one (user, item) pair
    1. :meth:`~.evidence.Catalog.evidence` gathers the facts (item attributes, KG paths to the
       history, the user's interests).
    2. The backend drafts: ``template`` writes from the evidence; a language model
       (``transformers``, ``http``) answers the eq. 17 prompt (:mod:`.prompt`).
    3. :class:`~.verifier.Verifier` splits the draft into claims; for a language model's draft
       the whole text's MiniLM similarity to the user's interest vector is checked against
       ``explain_similarity_threshold``.
    4. A draft with a failing claim, or too far from the user's interests, is drafted again with
       its failures named (``explain_max_attempts`` drafts in all); then the template answers.
       Whatever is shown is the verified sentences of the draft kept.

Explanation is post-processing: it reads the run's data and never changes a score.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ..errors import MMKGRecError
from .evidence import Catalog, Evidence, Triple
from .template import template_sentences
from .verifier import SentenceCheck, Verifier, verified_share

log = logging.getLogger(__name__)

BACKENDS = ("template", "transformers", "http")


class ExplainError(MMKGRecError):
    """An explanation cannot be made as asked (an unknown backend, a backend that cannot
    start); the message says what to change."""


@dataclass
class Sentence:
    text: str
    triples: list[Triple]

    def to_dict(self) -> dict:
        return {"text": self.text, "triples": [t.to_dict() for t in self.triples]}


@dataclass
class Attempt:
    """One draft: its text, the backend that wrote it, the verifier's failures, and the share
    of its claims that held."""

    backend: str
    draft: str
    failures: list[str]
    claims_ok: int
    claims: int
    similarity: float | None = None
    error: str | None = None

    def to_dict(self) -> dict:
        return {"backend": self.backend, "draft": self.draft, "failures": self.failures,
                "claims_ok": self.claims_ok, "claims": self.claims,
                "similarity": self.similarity, "error": self.error}


@dataclass
class Explanation:
    """What the user is shown (``text``: the verified sentences, each in ``sentences`` with its
    triples) and how it came about. ``backend``: who wrote the shown text (``template`` when the
    language model's drafts all failed); ``verified``: every shown sentence was checked and
    holds (False only when nothing could be shown); ``notes``: why an explanation says less than
    it could (no history, no KG link, a backend that failed)."""

    user: str
    item: str
    title: str | None
    backend: str
    requested_backend: str
    text: str
    sentences: list[Sentence]
    verified: bool
    corrected: bool
    notes: list[str]
    attempts: list[Attempt]
    labels: dict[str, str]
    seconds: float = 0.0
    evidence: Evidence | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"user": self.user, "item": self.item, "title": self.title,
                "backend": self.backend, "requested_backend": self.requested_backend,
                "text": self.text, "sentences": [s.to_dict() for s in self.sentences],
                "verified": self.verified, "corrected": self.corrected, "notes": self.notes,
                "attempts": [a.to_dict() for a in self.attempts], "labels": self.labels,
                "seconds": self.seconds}


class Explainer:
    """Explanations for one run; the evidence tables are built once (``Run.explainer()``)."""

    def __init__(self, run, config):
        self.run, self.config = run, config
        kg = run.kg
        if kg is None and run.data is None and run.dataset.kg is not None:
            from ..runs import run_kg

            kg = run_kg(None, run.dataset, config)  # a run trained in memory
        self.catalog = Catalog(run, config, kg)
        self.verifier = Verifier(self.catalog)
        self._backends: dict = {}
        self._interest = None  # the similarity check's MiniLM vectors, built on first use

    # ---- pieces ---------------------------------------------------------------------------
    def evidence(self, u: int, i: int, config=None) -> Evidence:
        config = config or self.config
        reasons = None
        if config["explain_model_reasons"]:
            from .reasons import has_reasons, influence

            model = self.run.model
            if has_reasons(model):
                self.run._prepare()
                reasons = influence(model, u, i)
        return self.catalog.evidence(u, i, config, reasons)

    def check(self, draft: str, ev: Evidence, complete_only: bool = False) -> list[SentenceCheck]:
        return self.verifier.check(draft, ev, complete_only)

    def backend(self, name: str, config):
        if name not in BACKENDS:
            raise ExplainError(f"unknown explanation backend '{name}'; choose one of "
                               f"{', '.join(BACKENDS)}")
        if name == "template":
            return None
        from .backends import make_backend

        key = (name, config["explain_lm_path"] if name == "transformers"
               else config["explain_http_url"])
        if key not in self._backends:
            self._backends[key] = make_backend(name, config)
        return self._backends[key]

    def similarity(self, text: str, ev: Evidence) -> float | None:
        from .similarity import InterestSimilarity

        if self._interest is None:
            self._interest = InterestSimilarity(self.catalog, self.config)
        return self._interest.similarity(text, ev)

    # ---- one explanation --------------------------------------------------------------------
    def explain(self, u: int, i: int, backend: str | None = None, config=None) -> Explanation:
        t0 = time.perf_counter()
        config = config or self.config
        name = backend or config["explain_backend"]
        lm = self.backend(name, config)
        ev = self.evidence(u, i, config)
        notes = list(ev.notes)
        attempts: list[Attempt] = []
        kept: list[SentenceCheck] | None = None
        shown_by = "template"
        if lm is not None:
            from .prompt import build_prompt

            feedback: list[str] = []
            for _ in range(config["explain_max_attempts"]):
                try:
                    prompt = build_prompt(self.catalog, ev, feedback, lm.fits)
                    draft = lm.generate(prompt, config)
                except MMKGRecError as e:  # a timeout, an unreachable server, a prompt too long
                    attempts.append(Attempt(name, "", [str(e)], 0, 0, error=str(e)))
                    notes.append(f"the {name} backend failed ({e}); the template answered")
                    break
                checks = self.check(draft, ev, complete_only=True)
                ok, n = verified_share(checks)
                failures = list(dict.fromkeys(f for c in checks for f in c.failures))
                if not draft.strip():
                    failures = ["the draft is empty"]
                elif not any(c.verified for c in checks):
                    failures.append("no sentence states a fact of the evidence")
                threshold = config["explain_similarity_threshold"]
                sim = (self.similarity(draft, ev) if draft.strip() and threshold > -1
                       else None)  # -1: the check is off
                if sim is not None and sim < threshold:
                    failures.append(f"the text's similarity to the user's interests is {sim:.2f}, "
                                    f"below {config['explain_similarity_threshold']:g}")
                attempts.append(Attempt(name, draft, failures, ok, n, sim))
                if not failures:
                    kept, shown_by = checks, name
                    break
                feedback = failures
            else:
                notes.append(f"no {name} draft passed the verifier in "
                             f"{config['explain_max_attempts']} attempts; the template answered")
        if kept is None:
            draft = " ".join(template_sentences(self.catalog, ev, config["explain_max_sentences"]))
            checks = self.check(draft, ev)
            ok, n = verified_share(checks)
            attempts.append(Attempt("template", draft, [f for c in checks for f in c.failures],
                                    ok, n))
            kept = checks
        shown = list({c.text: c for c in kept if c.verified}.values())  # each sentence once
        shown = shown[:config["explain_max_sentences"]]
        sentences = [Sentence(c.text, c.triples) for c in shown]
        if not sentences and not notes:
            notes.append("the evidence holds nothing that could be said about this pair")
        labels = {self.catalog.node(ev.item): self.catalog.title(ev.item)}
        for s in sentences:
            for t in s.triples:
                for node in (t.head, t.tail):
                    if node.startswith("item:"):
                        labels.setdefault(node, self._label(node))
        return Explanation(
            user=ev.user_id, item=ev.item_id, title=ev.title, backend=shown_by,
            requested_backend=name, text=" ".join(s.text for s in sentences), sentences=sentences,
            verified=bool(sentences), corrected=len(attempts) > 1 or shown_by != name,
            notes=notes, attempts=attempts, labels=labels,
            seconds=time.perf_counter() - t0, evidence=ev)

    def _label(self, node: str) -> str:
        try:
            return self.catalog.title(self.run.item_index(node[len("item:"):]))
        except KeyError:
            return node
