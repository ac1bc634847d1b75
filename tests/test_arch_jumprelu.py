"""The jumprelu architecture (Rajamanoharan et al. 2024): the straight-through estimators against hand-computed
pseudo-derivatives, encode/decode/loss/gradients on a tiny example, the activation normalisation and its folding
into the SAELens layout, the pitfall of thresholds that never move, the settings' checks and a short training."""

import math

import pytest
import torch

from monosemantic.sae import architectures
from monosemantic.sae.architectures.jumprelu import (JumpReLUFunction, JumpReLUSAE, JumpReLUSettings, StepFunction,
                                                     rectangle)
from monosemantic.sae.model import geometric_median

# ------------------------------------------------------------------------------ the estimators by hand

# θ = 0.5, ε = 0.25: the window is |z − θ| < 0.125, i.e. u = (z − θ)/ε in (−1/2, 1/2); its ends 0.375 and 0.625
# (u = ∓0.5 exactly) are outside. Upstream gradient g = (1, ..., 7).
Z = torch.tensor([[0.2, 0.5, 0.55, 0.4, 0.625, 0.375, 0.7]])
G = torch.arange(1.0, 8.0)[None]
K = [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]  # K(u) for u = −1.2, 0, 0.2, −0.4, 0.5, −0.5, 0.8
THETA, EPS = 0.5, 0.25


def through(fn, z: torch.Tensor, g: torch.Tensor):
    z = z.clone().requires_grad_()
    theta = torch.full((z.shape[-1],), THETA, requires_grad=True)
    out = fn.apply(z, theta, EPS)
    out.backward(g)
    return out.detach(), z.grad, theta.grad


def test_rectangle_kernel():
    assert rectangle(torch.tensor([-1.2, -0.5, -0.49, 0.0, 0.49, 0.5, 0.8])).tolist() == [0, 0, 1, 1, 1, 0, 0]


def test_jumprelu_pseudo_derivative_by_hand():
    """Forward z·H(z − θ) (H(0) = 0); ∂/∂z = H(z − θ); ð/ðθ = −(θ/ε) K((z − θ)/ε) = −2·K per unit of g."""
    out, dz, dtheta = through(JumpReLUFunction, Z, G)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 0.55, 0.0, 0.625, 0.0, 0.7]]))
    torch.testing.assert_close(dz, torch.tensor([[0.0, 0.0, 3.0, 0.0, 5.0, 0.0, 7.0]]))
    torch.testing.assert_close(dtheta, torch.tensor([0.0, -4.0, -6.0, -8.0, 0.0, 0.0, 0.0]))


def test_step_pseudo_derivative_by_hand():
    """Forward H(z − θ); ∂/∂z = 0 (the L0 term reaches only θ); ð/ðθ = −(1/ε) K((z − θ)/ε) = −4·K per unit of g."""
    out, dz, dtheta = through(StepFunction, Z, G)
    assert out.tolist() == [[0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]]
    assert torch.count_nonzero(dz) == 0
    torch.testing.assert_close(dtheta, torch.tensor([0.0, -8.0, -12.0, -16.0, 0.0, 0.0, 0.0]))


def test_threshold_gradient_sums_over_the_batch():
    _, _, one = through(JumpReLUFunction, Z, G)
    _, _, two = through(JumpReLUFunction, torch.cat([Z, Z]), torch.cat([G, G]))
    torch.testing.assert_close(two, 2 * one)


@pytest.mark.parametrize("fn, factor", [(JumpReLUFunction, THETA / EPS), (StepFunction, 1 / EPS)])
def test_estimator_is_zero_outside_the_window(fn, factor):
    """ð/ðθ is exactly zero unless |z − θ| < ε/2: on 10,000 random pre-activations it equals −factor·#window."""
    z = torch.rand(1000, 10, generator=torch.Generator().manual_seed(0)) * 2
    window = ((z - THETA).abs() < EPS / 2).float()
    _, _, dtheta = through(fn, z, torch.ones_like(z))
    torch.testing.assert_close(dtheta, -factor * window.sum(dim=0))
    _, _, none = through(fn, z * (1 - window) + window * 5.0, torch.ones_like(z))  # the window emptied
    assert torch.count_nonzero(none) == 0


# ------------------------------------------------------------------------------ the SAE by hand

# d = 2, F = 3, the tiny SAE of tests/test_sae.py with θ = (0.5, 1.5, 1), λ = 0.1, scale s = 2 and raw inputs
# X/2, so that the normalised inputs x_n = s·x are those of test_sae.py. By hand, z = W_e (x_n − b_d) + b_e:
#   x_n,1 = (2,1):  z = (1, 0, 1.5)     f = (1, 0, 1.5)     x̂_n = (2.9, 1.2)  r = x̂_n − x_n = (0.9, 0.2)
#   x_n,2 = (0,3):  z = (−1, 2, 1.5)    f = (0, 2, 1.5)     x̂_n = (1.9, 3.2)  r = (1.9, 0.2)
#   recon = (1/B) Σ_b ‖r_b‖² = (0.85 + 3.65)/2 = 2.25;  L0 = 2;  total = 2.25 + 0.1·2 = 2.45
#   raw MSE = mean over elements of (r/s)² = 1.125/4
# Gradients with ε = 2 (window |z − θ| < 1): g_b = ∂recon/∂f_b = (2/B) W_dᵀ r_b = (0.9, 0.2, 0.7), (1.9, 0.2, 1.3)
#   θ_0 = 0.5: z_0 = 1 in the window (fired):    −(0.5/2)·0.9 − λ(1/B)(1/2) = −0.225 − 0.025 = −0.25
#   θ_1 = 1.5: z_1 = 2 in the window (fired):    −(1.5/2)·0.2 − 0.025 = −0.175      (z_1 = 0 outside)
#   θ_2 = 1:   z_2 = 1.5 twice (fired):          −(1/2)(0.7 + 1.3) − 2·0.025 = −1.05
#   ∂/∂log θ = θ·∂/∂θ = (−0.125, −0.2625, −1.05);  ∂/∂b_e = Σ_b H(z_b − θ) g_b = (0.9, 0.2, 2.0) (no L0 term)
X_N = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
S = 2.0


def tiny_sae(bandwidth: float = 2.0) -> JumpReLUSAE:
    sae = JumpReLUSAE(2, 3, JumpReLUSettings(l0_coeff=0.1, bandwidth=bandwidth, threshold_init=0.001))
    with torch.no_grad():
        sae.W_e.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.b_e.copy_(torch.tensor([0.0, -1.0, -0.5]))
        sae.W_d.copy_(torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]]))
        sae.b_d.copy_(torch.tensor([1.0, 0.0]))
        sae.log_threshold.copy_(torch.tensor([0.5, 1.5, 1.0]).log())
        sae.scale.fill_(S)
    return sae


def test_encode_decode_by_hand():
    sae = tiny_sae()
    f = sae.encode(X_N / S)
    torch.testing.assert_close(f, torch.tensor([[1.0, 0.0, 1.5], [0.0, 2.0, 1.5]]))
    torch.testing.assert_close(sae.decode(f), torch.tensor([[2.9, 1.2], [1.9, 3.2]]) / S)  # raw activations


def test_loss_and_gradients_by_hand():
    sae = tiny_sae()
    terms = sae.loss(X_N / S)
    assert terms.total.item() == pytest.approx(2.45, abs=1e-6)
    assert terms.mse.item() == pytest.approx(1.125 / 4, abs=1e-6)
    assert terms.extra["penalty"].item() == pytest.approx(0.2, abs=1e-6)
    assert terms.l1.item() == pytest.approx(3.0, abs=1e-6)
    assert terms.l0.item() == 2.0 and terms.fire_counts.tolist() == [1, 1, 2]
    terms.total.backward()
    torch.testing.assert_close(sae.log_threshold.grad, torch.tensor([-0.125, -0.2625, -1.05]))
    torch.testing.assert_close(sae.b_e.grad, torch.tensor([0.9, 0.2, 2.0]))


def test_small_bandwidth_gives_no_threshold_gradient():
    """ε = 0.1: no pre-activation of the tiny example is within 0.05 of its threshold, so θ gets nothing."""
    sae = tiny_sae(bandwidth=0.1)
    sae.loss(X_N / S).total.backward()
    assert torch.count_nonzero(sae.log_threshold.grad) == 0


def test_init_from_data_normalises_and_sets_b_d():
    """s = √d / mean ‖x‖: rows (3,4) and (0,5) have norm 5, so s = √2/5; b_d = the geometric median of s·x."""
    sae = JumpReLUSAE(2, 3, JumpReLUSettings(l0_coeff=0.1, bandwidth=0.02, threshold_init=0.02))
    x = torch.tensor([[3.0, 4.0], [0.0, 5.0]])
    sae.init_from_data(x)
    assert sae.scale.item() == pytest.approx(math.sqrt(2) / 5, rel=1e-6)
    torch.testing.assert_close(sae.b_d.detach(), geometric_median(sae.scale * x))
    torch.testing.assert_close(sae.threshold.detach(), torch.full((3,), 0.02))


def test_decoder_unit_norm_and_tied_init():
    settings = JumpReLUSettings(l0_coeff=0.1, bandwidth=0.02, threshold_init=0.02)
    sae = JumpReLUSAE(16, 64, settings, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(64))
    assert torch.equal(sae.W_e, sae.W_d.T) and torch.count_nonzero(sae.b_e) == 0
    sae.W_d.grad = torch.randn(16, 64, generator=torch.Generator().manual_seed(2))
    sae.before_step(0, 1)
    assert (sae.W_d.grad * sae.W_d).sum(dim=0).abs().max() < 1e-5
    with torch.no_grad():
        sae.W_d.mul_(3.0)
    sae.after_step(0, 1)
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(64))


def test_settings_check_messages():
    assert JumpReLUSettings(l0_coeff=0.0, bandwidth=0.02, threshold_init=0.02).check() == []
    errs = JumpReLUSettings(l0_coeff=-1.0, bandwidth=0.0, threshold_init=-0.5).check()
    assert errs == ["l0_coeff: must be a finite number >= 0, got -1.0",
                    "bandwidth: must be a finite number > 0, got 0.0",
                    "threshold_init: must be a finite number > 0, got -0.5"]
    assert JumpReLUSettings.knob == "l0_coeff"


# ------------------------------------------------------------------------------ persistence

def random_sae() -> tuple[JumpReLUSAE, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    sae = JumpReLUSAE(8, 24, JumpReLUSettings(l0_coeff=0.05, bandwidth=0.03, threshold_init=0.03), generator=g)
    x = 40 * torch.rand(64, 8, generator=g)
    sae.init_from_data(x)
    with torch.no_grad():
        sae.b_e.normal_(std=0.3, generator=g)
        sae.log_threshold.copy_((torch.rand(24, generator=g) * 0.5 + 0.1).log())
    return sae, x


def test_save_load_round_trip_folds_the_scale(tmp_path):
    sae, x = random_sae()
    assert sae.scale.item() != pytest.approx(1.0)
    sae.save(tmp_path / "sae", run_name="t")
    cfg, tensors = sae.read(tmp_path / "sae")
    assert cfg["architecture"] == "jumprelu"
    assert set(tensors) == {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"}  # SAELens loads strictly
    torch.testing.assert_close(tensors["threshold"], sae.threshold.detach())
    loaded = architectures.load(tmp_path / "sae")
    assert type(loaded) is JumpReLUSAE and loaded.settings == sae.settings and loaded.scale.item() == 1.0
    f = sae.encode(x)
    assert 0 < (f > 0).float().mean() < 1  # some features fire, some do not
    torch.testing.assert_close(loaded.encode(x), f)
    torch.testing.assert_close(loaded(x), sae(x))
    # SAELens's inference JumpReLU on the saved tensors, raw activations in: ReLU(z)·[z > threshold]
    z = (x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"]
    torch.testing.assert_close(z.relu() * (z > tensors["threshold"]), f)
    torch.testing.assert_close(f @ tensors["W_dec"] + tensors["b_dec"], sae(x))


def test_state_dict_round_trip_includes_buffers():
    sae, x = random_sae()
    state = sae.state_dict()
    assert {"scale", "log_threshold"} <= set(state)
    fresh = JumpReLUSAE(8, 24, sae.settings)
    fresh.load_state_dict(state)
    assert fresh.scale.item() == sae.scale.item()
    assert torch.equal(fresh.loss(x).total, sae.loss(x).total)


# ------------------------------------------------------------------------------ training

def adam_loop(sae: JumpReLUSAE, data: torch.Tensor, params, steps: int, batch: int, lr: float) -> list:
    """A plain Adam loop through the interface: loss, before_step, optimizer step, after_step."""
    opt = torch.optim.Adam(params, lr=lr)
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


def threshold_problem(bandwidth: float, l0_coeff: float) -> tuple[JumpReLUSAE, torch.Tensor]:
    """Raw inputs 100·u, u uniform on [0,1]^4; the SAE fixed at W_e = W_d = I, b = 0 after init_from_data, so
    feature i's normalised pre-activation is z_i = s·x_i and its loss E[z² H(θ − z)] + λ P(z > θ) has derivative
    p(θ)(θ² − λ) in θ: the optimal threshold is θ* = √λ (normalised units), whatever the raw scale."""
    g = torch.Generator().manual_seed(11)
    sae = JumpReLUSAE(4, 4, JumpReLUSettings(l0_coeff=l0_coeff, bandwidth=bandwidth, threshold_init=0.05),
                      generator=g)
    data = 100 * torch.rand(300 * 512, 4, generator=g)
    sae.init_from_data(data[:4096])
    with torch.no_grad():
        sae.W_e.copy_(torch.eye(4))
        sae.W_d.copy_(torch.eye(4))
        sae.b_e.zero_()
        sae.b_d.zero_()
    assert 100 * sae.scale.item() > 1.5  # z spans [0, 1.79]: θ* is inside
    return sae, data


@pytest.mark.parametrize("l0_coeff", [0.16, 0.36])
def test_thresholds_learn_the_known_optimum(l0_coeff, one_thread):
    """The pitfall's other side: at a bandwidth on the normalised scale (ε = 0.02) the thresholds travel from
    θ₀ = 0.05 to θ* = √λ (0.4, 0.6) within 10% in 300 steps, training log θ alone."""
    sae, data = threshold_problem(0.02, l0_coeff)
    adam_loop(sae, data, [sae.log_threshold], steps=300, batch=512, lr=0.02)
    theta = sae.threshold.detach()
    assert (theta - math.sqrt(l0_coeff)).abs().max() < 0.1 * math.sqrt(l0_coeff), theta


def test_thresholds_never_move_at_a_tiny_bandwidth(one_thread):
    """The pitfall: at ε = 1e-8, far below the spread of the pre-activations, no pre-activation ever falls within
    ε/2 of θ, the estimator is zero and θ stays at θ₀ (the optimum being 0.6)."""
    sae, data = threshold_problem(1e-8, 0.36)
    theta0 = sae.threshold.detach().clone()
    adam_loop(sae, data, [sae.log_threshold], steps=300, batch=512, lr=0.02)
    assert torch.equal(sae.threshold.detach(), theta0)


def sparse_data(n: int, d: int, n_true: int, active: int, g: torch.Generator) -> torch.Tensor:
    """x = 50·(Σ of `active` random directions of a fixed dictionary, magnitudes U(0.5, 1.5), plus 0.3)."""
    D = torch.nn.functional.normalize(torch.randn(n_true, d, generator=g), dim=1)
    idx = torch.rand(n, n_true, generator=g).argsort(dim=1)[:, :active]
    codes = torch.zeros(n, n_true).scatter_(1, idx, 0.5 + torch.rand(n, active, generator=g))
    return 50 * (codes @ D + 0.3)


def test_short_training_reduces_loss_and_l0(one_thread):
    """All parameters, deterministic: the loss falls tenfold, L0 falls from ~23 (θ₀ = 0.05 passes most positive
    pre-activations) while the thresholds rise several-fold, and the decoder stays unit-norm."""
    g = torch.Generator().manual_seed(6)
    data = sparse_data(8192, 16, 32, 3, g)
    sae = JumpReLUSAE(16, 48, JumpReLUSettings(l0_coeff=0.1, bandwidth=0.05, threshold_init=0.05), generator=g)
    sae.init_from_data(data[:1024])
    history = adam_loop(sae, data, sae.parameters(), steps=300, batch=256, lr=1e-2)
    first, last = history[0], history[-1]
    assert last.total.item() < 0.1 * first.total.item(), (first.total.item(), last.total.item())
    assert last.l0.item() < 0.6 * first.l0.item(), (first.l0.item(), last.l0.item())
    assert sae.threshold.detach().median() > 3 * 0.05
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(48))
