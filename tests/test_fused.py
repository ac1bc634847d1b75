"""The fused unembedding + cross-entropy (lm/fused.py) against autograd on the plain formula."""

import pytest
import torch
import torch.nn.functional as F

from monosemantic.lm.fused import linear_cross_entropy


def _problem(n=37, d=8, v=53, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype)
    w = torch.randn(v, d, generator=g, dtype=dtype)
    b = torch.randn(v, generator=g, dtype=dtype)
    t = torch.randint(0, v, (n,), generator=g)
    return h, w, b, t


def _grads(fn, h, w, b, t, scale=1.0):
    leaves = [x.clone().requires_grad_() for x in (h, w, b)]
    loss = fn(*leaves, t)
    (loss * scale).backward()
    return loss.detach(), [x.grad for x in leaves]


def _reference(h, w, b, t):
    return F.cross_entropy(F.linear(h, w, b), t)


def test_hand_computed_two_tokens():
    # one feature, vocabulary of 2: logits (h w_0 + b_0, h w_1 + b_1)
    h = torch.tensor([[1.0], [2.0]])
    w = torch.tensor([[1.0], [0.0]])
    b = torch.tensor([0.0, 0.0])
    t = torch.tensor([0, 1])
    loss, (dh, dw, db) = _grads(linear_cross_entropy, h, w, b, t)
    # token 0: logits (1, 0), target 0: -log(e/(e+1)); token 1: logits (2, 0), target 1: -log(1/(e^2+1))
    e = torch.e
    want = 0.5 * (-torch.log(torch.tensor(e / (e + 1))) - torch.log(torch.tensor(1 / (e ** 2 + 1))))
    assert loss.item() == pytest.approx(want.item(), rel=1e-6)
    p0, p1 = e / (e + 1), e ** 2 / (e ** 2 + 1)        # softmax of class 0 per token
    dz = torch.tensor([[p0 - 1, 1 - p0], [p1, -p1]]) / 2    # (softmax - onehot) / N
    torch.testing.assert_close(db, dz.sum(0), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(dw, dz.t() @ h, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(dh, dz @ w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("chunk", [1, 5, 37, 256])
def test_fp32_matches_autograd(chunk):
    h, w, b, t = _problem()
    ref_loss, ref_grads = _grads(_reference, h, w, b, t, scale=0.7)
    loss, grads = _grads(lambda *a: linear_cross_entropy(*a, chunk=chunk), h.float(), w.float(), b.float(), t,
                         scale=0.7)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_bf16_products_stay_close():
    h, w, b, t = _problem(n=256, d=32, v=300, seed=1)
    ref_loss, ref_grads = _grads(_reference, h, w * 0.1, b, t)
    loss, grads = _grads(lambda *a: linear_cross_entropy(*a, matmul_dtype=torch.bfloat16, chunk=64),
                         h.float(), (w * 0.1).float(), b.float(), t)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-2)
    for got, want in zip(grads, ref_grads):
        rel = (got.double() - want).norm() / want.norm()
        assert rel < 2e-2


def test_fp32_ignores_autocast_and_matches_without_grad():
    h, w, b, t = _problem(dtype=torch.float32)
    plain = linear_cross_entropy(h, w, b, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = linear_cross_entropy(h, w, b, t)
    assert under.item() == plain.item()                      # no silent bf16 inside
    assert plain.item() == pytest.approx(_reference(h.double(), w.double(), b.double(), t).item(), rel=1e-6)


def test_rejects_bad_shapes():
    h, w, b, t = _problem(dtype=torch.float32)
    with pytest.raises(ValueError, match="targets"):
        linear_cross_entropy(h, w, b, t[:-1])


def test_large_logits_stay_finite():
    h, w, b, t = _problem(dtype=torch.float32)
    loss, grads = _grads(linear_cross_entropy, h * 300, w, b, t)
    ref_loss, _ = _grads(_reference, (h * 300).double(), w.double(), b.double(), t)
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
