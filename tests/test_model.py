"""The one-layer transformer (monosemantic/lm/model.py)."""

import json

import pytest
import torch
import torch.nn.functional as F

from monosemantic.lm.model import ModelConfig, Transformer, build_model, token_losses

CFG = ModelConfig(vocab_size=50, d_model=16, d_mlp=64, n_heads=2, n_ctx=12)


@pytest.fixture
def model():
    return build_model(CFG, seed=0).eval()


@pytest.fixture
def tokens():
    return torch.randint(0, CFG.vocab_size, (3, CFG.n_ctx), generator=torch.Generator().manual_seed(0))


def test_shapes_and_structure(model, tokens):
    logits, acts = model(tokens, return_mlp_acts=True)
    assert logits.shape == (3, CFG.n_ctx, CFG.vocab_size) and acts.shape == (3, CFG.n_ctx, CFG.d_mlp)
    assert (acts >= 0).all() and (acts == 0).any() and (acts > 0).any()  # post-ReLU
    assert torch.equal(model.mlp_acts(tokens), acts)
    pos = torch.tensor([[0, 5, 11], [3, 2, 1], [7, 7, 0]])
    picked = model.mlp_acts(tokens, pos)
    assert picked.shape == (3, 3, CFG.d_mlp)
    assert torch.allclose(picked, torch.stack([acts[b, pos[b]] for b in range(3)]), atol=1e-6)
    names = dict(model.named_parameters())
    assert names["W_U.weight"].data_ptr() != names["W_E.weight"].data_ptr()  # untied
    assert {"attn.qkv.bias", "attn.out.bias", "mlp.W_in.bias", "mlp.W_out.bias", "W_pos.weight"} <= set(names)
    with pytest.raises(ValueError, match="n_ctx"):
        model(torch.zeros(1, CFG.n_ctx + 1, dtype=torch.long))


def test_causal(model, tokens):
    changed = tokens.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % CFG.vocab_size
    a, b = model(tokens), model(changed)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_residual_stream_by_hand(model, tokens):
    m = model
    x = m.W_E(tokens) + m.W_pos(torch.arange(CFG.n_ctx))
    h = m.ln1(x)
    q, k, v = m.attn.qkv(h).chunk(3, dim=-1)
    split = lambda t: t.view(3, CFG.n_ctx, 2, 8).transpose(1, 2)  # noqa: E731
    att = (split(q) @ split(k).transpose(-1, -2)) / 8 ** 0.5
    att = att.masked_fill(torch.ones(CFG.n_ctx, CFG.n_ctx).triu(1).bool(), float("-inf")).softmax(-1)
    x = x + m.attn.out((att @ split(v)).transpose(1, 2).reshape(3, CFG.n_ctx, 16))
    acts = torch.relu(m.mlp.W_in(m.ln2(x)))
    x = x + m.mlp.W_out(acts)
    assert torch.allclose(m(tokens), m.W_U(m.ln_f(x)), atol=1e-5)


def test_mlp_replacement(model, tokens):
    base, acts = model(tokens, return_mlp_acts=True)
    same = model(tokens, mlp_replacement=lambda a: a)
    assert torch.equal(base, same)
    seen = {}

    def zero(a):
        seen["acts"] = a
        return torch.zeros_like(a)

    ablated, acts2 = model(tokens, mlp_replacement=zero, return_mlp_acts=True)
    assert torch.equal(seen["acts"], acts) and torch.equal(acts2, acts)  # returned acts are the model's own
    assert not torch.allclose(ablated, base)
    # zero-ablation equals removing the MLP's W_out contribution except its bias
    x, h = model._mlp_input(tokens)
    assert torch.allclose(ablated, model.W_U(model.ln_f(x + model.mlp.W_out.bias)), atol=1e-5)


def test_token_losses(model, tokens):
    losses = model.token_losses(tokens)
    assert losses.shape == (3, CFG.n_ctx - 1)
    logits = model(tokens[:, :-1])
    ref = F.cross_entropy(logits.reshape(-1, CFG.vocab_size), tokens[:, 1:].reshape(-1))
    assert torch.allclose(losses.mean(), ref)
    assert torch.equal(token_losses(logits, tokens[:, 1:]), losses)
    zero = model.token_losses(tokens, mlp_replacement=torch.zeros_like)
    assert not torch.allclose(zero, losses)


def test_init_is_seeded(model):
    again, other = build_model(CFG, seed=0), build_model(CFG, seed=1)
    for (n, a), b, c in zip(model.state_dict().items(), again.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b), n
        if "ln" not in n and "bias" not in n:
            assert not torch.equal(a, c), n
    assert torch.all(model.ln1.weight == 1) and torch.all(model.mlp.W_in.bias == 0)
    assert model.W_E.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_save_load_roundtrip(model, tokens, tmp_path):
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["d_mlp"] == CFG.d_mlp
    loaded = Transformer.load(tmp_path / "m")
    assert loaded.cfg == CFG and not loaded.training
    assert torch.equal(loaded(tokens), model(tokens))
    with pytest.raises(FileNotFoundError, match="training stage"):
        Transformer.load(tmp_path / "nope")


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Tiny models: run torch single-threaded (tests/conftest.py)."""


def _loss_and_grads(model, tokens, **kw):
    model.zero_grad(set_to_none=True)
    loss = model.train_loss(tokens, **kw)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_fused_train_loss_equals_reference_in_fp32(tokens):
    model = build_model(CFG, seed=0).train()
    windows = torch.cat([tokens, tokens[:, :1]], dim=1)[:, :CFG.n_ctx + 1]
    ref, ref_g = _loss_and_grads(model, windows)
    fused, fused_g = _loss_and_grads(model, windows, kernels="fused")
    assert ref.item() == pytest.approx(model.token_losses(windows).mean().item(), rel=1e-7)
    assert fused.item() == pytest.approx(ref.item(), rel=1e-6)
    for name, g in ref_g.items():  # every parameter's gradient, attention and embeddings included
        torch.testing.assert_close(fused_g[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_fused_train_loss_in_bf16_stays_close(tokens):
    model = build_model(CFG, seed=0).train()
    windows = torch.cat([tokens, tokens[:, :1]], dim=1)[:, :CFG.n_ctx + 1]
    ref, ref_g = _loss_and_grads(model, windows)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused, fused_g = _loss_and_grads(model, windows, kernels="fused", precision="bf16")
    assert fused.item() == pytest.approx(ref.item(), rel=1e-2)
    for name, g in ref_g.items():
        assert (fused_g[name] - g).norm() <= 0.05 * g.norm() + 1e-6, name
    with pytest.raises(ValueError, match="kernels"):
        model.train_loss(windows, kernels="triton")


def test_fused_kernels_run_attention_in_fp32_under_autocast(tokens, monkeypatch):
    import monosemantic.lm.model as M
    seen, real = [], F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        seen.append(q.dtype)
        return real(q, k, v, **kw)
    monkeypatch.setattr(M.F, "scaled_dot_product_attention", spy)
    model = build_model(CFG, seed=0)
    windows = torch.cat([tokens, tokens[:, :1]], dim=1)[:, :CFG.n_ctx + 1]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.train_loss(windows)                                  # reference: attention in the autocast dtype
        model.train_loss(windows, kernels="fused", precision="bf16")
    assert seen == [torch.bfloat16, torch.float32]
