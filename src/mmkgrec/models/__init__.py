"""Models, registered by name. Importing this package registers every built-in model.

One file per model (``bpr.py``, ``lightgcn.py``, ..., ``mmraclkal.py``); the bases several models
share live in ``base.py`` (the contract, the registry, ``VectorModel``), ``factor_base.py``
(BPR-style factor models), ``sequential_base.py`` (next-item models) and ``ckg_base.py`` (models
over the collaborative KG). Layers and losses come from :mod:`mmkgrec.nn`."""

from .base import ModelInputs, Recommender, build_inputs, get_model_class, register, registered_models
from . import pop, bpr, lightgcn  # noqa: F401  (registers Pop, BPR, LightGCN)
from . import vbpr, mmgcn  # noqa: F401,E402  (registers VBPR, MMGCN)
from . import cke, kgcn, kgat  # noqa: F401,E402  (registers CKE, KGCN, KGAT)
from . import mkgat, multikg4rec  # noqa: F401,E402  (registers MKGAT, MultiKG4Rec)
from . import gru4rec, sasrec, bert4rec  # noqa: F401,E402  (registers GRU4Rec, SASRec, BERT4Rec)
from . import mmraclkal  # noqa: F401,E402  (registers MMRACLKAL)
from . import biased_mf, bias_only  # noqa: F401,E402  (registers BiasedMF, BiasOnly: rating)
from . import majority, content_lr  # noqa: F401,E402  (registers Majority, ContentLR: classification)
from . import llmkgrec, content_knn  # noqa: F401,E402  (registers LLMKGRec, ContentKNN)
from . import kgbm4rec  # noqa: F401,E402  (registers KGBM4Rec: classification, rating, ranking)

__all__ = ["ModelInputs", "Recommender", "build_inputs", "get_model_class", "register",
           "registered_models"]
