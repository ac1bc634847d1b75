"""Each metric against its definition on small hand-made inputs."""

import numpy as np
import pytest
import torch

from monosemantic.sae import metrics
from monosemantic.lm.store import ArrayStore


def test_mse_hand_computed():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x_hat = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    assert metrics.mse(x, x_hat) == pytest.approx((0 + 4 + 9 + 0) / 4)


def test_explained_variance_is_variance_about_the_mean():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 6, generator=g) + 10.0  # large mean: the raw-second-moment bug would give ~1
    x_hat = x + 0.5 * torch.randn(500, 6, generator=g)
    r = x - x_hat
    expected = 1 - torch.var(r, dim=0).sum() / torch.var(x, dim=0).sum()
    assert metrics.explained_variance(x, x_hat) == pytest.approx(expected.item(), rel=1e-6)
    # predicting the mean explains nothing; a perfect reconstruction explains everything
    assert metrics.explained_variance(x, x.mean(0, keepdim=True).expand_as(x)) == pytest.approx(0.0, abs=1e-9)
    assert metrics.explained_variance(x, x) == pytest.approx(1.0)
    # a constant offset leaves the variance of the residual at zero
    assert metrics.explained_variance(x, x + 3.0) == pytest.approx(1.0)


def test_l0_l1_hand_computed():
    f = torch.tensor([[0.0, 2.0, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert metrics.l0(f) == pytest.approx((2 + 0 + 3) / 3)
    assert metrics.l1(f) == pytest.approx((2.5 + 0 + 3) / 3)


def test_density_classes():
    density = np.array([0.0, 0.0, 1e-7, 5e-6, 1e-3, 0.02, 0.5])
    assert metrics.density_classes(density, ultralow=1e-5, dense=0.01) == {"dead": 2, "ultralow": 2, "dense": 2}


def test_frac_loss_recovered_endpoints():
    assert metrics.frac_loss_recovered(loss_clean=2.0, loss_sae=2.0, loss_zero=5.0) == 1.0
    assert metrics.frac_loss_recovered(loss_clean=2.0, loss_sae=5.0, loss_zero=5.0) == 0.0
    assert metrics.frac_loss_recovered(loss_clean=2.0, loss_sae=2.75, loss_zero=5.0) == pytest.approx(0.75)


def test_streaming_stats_match_the_one_shot_definitions():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 8, generator=g) + 2.0
    w = torch.randn(8, 16, generator=g)
    encode = lambda a: torch.relu(a @ w - 1.0)  # noqa: E731
    decode = lambda f: f @ torch.linalg.pinv(w) * 0.3  # noqa: E731
    result, density = metrics.reconstruction_metrics(encode, decode, ArrayStore(x), batch_size=97)
    f = encode(x)
    x_hat = decode(f)
    assert result["mse"] == pytest.approx(metrics.mse(x, x_hat), rel=1e-6)
    assert result["explained_variance"] == pytest.approx(metrics.explained_variance(x, x_hat), rel=1e-6)
    assert result["l0"] == pytest.approx(metrics.l0(f), rel=1e-6)
    assert result["l1"] == pytest.approx(metrics.l1(f), rel=1e-6)
    np.testing.assert_allclose(density, (f > 0).float().mean(0).numpy(), rtol=1e-6)
    assert result["n_tokens"] == 1000


def test_frac_loss_recovered_refuses_a_non_positive_denominator():
    """L_zero <= L_clean (zero-ablating the MLP does not hurt, as for a random transformer): no ratio."""
    with pytest.raises(metrics.UndefinedMetricError, match=r"L_zero 7\.09 <= L_clean 7\.1"):
        metrics.frac_loss_recovered(loss_clean=7.1, loss_sae=7.105, loss_zero=7.09)
    with pytest.raises(metrics.UndefinedMetricError, match="non-positive denominator"):
        metrics.frac_loss_recovered(loss_clean=3.0, loss_sae=2.0, loss_zero=3.0)
    with pytest.raises(metrics.UndefinedMetricError, match="non-finite"):
        metrics.frac_loss_recovered(loss_clean=2.0, loss_sae=float("nan"), loss_zero=5.0)
    # an SAE worse than zeros is a legitimate negative number, not a refusal
    assert metrics.frac_loss_recovered(loss_clean=2.0, loss_sae=6.0, loss_zero=5.0) == pytest.approx(-1 / 3)


@pytest.mark.parametrize("losses,expected", [((2.0, 2.75, 5.0), 0.75), ((7.1, 7.105, 7.09), None)])
def test_loss_recovered_records_the_ratio_or_null_with_the_reason(monkeypatch, losses, expected):
    from types import SimpleNamespace

    from monosemantic.lm import train as lm
    calls = []

    def fake_eval_losses(model, stream, starts, batch_size, device, replacement=None):
        calls.append(replacement)
        value = {None: losses[0], "sae": losses[1], metrics.zero_ablation: losses[2]}[replacement]
        return np.full(10, value), np.zeros(10)

    monkeypatch.setattr(lm, "eval_losses", fake_eval_losses)
    model = SimpleNamespace(cfg=SimpleNamespace(n_ctx=8))
    out = metrics.loss_recovered(model, "sae", np.zeros(1000), 4, 2, "cpu")
    assert (out["loss_clean"], out["loss_sae"], out["loss_zero"]) == pytest.approx(losses)
    assert out["loss_contexts"] == 4 and len(calls) == 3
    if expected is None:
        assert out["frac_loss_recovered"] is None and "L_zero" in out["frac_loss_recovered_undefined"]
    else:
        assert out["frac_loss_recovered"] == pytest.approx(expected)
        assert "frac_loss_recovered_undefined" not in out


def test_density_populations_split_at_the_valley():
    rng = np.random.default_rng(0)
    main = 10 ** rng.normal(-2.5, 0.3, 900)        # the main body around 3e-3
    low = 10 ** rng.normal(-5.5, 0.15, 100)        # an ultralow cluster around 3e-6
    density = np.concatenate([main, low, np.zeros(37)])
    pop = metrics.density_populations(density)
    assert pop["dead"] == 37 and pop["alive"] == 1000
    assert pop["ultralow_cluster"] == 100
    assert -5.0 < pop["threshold_log10"] < -3.5
    one = metrics.density_populations(np.concatenate([main, np.zeros(3)]))
    assert one["ultralow_cluster"] == 0 and one["threshold_log10"] is None and one["dead"] == 3


def test_fire_counts_and_the_papers_ultralow_threshold_by_hand():
    # feature 0 fires on 3 of 4 rows, feature 1 once, feature 2 never (identity encoder, then ReLU)
    x = torch.tensor([[1.0, -1.0, 0.0], [2.0, 3.0, -1.0], [0.0, 0.0, 0.0], [4.0, -2.0, -5.0]])
    counts = metrics.fire_counts(torch.relu, ArrayStore(x), 4, batch_size=3)
    assert counts.tolist() == [3, 1, 0] and counts.dtype == np.int64
    assert metrics.fire_counts(torch.relu, ArrayStore(x), 2, batch_size=1).tolist() == [2, 1, 0]
    # over 2,000,000 points the paper's 1e-6 is 2 firings: 1 firing is ultralow, 2 is not, 0 is dead
    rep = metrics.count_density_report(np.array([0, 1, 2, 5000, 0]), 2_000_000)
    assert (rep["dead"], rep["ultralow"], rep["firings_at_ultralow"], rep["points"]) == (2, 1, 2.0, 2_000_000)
    assert rep["density_populations"]["dead"] == 2


def test_fire_counts_in_row_blocks_equal_one_product_of_a_real_encoder():
    # batches larger than FIRE_COUNT_BLOCK, a partial last block and a partial last batch: every row counted once
    from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings
    sae = StandardSAE(16, 64, StandardSettings(1e-3), generator=torch.Generator().manual_seed(0))
    x = torch.randn(2 * metrics.FIRE_COUNT_BLOCK + 300, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = (sae.encode(x) > 0).sum(0)
    counts = metrics.fire_counts(sae.encode, ArrayStore(x), x.shape[0], batch_size=metrics.FIRE_COUNT_BLOCK + 200)
    assert counts.tolist() == expected.tolist() and counts.sum() > 0
