"""Toy-model verification: MMCS by hand, the synthetic data, and an SAE (trained by sae_train) recovering a
few orthogonal sparse features."""

import numpy as np
import pytest
import torch

from monosemantic.analysis import toy


def test_mmcs_by_hand():
    true = torch.eye(3)
    assert toy.mmcs(true, torch.eye(3) * 5) == pytest.approx(1.0)
    assert toy.mmcs(true, torch.tensor([[1.0, 0, 0]])) == pytest.approx(1 / 3)
    s = 1 / np.sqrt(2)
    assert toy.mmcs(true, torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])) == pytest.approx((s + s + 1) / 3)


@pytest.mark.parametrize("correlated", [False, True])
def test_toy_data_statistics(correlated):
    data = toy.make_toy_data(64, 16, 20000, 4.0, correlated, seed=0)
    assert data.x.shape == (20000, 16)
    assert data.directions.norm(dim=1) == pytest.approx(torch.ones(64), abs=1e-5)
    assert data.probs.sum() == pytest.approx(4.0, rel=1e-6)
    assert data.x.pow(2).sum(1).mean().item() == pytest.approx(16.0, rel=1e-4)
    p = toy.firing_probabilities(64, 4.0)
    assert p[0] / p[-1] == pytest.approx(10.0)


def test_sae_recovers_orthogonal_sparse_features():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n, d, k = 8192, 16, 6
    dirs = torch.linalg.qr(torch.randn(d, d, generator=g))[0][:k]  # 6 orthonormal directions
    on = torch.rand(n, k, generator=g) < 0.15
    x = (on.float() * (0.5 + torch.rand(n, k, generator=g))) @ dirs
    data = toy.ToyData(x=x, directions=dirs, probs=np.full(k, 0.15))
    cfg = toy.toy_sae_config(steps=300, batch_size=256, lr=0.01, seed=0, n_points=n)
    sae, stats = toy.train_toy_sae(data, 12, 0.003, cfg)
    ev = toy.evaluate_toy_sae(sae, data)
    assert stats["steps"] == 300
    assert ev["mmcs"] > 0.9, ev
    # a dictionary of random directions does not
    assert toy.mmcs(dirs, torch.randn(12, d, generator=g)) < 0.7


RES = {"by_size": [{"n_features": 16, "l1": 0.03, "mmcs": 0.61234, "l0": 5.0, "fvu": 0.25, "alive": 16},
                   {"n_features": 32, "l1": 0.03, "mmcs": 0.70009, "l0": 7.5, "fvu": 0.125, "alive": 31}],
       "by_l1": [{"n_features": 32, "l1": 0.01, "mmcs": 0.9, "l0": 12.0, "fvu": 0.0625, "alive": 32}]}


def test_headline_is_the_dictionary_with_n_true_features():
    assert toy.headline(RES, 32) == {"headline": {"toy_mmcs": 0.7001}, "headline_run": {"n_features": 32, "l1": 0.03},
                                     "best_mmcs": 0.9}
    # no dictionary of n_true features in the size sweep: its best one
    assert toy.headline(RES, 64)["headline_run"] == {"n_features": 32, "l1": 0.03}


def test_csv_table():
    assert toy.csv_table(RES).splitlines() == [
        "sweep,n_features,l1,mmcs,l0,fvu,alive",
        "by_size,16,0.03,0.612340,5.0000,0.250000,16",
        "by_size,32,0.03,0.700090,7.5000,0.125000,31",
        "by_l1,32,0.01,0.900000,12.0000,0.062500,32"]
