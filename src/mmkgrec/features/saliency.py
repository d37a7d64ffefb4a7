"""An optional saliency crop of item images before the image encoder (``image_saliency_crop``;
KGBM4Rec's paper crops to the salient object, SPEC.md naming U^2-Net, whose weights are not at
hand offline).

:func:`salient_box` is the spectral residual saliency of Hou and Zhang (CVPR 2007), which needs no
weights: on a 64 x 64 grey copy of the image, the log amplitude spectrum minus its 3 x 3 local mean
(the "residual"), back with the original phase, squared and smoothed, is the saliency map; the box
around the pixels above three times its mean, widened by a margin, is the crop.
:class:`SaliencyCropped` wraps any image encoder so that it encodes each image's crop; its name and
version carry the crop, so the feature store keeps cropped and uncropped features apart."""

from __future__ import annotations

import numpy as np

from .base import Encoder

SIDE = 64          # the saliency map's resolution (Hou and Zhang's)
THRESHOLD = 3.0    # salient: above this many times the map's mean
MARGIN = 0.1       # the box widened by this share of the image on every side
MIN_SHARE = 0.25   # a box narrower than this share of a side is widened to it, centred


def salient_box(image) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of ``image``'s (a PIL image) salient region; the whole image
    where nothing stands out."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter, uniform_filter

    w, h = image.size
    g = np.asarray(image.convert("L").resize((SIDE, SIDE), Image.BILINEAR), dtype=np.float64)
    spec = np.fft.fft2(g)
    log_amp = np.log(np.abs(spec) + 1e-8)
    residual = log_amp - uniform_filter(log_amp, size=3, mode="nearest")
    sal = gaussian_filter(np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spec)))) ** 2, 2.5)
    mask = sal > THRESHOLD * sal.mean()
    if not mask.any():
        return 0, 0, w, h
    ys, xs = np.nonzero(mask)
    out = []
    for lo, hi, size in ((xs.min(), xs.max() + 1, w), (ys.min(), ys.max() + 1, h)):
        a, b = lo / SIDE - MARGIN, hi / SIDE + MARGIN
        if b - a < MIN_SHARE:
            mid = (a + b) / 2
            a, b = mid - MIN_SHARE / 2, mid + MIN_SHARE / 2
        a, b = max(0.0, a), min(1.0, b)
        out.append((int(round(a * size)), max(int(round(a * size)) + 1, int(round(b * size)))))
    (left, right), (top, bottom) = out
    return left, top, right, bottom


class SaliencyCropped(Encoder):
    """``inner`` (an image encoder) on each image's :func:`salient_box` crop."""

    modality = "image"

    def __init__(self, inner: Encoder):
        if inner.modality != "image":
            raise ValueError(f"a saliency crop needs an image encoder, got {inner.name}")
        self.inner = inner
        self.name = f"{inner.name}+saliency"
        self.version = f"{inner.version}+saliency-spectral-residual-{SIDE}-{THRESHOLD}-{MARGIN}"
        self.image_draft_size = inner.image_draft_size
        self.image_reduce = inner.image_reduce

    @property
    def dim(self) -> int:
        return self.inner.dim

    def _encode(self, images: list) -> np.ndarray:
        return self.inner.encode([im.crop(salient_box(im)) for im in images])
