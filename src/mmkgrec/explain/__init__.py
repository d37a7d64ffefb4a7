"""Knowledge-anchored explanations of recommendations (MM-RACL-KAL section 3.5, eq. 17), for
every model: evidence from the run's KG, item table and history (:mod:`.evidence`), drafts from a
template or a language model (:mod:`.template`, :mod:`.backends`, :mod:`.prompt`), a verifier
that shows only what the evidence supports (:mod:`.verifier`), and the loop that corrects
failing drafts (:mod:`.explainer`). Entry points: ``Run.explain``, ``Run.explain_top`` and
``mmkgrec explain``."""

from .evidence import Catalog, Evidence, Path, Triple
from .explainer import BACKENDS, Attempt, Explainer, ExplainError, Explanation, Sentence
from .verifier import Claim, SentenceCheck, Verifier

__all__ = ["Attempt", "BACKENDS", "Catalog", "Claim", "Evidence", "ExplainError", "Explainer",
           "Explanation", "Path", "Sentence", "SentenceCheck", "Triple", "Verifier"]
