"""The topk architecture (Gao et al. 2024): TopK encode, normalised MSE and AuxK against hand-computed values, the
AuxK pitfall (b_d added to the AuxK reconstruction), dead-latent tracking, the SAELens-layout round trip, the
settings' checks and a short training."""

import math

import pytest
import torch

from monosemantic.sae import architectures
from monosemantic.sae.architectures.topk import TopKSAE, TopKSettings, topk_relu
from monosemantic.sae.model import geometric_median

# d = 2, F = 3, the tiny SAE of tests/test_sae.py. By hand, z = W_e (x − b_d) + b_e:
#   x_1 = (2,1):  x̄ = (1,1)   z = (1, 0, 1.5)
#   x_2 = (0,3):  x̄ = (−1,3)  z = (−1, 2, 1.5)
#   x_3 = (1,0):  x̄ = (0,0)   z = (0, −1, −0.5)     (no positive pre-activation: f = 0 whatever k)
# k = 1: f_1 = (0,0,1.5) x̂_1 = (1.9,1.2) e_1 = x − x̂ = (0.1,−0.2);  f_2 = (0,2,0) x̂_2 = (1,2) e_2 = (−1,1);
#        f_3 = 0, x̂_3 = b_d = x_3.   MSE = (0.01 + 0.04 + 1 + 1 + 0 + 0)/6 = 2.05/6
# k = 2: f_1 = (1,0,1.5), f_2 = (0,2,1.5), f_3 = 0 (the selected 0 and −0.5 are ReLU'd away)
X = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])


def settings(k=1, k_aux=2, aux_coeff=1 / 32, dead_steps=2) -> TopKSettings:
    return TopKSettings(k=k, k_aux=k_aux, aux_coeff=aux_coeff, dead_steps=dead_steps)


def tiny_sae(**kw) -> TopKSAE:
    sae = TopKSAE(2, 3, settings(**kw))
    with torch.no_grad():
        sae.W_e.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.b_e.copy_(torch.tensor([0.0, -1.0, -0.5]))
        sae.W_d.copy_(torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]]))
        sae.b_d.copy_(torch.tensor([1.0, 0.0]))
    return sae


def test_encode_decode_by_hand():
    sae = tiny_sae(k=1)
    torch.testing.assert_close(sae.encode(X), torch.tensor([[0.0, 0.0, 1.5], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(sae(X), torch.tensor([[1.9, 1.2], [1.0, 2.0], [1.0, 0.0]]))
    sae2 = tiny_sae(k=2)
    torch.testing.assert_close(sae2.encode(X), torch.tensor([[1.0, 0.0, 1.5], [0.0, 2.0, 1.5], [0.0, 0.0, 0.0]]))


def test_relu_after_topk():
    """The k largest pre-activations are kept, THEN ReLU'd (SAELens's and the paper's order): L0 ≤ k."""
    z = torch.tensor([[3.0, -1.0, -2.0, 0.5], [-3.0, -1.0, -2.0, -0.5]])
    torch.testing.assert_close(topk_relu(z, 2), torch.tensor([[3.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]]))


def test_loss_without_dead_latents_by_hand():
    """No latent dead (a fresh buffer, dead_steps 2): total = s_mse · MSE, aux = 0."""
    sae = tiny_sae(k=1)
    sae.mse_scale.fill_(0.9)
    terms = sae.loss(X)
    assert terms.mse.item() == pytest.approx(2.05 / 6, abs=1e-6)
    assert terms.total.item() == pytest.approx(0.9 * 2.05 / 6, abs=1e-6)
    assert terms.extra["aux"].item() == 0.0
    assert terms.l1.item() == pytest.approx(3.5 / 3, abs=1e-6)
    assert terms.l0.item() == pytest.approx(2 / 3, abs=1e-6)
    assert terms.fire_counts.tolist() == [0, 1, 1]


def test_init_from_data_mse_scale_and_geometric_median():
    # the data's mean (1, 4/3); squared deviations 1 + 1/9 + 1 + 25/9 + 0 + 16/9 = 20/3 over 6 elements: 10/9
    sae = tiny_sae()
    sae.init_from_data(X)
    assert sae.mse_scale.item() == pytest.approx(0.9, rel=1e-6)
    torch.testing.assert_close(sae.b_d.detach(), geometric_median(X))


# AuxK on X[:2] with k = 1: fired now {2 (x_1), 1 (x_2)}; steps_since_fired = (2, 0, 2), dead_steps = 2, so only
# latent 0 is dead (latent 2 fired in this batch). k_aux' = min(2, 1) = 1; z_aux = ReLU(z_0) = (1, 0).
#   ê_1 = 1·(1,0) = (1,0),  ê_2 = (0,0)      (NO b_d)
#   e_1 = (0.1,−0.2), e_2 = (−1,1);  Σ‖e − ê‖² = 0.81 + 0.04 + 1 + 1 = 2.85,  /4 = 0.7125
#   ē = (−0.45, 0.4);  Σ‖e − ē‖² = 2·(0.3025 + 0.36) = 1.325,  /4 = 0.33125
#   L_aux = 0.7125 / 0.33125 = 2.150943...
# With b_d wrongly added, ê_1 = (2,0), ê_2 = (1,0): Σ‖e − ê‖² = 3.61 + 0.04 + 4 + 1 = 8.65 → L_aux = 6.5283...
L_AUX = 0.7125 / 0.33125


def dead_sae() -> TopKSAE:
    sae = tiny_sae(k=1, k_aux=2, aux_coeff=0.5, dead_steps=2)
    sae.steps_since_fired.copy_(torch.tensor([2, 0, 2]))
    return sae


def test_auxk_loss_by_hand():
    sae = dead_sae()
    sae.mse_scale.fill_(0.9)
    terms = sae.loss(X[:2])
    mse = (0.01 + 0.04 + 1 + 1) / 4
    assert terms.mse.item() == pytest.approx(mse, abs=1e-6)
    assert terms.extra["aux"].item() == pytest.approx(0.5 * L_AUX, rel=1e-6)
    assert terms.total.item() == pytest.approx(0.9 * mse + 0.5 * L_AUX, rel=1e-6)


def test_auxk_reconstruction_has_no_decoder_bias():
    """The pitfall: ê = W_d z_aux, not W_d z_aux + b_d. L_aux is by hand the value without b_d (not 6.53), and
    it is unchanged when the data and b_d are shifted together (e, z unchanged; ê + b_d would shift)."""
    sae = dead_sae()
    aux = sae.loss(X[:2]).extra["aux"].item() / 0.5
    assert aux == pytest.approx(L_AUX, rel=1e-6)
    assert aux != pytest.approx((8.65 / 4) / 0.33125, rel=1e-3)
    shift = torch.tensor([5.0, -7.0])
    with torch.no_grad():
        sae.b_d.add_(shift)
    assert sae.loss(X[:2] + shift).extra["aux"].item() / 0.5 == pytest.approx(L_AUX, rel=1e-5)


def test_auxk_gradient_reaches_only_dead_latents():
    """e is detached: the AuxK term moves the dead latents' encoder and decoder only. By hand for column 0:
    ∂L_aux/∂W_d[:,0] = 2 Σ_b (ê_b − e_b) z_aux,b0 / (B d · 0.33125) = 2·(0.9, 0.2)/1.325."""
    sae = dead_sae()
    z = sae.preactivations(X[:2])
    e = (X[:2] - sae(X[:2])).detach()
    sae.auxk_loss(z, e, torch.tensor([True, False, False])).backward()
    torch.testing.assert_close(sae.W_d.grad[:, 0], torch.tensor([1.8, 0.4]) / 1.325)
    assert torch.count_nonzero(sae.W_d.grad[:, 1:]) == 0
    assert torch.count_nonzero(sae.W_e.grad[1:]) == 0 and torch.count_nonzero(sae.b_e.grad[1:]) == 0
    assert torch.count_nonzero(sae.W_e.grad[0]) > 0


def test_auxk_uses_only_the_k_aux_largest_dead_latents():
    """z_aux keeps the k_aux' = min(k_aux, #dead) largest pre-activations among the dead latents only (latent 0,
    live, has the largest z). W_d columns (1,0), (0,1), (1,0), (0,1); dead {1, 2, 3}:
      k_aux 2: z_aux = (0,0,2,3), (0,3,0,2)  →  ê = (2,3), (0,5)
      k_aux 5 → 3: z_aux = (0,1,2,3), (0,3,1,2)  →  ê = (2,4), (1,5)
    Each e below equals its ê, so L_aux = 0 exactly when the right latents are used (e − ē ≠ 0)."""
    z = torch.tensor([[5.0, 1.0, 2.0, 3.0], [5.0, 3.0, 1.0, 2.0]])
    dead = torch.tensor([False, True, True, True])
    for k_aux, e in ((2, [[2.0, 3.0], [0.0, 5.0]]), (4, [[2.0, 4.0], [1.0, 5.0]])):
        sae = TopKSAE(2, 4, settings(k=1, k_aux=k_aux, dead_steps=1))
        with torch.no_grad():
            sae.W_d.copy_(torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
        assert sae.auxk_loss(z, torch.tensor(e), dead).item() == 0.0
        assert sae.auxk_loss(z, torch.tensor(e) + torch.tensor([[0.0, 1.0], [0.0, 0.0]]), dead).item() > 0
    sae = tiny_sae(k=1, dead_steps=1)  # dead_steps 1: dead = did not fire in this batch
    assert sae.dead_mask(torch.tensor([True, False, False])).tolist() == [False, True, True]


def test_dead_latent_tracking_across_steps():
    """steps_since_fired counts completed steps without firing; after_step commits the step's firing; a loss
    evaluated under no_grad records nothing."""
    sae = tiny_sae(k=1, dead_steps=2)
    sae.loss(X[:1])  # only latent 2 fires
    sae.after_step(0, 10)
    assert sae.steps_since_fired.tolist() == [1, 1, 0]
    with torch.no_grad():
        sae.loss(X[1:2])  # latent 1 would fire: not a training step
    sae.after_step(1, 10)  # nothing recorded: no change
    assert sae.steps_since_fired.tolist() == [1, 1, 0]
    sae.loss(X[1:2])  # latent 1 fires (two losses before one step: their firing is OR'd)
    sae.loss(X[2:3])  # nothing fires
    assert sae.dead_mask(torch.tensor([False, False, False])).tolist() == [True, True, False]
    sae.after_step(2, 10)
    assert sae.steps_since_fired.tolist() == [2, 0, 1]


def test_decoder_unit_norm_and_tied_init():
    sae = TopKSAE(16, 64, settings(k=4, k_aux=8), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(64))
    assert torch.equal(sae.W_e, sae.W_d.T)
    assert torch.count_nonzero(sae.b_e) == 0
    again = TopKSAE(16, 64, settings(k=4, k_aux=8), generator=torch.Generator().manual_seed(1))
    assert torch.equal(sae.W_d, again.W_d)
    sae.W_d.grad = torch.randn(16, 64, generator=torch.Generator().manual_seed(2))
    sae.before_step(0, 1)
    assert (sae.W_d.grad * sae.W_d).sum(dim=0).abs().max() < 1e-5
    with torch.no_grad():
        sae.W_d.mul_(3.0)
    sae.after_step(0, 1)
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(64))


def test_k_larger_than_dictionary_rejected():
    with pytest.raises(ValueError, match="k = 5"):
        TopKSAE(2, 4, settings(k=5, k_aux=1))


def test_settings_check_messages():
    assert settings(k=32, k_aux=256, aux_coeff=1 / 32, dead_steps=1000).check() == []
    errs = TopKSettings(k=0, k_aux=-1, aux_coeff=-0.1, dead_steps=0).check()
    assert errs == ["k: must be >= 1, got 0", "k_aux: must be >= 1, got -1", "dead_steps: must be >= 1, got 0",
                    "aux_coeff: must be a finite number >= 0, got -0.1"]
    assert TopKSettings.knob == "k"


def trained_sae() -> TopKSAE:
    g = torch.Generator().manual_seed(3)
    sae = TopKSAE(8, 24, settings(k=3, k_aux=4, dead_steps=3), generator=g)
    with torch.no_grad():
        sae.b_e.normal_(generator=g)
        sae.b_d.normal_(generator=g)
        sae.steps_since_fired.copy_(torch.arange(24))
        sae.mse_scale.fill_(1.7)
    return sae


def test_save_load_round_trip(tmp_path):
    sae = trained_sae()
    sae.save(tmp_path / "sae", run_name="t")
    cfg, tensors = sae.read(tmp_path / "sae")
    assert cfg["architecture"] == "topk" and cfg["k"] == 3 and cfg["rescale_acts_by_decoder_norm"] is False
    # no sae_lens_version: SAELens 6.54's handle_pre_6_0_config reads k from activation_fn_kwargs for "topk"
    assert cfg["activation_fn_kwargs"] == {"k": 3} and cfg["activation_fn"] == cfg["activation_fn_str"] == "topk"
    assert set(tensors) == {"W_enc", "W_dec", "b_enc", "b_dec"}  # SAELens loads the state dict strictly
    loaded = architectures.load(tmp_path / "sae")
    assert type(loaded) is TopKSAE and loaded.settings == sae.settings
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(4))
    assert torch.equal(loaded.encode(x), sae.encode(x))
    assert torch.equal(loaded(x), sae(x))
    # SAELens's inference TopK on the saved tensors: topk of (x − b_dec) W_enc + b_enc, ReLU, scatter
    z = (x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"]
    vals, idx = z.topk(cfg["k"], dim=-1, sorted=False)
    assert torch.equal(torch.zeros_like(z).scatter_(-1, idx, vals.relu()), sae.encode(x))


def test_state_dict_round_trip_includes_buffers():
    sae = trained_sae()
    state = sae.state_dict()
    assert {"mse_scale", "steps_since_fired"} <= set(state)
    fresh = TopKSAE(8, 24, sae.settings)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.steps_since_fired, torch.arange(24)) and fresh.mse_scale.item() == pytest.approx(1.7)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(5))
    a, b = sae.loss(x), fresh.loss(x)
    assert torch.equal(a.total, b.total) and torch.equal(a.extra["aux"], b.extra["aux"])


def sparse_data(n: int, d: int, n_true: int, active: int, g: torch.Generator) -> torch.Tensor:
    """x = Σ of `active` random directions of a fixed dictionary, magnitudes U(0.5, 1.5), plus an offset."""
    D = torch.nn.functional.normalize(torch.randn(n_true, d, generator=g), dim=1)
    idx = torch.rand(n, n_true, generator=g).argsort(dim=1)[:, :active]
    codes = torch.zeros(n, n_true).scatter_(1, idx, 0.5 + torch.rand(n, active, generator=g))
    return codes @ D + 0.3


def train(sae: TopKSAE, data: torch.Tensor, steps: int, batch: int, lr: float) -> list:
    """A plain Adam loop through the interface: init_from_data, loss, before_step, step, after_step."""
    sae.init_from_data(data[:1024])
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    history = []
    for step in range(steps):
        x = data[(step * batch) % len(data):][:batch]
        terms = sae.loss(x, step, steps)
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        sae.before_step(step, steps)
        for group in opt.param_groups:
            group["lr"] = lr * sae.lr_scale(step, steps)
        opt.step()
        sae.after_step(step, steps)
        history.append(terms)
    return history


def test_short_training_reduces_loss_keeps_l0_k(one_thread):
    g = torch.Generator().manual_seed(6)
    data = sparse_data(8192, 16, 32, 3, g)
    sae = TopKSAE(16, 48, settings(k=3, k_aux=8, aux_coeff=1 / 32, dead_steps=20), generator=g)
    history = train(sae, data, steps=300, batch=256, lr=1e-2)
    first = sum(t.mse.item() for t in history[:10]) / 10
    last = sum(t.mse.item() for t in history[-10:]) / 10
    assert last < 0.25 * first, (first, last)
    assert all(t.l0.item() <= 3 for t in history)
    assert history[-1].l0.item() > 2.9
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(48))
    assert math.isfinite(history[-1].total.item())


def test_auxk_revives_dead_latents(one_thread):
    """Half the latents start dead (pre-activations ≈ 0.05, never among the top k, but positive: AuxK's ReLU
    passes no gradient to a dead latent whose pre-activations are all negative, in the paper's code too); AuxK
    brings most of them back, without it they stay dead."""
    def dead_after(aux_coeff: float) -> int:
        g = torch.Generator().manual_seed(7)
        data = sparse_data(8192, 16, 32, 3, g)
        sae = TopKSAE(16, 48, settings(k=3, k_aux=8, aux_coeff=aux_coeff, dead_steps=5), generator=g)
        with torch.no_grad():
            sae.init_from_data(data[:1024])
            sae.W_e[24:] *= 0.05
            sae.b_e[24:] = 0.05
        train_from_init(sae, data, steps=200, batch=256, lr=3e-3)
        return int((sae.steps_since_fired >= 5).sum())
    without, with_aux = dead_after(0.0), dead_after(1 / 32)
    assert without >= 20 and with_aux <= without // 2, (without, with_aux)


def train_from_init(sae: TopKSAE, data: torch.Tensor, steps: int, batch: int, lr: float) -> None:
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    for step in range(steps):
        x = data[(step * batch) % len(data):][:batch]
        terms = sae.loss(x, step, steps)
        opt.zero_grad(set_to_none=True)
        terms.total.backward()
        sae.before_step(step, steps)
        opt.step()
        sae.after_step(step, steps)
