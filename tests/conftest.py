"""Shared fixtures. Tests that need the real datasets use ``data_dir``: they skip (saying why)
when MMKGREC_DATA is unset, and fail instead when MMKGREC_REQUIRE_DATA=1 (as in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_dir() -> Path | None:
    root = os.environ.get("MMKGREC_DATA")
    return Path(root) if root and Path(root).is_dir() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = _data_dir()
    if root is None:
        why = (f"MMKGREC_DATA is unset or not a folder ({os.environ.get('MMKGREC_DATA')!r}); this "
               "test needs the real datasets")
        if os.environ.get("MMKGREC_REQUIRE_DATA") == "1":
            pytest.fail(why + " and MMKGREC_REQUIRE_DATA=1")
        pytest.skip(why)
    return root


@pytest.fixture
def atomic_dir(tmp_path):
    """Write a small atomic dataset ``tiny`` and return a writer for extra files."""

    def write(files: dict[str, str], name: str = "tiny") -> Path:
        d = tmp_path / name
        d.mkdir(exist_ok=True)
        for ext, text in files.items():
            (d / f"{name}.{ext}").write_text(text)
        return d

    return write


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """A fresh feature cache under ``tmp_path``, and the Hugging Face libraries kept offline."""
    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _quiet_threads():
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    yield


# ---- fixtures of the knowledge-graph and multimodal model tests ----------------------------------
@pytest.fixture(scope="module")
def split():
    """The generated ``synthetic`` dataset, split 8:1:1 at random (planted structure)."""
    from mmkgrec.data import load_dataset, split_dataset

    return split_dataset(load_dataset("synthetic", {"data_format": "synthetic"}), "random_ratio")


@pytest.fixture
def fake_features(monkeypatch):
    """Small fake item features (``helpers.fake_item_feature_matrix``) instead of the store's."""
    import mmkgrec.features
    from helpers import fake_item_feature_matrix

    monkeypatch.setattr(mmkgrec.features, "item_feature_matrix", fake_item_feature_matrix)


@pytest.fixture(scope="session")
def pop(data_dir):
    """Pop's test NDCG@10 on the ML-100K subsample of ``helpers.ML100K_BASE``."""
    import mmkgrec
    from helpers import ML100K_BASE

    return mmkgrec.train("Pop", "ml-100k", overrides=ML100K_BASE).metrics["test"]["ndcg@10"]


# ---- tiny language models (random weights, saved in tmp folders: nothing downloads) ---------
TINY_LM_WORDS = "toy story animation comedy crime war drama horror . , 1995 1996".split()


@pytest.fixture(scope="session")
def tiny_lm_folders(tmp_path_factory):
    """Folders of a tiny BERT encoder and a tiny Llama decoder sharing a word-piece vocabulary."""
    pytest.importorskip("transformers")
    import torch
    from transformers import (BertConfig, BertModel, BertTokenizer, LlamaConfig,
                              LlamaForCausalLM)

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny-lm")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_LM_WORDS
    folders = {}
    for name in ("bert", "llama"):
        d = root / name
        d.mkdir()
        (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
        BertTokenizer(str(d / "vocab.txt")).save_pretrained(str(d))
        folders[name] = d
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=12)).save_pretrained(str(folders["bert"]))
    LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2,
                                 intermediate_size=32, max_position_embeddings=64, pad_token_id=0,
                                 bos_token_id=2, eos_token_id=3)).save_pretrained(str(folders["llama"]))
    return folders
