"""The optional saliency crop of item images (``image_saliency_crop``, off by default): the box
keeps the salient object of a synthetic scene and leaves a flat image whole, the wrapped encoder
encodes the crop under a store key of its own, and the switch reaches the feature pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from mmkgrec.config import config_value
from mmkgrec.data import load_dataset
from mmkgrec.features import extract_features
from mmkgrec.features.base import Encoder
from mmkgrec.features.encoders import make_encoder
from mmkgrec.features.saliency import SaliencyCropped, salient_box

from helpers import poster


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path / "cache"))


def _scene(seed: int = 0):
    """A red square on a grey, slightly noisy background (x 30-90, y 200-260 of 200 x 300)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    a = rng.normal(120, 5, (300, 200, 3)).clip(0, 255).astype(np.uint8)
    a[200:260, 30:90] = [250, 20, 20]
    return Image.fromarray(a)


def test_the_box_keeps_the_salient_object_and_a_flat_image_whole():
    from PIL import Image

    left, top, right, bottom = salient_box(_scene())
    assert left <= 30 and right >= 90 and top <= 200 and bottom >= 260
    assert (right - left) * (bottom - top) < 0.5 * 200 * 300  # a crop, not the whole image
    flat = Image.fromarray(np.full((100, 80, 3), 128, dtype=np.uint8))
    assert salient_box(flat) == (0, 0, 80, 100)


def test_the_cropped_encoder_encodes_the_crop_under_a_key_of_its_own():
    plain = make_encoder("descriptor", modality="image")
    cropped = SaliencyCropped(plain)
    im = _scene()
    np.testing.assert_allclose(cropped.encode([im]), plain.encode([im.crop(salient_box(im))]))
    assert not np.allclose(cropped.encode([im]), plain.encode([im]))
    assert cropped.dim == plain.dim and cropped.modality == "image"
    assert cropped.name != plain.name and cropped.version != plain.version

    class Text(Encoder):
        name, modality = "t", "text"

    with pytest.raises(ValueError, match="image encoder"):
        SaliencyCropped(Text())


def test_the_switch_reaches_the_pipeline_and_is_off_by_default(tmp_path):
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    folder = tmp_path / "img"
    folder.mkdir()
    for k, raw in enumerate(ds.item_ids[:6]):
        poster(k, size=(90, 120)).save(folder / f"{raw}.jpg")
    cfg = {"image_encoder": "descriptor", "image_dir": str(folder), "show_progress": False}
    assert config_value(None, "image_saliency_crop") is False
    plain = extract_features(ds, "image", cfg)
    cropped = extract_features(ds, "image", {**cfg, "image_saliency_crop": True})
    assert plain.mask.sum() == cropped.mask.sum() == 6
    assert plain.stats["store"] != cropped.stats["store"]  # kept apart in the store
    assert not np.allclose(plain.matrix[plain.mask], cropped.matrix[cropped.mask])
