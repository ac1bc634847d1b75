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
