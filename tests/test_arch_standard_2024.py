"""The April 2024 standard SAE (sae/architectures/standard_2024.py): its equations, gradients, schedules,
gradient clipping and activation normalisation on tiny examples computed by hand; the scale folded into the
saved SAELens tensors; persistence; a short training through the interface."""

import json
import math

import pytest
import torch

from monosemantic.sae.architectures.base import ARCH_KEY
from monosemantic.sae.architectures.standard_2024 import Standard2024SAE, Standard2024Settings

SETTINGS = Standard2024Settings(l1=0.1, l1_warmup_frac=0.1, lr_decay_frac=0.2, grad_clip=1.0,
                                init_decoder_norm=0.1)

# d = 2, F = 3, B = 2, λ = 0.1, s = 1 (no pre-encoder bias). By hand:
#   x_1 = (2,1):  pre = W_e x + b_e = (2, 0, 2.5)    f = (2, 0, 2.5)   x̂ = (6.5, 2)   r = x̂ − x = (4.5, 1)
#   x_2 = (0,3):  pre = (0, 2, 2.5)                  f = (0, 2, 2.5)   x̂ = (2.5, 4)   r = (2.5, 1)
#   recon = mean_b ‖r‖² = (21.25 + 7.25)/2 = 14.25;  mse = 28.5/4 = 7.125;  l1 = (4.5 + 4.5)/2 = 4.5
#   ‖W_d,i‖ = (2, 1, 1):  Σ_i f_i ‖W_d,i‖ = 6.5, 4.5 -> mean 5.5;  penalty = 0.1·5.5 = 0.55;  total = 14.8
# Gradients (g_b = 2 r_b / B = r_b; ∂penalty/∂f_b,i = λ‖W_d,i‖/B = (0.1, 0.05, 0.05); relu'(0) = 0):
#   ∇W_d = Σ_b g_b f_bᵀ + λ mean_b(f_i) W_d,i/‖W_d,i‖ = [[9, 5, 17.5], [2, 2, 5]] + [[0.1, 0, 0.15], [0, 0.1, 0.2]]
#   δ_1 = (9.1, 0, 3.55), δ_2 = (0, 1.05, 2.35);  ∇b_e = Σ δ;  ∇W_e = Σ δ_b x_bᵀ;  ∇b_d = Σ g_b = (7, 2)
X = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
F_EXPECTED = torch.tensor([[2.0, 0.0, 2.5], [0.0, 2.0, 2.5]])
X_HAT_EXPECTED = torch.tensor([[6.5, 2.0], [2.5, 4.0]])
GRADS = {"W_d": [[9.1, 5.0, 17.65], [2.0, 2.1, 5.2]], "b_e": [9.1, 1.05, 5.9],
         "W_e": [[18.2, 9.1], [0.0, 3.15], [7.1, 10.6]], "b_d": [7.0, 2.0]}


def tiny_sae(settings: Standard2024Settings = SETTINGS) -> Standard2024SAE:
    sae = Standard2024SAE(2, 3, settings)
    with torch.no_grad():
        sae.W_e.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.b_e.copy_(torch.tensor([0.0, -1.0, -0.5]))
        sae.W_d.copy_(torch.tensor([[2.0, 0.0, 0.6], [0.0, 1.0, 0.8]]))
        sae.b_d.copy_(torch.tensor([1.0, 0.0]))
    return sae


def test_encode_decode_loss_by_hand():
    sae = tiny_sae()
    torch.testing.assert_close(sae.encode(X), F_EXPECTED)
    torch.testing.assert_close(sae(X), X_HAT_EXPECTED)
    terms = sae.loss(X, step=50, steps=100)  # after the warm-up: λ_t = λ
    assert terms.total.item() == pytest.approx(14.8, abs=1e-5)
    assert terms.mse.item() == pytest.approx(7.125, abs=1e-6)
    assert terms.extra["recon"].item() == pytest.approx(14.25, abs=1e-5)
    assert terms.extra["penalty"].item() == pytest.approx(0.55, abs=1e-6)
    assert terms.l1.item() == pytest.approx(4.5) and terms.l0.item() == 2.0
    assert terms.fire_counts.tolist() == [1, 1, 2] and terms.fire_counts.dtype == torch.int64


def test_gradients_by_hand():
    """The penalty's decoder norms pass gradient to W_d (no unit-norm constraint, no projection)."""
    sae = tiny_sae()
    sae.loss(X, step=50, steps=100).total.backward()
    for name, expected in GRADS.items():
        torch.testing.assert_close(getattr(sae, name).grad, torch.tensor(expected), rtol=0, atol=1e-5)


def test_normalised_activations_by_hand():
    """With s = 2 the SAE sees s·x: inputs X/2 give the same f, x̂/2 in raw units, the same recon term (normalised
    units) and a 4x smaller raw mse."""
    sae = tiny_sae()
    sae.scale.fill_(2.0)
    torch.testing.assert_close(sae.encode(X / 2), F_EXPECTED)
    torch.testing.assert_close(sae(X / 2), X_HAT_EXPECTED / 2)
    terms = sae.loss(X / 2, step=50, steps=100)
    assert terms.extra["recon"].item() == pytest.approx(14.25, abs=1e-5)
    assert terms.total.item() == pytest.approx(14.8, abs=1e-5)
    assert terms.mse.item() == pytest.approx(7.125 / 4, abs=1e-6)


def test_init_from_data_sets_the_scale():
    sae = Standard2024SAE(2, 3, SETTINGS)
    assert sae.scale.item() == 1.0
    x = torch.tensor([[3.0, 4.0], [6.0, 8.0]])  # norms 5 and 10: mean 7.5
    sae.init_from_data(x)
    assert sae.scale.item() == pytest.approx(math.sqrt(2) / 7.5)
    assert (sae.scale * x).norm(dim=1).mean().item() == pytest.approx(math.sqrt(2))


def test_initialisation():
    d, F = 6, 20
    settings = Standard2024Settings(l1=1.0, l1_warmup_frac=0.05, lr_decay_frac=0.2, grad_clip=1.0,
                                    init_decoder_norm=0.3)
    sae = Standard2024SAE(d, F, settings, generator=torch.Generator().manual_seed(0))
    assert sae.W_d.shape == (d, F) and sae.W_e.shape == (F, d)
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.full((F,), 0.3))
    assert torch.equal(sae.W_e, sae.W_d.T)
    assert torch.count_nonzero(sae.b_e) == 0 and torch.count_nonzero(sae.b_d) == 0
    again = Standard2024SAE(d, F, settings, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.W_d, sae.W_d)
    other = Standard2024SAE(d, F, settings, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(other.W_d, sae.W_d)


def test_schedules_by_hand():
    sae = Standard2024SAE(2, 3, Standard2024Settings(l1=0.5, l1_warmup_frac=0.1, lr_decay_frac=0.2,
                                                     grad_clip=1.0, init_decoder_norm=0.1))
    # λ over 100 steps: warm-up over the first 10
    assert [sae.l1_coefficient(s, 100) for s in (0, 5, 10, 50, 99)] == [0.0, 0.25, 0.5, 0.5, 0.5]
    # learning rate: constant, then linear to 0 over the last 20 steps (decay starts at 80)
    assert [sae.lr_scale(s, 100) for s in (0, 79, 80, 90, 99, 100)] == pytest.approx([1, 1, 1, 0.5, 0.05, 0])
    off = Standard2024SAE(2, 3, Standard2024Settings(l1=0.5, l1_warmup_frac=0.0, lr_decay_frac=0.0,
                                                     grad_clip=1.0, init_decoder_norm=0.1))
    assert off.l1_coefficient(0, 100) == 0.5 and off.lr_scale(99, 100) == 1.0


def test_loss_follows_the_warmup():
    """Step 0: no penalty; mid-warm-up (step 5 of 100, warm-up 10): half of λ·5.5."""
    sae = tiny_sae()
    assert sae.loss(X, 0, 100).extra["penalty"].item() == 0.0
    assert sae.loss(X, 0, 100).total.item() == pytest.approx(14.25, abs=1e-5)
    assert sae.loss(X, 5, 100).extra["penalty"].item() == pytest.approx(0.5 * 0.55, abs=1e-6)


def test_gradient_clipping():
    sae = tiny_sae(Standard2024Settings(l1=0.1, l1_warmup_frac=0.1, lr_decay_frac=0.2, grad_clip=0.5,
                                        init_decoder_norm=0.1))
    for p in sae.parameters():
        p.grad = torch.ones_like(p)  # 6 + 3 + 6 + 2 = 17 entries: norm √17
    sae.before_step(0, 10)
    assert sae.last_grad_norm == pytest.approx(math.sqrt(17))
    norm = torch.cat([p.grad.flatten() for p in sae.parameters()]).norm()
    assert norm.item() == pytest.approx(0.5, rel=1e-5)
    for p in sae.parameters():  # the direction is kept: every entry scaled by 0.5/√17
        torch.testing.assert_close(p.grad, torch.full_like(p, 0.5 / math.sqrt(17)))
    small = tiny_sae()  # grad_clip 1: a gradient of norm 0.5 is left as is
    for p in small.parameters():
        p.grad = torch.full_like(p, 0.5 / math.sqrt(17))
    small.before_step(0, 10)
    for p in small.parameters():
        torch.testing.assert_close(p.grad, torch.full_like(p, 0.5 / math.sqrt(17)))


def scaled_sae(s: float = 2.5) -> Standard2024SAE:
    sae = Standard2024SAE(4, 6, SETTINGS, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        sae.b_e.uniform_(-0.1, 0.1, generator=torch.Generator().manual_seed(4))
        sae.b_d.uniform_(-1, 1, generator=torch.Generator().manual_seed(5))
        sae.W_e.mul_(10.0)  # features that fire
    sae.scale.fill_(s)
    return sae


def test_scale_folded_into_the_saved_tensors(tmp_path):
    """Saved: W_enc = s·W_eᵀ, W_dec = W_dᵀ/s, b_dec = b_d/s, b_enc = b_e; loaded (s = 1) it encodes raw
    activations identically, and SAELens's standard equations on the saved tensors give the same f and x̂."""
    from monosemantic.sae import architectures

    sae = scaled_sae()
    sae.save(tmp_path, model_name="m")
    cfg, tensors = Standard2024SAE.read(tmp_path)
    s = 2.5
    torch.testing.assert_close(tensors["W_enc"], s * sae.W_e.detach().T)
    torch.testing.assert_close(tensors["W_dec"], sae.W_d.detach().T / s)
    torch.testing.assert_close(tensors["b_dec"], sae.b_d.detach() / s)
    assert torch.equal(tensors["b_enc"], sae.b_e.detach())
    assert (cfg["architecture"], cfg[ARCH_KEY], cfg["apply_b_dec_to_input"]) == ("standard", "standard_2024", False)
    assert cfg["normalize_activations"] == "none" and cfg["l1_coefficient"] == 0.1
    assert [cfg[k] for k in ("l1_warmup_frac", "lr_decay_frac", "grad_clip", "init_decoder_norm")] == [0.1, 0.2, 1, 0.1]
    loaded = architectures.load(tmp_path)
    assert isinstance(loaded, Standard2024SAE) and loaded.scale.item() == 1.0 and loaded.settings == SETTINGS
    x = torch.relu(torch.randn(16, 4, generator=torch.Generator().manual_seed(6))) * 3
    f = sae.encode(x).detach()
    assert (f > 0).any() and (f == 0).any()
    assert torch.equal(loaded.encode(x), f)
    assert torch.equal(loaded(x), sae(x))
    # SAELens "standard" with apply_b_dec_to_input false: f = ReLU(x W_enc + b_enc), x̂ = f W_dec + b_dec
    f_saelens = torch.relu(x @ tensors["W_enc"] + tensors["b_enc"])
    torch.testing.assert_close(f_saelens, f)
    torch.testing.assert_close(f_saelens @ tensors["W_dec"] + tensors["b_dec"], sae(x).detach())
    assert json.loads((tmp_path / "cfg.json").read_text())["metadata"]["model_name"] == "m"


def test_state_dict_round_trip_with_the_scale_buffer():
    sae = scaled_sae(1.75)
    state = sae.state_dict()
    assert set(state) == {"W_d", "W_e", "b_e", "b_d", "scale"}
    fresh = Standard2024SAE(4, 6, SETTINGS)
    fresh.load_state_dict(state)
    assert fresh.scale.item() == 1.75
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(fresh(x), sae(x))


@pytest.mark.parametrize("field, value, message", [
    ("l1", -1.0, "l1: must be >= 0, got -1.0"),
    ("l1_warmup_frac", 1.5, "l1_warmup_frac: must be in [0, 1], got 1.5"),
    ("lr_decay_frac", -0.1, "lr_decay_frac: must be in [0, 1], got -0.1"),
    ("grad_clip", 0.0, "grad_clip: must be positive, got 0.0"),
    ("init_decoder_norm", -0.1, "init_decoder_norm: must be positive, got -0.1"),
])
def test_settings_check(field, value, message):
    assert SETTINGS.check() == []
    bad = Standard2024Settings(**{**SETTINGS.__dict__, field: value})
    assert message in bad.check()


def test_settings_check_overlapping_schedules():
    bad = Standard2024Settings(l1=1.0, l1_warmup_frac=0.6, lr_decay_frac=0.5, grad_clip=1.0, init_decoder_norm=0.1)
    assert bad.check() == ["l1_warmup_frac + lr_decay_frac: must be <= 1 (the warm-up ends before the decay "
                           "starts), got 0.6 + 0.5"]
    assert Standard2024Settings.knob == "l1"


def sparse_data(n: int, d: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """n inputs, each a sparse non-negative combination of k fixed unit directions, times 5 (so s ≠ 1)."""
    directions = torch.nn.functional.normalize(torch.randn(k, d, generator=generator), dim=1)
    active = torch.rand(n, k, generator=generator) < 0.15
    magnitudes = torch.rand(n, k, generator=generator) + 0.5
    return 5 * (active * magnitudes) @ directions


def train(sae, data: torch.Tensor, steps: int, batch: int, lr: float) -> None:
    """The training loop's use of the interface, with plain Adam."""
    sae.init_from_data(data[:256])
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    for step in range(steps):
        x = data[(step * batch) % len(data):][:batch]
        opt.zero_grad()
        sae.loss(x, step, steps).total.backward()
        sae.before_step(step, steps)
        for group in opt.param_groups:
            group["lr"] = lr * sae.lr_scale(step, steps)
        opt.step()
        sae.after_step(step, steps)


def test_short_training_reduces_the_loss(one_thread):
    """Deterministic: the same seed gives the same trained SAE."""
    def run():
        g = torch.Generator().manual_seed(0)
        data, held_out = sparse_data(4096, 8, 16, g), sparse_data(512, 8, 16, g)
        settings = Standard2024Settings(l1=0.05, l1_warmup_frac=0.05, lr_decay_frac=0.2, grad_clip=1.0,
                                        init_decoder_norm=0.1)
        sae = Standard2024SAE(8, 32, settings, generator=g)
        sae.init_from_data(data[:256])
        before = sae.loss(held_out, 300, 300)
        train(sae, data, steps=300, batch=64, lr=1e-2)
        return sae, before, sae.loss(held_out, 300, 300)

    sae, before, after = run()
    assert after.total.item() < 0.3 * before.total.item()
    assert after.mse.item() < 0.3 * before.mse.item() and 0 < after.l0.item() < 32
    again, _, _ = run()
    for (name, a), b in zip(sae.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
