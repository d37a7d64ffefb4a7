"""Models, registered by name. Importing this package registers every built-in model."""

from .base import ModelInputs, Recommender, build_inputs, get_model_class, register, registered_models
from . import mf  # noqa: F401  (registers BPR, LightGCN, Pop)
from . import vbpr, mmgcn  # noqa: F401,E402  (registers VBPR, MMGCN)

__all__ = ["ModelInputs", "Recommender", "build_inputs", "get_model_class", "register",
           "registered_models"]
