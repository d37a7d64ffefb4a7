"""Nearest-neighbour search over item vectors (FAISS, with an exact torch fallback)."""

from .faiss_index import ItemIndex, have_faiss

__all__ = ["ItemIndex", "have_faiss"]
