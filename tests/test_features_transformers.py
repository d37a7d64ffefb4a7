"""The ``transformers`` code paths of the encoders, on tiny randomly initialised BERT, CLIP and ViT
models built from configs in tmp folders (tokenizer vocabularies written by hand): no download."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmkgrec.data import load_dataset
from mmkgrec.features import extract_features, item_feature_matrix, make_encoder
from mmkgrec.features import content
from mmkgrec.features.encoders import load_image_processor

pytest.importorskip("transformers")

WORDS = ("item space love crime war magic robot ocean horse music ghost court heist school dragon "
         "storm desert cat . ,").split()
CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,"


pytestmark = pytest.mark.usefixtures("offline_cache")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Folders of a tiny BERT, CLIP (both towers) and ViT, saved with save_pretrained."""
    import torch
    from transformers import (BertConfig, BertModel, BertTokenizer, CLIPConfig, CLIPModel,
                              CLIPTokenizer, ViTConfig, ViTModel)
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-models")
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)

    bert = root / "bert"
    bert.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + [str(y) for y in range(1950, 2010, 10)]
    (bert / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(bert / "vocab.txt")).save_pretrained(str(bert))
    BertModel(BertConfig(vocab_size=len(vocab), max_position_embeddings=64, **small)).save_pretrained(str(bert))

    clip = root / "clip"
    clip.mkdir()
    toks = ["<|startoftext|>", "<|endoftext|>"] + list(CHARS) + [c + "</w>" for c in CHARS]
    (clip / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(toks)}))
    (clip / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(clip / "vocab.json"), str(clip / "merges.txt")).save_pretrained(str(clip))
    cfg = CLIPConfig(text_config=dict(vocab_size=len(toks), max_position_embeddings=32,
                                      bos_token_id=0, eos_token_id=1, pad_token_id=1, **small),
                     vision_config=dict(image_size=32, patch_size=8, **small), projection_dim=16)
    CLIPModel(cfg).save_pretrained(str(clip))
    CLIPImageProcessorPil(size={"shortest_edge": 32},
                          crop_size={"height": 32, "width": 32}).save_pretrained(str(clip))

    vit = root / "vit"
    vit.mkdir()
    ViTModel(ViTConfig(image_size=32, patch_size=8, **small)).save_pretrained(str(vit))
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(str(vit))
    return {"bert": bert, "clip": clip, "vit": vit}


def _images(n, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40 + 5 * k, 30 + 3 * k, 3), dtype=np.uint8))
            for k in range(n)]


def test_pillow_image_processors_need_no_torchvision(tiny):
    import transformers
    from transformers import AutoImageProcessor

    # torchvision cannot be installed beside the CPU torch build; the pillow processors are chosen
    # whether it is there or not, and work without it
    for name in ("clip", "vit"):
        proc = load_image_processor(tiny[name])
        assert "Fast" not in type(proc).__name__
        if int(transformers.__version__.split(".")[0]) >= 5:
            assert type(proc).__name__.endswith("Pil"), type(proc)
        px = proc(images=_images(3), return_tensors="pt")["pixel_values"]
        assert tuple(px.shape) == (3, 3, 32, 32)
        # the deprecated spelling selects the same pillow processor
        legacy = AutoImageProcessor.from_pretrained(str(tiny[name]), use_fast=False)
        assert type(legacy) is type(proc)



@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_bert_encoder(tiny, pooling):
    enc = make_encoder(f"bert:{tiny['bert']}:{pooling}", modality="text")
    assert enc.name.endswith(f":{pooling}") and enc.dim == 32
    texts = ["item space love", "cat crime war heist storm desert", "item space love"]
    X = enc.encode(texts)
    assert X.shape == (3, 32) and X.dtype == np.float32
    assert np.allclose(X[0], X[2], atol=1e-5) and not np.allclose(X[0], X[1])
    # batched with longer texts or alone, a text gets the same vector, bit for bit (no padding)
    assert np.array_equal(enc.encode(texts[:1])[0], X[0])
    assert np.array_equal(X[0], X[2])


def test_bert_mean_pooling_by_hand(tiny):
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(str(tiny["bert"])), AutoModel.from_pretrained(str(tiny["bert"]))
    with torch.inference_mode():
        h = model(**tok(["cat crime"], return_tensors="pt")).last_hidden_state[0]
    got = make_encoder(f"bert:{tiny['bert']}").encode(["cat crime"])[0]
    assert np.allclose(got, h.mean(0).numpy(), atol=1e-5)
    got_cls = make_encoder(f"bert:{tiny['bert']}:cls").encode(["cat crime"])[0]
    assert np.allclose(got_cls, h[0].numpy(), atol=1e-5)


def test_clip_text_and_image_towers(tiny):
    import torch
    from transformers import CLIPModel

    t = make_encoder(f"clip-text:{tiny['clip']}", modality="text")
    v = make_encoder(f"clip-image:{tiny['clip']}", modality="image")
    assert t.dim == v.dim == 16
    T = t.encode(["a cat", "toy story 1995", "a cat"])
    V = v.encode(_images(3))
    assert T.shape == (3, 16) and V.shape == (3, 16)
    assert np.array_equal(T[0], T[2]) and not np.allclose(T[0], T[1])
    # alone it meets other kernel shapes (a batch of one), which may round differently: close
    assert np.allclose(t.encode(["a cat"])[0], T[0], atol=1e-5)
    # the towers plus projections are CLIP's own text/image features
    model = CLIPModel.from_pretrained(str(tiny["clip"])).eval()
    proc = load_image_processor(tiny["clip"])
    with torch.inference_mode():
        ref = model.get_image_features(**proc(images=_images(3), return_tensors="pt"))
    ref = ref if torch.is_tensor(ref) else ref.pooler_output
    assert np.allclose(V, ref.numpy(), atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_vit_encoder(tiny, pooling):
    enc = make_encoder(f"vit:{tiny['vit']}:{pooling}", modality="image")
    assert enc.dim == 32
    imgs = _images(3)
    X = enc.encode(imgs + [imgs[0].copy()])
    assert X.shape == (4, 32) and np.allclose(X[0], X[3], atol=1e-5)
    assert not np.allclose(X[0], X[1])


def test_tiny_models_through_the_store(tiny, tmp_path):
    """item_feature_matrix with transformers encoders on the synthetic dataset, with generated
    images for some items and one corrupt file."""
    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    img = tmp_path / "img"
    img.mkdir()
    for k, im in enumerate(_images(5)):
        im.save(img / f"{ds.item_ids[k]}.jpg")
    (img / f"{ds.item_ids[5]}.jpg").write_bytes(b"GIF89a broken")
    cfg = {"text_encoder": f"bert:{tiny['bert']}", "image_encoder": f"vit:{tiny['vit']}",
           "image_dir": str(img), "feature_batch_size": 32}
    X, mask = item_feature_matrix(ds, "text", cfg)
    assert X.shape == (ds.n_items, 32) and mask.all()
    direct = make_encoder(cfg["text_encoder"]).encode(content.item_texts(ds)[:4])
    assert np.allclose(X[:4], direct, atol=1e-5)
    V, vmask = item_feature_matrix(ds, "image", cfg)
    assert V.shape == (ds.n_items, 32)
    assert vmask[:5].all() and not vmask[5:].any() and not V[5:].any()
    again = extract_features(ds, "image", cfg)
    assert again.stats["encoded"] == 0 and np.array_equal(again.matrix, V)
    c = extract_features(ds, "image", {**cfg, "image_encoder": f"clip-image:{tiny['clip']}"})
    assert c.matrix.shape == (ds.n_items, 16) and c.mask.sum() == 5
