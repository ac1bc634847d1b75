"""Feature splitting: decoder cosines on known vectors, nearest parents, the family-counting rule."""

import dataclasses

import numpy as np
import pytest
import torch

from monosemantic.analysis import splitting


def test_cosine_matrix_known_vectors():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0]])
    c = splitting.cosine_matrix(a, b)
    s = 1 / np.sqrt(2)
    assert c == pytest.approx(np.array([[1.0, 0.0, -s], [s, s, -1.0]]))


def test_unit_columns_and_nearest_parents():
    W_small = torch.tensor([[1.0, 0.0], [0.0, 5.0], [0.0, 0.0]])  # (d=3, F=2): columns e0, 5·e1
    cols = splitting.unit_columns(W_small)
    assert cols == pytest.approx(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    # children: two split from e0 (at 30° either side towards e2), one equal to e1
    t = np.deg2rad(30)
    large = np.array([[np.cos(t), 0, np.sin(t)], [np.cos(t), 0, -np.sin(t)], [0, 1, 0]])
    idx, cos = splitting.nearest_parents(large, cols)
    assert list(idx) == [0, 0, 1]
    assert cos == pytest.approx([np.cos(t), np.cos(t), 1.0])


def test_count_family_rule():
    spec = np.array([0.9, 0.5, 0.49, 0.95, 1.0])
    fires = np.array([100, 20, 500, 19, 0])
    assert list(splitting.count_family(spec, fires, min_specificity=0.5, min_active=20)) == [0, 1]


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread):
    import analysis_world
    return analysis_world.build(tmp_path_factory.mktemp("world"))


def test_splitting_runs_are_ordered_by_size_and_share_a_model(world):
    from monosemantic.core.config import ConfigError

    p = world.params
    assert splitting.splitting_model({r: p.sae_run(r) for r in p.analysis.splitting_runs}) == (["A_8", "A_16"], "A")
    assert splitting.splitting_model({r: p.sae_run(r) for r in ("A_16", "A_8")}) == (["A_8", "A_16"], "A")
    with pytest.raises(ConfigError, match="share one model"):
        splitting.splitting_model({r: p.sae_run(r) for r in ("A_8", "B_16")})


def test_analyse_counts_the_family_by_the_rule(world, monkeypatch):
    monkeypatch.setattr(splitting, "umap_embed", lambda v, *a: v[:, :2] * 1.0)  # umap-learn itself is not under test
    saes = {r: world.saes[r] for r in ("A_8", "A_16")}
    store, val = world.stores[("A", "val")], world.streams["val"]
    # random dictionaries: about 10% of the points are base64, so a 15% specificity picks a few features
    cfg = dataclasses.replace(world.params.analysis, base64_min_specificity=0.15)
    out, fig = splitting.analyse(saes, {"A_8": 8, "A_16": 16}, store, val, world.llr["base64"], cfg)
    n = cfg.max_points
    pos = world.llr["base64"][val.tokens[store.index()["token"][:n]].astype(np.int64)] > 0
    for r, sae in saes.items():
        with torch.no_grad():
            a = sae.encode(store.read(0, n)).numpy().astype(np.float64)
        mass = a.sum(0)
        spec = np.divide(a[pos].sum(0), mass, out=np.zeros_like(mass), where=mass > 0)
        family = np.flatnonzero((spec >= cfg.base64_min_specificity) & ((a > 0).sum(0) >= cfg.base64_min_active))
        assert sorted(out["per_run"][r]["base64_features"]) == family.tolist() == sorted(fig["family"][r].tolist())
        assert out["per_run"][r]["alive"] == ((a > 0).sum(0) > 0).sum()
        assert out["headline"]["base64_features_by_size"][str(len(saes[r].b_e))] == len(family) == fig["counts"][r]
    assert out["headline"]["base64_features_by_size"] != {"8": 0, "16": 0}  # the rule is exercised
    idx, cos = fig["parents"]["A_16"]
    c = splitting.cosine_matrix(splitting.unit_columns(saes["A_16"].W_d), splitting.unit_columns(saes["A_8"].W_d))
    assert idx.tolist() == c.argmax(1).tolist() and cos == pytest.approx(c.max(1), abs=1e-6)
    assert out["pairs"]["A_8->A_16"]["median_max_cosine"] == pytest.approx(np.median(c.max(1)), abs=1e-6)
    # the co-embedding holds the smaller dictionary's 8 decoder vectors, then the larger one's 16
    assert fig["groups"].tolist() == [0] * 8 + [1] * 16 and fig["offsets"] == {"A_8": 0, "A_16": 8}
    assert fig["embedding"] == pytest.approx(np.concatenate([splitting.unit_columns(s.W_d) for s in saes.values()])[:, :2])
