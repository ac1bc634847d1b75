"""Logit weights against explicit matrix products and the model's own LayerNorm; feature ablation."""

import numpy as np
import pytest
import torch

from monosemantic.analysis import logit_weights as lw
from monosemantic.lm.model import ModelConfig, build_model
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings


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
    sae = StandardSAE(16, 6, StandardSettings(0.0), generator=torch.Generator().manual_seed(0))
    W = lw.feature_logit_weights(model, sae, 1.7)
    expect = lw.logit_weight_matrix(model.W_U.weight, model.ln_f.weight, 1.7, model.mlp.W_out.weight, sae.W_d.T)
    assert W.shape == (6, 13) and torch.allclose(W, expect.detach())
    Wn = lw.neuron_logit_weights(model, 1.7)
    assert torch.allclose(Wn[3], lw.logit_weight_matrix(model.W_U.weight, model.ln_f.weight, 1.7,
                                                        model.mlp.W_out.weight, torch.eye(16)[3:4])[0].detach())
    top, bottom = lw.top_bottom(torch.tensor([[0.1, 3.0, -2.0, 1.0]]), 2)
    assert top.tolist() == [[1, 3]] and bottom.tolist() == [[2, 0]]


def test_ablation(model):
    sae = StandardSAE(16, 6, StandardSettings(0.0), generator=torch.Generator().manual_seed(0))
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


def test_spaced_contexts_and_residual_scale(model):
    tokens = np.arange(100) % 13
    ctx = lw.spaced_contexts(tokens, 10, 3)  # 100 // 3 // 10 = 3 contexts apart: starts 0, 30, 60
    assert ctx.dtype == torch.int64 and ctx[:, 0].tolist() == [0, 30 % 13, 60 % 13]
    assert ctx[1].tolist() == [(30 + t) % 13 for t in range(10)]
    assert lw.spaced_contexts(tokens, 10, 50).shape == (10, 10)  # at most the 10 contexts that fit
    assert lw.spaced_contexts(tokens, 10, 0).shape == (1, 10)
    stream = np.arange(300) % 13  # model.cfg.n_ctx = 10: 30 contexts, 4 of them 70 tokens apart
    assert lw.residual_scale(model, stream, 4) == lw.residual_std(model, lw.spaced_contexts(stream, 10, 4))


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread):
    import analysis_world
    return analysis_world.build(tmp_path_factory.mktemp("world"))


def test_analyse_against_the_definitions(world):
    from monosemantic.analysis import proxies as px
    from monosemantic.analysis.token_bytes import token_label

    d, cfg, val = world.dictionary("A_16"), world.params.analysis, world.streams["val"]
    proxies = {"arabic": {"feature": {"index": 3}, "neuron": {"index": 5}},
               "dna": {"feature": {"index": 7}, "neuron": {"index": 0}}}
    out, table, panels, ablation = lw.analyse(d, proxies, world.tok, val, world.llr, cfg)
    sigma = lw.residual_std(d.model, lw.spaced_contexts(val.tokens, d.model.cfg.n_ctx, 32))
    assert out["sigma"] == sigma and out["top_k"] == cfg.top_k == 5
    W = lw.feature_logit_weights(d.model, d.sae, sigma)
    assert len(table) == 16
    assert table["3"]["top"] == [token_label(world.tok, t) for t in W[3].topk(5).indices.tolist()]
    assert table["3"]["bottom"] == [token_label(world.tok, t) for t in (-W[3]).topk(5).indices.tolist()]
    for p in proxies:
        r, pos = out["proxies"][p], world.llr[p] > 0
        i = proxies[p]["feature"]["index"]
        assert r["top_k_proxy_share"] == pos[W[i].topk(5).indices.numpy()].mean()
        neuron_top = lw.neuron_logit_weights(d.model, sigma)[proxies[p]["neuron"]["index"]].topk(5).indices.numpy()
        assert r["neuron_top_k_proxy_share"] == pos[neuron_top].mean() and r["vocab_proxy_share"] == pos.mean()
        # ablation in the context of the feature's largest activation among the first max_points points
        acts = px.feature_columns(d.sae, [i])(d.store.read(0, cfg.max_points))[:, 0].numpy()
        best, index = int(np.argmax(acts)), d.store.index()
        c0 = int(index["context_start"][best])
        assert r["ablation"]["context_start"] == c0
        assert r["ablation"]["max_activation_position"] == int(index["token"][best]) - c0
        ctx = torch.from_numpy(val.tokens[c0:c0 + 16].astype(np.int64))[None]
        eff = lw.ablation_effect(d.model, d.sae, ctx, i)
        fires = eff["activation"][0, :-1] > 0
        assert r["ablation"]["positions_active"] == fires.sum() > 0
        assert r["ablation"]["mean_delta_where_active"] == pytest.approx(eff["delta_logprob"][0][fires].mean())
        nxt = pos[ctx[0, 1:].numpy()]
        expect = eff["delta_logprob"][0][fires & nxt].mean() if (fires & nxt).any() else None
        assert r["ablation"]["mean_delta_where_active_next_is_proxy"] == pytest.approx(expect)
    assert out["headline"] == {"logit_top_k_proxy_share": {p: round(out["proxies"][p]["top_k_proxy_share"], 3)
                                                           for p in proxies}}
    assert [len(p["tokens"]) for p in ablation] == [cfg.ablation_window] * 2 and len(panels) == 2
    assert "arabic" in lw.format_analysis(out)
