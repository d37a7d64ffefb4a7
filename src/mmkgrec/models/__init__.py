"""Models, registered by name. Importing this package registers every built-in model."""

from .base import ModelInputs, Recommender, build_inputs, get_model_class, register, registered_models
from . import mf  # noqa: F401  (registers BPR, LightGCN, Pop)
from . import vbpr, mmgcn  # noqa: F401,E402  (registers VBPR, MMGCN)
from . import cke, kgcn, kgat  # noqa: F401,E402  (registers CKE, KGCN, KGAT)
from . import mkgat, multikg4rec  # noqa: F401,E402  (registers MKGAT, MultiKG4Rec)
from . import sequential  # noqa: F401,E402  (registers GRU4Rec, SASRec, BERT4Rec)
from . import mmraclkal  # noqa: F401,E402  (registers MMRACLKAL)
from . import biased_mf, bias_only  # noqa: F401,E402  (registers BiasedMF, BiasOnly: rating)
from . import majority, content_lr  # noqa: F401,E402  (registers Majority, ContentLR: classification)

__all__ = ["ModelInputs", "Recommender", "build_inputs", "get_model_class", "register",
           "registered_models"]
