"""Stage interpretability's study (monosemantic/analysis/interpretability_study.py): the seeded unit sample, the
points of each split, the logit weights the predictor is tested on, and the whole study on a tiny real model."""

import dataclasses

import numpy as np
import pytest
import torch

from monosemantic.analysis import interpretability_study as study
from monosemantic.analysis import logit_weights as lw
from monosemantic.analysis.token_bytes import EOT_ID
from monosemantic.data.tokenizer import TokenStream


def test_sample_units_keeps_units_firing_in_both_splits():
    cfg = type("Cfg", (), {"n_units": 3, "min_active": 2})
    fires = {u: (3, 3) if u % 2 == 0 else (3, 1) for u in range(10)}  # odd units fire once on the val split

    def acts_of(units):
        tr = np.array([[1.0 if r < fires[u][0] else 0.0 for u in units] for r in range(5)])
        va = np.array([[float(u + 1) if r < fires[u][1] else 0.0 for u in units] for r in range(5)])
        return tr, va

    units, tr, va = study.sample_units(10, cfg, np.random.default_rng(0), acts_of)
    order = np.random.default_rng(0).permutation(10)
    assert units.tolist() == [u for u in order if u % 2 == 0][:3]
    assert tr.shape == va.shape == (5, 3) and va[0].tolist() == [u + 1.0 for u in units]


def test_split_points_codes_each_point_by_its_document():
    stream = TokenStream(np.zeros(10, np.uint16), np.array([0, 4, 10]), np.array([1, 0], np.int16), ["b", "a"])
    store = type("Store", (), {"n_points": 4, "index": lambda self: {"token": np.array([9, 0, 3, 4]),
                                                                      "doc": np.array([1, 0, 0, 1])}})()
    codes = np.array([7, 5])  # the stream's subsets "b", "a" numbered in the union of both splits' subsets
    n, index, sub = study.split_points(store, stream, 3, codes)
    assert n == 3 and index["token"].tolist() == [9, 0, 3] and sub.tolist() == [7, 5, 5]
    assert study.split_points(store, stream, 99, codes)[0] == 4


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread):
    import analysis_world
    return analysis_world.build(tmp_path_factory.mktemp("world"))


def groups(world):
    stores = {s: world.stores[("A", s)] for s in study.SPLITS}
    a = world.models["A"]
    return {"features": study.Group("A_16", "A", stores, a, world.saes["A_16"]),
            "neurons": study.Group(None, "A", stores, a, None),
            "random_features": study.Group("A_8", "A", stores, a, world.saes["A_8"])}


def test_unit_logit_weights(world):
    g, val = groups(world), world.streams["val"].tokens
    sigma = lw.residual_scale(world.models["A"], val)
    W = study.unit_logit_weights(g["features"], np.array([3, 1]), val)
    expect = lw.feature_logit_weights(world.models["A"], world.saes["A_16"], sigma, [3, 1]).numpy()
    assert np.all(W[:, EOT_ID] == -np.inf) and np.delete(W, EOT_ID, 1) == pytest.approx(np.delete(expect, EOT_ID, 1))
    Wn = study.unit_logit_weights(g["neurons"], np.array([5]), val)
    assert np.delete(Wn, EOT_ID, 1) == pytest.approx(np.delete(lw.neuron_logit_weights(world.models["A"], sigma)[[5]]
                                                               .numpy(), EOT_ID, 1))


def test_analyse_on_a_tiny_model(world):
    p = world.params
    cfg = dataclasses.replace(p.interpretability, n_units=6, explain_points=800, score_points=300, top_examples=10,
                              min_active=3, successor_tokens=4000, spotcheck_units=2, automata_contexts=8,
                              automata_pinned=4, logit_k=5, automata_min_count=2)
    with torch.no_grad():
        out, records, spot, fig = study.analyse(cfg, p.analysis, world.tok, world.streams, groups(world))
    assert out["explain_points"] == {"A": 800} and out["score_points"] == {"A": 300}
    assert out["subsets"] == sorted(world.streams["val"].subsets)
    for group, recs in records.items():
        assert 0 < len(recs) <= 6 and out["groups"][group]["n_units"] == len(recs)
        g = groups(world)[group]
        units = [r["unit"] for r in recs]
        x_tr, x_va = g.stores["train"].read(0, 800), g.stores["val"].read(0, 300)
        with torch.no_grad():
            a_tr, a_va = ((g.sae.encode(x) if g.sae is not None else x)[:, units] for x in (x_tr, x_va))
        assert ((a_tr > 0).sum(0) >= 3).all() and ((a_va > 0).sum(0) >= 3).all()  # sampled among active units
        assert all(len(r["promoted"]) == 5 and EOT_ID not in r["promoted"] for r in recs)
        assert len(fig["scores"][group]["score"]) == len(recs) == len(fig["rubric"][group])
    assert [(e["group"], e["unit"]) for e in spot] == [(g, r["unit"]) for g in ("features", "neurons")
                                                       for r in records[g][:2]]
    assert out["automata"]["tokens"] == 8 * 16 and out["automata"]["run"] == p.analysis.run
    assert set(out["headline"]) == {"interpretability", "automata"}
    assert "features" in study.format_study(out)


def test_automata_headline_and_summary(world, monkeypatch):
    """headline.automata keeps states, edges, lift, the causal check's rates, expected effect and verdict of every
    automaton; format_study prints them."""
    a = {"states": [3], "edges": [[3, 3]], "lift": [7.0], "logit_support": [6.0], "count": [5],
         "pinned_rate": [0.75], "baseline_rate": [0.125], "natural_rate": [0.5], "data_rate": [0.5],
         "causal": [True], "causal_p": [1e-6], "n_prefixes": [8], "offcontext_pinned_rate": [0.0],
         "offcontext_baseline_rate": [0.0], "state_tokens": {"3": ["x"]}, "example": "x|x",
         "expected_pinned_rate": [0.7], "expected_baseline_rate": [0.1], "expected_natural_rate": [0.45],
         "expected_effect": [0.6], "effect_p": [1e-9], "uncovered_mass": [0.004], "sampled_causal": [True],
         "effect_bounds": [[0.598, 0.603]], "uncovered_mass_mean": [0.001],
         "sampled_causal_p": [1e-6]}
    monkeypatch.setattr(study, "validation_automata", lambda *args: ([a], 128))
    cfg = dataclasses.replace(world.params.interpretability, n_units=2, explain_points=300, score_points=200,
                              top_examples=5, min_active=2, successor_tokens=2000, spotcheck_units=1, logit_k=3)
    with torch.no_grad():
        out, _, _, fig = study.analyse(cfg, world.params.analysis, world.tok, world.streams, groups(world))
    assert out["headline"]["automata"] == [{"states": [3], "edges": [[3, 3]], "lift": [7.0], "pinned_rate": [0.75],
                                            "baseline_rate": [0.125], "natural_rate": [0.5], "causal": [True],
                                            "expected_pinned_rate": [0.7], "expected_baseline_rate": [0.1],
                                            "expected_effect": [0.6], "effect_bounds": [[0.598, 0.603]],
                                            "effect_p": [1e-9]}]
    assert out["automata"]["found"] == [a] and fig["automata"] == [a]
    assert ("expected pinned [0.7] ablated [0.1] (effect within [[0.598, 0.603]], p [1e-09]; uncovered [0.004]; "
            "sampled [0.75] vs [0.125]) natural [0.45] "
            "causal [True] (sampled [True])") in study.format_study(out)
