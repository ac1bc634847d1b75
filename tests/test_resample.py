"""Dead-neuron resampling on a tiny hand-built case: which features are dead, which inputs replace them
(probability ∝ loss²), the new decoder/encoder/bias values and exactly which Adam moments are reset."""

import pytest
import torch

from monosemantic.sae.resample import dead_features, resample_dead_features
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings


def test_dead_features_window():
    last_fired = torch.tensor([10, 0, 5, 4, 12])
    # step 12, window 8: dead = did not fire in steps 5..12, i.e. last fired at step <= 4
    assert dead_features(last_fired, 12, 8).tolist() == [False, True, False, True, False]
    assert not dead_features(last_fired, 7, 8).any()  # before a full window nothing counts as dead


def make_case():
    """d = 2, F = 4. All b_e = −100, so no feature fires, x̂ = b_d = 0 and each input's loss is ‖x‖².

    Inputs: 50 small vectors (‖x‖ ≈ 0.1) and at index 17 the vector (30, 40): its loss² is ~10¹⁰ times any
    other's, so it is the first input drawn. Encoder row norms 1, 2, 3, 4.
    """
    sae = StandardSAE(2, 4, StandardSettings(0.1))
    with torch.no_grad():
        sae.W_e.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 4.0]]))
        sae.b_e.fill_(-100.0)
        sae.b_d.zero_()
    inputs = torch.randn(51, 2, generator=torch.Generator().manual_seed(0)) * 0.07
    inputs[17] = torch.tensor([30.0, 40.0])
    opt = torch.optim.Adam(sae.parameters(), lr=0.0)  # lr 0: the moments fill, the weights stay as set
    for p in sae.parameters():  # one step with nonzero gradients so every moment is nonzero
        p.grad = torch.full_like(p, 0.5)
    opt.step()
    return sae, opt, inputs


def snapshot(sae, opt):
    return {name: (p.detach().clone(), opt.state[p]["exp_avg"].clone(), opt.state[p]["exp_avg_sq"].clone())
            for name, p in sae.named_parameters()}


def test_resample_one_dead_feature_takes_the_highest_loss_input():
    sae, opt, inputs = make_case()
    before = snapshot(sae, opt)
    dead = torch.tensor([False, True, False, False])
    record = resample_dead_features(sae, opt, dead, inputs, 0.2, torch.Generator().manual_seed(1))
    assert record == {"n_dead": 1, "n_resampled": 1, "features": [1], "inputs": [17]}

    unit = torch.tensor([0.6, 0.8])  # (30, 40) / 50
    torch.testing.assert_close(sae.W_d[:, 1], unit)
    # alive encoder norms 1, 3, 4 -> mean 8/3; new row = unit · 0.2 · 8/3
    torch.testing.assert_close(sae.W_e[1], unit * 0.2 * (8 / 3))
    assert sae.b_e[1].item() == 0.0

    after = snapshot(sae, opt)
    touched = {"W_e": (1,), "b_e": (1,), "W_d": (slice(None), 1), "b_d": None}
    for name, index in touched.items():
        for k in range(3):  # value, exp_avg, exp_avg_sq
            old, new = before[name][k], after[name][k]
            keep = torch.ones_like(old, dtype=torch.bool)
            if index is not None:
                keep[index] = False
                if k > 0:
                    assert torch.count_nonzero(new[index]) == 0, (name, k)  # moments reset
            assert torch.equal(new[keep], old[keep]), (name, k)  # everything else untouched
    assert opt.state[sae.W_e]["step"] == opt.state[sae.b_d]["step"]  # step counters untouched


def test_resample_several_dead_features_distinct_inputs_and_seeded():
    records = []
    for _ in range(2):
        sae, opt, inputs = make_case()
        dead = torch.tensor([True, False, True, True])
        records.append(resample_dead_features(sae, opt, dead, inputs, 0.2, torch.Generator().manual_seed(7)))
        W_d = sae.W_d.detach().clone()
    r = records[0]
    assert r == records[1]  # same seed, same draws
    assert r["n_resampled"] == 3 and r["features"] == [0, 2, 3]
    assert r["inputs"][0] == 17 and len(set(r["inputs"])) == 3  # the dominant input first; no repeats
    for feature, i in zip(r["features"], r["inputs"]):
        torch.testing.assert_close(W_d[:, feature], inputs[i] / inputs[i].norm())
    # only feature 1 is alive: encoder norm 2 -> new rows have norm 0.2 · 2
    torch.testing.assert_close(sae.W_e[[0, 2, 3]].norm(dim=1), torch.full((3,), 0.4))


def test_resample_probabilities_follow_loss_squared():
    """Two candidate inputs with losses 1 and 2: the second is drawn with probability 4/5, not 2/3."""
    sae = StandardSAE(1, 1, StandardSettings(0.0))
    with torch.no_grad():
        sae.W_e.fill_(1.0)
        sae.b_e.fill_(-100.0)
        sae.b_d.zero_()
    opt = torch.optim.Adam(sae.parameters())
    inputs = torch.tensor([[1.0], [-(2 ** 0.5)]])  # losses ‖x‖² = 1 and 2
    g = torch.Generator().manual_seed(3)
    picks = [resample_dead_features(sae, opt, torch.tensor([True]), inputs, 0.2, g)["inputs"][0]
             for _ in range(2000)]
    assert sum(picks) / len(picks) == pytest.approx(0.8, abs=0.03)


def test_no_dead_features_changes_nothing():
    sae, opt, inputs = make_case()
    before = snapshot(sae, opt)
    record = resample_dead_features(sae, opt, torch.zeros(4, dtype=torch.bool), inputs, 0.2, torch.Generator())
    assert record["n_resampled"] == 0
    after = snapshot(sae, opt)
    assert all(torch.equal(a, b) for k in before for a, b in zip(before[k], after[k]))
