"""The shared layers of mmkgrec.nn against their formulas: one attention function (every kernel,
bool or additive masks), the gate, LightGCN's propagation and the pairwise / contrastive losses."""

import pytest
import scipy.sparse as sp
import torch

from mmkgrec.graph.adjacency import to_torch_csr
from mmkgrec.nn.fusion import GatedFusion
from mmkgrec.nn.losses import bpr_loss, contrastive_loss, l2_per_batch, pair_scores, similarity
from mmkgrec.nn.propagation import light_propagate
from mmkgrec.nn.transformer import attention, mask_bias


def _reference(q, k, v, keep):
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    probs = torch.softmax(scores.masked_fill(~keep, float("-inf")), -1)
    return probs @ v, probs


@pytest.mark.parametrize("n_keys", [6, 20])  # under 16 keys the matmul kernel goes keys-first
def test_attention_kernels_and_mask_forms_agree(n_keys):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 2, 4, 8, generator=g)
    k, v = torch.randn(3, 2, n_keys, 8, generator=g), torch.randn(3, 2, n_keys, 8, generator=g)
    keep = torch.rand(3, 1, 1, n_keys, generator=g) > 0.4
    keep[..., 0] = True
    want, want_p = _reference(q, k, v, keep.expand(3, 2, 4, n_keys))
    for mask in (keep, mask_bias(keep)):
        for kernel in ("sdpa", "matmul"):
            assert torch.allclose(attention(q, k, v, mask, kernel=kernel), want, atol=1e-5)
        out, probs = attention(q, k, v, mask, return_probs=True)
        assert torch.allclose(out, want, atol=1e-5) and torch.allclose(probs, want_p, atol=1e-6)
        assert torch.all(probs[~keep.expand_as(probs)] == 0)  # masked keys get exactly zero


def test_causal_attention_and_dropout():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 1, 5, 4, generator=g) for _ in range(3))
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    want, _ = _reference(q, k, v, causal)
    for kernel in ("sdpa", "matmul"):
        assert torch.allclose(attention(q, k, v, causal=True, kernel=kernel), want, atol=1e-5)
    # dropout only in training; the probabilities returned are those before dropout
    assert torch.allclose(attention(q, k, v, causal=True, dropout=0.5), want, atol=1e-5)
    torch.manual_seed(0)
    out, probs = attention(q, k, v, causal=True, dropout=0.5, training=True, return_probs=True)
    assert torch.allclose(probs, _reference(q, k, v, causal)[1], atol=1e-6)
    assert not torch.allclose(out, want, atol=1e-3)


def test_gated_fusion_is_eq_11_12():
    torch.manual_seed(0)
    gate = GatedFusion(3)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    g = torch.sigmoid(torch.cat([a, b], 1) @ gate.weight.T + gate.bias)
    assert torch.allclose(gate(a, b), g * a + (1 - g) * b)
    assert {n for n, _ in gate.named_parameters()} == {"weight", "bias"}


def test_light_propagate_is_the_mean_of_the_layers():
    a = torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.0, 0.0], [0.5, 0.0, 0.0]])
    ego = torch.randn(3, 2)
    want = (ego + a @ ego + a @ (a @ ego)) / 3
    adj = to_torch_csr(sp.csr_matrix(a.numpy()))
    assert torch.allclose(light_propagate(adj, ego, 2), want, atol=1e-6)
    assert light_propagate(adj, ego, 0) is ego


def test_pairwise_losses():
    u = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    pos = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    neg = torch.tensor([[[1.0, 0.0], [0.0, 3.0]], [[0.0, -1.0], [1.0, 1.0]]])  # 2 negatives each
    pos_s, neg_s = pair_scores(u, pos, neg)
    assert pos_s.tolist() == [2.0, 2.0] and neg_s.tolist() == [[1.0, 0.0], [-2.0, 2.0]]
    d = torch.tensor([1.0, 2.0, 4.0, 0.0])
    want = -torch.nn.functional.logsigmoid(d).mean()
    assert bpr_loss(pos_s, neg_s).item() == pytest.approx(want.item())
    assert l2_per_batch(u, pos).item() == pytest.approx((1 + 4 + 4 + 1) / 2)
    assert l2_per_batch(u, n=5).item() == pytest.approx(5 / 5)


def test_contrastive_loss_forms():
    pos = torch.tensor([1.0, 0.2])
    neg = torch.tensor([[0.5, -0.5], [0.1, 0.3]])
    valid = torch.tensor([[True, True], [False, True]])
    tau = 0.5
    decoupled = [torch.logsumexp(torch.tensor([1.0, -1.0]), 0) - 2.0, 0.6 - 0.4]
    assert contrastive_loss(pos, neg, valid, tau).item() == pytest.approx(
        float(sum(decoupled) / 2), abs=1e-6)
    infonce = [torch.logsumexp(torch.tensor([2.0, 1.0, -1.0]), 0) - 2.0,
               torch.logsumexp(torch.tensor([0.4, 0.6]), 0) - 0.4]
    assert contrastive_loss(pos, neg, valid, tau, positive_in_denominator=True).item() == \
        pytest.approx(float(sum(infonce) / 2), abs=1e-6)
    none = torch.zeros_like(valid)
    assert contrastive_loss(pos, neg, none, tau).item() == 0.0
    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[6.0, 8.0], [0.0, 1.0]])
    assert similarity(a, b, pairwise=True)[0].tolist() == pytest.approx([1.0, 0.8])
    assert similarity(a, b[:1], normalize=False).tolist() == [50.0]
