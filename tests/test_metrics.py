"""Each metric against its definition on small hand-made inputs."""

import numpy as np
import pytest
import torch

from monosemantic import metrics
from monosemantic.store import ArrayStore


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
