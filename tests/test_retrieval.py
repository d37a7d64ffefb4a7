"""ItemIndex: exact search equals brute force, cosine vs inner product, save/load, and the recall
of the approximate indexes on clustered data; the same with the torch fallback."""

import numpy as np
import pytest

from mmkgrec.retrieval import ItemIndex, have_faiss

BACKENDS = ["torch"] + (["faiss"] if have_faiss() else [])


def _data(n=500, dim=16, q=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32) * rng.uniform(0.5, 3.0, size=(n, 1)).astype(
        np.float32)
    return x, rng.normal(size=(q, dim)).astype(np.float32)


def _brute(x, q, k, cosine=False):
    if cosine:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    s = q @ x.T
    ids = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, ids, 1), ids


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["ip", "cosine"])
def test_exact_search_equals_brute_force(backend, metric):
    x, q = _data()
    index = ItemIndex(x, metric=metric, kind="flat", backend=backend)
    assert index.backend == backend
    scores, ids = index.search(q, 10)
    want_s, want_i = _brute(x, q, 10, cosine=metric == "cosine")
    np.testing.assert_array_equal(ids, want_i)
    np.testing.assert_allclose(scores, want_s, rtol=1e-4, atol=1e-4)


def test_cosine_and_inner_product_differ_on_unnormalised_vectors():
    x, q = _data()
    ip = ItemIndex(x, "ip", backend="torch").search(q, 10)[1]
    cos = ItemIndex(x, "cosine", backend="torch").search(q, 10)[1]
    assert (ip != cos).any()
    # a long vector wins inner product, the aligned one wins cosine
    y = np.array([[10.0, 10.0], [1.0, 0.0]], np.float32)
    assert ItemIndex(y, "ip", backend="torch").search([[1.0, 0.0]], 1)[1][0, 0] == 0
    assert ItemIndex(y, "cosine", backend="torch").search([[1.0, 0.0]], 1)[1][0, 0] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_k_larger_than_catalogue_and_neighbours(backend):
    x, q = _data(n=5)
    scores, ids = ItemIndex(x, backend=backend).search(q[:2], 8)
    assert ids.shape == (2, 8) and (ids[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert sorted(ids[0, :5].tolist()) == list(range(5))
    index = ItemIndex(x, "cosine", backend=backend)
    _, nb = index.neighbours(3)
    assert nb.shape == (5, 3) and not (nb == np.arange(5)[:, None]).any()


# the torch backend is exact only: approximate kinds exist under FAISS
@pytest.mark.parametrize("backend,kind", [(b, k) for b in BACKENDS
                                          for k in (["flat"] if b == "torch" else ["flat", "ivf", "hnsw"])])
def test_save_load_roundtrip(tmp_path, backend, kind):
    x, q = _data()
    index = ItemIndex(x, "cosine", kind=kind, nlist=8, nprobe=3, backend=backend)
    before = index.search(q, 10)
    path = index.save(tmp_path / "idx")
    assert (path / "manifest.json").is_file()
    loaded = ItemIndex.load(path)
    assert (loaded.metric, loaded.kind, loaded.backend, len(loaded)) == ("cosine", kind, backend, 500)
    after = loaded.search(q, 10)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_allclose(after[0], before[0], rtol=1e-5)
    with pytest.raises(FileNotFoundError):
        ItemIndex.load(tmp_path / "missing")


@pytest.mark.skipif(not have_faiss(), reason="faiss is not installed")
@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_recall_on_clustered_data(kind):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 32)).astype(np.float32) * 4
    x = (centres[rng.integers(0, 20, 4000)] + rng.normal(size=(4000, 32))).astype(np.float32)
    q = (centres[rng.integers(0, 20, 200)] + rng.normal(size=(200, 32))).astype(np.float32)
    exact = ItemIndex(x, "cosine").search(q, 10)[1]
    approx = ItemIndex(x, "cosine", kind=kind, nlist=20, nprobe=4, M=16, ef_search=64).search(q, 10)[1]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.9, recall


def test_bad_arguments():
    x, _ = _data(n=4)
    with pytest.raises(ValueError, match="metric"):
        ItemIndex(x, metric="l2")
    with pytest.raises(ValueError, match="kind"):
        ItemIndex(x, kind="lsh")
    with pytest.raises(ValueError, match="dimension"):
        ItemIndex(x).search(np.zeros((1, 3)), 2)
