"""Features against neurons the paper's way (monosemantic/analysis/superposition.py), on hand-computed cases."""

import numpy as np
import pytest

from monosemantic.analysis import superposition as S


def test_decoder_spread_by_hand():
    W = np.array([[0.8, 0.5, 2.0],
                  [0.6, 0.5, 0.0],
                  [0.0, 0.5, 0.0],
                  [0.0, 0.5, 0.0]])
    sp = S.decoder_spread(W)
    # column 0: |0.8|, |0.6| >= 0.1; 0.64 alone is half the norm. column 1: four equal entries, two make half.
    # column 2 (norm 2): normalised to a single neuron.
    assert sp["ge_threshold"].tolist() == [2, 4, 1]
    assert sp["for_half_norm"].tolist() == [1, 2, 1]
    summary = S.spread_summary(sp, np.array([True, True, False]))
    assert summary["alive_features"] == 2 and summary["share_one_neuron_holds_half"] == 0.5


def test_thresholds_and_matched_specificity():
    pos = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    feature = np.array([4.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # fires on 2 of 4 positives, once off
    neuron = np.array([2.0, 2.0, 2.0, 2.0, 5.0, 5.0, 0.0, 0.0])    # all positives, but stronger off-context
    tau = S.sensitivity_threshold(feature, pos, 0.5)
    assert 0 < tau < 3.0 and (feature[pos] > tau).mean() == 0.5
    m = S.matched_specificity(feature, neuron, pos)
    assert m["sensitivity"] == 0.5
    assert m["feature"] == 1.0                     # above its threshold: tokens 0 and 1, both positive
    assert m["neuron"] == pytest.approx(4 / 6, abs=1e-4)   # covering half the positives also takes in the two 5.0s
    assert S.specificity_at(feature, pos, 10.0) != S.specificity_at(feature, pos, 10.0)  # nan: nothing above


def test_mass_share_and_learned():
    acts = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 2.0]])
    ctx = np.array([False, True, True])
    assert S.mass_share(acts, ctx).tolist() == [0.75, 1.0]
    report = {"Arabic": {"loss": 2.0, "unigram_loss": 3.0}, "DNA": {"loss": 5.1, "unigram_loss": 5.0}}
    assert S.context_learned(report, "Arabic") and not S.context_learned(report, "DNA")
    assert not S.context_learned(report, "Hebrew")


def test_headline_has_the_issue_keys():
    fvn = {"proxies": {"arabic": {"feature_r": 0.7, "best_neuron_r": 0.3, "nearest_neuron_r": 0.2,
                                  "decoder_neurons_ge_0.1": 27, "neurons_for_half_norm": 9, "other": 1}}}
    assert S.headline(fvn) == {"arabic": {"feature_r": 0.7, "best_neuron_r": 0.3, "nearest_neuron_r": 0.2,
                                          "decoder_neurons_ge_0.1": 27, "neurons_for_half_norm": 9}}


def test_neurons_for_norm_share_by_hand():
    W = np.array([[3.0, 1.0, 0.0],
                  [4.0, 1.0, 0.0],
                  [0.0, 1.0, 0.0],
                  [0.0, 1.0, -2.0]])
    # column 0: 16/25 = 0.64 holds half, 9/25 more for 0.9; column 1: four quarters; column 2: one neuron
    assert S.neurons_for_norm_share(W, 0.5).tolist() == [1, 2, 1]
    assert S.neurons_for_norm_share(W, 0.9).tolist() == [2, 4, 1]
    assert S.neurons_for_norm_share(W, 0.64).tolist()[0] == 1  # exactly the share: the one neuron suffices
    assert S.decoder_spread(W)["for_half_norm"].tolist() == [1, 2, 1]


def test_pearson_of_constant_units():
    a, b = np.array([1.0, 0.0, 2.0, 0.0]), np.array([2.0, 0.0, 4.0, 1.0])
    assert S.pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert S.pearson(np.zeros(4), b) == 0.0 and np.isnan(S.pearson(a, np.ones(4), constant=float("nan")))


# ------------------------------------------------------------------------------------------------
# The comparison at the training mix: weights are repeated rows
# ------------------------------------------------------------------------------------------------


def _repeat(w, *arrays):
    """Integer weights as repeated rows: the unweighted statistic on these is the weighted one."""
    return [np.repeat(a, w, axis=0) for a in arrays]


def test_weighted_statistics_equal_the_unweighted_ones_on_repeated_rows():
    rng = np.random.default_rng(0)
    n = 40
    w = rng.integers(1, 5, n)
    a = np.maximum(rng.normal(0, 1, n), 0)
    b = np.maximum(rng.normal(0, 1, n), 0) + 0.5 * a
    pos = rng.random(n) < 0.4
    ra, rb, rpos = _repeat(w, a, b, pos)
    assert S.pearson(a, b, w=w) == pytest.approx(S.pearson(ra, rb), abs=1e-12)
    assert S.pearson(a, b, w=w) != pytest.approx(S.pearson(a, b), abs=1e-3)  # the weights matter here
    for s in (0.25, 0.5, 0.7):
        tau_w, tau = S.sensitivity_threshold(a, pos, s, w), S.sensitivity_threshold(ra, rpos, s)
        assert tau_w == tau
        assert S.specificity_at(a, pos, tau_w, w) == pytest.approx(S.specificity_at(ra, rpos, tau), abs=1e-12)
    assert S.matched_specificity(a, b, pos, w=w) == S.matched_specificity(ra, rb, rpos)
    acts = np.stack([a, b], axis=1)
    assert S.mass_share(acts, pos, w) == pytest.approx(S.mass_share(np.repeat(acts, w, axis=0), rpos), abs=1e-12)


def test_proxy_stats_weighted_equal_repeated_rows():
    import torch
    from monosemantic.analysis import proxies as px

    rng = np.random.default_rng(1)
    n = 64
    w = rng.integers(1, 4, n)
    a = np.maximum(rng.normal(0, 1, (n, 3)), 0).astype(np.float32)
    p = np.maximum(rng.normal(0, 1, (n, 2)), 0).astype(np.float32)
    weighted, plain = px.ProxyStats(3, 2), px.ProxyStats(3, 2)
    weighted.update(torch.from_numpy(a), torch.from_numpy(p), torch.from_numpy(w.astype(np.float32)))
    ra, rp = _repeat(w, a, p)
    plain.update(torch.from_numpy(ra), torch.from_numpy(rp))
    rw, rr = weighted.result(), plain.result()
    for key in ("pearson", "specificity", "sensitivity"):
        np.testing.assert_allclose(rw[key], rr[key], atol=1e-6)
    assert rw["n_fire"].tolist() == (a > 0).sum(0).tolist()  # a count, not a weight


def test_mix_weights_give_each_subset_its_target_share():
    subset = np.array([0, 0, 0, 1, 2, 2])
    w, per = S.mix_weights(subset, ["English", "Arabic", "Code"], {"English": 0.5, "Arabic": 0.01, "Code": 0.49})
    assert per == {"English": pytest.approx(1.0), "Arabic": pytest.approx(0.06), "Code": pytest.approx(1.47)}
    shares = [w[subset == c].sum() / w.sum() for c in range(3)]
    assert shares == pytest.approx([0.5, 0.01, 0.49])


def test_a_neuron_that_also_fires_off_context_loses_when_the_context_is_rare():
    """The paper's argument in numbers: a context unit that fires on 5% of other tokens is as good as a clean
    feature when the context is a third of the data, and far worse when it is 0.3%."""
    rng = np.random.default_rng(2)
    n = 20_000
    ctx = np.arange(n) < n // 3
    proxy = ctx.astype(float)
    feature = np.where(ctx, rng.uniform(1, 2, n), 0.0)                        # fires on the context only
    neuron = np.where(ctx | (rng.random(n) < 0.05), rng.uniform(1, 2, n), 0.0)  # ... and on 5% of the rest
    subset = (~ctx).astype(np.int64)
    natural, _ = S.mix_weights(subset, ["Arabic", "English"], {"Arabic": 1 / 3, "English": 2 / 3})
    rare, _ = S.mix_weights(subset, ["Arabic", "English"], {"Arabic": 0.003, "English": 0.997})
    assert S.pearson(neuron, proxy, w=natural) > 0.85
    assert S.pearson(feature, proxy, w=natural) > 0.85
    assert S.pearson(neuron, proxy, w=rare) < 0.35 < 0.85 < S.pearson(feature, proxy, w=rare)
    m = S.matched_specificity(feature, neuron, ctx, w=rare)
    assert m["feature"] == 1.0 and m["neuron"] < 0.1  # 0.003 / (0.003 + 0.05 * 0.997 / 2) at half sensitivity


def test_context_recognized_and_blind_unigram_loss():
    from monosemantic.data.tokenizer import TokenStream

    val = TokenStream(tokens=np.array([0, 1, 1, 2, 2, 2], dtype=np.uint16), doc_start=np.array([0, 3, 6]),
                      doc_subset=np.array([0, 1], dtype=np.int16), subsets=["English", "DNA"])
    log_p = np.log(np.array([0.5, 0.25, 0.25]))
    blind = S.blind_unigram_losses(val, log_p)
    assert blind["English"] == pytest.approx((np.log(2) + 2 * np.log(4)) / 3, abs=1e-5)
    assert blind["DNA"] == pytest.approx(np.log(4), abs=1e-5)
    report = {"DNA": {"loss": 5.05, "unigram_loss": 5.04, "blind_unigram_loss": 9.0},
              "Base64": {"loss": 5.6, "unigram_loss": 5.2, "blind_unigram_loss": 6.1}}
    assert S.context_recognized(report, "DNA") and not S.context_learned(report, "DNA")
    assert not S.context_recognized(report, "Base64")  # 0.5 nats better than blind: under the 1-nat margin
    assert not S.context_recognized({"DNA": {"loss": 1.0}}, "DNA")


def test_bootstrap_interval_covers_the_estimate_and_the_gap_sign():
    rng = np.random.default_rng(3)
    n_docs, per = 60, 50
    docs = np.repeat(np.arange(n_docs), per)
    proxy = (docs < 20).astype(float)
    good = proxy * rng.uniform(1, 2, docs.size)
    bad = np.where(rng.random(docs.size) < 0.3, 1.0, 0.0) + 0.5 * good
    ci = S.bootstrap_r(np.stack([good, bad], axis=1), proxy, docs, n_boot=100)
    r_good, r_bad = S.pearson(good, proxy), S.pearson(bad, proxy)
    assert ci["unit0_r"][0] <= r_good <= ci["unit0_r"][1]
    assert ci["unit1_r"][0] <= r_bad <= ci["unit1_r"][1]
    assert ci["gap"][0] > 0  # the clean unit is better in (nearly) every resample
    assert ci == S.bootstrap_r(np.stack([good, bad], axis=1), proxy, docs, n_boot=100)  # seeded
