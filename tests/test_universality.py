"""Universality: max activation correlation across two dictionaries on the same tokens."""

import numpy as np
import pytest
import torch

from monosemantic.analysis import universality as uv
from monosemantic.lm.store import ArrayStore


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


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread):
    import analysis_world
    return analysis_world.build(tmp_path_factory.mktemp("world"))


def direct_max_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(a.T, b.T)[:a.shape[1], a.shape[1]:]
    return np.nanmax(np.where(np.isnan(c), -np.inf, c), axis=1)


def test_analyse_against_direct_correlations(world):
    from monosemantic.analysis import logit_weights as lw

    a, b, cfg = world.dictionary("A_16"), world.dictionary("B_16"), world.params.analysis
    proxies = {"dna": {"feature": {"index": 4}}}
    out, fig = uv.analyse(a, b, world.streams["val"], cfg, proxies)
    n = cfg.max_points
    xa, xb = a.store.read(0, n), b.store.read(0, n)
    with torch.no_grad():
        fa, fb = a.sae.encode(xa).numpy(), b.sae.encode(xb).numpy()
    feats = direct_max_corr(fa, fb)
    fires = (fa > 0).sum(0)
    assert fig["features"] == pytest.approx(np.where(fires >= 2, feats, np.nan), abs=1e-5, nan_ok=True)
    assert fig["neurons"] == pytest.approx(direct_max_corr(xa.numpy(), xb.numpy()), abs=1e-5)
    assert out["features"]["median"] == pytest.approx(np.median(feats[fires >= 2]), abs=1e-5)
    assert out["features"]["units"] == (fires >= 2).sum() and out["n_points"] == n
    # the logit weights of feature 4 against those of its best match in B, each with its own model's σ̄
    match = out["proxy_features"]["dna"]["best_match"]
    la = lw.feature_logit_weights(a.model, a.sae, lw.residual_scale(a.model, world.streams["val"].tokens))[4]
    lb = lw.feature_logit_weights(b.model, b.sae, lw.residual_scale(b.model, world.streams["val"].tokens))[match]
    assert fig["logit_corr"][4] == pytest.approx(np.corrcoef(la.numpy(), lb.numpy())[0, 1], abs=1e-5)
    assert out["proxy_features"]["dna"]["max_corr"] == pytest.approx(feats[4], abs=1e-5) and fig["highlight"] == {"dna": 4}
    assert list(out["headline"]) == ["universality_median_max_corr"]  # A/1 against B/1: the unsuffixed key


def test_analyse_headline_keys_and_mismatched_stores(world):
    from monosemantic.analysis.inputs import Dictionary
    from monosemantic.lm.store import StoreError

    cfg = world.params.analysis
    a, a8, b = world.dictionary("A_16"), world.dictionary("A_8"), world.dictionary("B_16")
    assert list(uv.analyse(a, a8, world.streams["val"], cfg)[0]["headline"]) == ["universality_median_max_corr_A_8"]
    out, _ = uv.analyse(a8, b, world.streams["val"], cfg)
    assert list(out["headline"]) == ["universality_median_max_corr_A_8_vs_B_16"] and "proxy_features" not in out
    train = Dictionary("A_16", a.run, world.stores[("A", "train")], a.sae, a.model)  # other tokens
    with pytest.raises(StoreError, match="same tokens"):
        uv.analyse(train, b, world.streams["val"], cfg)
