"""Universality: max activation correlation across two dictionaries on the same tokens."""

import numpy as np
import pytest
import torch

from monosemantic import universality as uv
from monosemantic.store import ArrayStore


def sparse_acts(n=3000, f=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, f, generator=g) - 1.5) * torch.rand(f, generator=g)


@pytest.mark.parametrize("sparse", [True, False])
def test_permuted_and_rescaled_copy_has_max_corr_one(sparse):
    a = sparse_acts()
    perm = torch.randperm(a.shape[1], generator=torch.Generator().manual_seed(1))
    b = a[:, perm] * 3.0
    res = uv.max_correlations(ArrayStore(a), ArrayStore(b), lambda x: x, lambda x: x, len(a), batch_size=512,
                              sparse=sparse)
    assert res["max_corr"] == pytest.approx(np.ones(a.shape[1]), abs=1e-4)
    # A unit i is B unit j with perm[j] = i
    assert np.array_equal(res["argmax"], torch.argsort(perm).numpy())


def test_against_direct_correlation_matrix_and_dead_units():
    a, b = sparse_acts(seed=2), sparse_acts(seed=3)
    a[:, 5] = 0.0  # never fires: NaN, left out of the summary
    res = uv.max_correlations(ArrayStore(a), ArrayStore(b), lambda x: x, lambda x: x, len(a), batch_size=700)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(a.numpy().T, b.numpy().T)[:40, 40:]
    c[5] = np.nan
    ok = np.arange(40) != 5
    expect = np.full(40, np.nan)
    expect[ok] = c[ok].max(axis=1)
    assert np.isnan(res["max_corr"][5]) and res["argmax"][5] == -1
    assert res["max_corr"][ok] == pytest.approx(expect[ok], abs=1e-5)
    assert np.array_equal(res["argmax"][ok], c[ok].argmax(axis=1))
    s = uv.summarize(res["max_corr"])
    assert s["units"] == 39 and s["median"] == pytest.approx(np.median(expect[ok]), abs=1e-5)


def test_hand_example_two_units():
    # a0 = (1, 0, 1, 0), b0 = (1, 0, 1, 0) -> 1; b1 = (0, 1, 0, 1) -> -1 with a0; a1 = (1, 2, 3, 4) vs b0: 0 ...
    a = torch.tensor([[1.0, 1.0], [0.0, 2.0], [1.0, 3.0], [0.0, 4.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    m = uv.CrossMoments(2, 2, torch.float64)
    m.update(a, b, sparse=False)
    c = m.correlation_rows(slice(0, 2)).numpy()
    assert c[0] == pytest.approx([1.0, -1.0])
    r = np.corrcoef([1, 2, 3, 4], [1, 0, 1, 0])[0, 1]  # = -0.447
    assert c[1] == pytest.approx([r, -r], abs=1e-6)
    best, arg = m.max_corr()
    assert best == pytest.approx([1.0, -r], abs=1e-6) and list(arg) == [0, 1]


def test_rowwise_corr():
    x = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 1.0]])
    y = np.array([[2.0, 4.0, 6.0], [0.0, 1.0, 0.0]])
    assert uv.rowwise_corr(x, y) == pytest.approx([1.0, -1.0])


def test_summary_leaves_out_rarely_firing_units():
    mc = np.array([0.9, 0.1, np.nan, 0.7, 0.2])
    fires = np.array([50, 3, 0, 40, 19])
    assert uv.summarize(mc)["units"] == 4
    s = uv.summarize(mc, fires, min_active=20)
    assert s["units"] == 2 and s["median"] == pytest.approx(0.8)
