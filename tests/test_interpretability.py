"""LLM-free interpretability scores on synthetic units whose answer is known: a token indicator is explained
and simulated perfectly, a unit independent of the tokens scores near 0, the importance weights undo the
mix's over-sampling, and the logit predictor finds the successors of the explained tokens."""

import numpy as np
import pytest

from monosemantic.analysis import interpretability as ip

V, S = 200, 2  # vocabulary, subsets
KW = dict(top_examples=20, max_keys=10, n_intervals=4, per_interval=5, n_random=50, single_token_share=0.9)


def _points(n, seed):
    rng = np.random.default_rng(seed)
    tok = rng.integers(0, V, n)
    sub = rng.integers(0, S, n)
    return tok, sub, ip.point_keys(tok, sub, S)


def test_indicator_unit_scores_one_and_random_unit_near_zero():
    tr_tok, _, tr_keys = _points(40_000, 0)
    va_tok, _, va_keys = _points(40_000, 1)
    rng = np.random.default_rng(2)
    # unit 0: fires exactly on token 7 (strength 3); units 1..20: random, independent of the token
    def acts(tok):
        a = np.zeros((len(tok), 21), np.float32)
        a[:, 0] = 3.0 * (tok == 7)
        a[:, 1:] = rng.exponential(1.0, (len(tok), 20)) * (rng.random((len(tok), 20)) < 0.05)
        return a
    recs = ip.evaluate_units(acts(tr_tok), tr_keys, acts(va_tok), va_keys, S, seed=0, **KW)
    ind = recs[0]
    assert ind["score"] == pytest.approx(1.0) and ind["score_all"] == pytest.approx(1.0)
    assert ind["score_weighted"] == pytest.approx(1.0)
    assert ind["single_token"]
    assert {t for t, _, _ in ind["explanation"]} == {7}
    rand = np.array([r["score"] for r in recs[1:]])
    assert abs(np.median(rand)) < 0.1
    assert np.abs([r["score_all"] for r in recs[1:]]).max() < 0.05
    assert not any(r["single_token"] for r in recs[1:])
    s = ip.summarize(recs)
    assert s["single_token_units"] == 1 and s["without_single_token"]["n_units"] == 20


def test_explanation_strength_is_mean_over_all_training_occurrences():
    keys = np.array([5, 5, 5, 5, 9, 9, 3])
    acts = np.array([4.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0])  # key 5: top example but mean 1; key 9: mean 1
    e = ip.explain(acts, keys, n_subsets=1, top_examples=3, max_keys=10)
    assert set(e.keys.tolist()) == {5, 9}
    assert e.values.tolist() == pytest.approx([10.0, 10.0])
    sim = ip.simulate(e, np.array([5, 9, 3, 8]))
    assert sim.tolist() == pytest.approx([10.0, 10.0, 0.0, 0.0])
    assert ip.explain(np.zeros(4), keys[:4], 1, 3, 10).keys.size == 0
    # strengths follow their keys whatever the order: key 9 (mean 2) before key 5 (mean 1)
    e2 = ip.explain(np.array([1.0, 1.0, 2.0, 2.0]), np.array([5, 5, 9, 9]), 1, 4, 10)
    assert e2.keys.tolist() == [9, 5]
    assert ip.simulate(e2, np.array([5, 9])).tolist() == pytest.approx([5.0, 10.0])


def test_importance_weights_estimate_the_population():
    rng = np.random.default_rng(0)
    n = 20_000
    a = rng.exponential(1.0, n) * (rng.random(n) < 0.1)
    means = []
    for seed in range(200):
        mix = ip.heldout_mix(a, np.random.default_rng(seed), 20, 4, 5, 50)
        w = mix["weight"]
        means.append((w * a[mix["index"]]).sum() / w.sum())
        # the top component is exactly the 20 largest activations
        assert set(mix["index"][mix["component"] == 0]) == set(np.argsort(-a)[:20])
    unweighted = np.mean([a[ip.heldout_mix(a, np.random.default_rng(s), 20, 4, 5, 50)["index"]].mean()
                          for s in range(20)])
    assert abs(np.mean(means) - a.mean()) < 0.15 * a.mean()
    assert unweighted > 5 * a.mean()  # the mix itself is heavily biased toward high activations


def test_logit_prediction_from_successors():
    # stream where token t is always followed by t + 1 (mod V)
    stream = np.tile(np.arange(V), 50)
    succ = ip.successor_counts(stream, V)
    assert succ[3, 4] == 50 and succ[3, 5] == 0
    uni = np.bincount(stream, minlength=V).astype(float)
    w = np.zeros(V)
    w[[10, 20, 30]] = [10.0, 5.0, 5.0]
    scores = ip.successor_scores(w, succ, uni)
    rng = np.random.default_rng(0)
    logits = np.zeros(V)
    logits[[11, 21, 31]] = [3.0, 2.0, 1.0]
    promoted, rand = ip.logit_candidates(logits, 3, rng)
    assert sorted(promoted.tolist()) == [11, 21, 31] and not set(rand) & {11, 21, 31}
    assert ip.two_choice_accuracy(scores, promoted, rand) == 1.0
    # a unit promoting unrelated tokens is at chance or below
    other = np.zeros(V)
    other[[100, 101, 102]] = 1.0
    p2, r2 = ip.logit_candidates(other, 3, rng)
    assert ip.two_choice_accuracy(scores, p2, r2) <= 0.5


def test_rubric_items():
    keys = np.arange(1000) % 10
    acts = np.where(keys == 3, 2.0, 0.0)
    e = ip.explain(acts, keys, 1, 20, 10)
    mix = ip.heldout_mix(acts, np.random.default_rng(0), 20, 4, 5, 50)
    r = ip.rubric(e, acts, keys, mix, 4, logit_acc=1.0)
    assert (r["consistency"], r["logit"], r["specificity"], r["total"]) == (6, 4, 4, 14)
    r0 = ip.rubric(e, acts, keys, mix, 4, logit_acc=0.5)
    assert r0["logit"] == 0 and r0["total"] == 10
    # a unit that fires on half of token 3's occurrences: specificity halves
    half = acts * (np.arange(1000) % 20 < 10)
    e2 = ip.explain(half, keys, 1, 20, 10)
    assert ip.rubric(e2, half, keys, ip.heldout_mix(half, np.random.default_rng(0), 20, 4, 5, 50), 4,
                     None)["precision"] == pytest.approx(0.5)


def test_figures_are_written(tmp_path):
    from monosemantic.figures import interpretability as ifig
    rng = np.random.default_rng(0)
    groups = {g: {"score": rng.random(20), "score_weighted": rng.random(20)} for g in ("features", "neurons")}
    ifig.autointerp_figure(groups, {"features": 0.7, "neurons": 0.6}, tmp_path / "f8.png")
    ifig.rubric_figure({"features": rng.integers(0, 15, 20)}, tmp_path / "f7.png", hand={"neurons": [0.0, 2.0]})
    ifig.automata_figure([{"states": [1, 2], "edges": [[1, 2], [2, 1]], "lift": [9.0, 8.0], "pinned_rate": [0.5, 0.4],
                           "baseline_rate": [0.1, 0.1], "state_tokens": {"1": ["a"], "2": ["b"]}, "example": "a|b"}],
                         tmp_path / "f11.png")
    ifig.automata_figure([], tmp_path / "f11_empty.png")
    for f in ("f8.png", "f7.png", "f11.png", "f11_empty.png"):
        assert (tmp_path / f).read_bytes()[:4] == b"\x89PNG"
