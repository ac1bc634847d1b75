"""The gated SAE (sae/architectures/gated.py): gate and magnitude paths, the three loss terms and their gradients
on a tiny example computed by hand, the detached decoder of the auxiliary loss (against SAELens's undetached
one), the unit-norm decoder, persistence in SAELens's gated layout, a short training through the interface."""

import json

import pytest
import torch

from monosemantic.sae.architectures.gated import GatedSAE, GatedSettings

LAMBDA = 0.1
# d = 2, F = 3, B = 2, λ = 0.1; W_mag = exp(r_mag) ⊙ W_gate = [[1,0],[0,2],[1,1]] (r_mag = (0, ln 2, 0)). By hand:
#   x̄_1 = (2,1) − (1,0) = (1,1):   π_gate = (1, 0, 1.5)   π_mag = (1.5, 2, 1)    f = (1.5, 0, 1)
#                                   x̂ = (3.1, 0.8)  r = x̂ − x = (1.1, −0.2)
#   x̄_2 = (0,3) − (1,0) = (−1,3):  π_gate = (−1, 2, 1.5)  π_mag = (−0.5, 6, 1)   f = (0, 6, 1)
#                                   x̂ = (1.6, 6.8)  r = (1.6, 3.8)
#   recon = (1.25 + 17)/2 = 9.125;  mse = 18.25/4 = 4.5625;  l1 of f = (2.5 + 7)/2 = 4.75
#   ReLU(π_gate) = (1, 0, 1.5), (0, 2, 1.5):  penalty = 0.1·(2.5 + 3.5)/2 = 0.3
#   x̂_frozen = W_d ReLU(π_gate) + b_d = (2.9, 1.2), (1.9, 3.2):  r' = (0.9, 0.2), (1.9, 0.2)
#   aux = (0.85 + 3.65)/2 = 2.25;  total = 9.125 + 0.3 + 2.25 = 11.675
X = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
F_EXPECTED = torch.tensor([[1.5, 0.0, 1.0], [0.0, 6.0, 1.0]])
X_HAT_EXPECTED = torch.tensor([[3.1, 0.8], [1.6, 6.8]])
# Gradients. recon: g_b = 2 r_b / B = r_b; δ_mag = (W_dᵀ g) ⊙ H(π_gate) ⊙ [π_mag > 0] = (1.1, 0, 0.5), (0, 3.8, 4);
#   ∂π_mag,i/∂r_mag,i = π_mag,i − b_mag,i;  ∇W_d = Σ g fᵀ (the only term reaching W_d).
# penalty: λ/B ⊙ [π_gate > 0] = (0.05, 0, 0.05), (0, 0.05, 0.05) into π_gate.
# aux: g' = r', δ_aux = (W_dᵀ g') ⊙ [π_gate > 0] = (0.9, 0, 0.7), (0, 0.2, 1.3) into π_gate; nothing into W_d.
# b_d: Σ g (decoder) − W_magᵀ Σ δ_mag − W_gateᵀ Σ (δ_pen + δ_aux) = (2.7, 3.6) − (5.6, 12.1) − (0.15, 0.15) − (2.9, 2.2)
GRADS = {
    "W_d": [[1.65, 9.6, 2.7], [-0.3, 22.8, 3.6]],
    "r_mag": [1.1, 22.8, 9.0],
    "b_mag": [1.1, 3.8, 4.5],
    "b_gate": [0.95, 0.25, 2.1],
    "W_gate": [[2.05, 2.05], [-7.85, 23.55], [-4.1, 17.3]],
    "b_d": [-5.95, -10.85],
}
# the auxiliary term alone: nothing reaches W_d, r_mag, b_mag; b_d only through x̄ = x − b_d (−W_gateᵀ Σ δ_aux)
AUX_GRADS = {"W_d": [[0.0] * 3] * 2, "r_mag": [0.0] * 3, "b_mag": [0.0] * 3, "b_gate": [0.9, 0.2, 2.0],
             "W_gate": [[0.9, 0.9], [-0.2, 0.6], [-0.6, 4.6]], "b_d": [-2.9, -2.2]}


def tiny_sae(l1: float = LAMBDA) -> GatedSAE:
    sae = GatedSAE(2, 3, GatedSettings(l1=l1))
    with torch.no_grad():
        sae.W_gate.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.b_gate.copy_(torch.tensor([0.0, -1.0, -0.5]))
        sae.r_mag.copy_(torch.tensor([1.0, 2.0, 1.0]).log())
        sae.b_mag.copy_(torch.tensor([0.5, 0.0, -1.0]))
        sae.W_d.copy_(torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]]))
        sae.b_d.copy_(torch.tensor([1.0, 0.0]))
    return sae


def grads(sae: GatedSAE) -> dict[str, torch.Tensor]:
    return {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in sae.named_parameters()}


def test_encode_decode_by_hand():
    sae = tiny_sae()
    pi_gate, pi_mag = sae.pre_activations(X)
    torch.testing.assert_close(pi_gate, torch.tensor([[1.0, 0.0, 1.5], [-1.0, 2.0, 1.5]]))
    torch.testing.assert_close(pi_mag, torch.tensor([[1.5, 2.0, 1.0], [-0.5, 6.0, 1.0]]))
    # feature 1 of input 1: the magnitude path says 2, the gate (π_gate = 0) says off; H(0) = 0
    torch.testing.assert_close(sae.encode(X), F_EXPECTED)
    torch.testing.assert_close(sae(X), X_HAT_EXPECTED)


def test_loss_terms_by_hand():
    sae = tiny_sae()
    terms = sae.loss(X, 0, 1)
    assert terms.total.item() == pytest.approx(11.675, abs=1e-5)
    assert terms.mse.item() == pytest.approx(4.5625, abs=1e-6)
    expected = {"recon": 9.125, "penalty": 0.3, "aux": 2.25}
    assert {k: round(v.item(), 5) for k, v in terms.extra.items()} == expected
    assert terms.l1.item() == pytest.approx(4.75) and terms.l0.item() == 2.0
    assert terms.fire_counts.tolist() == [1, 1, 2] and terms.fire_counts.dtype == torch.int64


def test_gradients_by_hand():
    sae = tiny_sae()
    sae.loss(X, 0, 1).total.backward()
    got = grads(sae)
    for name, expected in GRADS.items():
        torch.testing.assert_close(got[name], torch.tensor(expected), rtol=0, atol=1e-5, msg=name)


def test_auxiliary_loss_does_not_reach_the_decoder():
    """The gradient of L_aux alone: zero on W_d, and on b_d only the encoder's x̄ = x − b_d path."""
    sae = tiny_sae()
    sae.terms(X).aux.backward()
    got = grads(sae)
    for name, expected in AUX_GRADS.items():
        torch.testing.assert_close(got[name], torch.tensor(expected), rtol=0, atol=1e-5, msg=name)


def saelens_aux(sae: GatedSAE, x: torch.Tensor) -> torch.Tensor:
    """SAELens's GatedTrainingSAE auxiliary loss: the same reconstruction through the LIVE decoder (the pitfall)."""
    gate = torch.relu((x - sae.b_d) @ sae.W_gate.T + sae.b_gate)
    return (gate @ sae.W_d.T + sae.b_d - x).pow(2).sum(dim=-1).mean()


def test_detached_decoder_differs_from_saelens_undetached_aux():
    """Same value, different gradients: the live decoder would add Σ_b g'_b = (2.8, 0.4) to ∇b_d and
    Σ_b g'_b ReLU(π_gate,b)ᵀ to ∇W_d."""
    ours, theirs = tiny_sae(), tiny_sae()
    aux = ours.terms(X).aux
    torch.testing.assert_close(aux, saelens_aux(theirs, X))
    aux.backward()
    saelens_aux(theirs, X).backward()
    torch.testing.assert_close(theirs.b_d.grad - ours.b_d.grad, torch.tensor([2.8, 0.4]))
    torch.testing.assert_close(theirs.W_d.grad, torch.tensor([[0.9, 3.8, 4.2], [0.2, 0.4, 0.6]]))
    assert ours.W_d.grad is None  # W_d is not even in the graph of our L_aux


def test_closed_gates_aux_gradient_is_zero():
    """Every gate closed: x̂_frozen = b_d, L_aux = mean_b ‖x − b_d‖² has no gradient at all (detached decoder,
    ReLU(π_gate) = 0), where the live decoder would pull b_d to the mean: 2·mean_b(b_d − x) = (0, −4)."""
    sae, theirs = tiny_sae(), tiny_sae()
    with torch.no_grad():
        sae.b_gate.fill_(-100.0)
        theirs.b_gate.fill_(-100.0)
    aux = sae.terms(X).aux
    assert aux.item() == pytest.approx((1 + 1 + 1 + 9) / 2)
    aux.backward()
    assert all(torch.count_nonzero(g) == 0 for g in grads(sae).values())
    saelens_aux(theirs, X).backward()
    torch.testing.assert_close(theirs.b_d.grad, torch.tensor([0.0, -4.0]))


def test_initialisation():
    d, F = 6, 20
    sae = GatedSAE(d, F, GatedSettings(l1=1.0), generator=torch.Generator().manual_seed(0))
    assert sae.W_d.shape == (d, F) and sae.W_gate.shape == (F, d)
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(F))
    assert torch.equal(sae.W_gate, sae.W_d.T)
    for name in ("b_gate", "r_mag", "b_mag", "b_d"):
        assert torch.count_nonzero(getattr(sae, name)) == 0
    again = GatedSAE(d, F, GatedSettings(l1=1.0), generator=torch.Generator().manual_seed(0))
    assert torch.equal(again.W_d, sae.W_d)


def test_decoder_columns_stay_unit_norm_through_adam_steps():
    g = torch.Generator().manual_seed(2)
    sae = GatedSAE(8, 24, GatedSettings(l1=0.05), generator=g)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    x = torch.relu(torch.randn(64, 8, generator=g))
    for step in range(5):
        opt.zero_grad()
        sae.loss(x, step, 5).total.backward()
        sae.before_step(step, 5)
        assert (sae.W_d.grad * sae.W_d).sum(dim=0).abs().max() < 1e-6  # projected gradient ⟂ column
        opt.step()
        sae.after_step(step, 5)
        torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(24))
    assert sae.lr_scale(3, 5) == 1.0


def random_sae() -> GatedSAE:
    g = torch.Generator().manual_seed(3)
    sae = GatedSAE(4, 6, GatedSettings(l1=0.3), generator=g)
    with torch.no_grad():
        for name in ("b_gate", "r_mag", "b_mag"):
            getattr(sae, name).uniform_(-0.3, 0.3, generator=g)
        sae.b_d.uniform_(-1, 1, generator=g)
    return sae


def test_save_load_round_trip_in_the_saelens_gated_layout(tmp_path):
    from monosemantic.sae import architectures

    sae = random_sae()
    sae.save(tmp_path, model_name="m")
    cfg, tensors = GatedSAE.read(tmp_path)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    assert shapes == {"W_enc": (4, 6), "b_gate": (6,), "r_mag": (6,), "b_mag": (6,), "W_dec": (6, 4), "b_dec": (4,)}
    assert torch.equal(tensors["W_enc"], sae.W_gate.detach().T) and torch.equal(tensors["W_dec"], sae.W_d.detach().T)
    assert (cfg["architecture"], cfg["apply_b_dec_to_input"], cfg["l1_coefficient"]) == ("gated", True, 0.3)
    loaded = architectures.load(tmp_path)
    assert isinstance(loaded, GatedSAE) and loaded.settings == GatedSettings(l1=0.3)
    x = torch.relu(torch.randn(32, 4, generator=torch.Generator().manual_seed(4))) * 2
    f = sae.encode(x).detach()
    assert (f > 0).any() and (f == 0).any()
    assert torch.equal(loaded.encode(x), f) and torch.equal(loaded(x), sae(x))
    # SAELens 6's GatedSAE.encode on the saved tensors
    sae_in = x - tensors["b_dec"]
    gate = (sae_in @ tensors["W_enc"] + tensors["b_gate"] > 0).float()
    f_saelens = gate * torch.relu(sae_in @ (tensors["W_enc"] * tensors["r_mag"].exp()) + tensors["b_mag"])
    torch.testing.assert_close(f_saelens, f)
    assert json.loads((tmp_path / "cfg.json").read_text())["metadata"]["model_name"] == "m"


def test_from_saved_reads_l1_coefficient():
    sae = random_sae()
    tensors = {k: v.detach().clone() for k, v in sae.saelens_tensors().items()}
    loaded = GatedSAE.from_saved({"d_in": 4, "d_sae": 6, "l1_coefficient": 0.7}, tensors)
    assert loaded.settings == GatedSettings(l1=0.7)
    assert GatedSAE.from_saved({"d_in": 4, "d_sae": 6}, tensors).settings == GatedSettings(l1=0.0)
    x = torch.randn(3, 4)
    assert torch.equal(loaded(x), sae(x))


def test_state_dict_round_trip():
    sae = random_sae()
    state = sae.state_dict()
    assert set(state) == {"W_d", "W_gate", "b_gate", "r_mag", "b_mag", "b_d"}
    fresh = GatedSAE(4, 6, GatedSettings(l1=0.3))
    fresh.load_state_dict(state)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(fresh(x), sae(x))


def test_settings_check():
    assert GatedSettings(l1=0.0).check() == []
    assert GatedSettings(l1=-0.5).check() == ["l1: must be >= 0, got -0.5"]
    assert GatedSettings.knob == "l1" and not GatedSAE.resamples


def sparse_data(n: int, d: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """n inputs, each a sparse non-negative combination of k fixed unit directions plus a constant offset."""
    directions = torch.nn.functional.normalize(torch.randn(k, d, generator=generator), dim=1)
    active = torch.rand(n, k, generator=generator) < 0.15
    magnitudes = torch.rand(n, k, generator=generator) + 0.5
    return (active * magnitudes) @ directions + 0.5


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
        sae = GatedSAE(8, 32, GatedSettings(l1=0.01), generator=g)
        before = sae.loss(held_out, 0, 300)
        train(sae, data, steps=300, batch=64, lr=1e-2)
        return sae, before, sae.loss(held_out, 300, 300)

    sae, before, after = run()
    assert after.total.item() < 0.3 * before.total.item()
    assert after.mse.item() < 0.3 * before.mse.item() and 0 < after.l0.item() < 32
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(32))
    again, _, _ = run()
    for (name, a), b in zip(sae.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
