"""A proxy's feature in the neuron basis (monosemantic/analysis/neuron_basis.py): the per-unit numbers by hand,
and the stage's analysis on a tiny real model against the definitions."""

import numpy as np
import pytest
import torch

from monosemantic.analysis import neuron_basis as nb
from monosemantic.analysis import proxies as px


def test_subset_spread_by_hand():
    s = nb.subset_spread(np.array([1.0, 1.0, 2.0, 0.0]))
    assert s["share"].tolist() == [0.25, 0.25, 0.5, 0.0]
    assert s["effective_subsets"] == pytest.approx(2 ** 1.5)  # exp(-(2·¼ ln ¼ + ½ ln ½)) = 2^{3/2}
    assert nb.subset_spread(np.array([0.0, 3.0]))["effective_subsets"] == pytest.approx(1.0)
    assert nb.subset_spread(np.zeros(3))["effective_subsets"] == 0.0


def test_unit_profile_by_hand():
    acts = np.array([2.0, 0.0, 1.0, 1.0], dtype=np.float32)
    subset = np.array([0, 0, 1, 1])
    proxy = np.array([3.0, 0.0, 0.0, 1.0])
    row = nb.unit_profile(acts, subset, ["English", "Arabic"], proxy, proxy > 0)
    assert row["subset_share"] == {"English": 0.5, "Arabic": 0.5}
    assert row["effective_subsets"] == 2.0
    assert row["proxy_mass_share"] == 0.75  # (2 + 1) / 4 on the points with a positive proxy
    assert row["proxy_pearson"] == round(np.corrcoef(acts, proxy)[0, 1], 4) and row["fires_on"] == 0.75
    assert np.isnan(nb.unit_profile(np.zeros(4), subset, ["English", "Arabic"], proxy, proxy > 0)["proxy_pearson"])


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread):
    import analysis_world
    return analysis_world.build(tmp_path_factory.mktemp("world"))


def test_analyse_against_the_definitions(world):
    d, cfg, val = world.dictionary("A_16"), world.params.analysis, world.streams["val"]
    out, fig = nb.analyse(d, "arabic", {"feature": {"index": 6}}, val, world.llr, cfg)
    w = d.sae.W_d[:, 6].detach().numpy().astype(np.float64)
    top = np.argsort(-np.abs(w))[:cfg.top_k]
    assert out["top_neurons"] == top.tolist() and fig["top"] == top[:5].tolist()
    share = np.cumsum(np.sort(w ** 2)[::-1]) / (w ** 2).sum()
    assert out["neurons_for_half_norm"] == np.searchsorted(share, 0.5) + 1
    assert out["neurons_for_90pct_norm"] == np.searchsorted(share, 0.9) + 1
    n, index = cfg.max_points, d.store.index()
    x = d.store.read(0, n)
    with torch.no_grad():
        feature = d.sae.encode(x)[:, 6].numpy()
    pos = world.llr["arabic"][val.tokens[index["token"][:n]].astype(np.int64)] > 0
    subset = val.doc_subset[index["doc"][:n]]
    f = out["units"]["feature 6"]
    assert f["proxy_mass_share"] == round(feature[pos].sum() / feature.sum(), 4)
    arabic = val.subsets.index("Arabic")
    assert f["subset_share"]["Arabic"] == round(feature[subset == arabic].sum() / feature.sum(), 4)
    j = int(top[0])
    assert out["units"][f"neuron {j}"]["decoder_weight"] == round(w[j], 4)
    assert out["units"][f"neuron {j}"]["fires_on"] == round(float((x[:, j] > 0).float().mean()), 4)
    head = out["headline"]["arabic_feature_vs_neurons"]
    assert head["top_neurons_median_proxy_mass_share"] == np.median(
        [out["units"][f"neuron {k}"]["proxy_mass_share"] for k in top])
    assert set(out["features_vs_neurons"]["proxies"]) == set(px.PROXY_NAMES)
    assert out["headline"]["decoder_spread_alive"] == out["features_vs_neurons"]["decoder_spread_alive"]
    assert fig["mass"]["feature 6"].tolist() == [f["subset_share"][s] for s in val.subsets]


def test_comparison_at_the_training_mix(world):
    """Weighted to the points' own subset shares, the at-training-mix block is the plain one; weighted to a
    rare Arabic share, the units are chosen anew and every number stays a valid statistic."""
    from monosemantic.analysis import superposition as S

    d, cfg, val = world.dictionary("A_16"), world.params.analysis, world.streams["val"]
    n = min(cfg.max_points, d.store.n_points)
    subset = val.doc_subset[d.store.index()["doc"][:n]]
    own = {s: float((subset == c).mean()) for c, s in enumerate(val.subsets)}
    fvn = S.features_vs_neurons(d.store, d.sae, val, world.llr, n, cfg.batch_size, target_shares=own)
    at = fvn["at_training_mix"]
    assert all(v == pytest.approx(1.0) or v == 0.0 for v in at["weights"].values())
    for k, row in fvn["proxies"].items():
        for key in ("feature", "best_neuron", "nearest_neuron", "decoder_neurons_ge_0.1", "dedicated_neurons"):
            assert at["proxies"][k][key] == row[key], (k, key)
        for key in ("feature_r", "best_neuron_r", "nearest_neuron_r", "feature_mass_on_context"):
            assert at["proxies"][k][key] == pytest.approx(row[key], abs=2e-4), (k, key)
        lo, hi = row["bootstrap_90"]["feature_r"]
        assert lo <= hi and -1 <= lo and hi <= 1
    rare = {**{s: (1 - 0.003) * v / (1 - own["Arabic"]) for s, v in own.items()}, "Arabic": 0.003}
    at = S.features_vs_neurons(d.store, d.sae, val, world.llr, n, cfg.batch_size,
                               target_shares=rare)["at_training_mix"]
    assert at["weights"]["Arabic"] == pytest.approx(0.003 / own["Arabic"], rel=1e-4)
    for row in at["proxies"].values():
        assert -1 <= row["feature_r"] <= 1 and row["best_neuron_r"] >= row["nearest_neuron_r"] - 1e-4


def test_the_training_mix_verdict_picks_its_units_under_the_weights(world):
    """The headline verdict is the at-training-mix comparison: its best feature and best neuron must be the
    argmax of the *weighted* Pearson r, not the unweighted pass's choice carried over. On this world the two
    choices differ for at least one proxy (checked), so a slip that reuses the unweighted units fails here."""
    from monosemantic.analysis import superposition as S

    d, cfg, val = world.dictionary("A_16"), world.params.analysis, world.streams["val"]
    n = min(cfg.max_points, d.store.n_points)
    index = d.store.index()
    subset = val.doc_subset[index["doc"][:n]]
    own = {s: float((subset == c).mean()) for c, s in enumerate(val.subsets)}
    rare = {**{s: (1 - 0.003) * v / (1 - own["Arabic"]) for s, v in own.items()}, "Arabic": 0.003}
    fvn = S.features_vs_neurons(d.store, d.sae, val, world.llr, n, cfg.batch_size, target_shares=rare)
    w, _ = S.mix_weights(subset, val.subsets, rare)
    neurons = d.store.read(0, n).numpy()
    with torch.no_grad():
        features = d.sae.encode(torch.from_numpy(neurons)).numpy()
    tids = px.point_tokens(index, val.tokens, n)
    differs = 0
    for k, row in fvn["at_training_mix"]["proxies"].items():
        proxy = px.proxy_value(world.llr[k])[tids].astype(np.float32)
        for units, key in ((neurons, "best_neuron"), (features, "feature")):
            weighted = [S.pearson(units[:, i], proxy, constant=-np.inf, w=w) for i in range(units.shape[1])]
            plain = [S.pearson(units[:, i], proxy, constant=-np.inf) for i in range(units.shape[1])]
            assert row[key] == int(np.argmax(weighted)), (k, key)
            assert fvn["proxies"][k][key] == int(np.argmax(plain)), (k, key)
            differs += int(np.argmax(weighted)) != int(np.argmax(plain))
    assert differs > 0, "the world no longer tells the weighted choice from the unweighted one"
