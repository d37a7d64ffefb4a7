"""The verifier's interest check: the cosine similarity of an explanation's MiniLM vector to the
user's interest vector, the mean MiniLM vector of the texts of their training history (each
item's text: "title. year. genres"). Item vectors are encoded on first use and kept."""

from __future__ import annotations

import numpy as np

from .evidence import Evidence


class InterestSimilarity:
    def __init__(self, catalog, config, encoder=None):
        self.catalog = catalog
        if encoder is None:
            from ..features.encoders import minilm

            encoder = minilm(config["device"])
        self.encoder = encoder
        self.vectors = np.zeros((catalog.n_items, 0), dtype=np.float32)
        self.done = np.zeros(catalog.n_items, dtype=bool)

    def item_text(self, i: int) -> str:
        c = self.catalog
        parts = [c.title(i)] + ([c.years[i]] if c.years[i] else []) + (
            [", ".join(c.genres[i])] if c.genres[i] else [])
        return ". ".join(parts)

    def _encode(self, texts: list[str]) -> np.ndarray:
        v = np.asarray(self.encoder.encode(texts), dtype=np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def interest_vector(self, ev: Evidence) -> np.ndarray | None:
        hist = np.asarray(ev.history, dtype=np.int64)
        if len(hist) == 0:
            return None
        todo = hist[~self.done[hist]]
        if len(todo):
            v = self._encode([self.item_text(int(i)) for i in todo])
            if self.vectors.shape[1] == 0:
                self.vectors = np.zeros((self.catalog.n_items, v.shape[1]), dtype=np.float32)
            self.vectors[todo] = v
            self.done[todo] = True
        return self.vectors[hist].mean(0)

    def similarity(self, text: str, ev: Evidence) -> float | None:
        """cos(MiniLM(text), user's interest vector); ``None`` for a user without history."""
        u = self.interest_vector(ev)
        if u is None or not text.strip():
            return None
        t = self._encode([text])[0]
        return float(t @ u / max(float(np.linalg.norm(u)), 1e-12))
