"""Logit weights against explicit matrix products and the model's own LayerNorm; feature ablation."""

import numpy as np
import pytest
import torch

from monosemantic import logit_weights as lw
from monosemantic.model import ModelConfig, build_model
from monosemantic.sae import SparseAutoencoder


@pytest.fixture(scope="module")
def model():
    m = build_model(ModelConfig(vocab_size=13, d_model=8, d_mlp=16, n_heads=2, n_ctx=10), seed=0).eval()
    with torch.no_grad():  # non-trivial LayerNorm gain
        m.ln_f.weight.copy_(torch.linspace(0.5, 1.5, 8))
    return m


def test_logit_weight_matrix_is_the_explicit_product():
    g = np.random.default_rng(0)
    W_U, gamma, W_out, V = g.normal(size=(5, 3)), g.uniform(0.5, 2, 3), g.normal(size=(3, 4)), g.normal(size=(2, 4))
    C = np.eye(3) - np.ones((3, 3)) / 3
    expect = (W_U @ np.diag(gamma / 2.0) @ C @ W_out @ V.T).T
    got = lw.logit_weight_matrix(*(torch.tensor(v, dtype=torch.float32) for v in (W_U, gamma)), 2.0,
                                 torch.tensor(W_out, dtype=torch.float32), torch.tensor(V, dtype=torch.float32))
    assert got.numpy() == pytest.approx(expect, abs=1e-5)
    no_center = lw.logit_weight_matrix(torch.tensor(W_U).float(), torch.tensor(gamma).float(), 2.0,
                                       torch.tensor(W_out).float(), torch.tensor(V).float(), center=False)
    assert no_center.numpy() == pytest.approx((W_U @ np.diag(gamma / 2.0) @ W_out @ V.T).T, abs=1e-5)


def test_matches_the_model_logit_change_for_a_small_push(model):
    """With σ the token's own LayerNorm scale, the logit weights are the derivative of the logits along
    W_out d (the diagonal approximation holds σ fixed; the change of σ is second order for a push ⟂ resid)."""
    tokens = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        x, h = model._mlp_input(tokens)
        out, _ = model.mlp(h)
        resid = (x + out)[0, -1]
        sigma = float((resid.var(unbiased=False) + model.ln_f.eps).sqrt())
        d = torch.randn(16, generator=torch.Generator().manual_seed(3))
        push = model.mlp.W_out.weight @ d
        c = resid - resid.mean()
        push = push - push.mean()
        push = push - (push @ c) / (c @ c) * c  # orthogonal to the centred residual: σ unchanged to 1st order
        d_eff = torch.linalg.lstsq(model.mlp.W_out.weight, push[:, None]).solution[:, 0]
        eps = 1e-3
        base = model.W_U(model.ln_f(resid))
        moved = model.W_U(model.ln_f(resid + eps * model.mlp.W_out.weight @ d_eff))
        w = lw.logit_weight_matrix(model.W_U.weight, model.ln_f.weight, sigma, model.mlp.W_out.weight, d_eff[None])[0]
    assert ((moved - base) / eps).numpy() == pytest.approx(w.numpy(), rel=2e-2, abs=2e-3)


def test_feature_and_neuron_weights_and_top_bottom(model):
    sae = SparseAutoencoder(16, 6, 0.0, generator=torch.Generator().manual_seed(0))
    W = lw.feature_logit_weights(model, sae, 1.7)
    expect = lw.logit_weight_matrix(model.W_U.weight, model.ln_f.weight, 1.7, model.mlp.W_out.weight, sae.W_d.T)
    assert W.shape == (6, 13) and torch.allclose(W, expect.detach())
    Wn = lw.neuron_logit_weights(model, 1.7)
    assert torch.allclose(Wn[3], lw.logit_weight_matrix(model.W_U.weight, model.ln_f.weight, 1.7,
                                                        model.mlp.W_out.weight, torch.eye(16)[3:4])[0].detach())
    top, bottom = lw.top_bottom(torch.tensor([[0.1, 3.0, -2.0, 1.0]]), 2)
    assert top.tolist() == [[1, 3]] and bottom.tolist() == [[2, 0]]


def test_ablation(model):
    sae = SparseAutoencoder(16, 6, 0.0, generator=torch.Generator().manual_seed(0))
    tokens = torch.tensor([[1, 5, 2, 7, 3, 9]])
    with torch.no_grad():
        acts = model.mlp_acts(tokens)
        sae.b_e[2] = 10.0  # feature 2 fires everywhere
        sae.b_e[4] = -1e4  # feature 4 never fires
        f = sae.encode(acts)
        replaced = lw.ablate_feature(sae, 2)(acts)
        assert torch.allclose(replaced, acts - f[..., 2:3] * sae.W_d[:, 2])
        eff = lw.ablation_effect(model, sae, tokens, 2)
        clean = -model.token_losses(tokens)
        abl = -model.token_losses(tokens, lambda a: a - sae.encode(a)[..., 2:3] * sae.W_d[:, 2])
        assert eff["delta_logprob"] == pytest.approx((abl - clean).numpy(), abs=1e-6)
        assert np.abs(eff["delta_logprob"]).max() > 0
        assert eff["activation"] == pytest.approx(f[..., 2].numpy(), abs=1e-5)
        none = lw.ablation_effect(model, sae, tokens, 4)
        assert np.all(none["delta_logprob"] == 0) and np.all(none["activation"] == 0)


def test_residual_std(model):
    tokens = torch.tensor([[1, 2, 3], [4, 5, 6]])
    with torch.no_grad():
        x, h = model._mlp_input(tokens)
        out, _ = model.mlp(h)
        r = x + out
        expect = (r.var(-1, unbiased=False) + model.ln_f.eps).sqrt().mean().item()
    assert lw.residual_std(model, tokens, batch_size=1) == pytest.approx(expect, rel=1e-5)
