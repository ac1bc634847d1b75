"""The bf16 screen of the SAE encoder (sae.EncoderScreen): its error bound, its exactness, training with it.

* the bound: this machine's bf16 matmul accumulates in fp32 (measured error within γ_{d+3}·Σ|x̃w̃| plus the
  output rounding), and no entry that the fp32 product makes active is screened out, also on inputs built so
  that thousands of entries lie within fp32 rounding of the ReLU threshold;
* exactness: the screened active set equals the dense fp32 one and the values agree to fp32 rounding;
* training: SAETrainer with encoder_screen "bf16" follows the fp32 trajectory (encoder_screen "fp32") over
  several steps with a dead-feature resampling in the middle: identical fire counts at every step, weights
  within fp32 rounding.
"""


import pytest
import torch

from monosemantic.core.config import ResampleConfig, SAEConfig
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings
from monosemantic.sae.screen import BF16_U, EncoderScreen, _gamma, resolve_encoder_screen, screen_coefficients
from monosemantic.sae.train import SAETrainer

D, F, B, L1 = 48, 384, 256, 0.003
STEPS, RESAMPLE_AT = 10, 5


def data(n: int, seed: int, d: int = D) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, d, generator=g) - 0.3) * 2


def make_sae(seed: int = 1, b_e: float = -1.2) -> StandardSAE:
    sae = StandardSAE(D, F, StandardSettings(L1), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        sae.b_d.copy_(data(1024, 9).median(dim=0).values)
        sae.b_e.fill_(b_e)  # a few % of the entries active: the CSR branch of a trained SAE
    return sae


def test_bf16_matmul_accumulates_in_fp32_within_the_stated_bound():
    """The kernel assumption of the bound: error ≤ γ_{d+3} Σ|x̃_j w̃_j| before the (sign-preserving) bf16 output
    rounding. A kernel rounding partial sums to bf16 would exceed it on these long mixed-sign sums."""
    g = torch.Generator().manual_seed(0)
    d = 515
    a = (torch.randn(1024, d, generator=g) * torch.rand(1024, 1, generator=g) * 10).to(torch.bfloat16)
    b = (torch.randn(1024, d, generator=g) * torch.rand(1024, 1, generator=g)).to(torch.bfloat16)  # a block's shape
    out = torch.mm(a, b.T).double()
    exact = a.double() @ b.double().T  # products of bf16 numbers, summed in float64: the real sum to ~1e-16
    abs_sum = a.double().abs() @ b.double().abs().T
    gamma = _gamma(d)
    bound = gamma * abs_sum + BF16_U * (exact.abs() + gamma * abs_sum)
    err = (out - exact).abs()
    assert (err <= bound).all(), float((err / bound).max())
    # the sign is preserved: a positive accumulated sum never comes out negative, and vice versa
    assert not ((exact > gamma * abs_sum) & (out < 0)).any()
    assert not ((exact < -gamma * abs_sum) & (out > 0)).any()


def test_screen_coefficients_cover_bf16_rounding():
    c, g = screen_coefficients(512)
    assert 2 * BF16_U < c < 2.1 * BF16_U  # the two bf16 roundings of each product dominate
    assert _gamma(513) < g < 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_active_entry_is_screened_out_near_the_threshold(seed):
    """Inputs built so that b_e ≈ −x̄·w for many (input, feature) pairs: thousands of entries within a few ulps
    of the ReLU threshold, where the bf16 product alone decides nothing. Every entry the fp32 product makes
    active must be a candidate, and the returned set must be exactly those with a positive fp32 value."""
    g = torch.Generator().manual_seed(seed)
    n, d, f = 512, 96, 256
    x_bar = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) * 4
    W_e = torch.randn(f, d, generator=g) / d**0.5
    # b_e_i = −x̄_r·w_i for one input r per feature, nudged by a few fp32 ulps: rows like r sit on the threshold
    r = torch.randint(n, (f,), generator=g)
    dots = (x_bar[r].double() * W_e.double()).sum(1)
    b_e = (-dots * (1 + (torch.randint(-4, 5, (f,), generator=g).double() * 2.0**-24))).float()
    x_bar = torch.cat([x_bar, x_bar[r]])  # the threshold rows, plus multiples of them (also on the threshold)
    x_bar = torch.cat([x_bar, x_bar[n:] * 2.0, x_bar[n:] * 0.5])
    pre = torch.addmm(b_e, x_bar, W_e.T)
    screen = EncoderScreen(W_e, b_e)
    cand = screen.candidates(x_bar)
    active = pre > 0
    near = (pre.abs() < 1e-5 * (x_bar.norm(dim=1, keepdim=True) * W_e.norm(dim=1))).sum()
    assert near > 100  # the construction really puts entries on the threshold
    assert not (active & ~cand).any(), int((active & ~cand).sum())
    # and the screen is not vacuous: entries further below the threshold than 1.1× the slack are ruled out
    c, gb = screen.c, screen.g
    slack = c * x_bar.norm(dim=1, keepdim=True) * W_e.norm(dim=1) + gb * b_e.abs()
    far = pre < -1.1 * slack
    assert far.sum() > 0.2 * far.numel() and not (cand & far).any()
    rows, cols, vals = screen.active_entries(x_bar)
    assert (vals > 0).all()
    ref = (x_bar[rows] * W_e[cols]).double().sum(1) + b_e[cols].double()
    torch.testing.assert_close(vals.double(), ref, rtol=1e-5, atol=1e-5)
    # everything fp32 makes active is returned, except entries within fp32 rounding of zero
    got = torch.zeros_like(active)
    got[rows, cols] = True
    tol = 4 * _gamma(d + 1) * (x_bar.abs() @ W_e.abs().T + b_e.abs())
    assert not ((active != got) & (pre.abs() > tol)).any()


def test_screened_active_set_equals_fp32_on_ordinary_inputs():
    sae = make_sae()
    x = data(2048, 3)
    with torch.no_grad():
        x_bar = x - sae.b_d
        pre = torch.addmm(sae.b_e, x_bar, sae.W_e.T)
        r_ref, c_ref = (pre > 0).nonzero(as_tuple=True)
        rows, cols, vals = EncoderScreen(sae.W_e, sae.b_e).active_entries(x_bar)
    assert torch.equal(rows, r_ref) and torch.equal(cols, c_ref)
    torch.testing.assert_close(vals, pre[r_ref, c_ref], rtol=1e-5, atol=1e-6)


def make_cfg(screen: str) -> SAEConfig:
    return SAEConfig(batch_size=B, steps=STEPS, lr=1e-3, betas=(0.9, 0.999), geometric_median_points=8192,
                     log_every=1000, checkpoint_every=1000, seed=5, fast_path="sparse", encoder_screen=screen,
                     resample=ResampleConfig(steps=(RESAMPLE_AT,), dead_window=2, n_inputs=512, encoder_scale=0.2))


def test_screened_training_follows_fp32_across_resampling():
    """Two trainers from the same state, fp32 and bf16-screened, on the same batches with a resampling after
    step RESAMPLE_AT: the same fire counts at every step (the active sets are equal) and weights within fp32
    rounding at the end (the values are summed in another order, so not bitwise)."""
    trainers = {s: SAETrainer(make_sae(), make_cfg(s), "cpu") for s in ("fp32", "bf16")}
    assert trainers["bf16"].sae.encoder_screen == "bf16" and trainers["fp32"].sae.encoder_screen == "fp32"
    xs = data(STEPS * B, 0).split(B)
    resample_inputs = data(512, 1)
    records = {}
    for step in range(STEPS):
        counts = {s: t.step(xs[step]).fire_counts for s, t in trainers.items()}
        assert torch.equal(counts["fp32"], counts["bf16"]), step
        if step + 1 == RESAMPLE_AT:
            for s, t in trainers.items():
                records[s] = t.resample(resample_inputs, torch.Generator().manual_seed(2))
    assert records["fp32"]["n_resampled"] > 0 and records["fp32"] == records["bf16"]
    for (name, p), q in zip(trainers["fp32"].sae.named_parameters(), trainers["bf16"].sae.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)


def test_fp32_path_untouched_by_the_screen_setting():
    """encoder_screen 'fp32' is the plain fp32 CSR path: bitwise the same step as calling it without the setting."""
    x = data(B, 5)
    a, b = make_sae(), make_sae()
    ta = a.manual_backward(x, max_density=1.0)
    tb = b.manual_backward(x, max_density=1.0, encoder_screen="fp32")
    assert torch.equal(ta.total, tb.total)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p.grad, q.grad)


def test_resolve_and_validate():
    assert resolve_encoder_screen("bf16") == "bf16" and resolve_encoder_screen("fp32", "cpu") == "fp32"
    assert resolve_encoder_screen("auto", "cuda") == "fp32"
    with pytest.raises(ValueError, match="'off' not one of fp32, bf16, auto"):
        resolve_encoder_screen("off")  # the old spelling (the config loader names the key: tests/test_config.py)
