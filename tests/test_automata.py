"""Feature automata: a planted two-state cycle and a planted self-loop are found from firing data and logit
weights (and nothing else is); pinning a feature high makes the model emit the token it promotes; and the
in-context causal check confirms a hand-wired causal edge (pinned vs ablated) and rejects two controls, its
expected rates matching a brute-force sum over the whole vocabulary."""

import dataclasses

import numpy as np
import pytest
import torch

from monosemantic.analysis import automata as fa
from monosemantic.analysis import logit_weights as lw
from monosemantic.lm.model import ModelConfig, build_model
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings

V = 30


def _planted(seed=0, n=20_000):
    """Token stream with runs '3 4 3 4 ...' (a two-state cycle) and '7 7 7 ...' (a self-loop) in noise;
    features: 0 on token 3, 1 on token 4, 2 random, 3 on token 7, 4 on token 9 (no structure), 5 and 6 on
    tokens 5 and 6 (the pair '5 6': an edge one way only), 7 a copy of 3."""
    rng = np.random.default_rng(seed)
    toks = []
    while len(toks) < n:
        r = rng.random()
        if r < 0.1:
            toks += [3, 4] * int(rng.integers(2, 5))
        elif r < 0.2:
            toks += [7] * int(rng.integers(3, 6))
        elif r < 0.3:
            toks += [5, 6]  # a one-way edge 5 -> 6, not a cycle
        else:
            toks += list(rng.integers(10, V, 5))
    toks = np.array(toks[:n])
    acts = np.zeros((n, 8))
    acts[:, 0], acts[:, 1], acts[:, 3], acts[:, 4] = toks == 3, toks == 4, toks == 7, toks == 9
    acts[:, 5], acts[:, 6] = toks == 5, toks == 6
    acts[:, 7] = acts[:, 3]  # a duplicate of feature 3: neither a cycle with it nor a second self-loop
    acts[:, 2] = rng.random(n) < 0.05
    W = rng.normal(0, 0.1, (8, V))
    W[0, 4] = W[1, 3] = W[3, 7] = W[5, 6] = 5.0  # each structured feature promotes the token its successor fires on
    W[6, 11], W[7, 7] = 5.0, 5.0
    W[2, 12] = W[4, 15] = 5.0
    has_next = np.ones(n, bool)
    has_next[-1] = False
    return toks, acts, W, has_next


def test_planted_cycle_and_self_loop_are_found():
    toks, acts, W, has_next = _planted()
    fire = fa.fire_matrix(acts)
    C, L, p = fa.lift_matrix(fire, has_next)
    # by hand: P(feature 1 at n+1 | feature 0 at n) = 1
    assert abs(L[0, 1] - 1.0 / p[1]) < 1e-9
    R = fa.token_fire_rate(fire, toks, V)
    assert R[3, 0] == 1.0 and R[4, 0] == 0.0
    found = fa.find_automata(fire, has_next, toks, W, top_k=1, min_count=5, min_lift=3.0)
    states = sorted(tuple(a["states"]) for a in found)
    assert states == [(0, 1), (3,)]  # feature 7's loop is a duplicate of feature 3's
    cyc = next(a for a in found if a["states"] == [0, 1])
    assert cyc["edges"] == [[0, 1], [1, 0]] and min(cyc["lift"]) > 3
    # without the logit evidence (feature 0 promoting an unrelated token) the cycle is rejected
    W2 = W.copy()
    W2[0, 4], W2[0, 20] = 0.0, 5.0
    assert sorted(tuple(a["states"]) for a in fa.find_automata(fire, has_next, toks, W2, top_k=1,
                                                                min_lift=3.0)) == [(3,)]
    # co-firings across a context boundary do not count
    cut = has_next.copy()
    cut[toks == 3] = False
    assert 1 not in fa.lift_matrix(fire, cut)[0][0].indices


def _random_model(seed=0):
    return build_model(ModelConfig(vocab_size=V, d_model=16, d_mlp=32, n_heads=2, n_ctx=16), seed=seed).eval()


def _set_last(sae, i, value):
    """The MLP replacement that sets feature i to `value` on the last token (None: unchanged), written out."""
    def repl(acts):
        if value is None:
            return acts
        f = torch.relu((acts[:, -1] - sae.b_d) @ sae.W_e[i] + sae.b_e[i])
        out = acts.clone()
        out[:, -1] += (value - f)[:, None] * sae.W_d[:, i]
        return out

    return repl


@torch.no_grad()
def _brute_force(model, sae, ctx, pos, i, pin):
    """{condition: (B, n_features)}: P(feature j fires on the next token) = Σ_t p_c(t) [j fires on t] over the
    WHOLE vocabulary, from each context cut after its position, with feature i pinned / ablated / untouched."""
    out = {c: [] for c in ("pinned", "baseline", "natural")}
    for b in range(len(ctx)):
        prefix = ctx[b:b + 1, :pos[b] + 1]
        seqs = torch.cat([prefix.repeat(V, 1), torch.arange(V)[:, None]], 1)
        fires = (sae.encode(model.mlp_acts(seqs)[:, -1]) > 0).double()  # (V, n_features)
        for c, value in (("pinned", pin), ("baseline", 0.0), ("natural", None)):
            p = torch.softmax(model(prefix, _set_last(sae, i, value))[0, -1].double(), -1)
            out[c].append((p @ fires).numpy())
    return {c: np.stack(v) for c, v in out.items()}


def test_pinning_a_feature_out_of_context_makes_the_model_emit_its_promoted_token():
    torch.manual_seed(0)
    model = _random_model()
    sae = StandardSAE(32, 8, StandardSettings(0.0), generator=torch.Generator().manual_seed(1)).eval()
    with torch.no_grad():
        model.W_U.weight.mul_(1000.0)  # a sharp model: samples follow the largest logit
        W = lw.feature_logit_weights(model, sae, 1.0)
    target = int(W[2].argmax())
    prefixes = torch.randint(0, V, (64, 8), generator=torch.Generator().manual_seed(2))
    res = fa.random_prefix_rates(model, sae, prefixes, 2, 5, pin=1e4, generator=torch.Generator().manual_seed(3))
    assert (res["offcontext_pinned_tokens"] == target).all()
    assert (res["offcontext_baseline_tokens"] != target).any()
    assert 0 <= res["offcontext_pinned_rate"] <= 1 and 0 <= res["offcontext_baseline_rate"] <= 1


K, M, M2, Q = 3, 7, 9, 11  # MLP neurons: always 1 (drives the output), detects token A, detects token B, idle


@torch.no_grad()
def _wired(sharp=1000.0):
    """A hand-wired model and SAE with a known causal edge. MLP neuron K is 1 at every position and, through
    a large W_out column, makes the model (W_U scaled by `sharp`: nearly one-hot by default) predict token A
    everywhere; feature 0 is that neuron (ablating it leaves the rest of the random model to choose). Neuron M
    fires exactly on token A (a huge embedding, read by W_in), M2 on token B; features 1 and 2 are those
    neurons. Neuron Q is 1 everywhere and writes nothing; feature 3 is it. So: 0 -> 1 is causal, 0 -> 2 is not
    (pinning 0 emits A, not B), and 3 -> 1 is not (1 fires on the sampled token whatever 3 does)."""
    model = _random_model()
    mlp = model.mlp
    model.W_U.weight.mul_(sharp)
    mlp.W_in.weight[[K, Q]] = 0.0
    mlp.W_in.bias[[K, Q]] = 1.0
    mlp.W_out.weight[:, K] *= 1e4
    mlp.W_out.weight[:, [M, M2, Q]] = 0.0
    A = int(model.W_U(model.ln_f(mlp.W_out.weight[:, K])).argmax())
    B = (A + 1) % V
    for tok, neuron, axis in ((A, M, 0), (B, M2, 1)):
        model.W_E.weight[tok] = 0.0
        model.W_E.weight[tok, axis] = 50.0
        z = model.ln2(model.W_E.weight[tok])
        mlp.W_in.weight[neuron] = z / z.norm()
        mlp.W_in.bias[neuron] = -0.9 * z.norm()  # fires when LN2(x) is within cos 0.9 of the token's direction
    sae = StandardSAE(32, 4, StandardSettings(0.0)).eval()
    sae.W_e.zero_(), sae.b_e.zero_(), sae.b_d.zero_(), sae.W_d.zero_()
    for f, neuron in enumerate((K, M, M2, Q)):
        sae.W_e[f, neuron] = 1.0
        sae.W_d[neuron, f] = 1.0
    return model, sae, A, B


def _wired_contexts(A, B, n=32, seed=4):
    """n contexts of tokens other than A and B, the prefix ending at positions 2..13, and the real next token
    A in every other context."""
    g = torch.Generator().manual_seed(seed)
    others = torch.tensor([t for t in range(V) if t not in (A, B)])
    ctx = others[torch.randint(0, len(others), (n, 16), generator=g)]
    pos = np.arange(n) % 12 + 2
    ctx[torch.arange(0, n, 2), torch.from_numpy(pos[::2] + 1)] = A
    return ctx, pos


def test_the_wired_model_does_what_it_says():
    model, sae, A, B = _wired()
    seqs = torch.randint(0, V, (64, 16), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        f = sae.encode(model.mlp_acts(seqs))
        pred = model(seqs).argmax(-1)
    assert torch.equal(f[..., 1] > 0, seqs == A) and torch.equal(f[..., 2] > 0, seqs == B)
    assert (f[..., 0] == 1).all() and (f[..., 3] == 1).all() and (pred == A).all()


def test_causal_rates_confirm_a_planted_causal_edge_and_reject_the_controls():
    model, sae, A, B = _wired()
    ctx, pos = _wired_contexts(A, B)
    rates = {e: fa.causal_rates(model, sae, ctx, pos, *e, pin=5.0, generator=torch.Generator().manual_seed(6))
             for e in ((0, 1), (0, 2), (3, 1))}
    r = rates[(0, 1)]
    assert (r["pinned_tokens"] == A).all() and (r["natural_tokens"] == A).all()
    assert r["pinned_rate"] == 1.0 and r["natural_rate"] == 1.0 and r["baseline_rate"] <= 0.25
    assert (r["baseline_tokens"] != A).mean() >= 0.75  # ablating the feature removes the prediction
    assert r["data_rate"] == 0.5 and r["n_prefixes"] == 32
    assert r["causal"] and r["causal_p"] < 1e-5
    c = rates[(0, 2)]  # pinning emits A, on which feature 2 does not fire
    assert c["pinned_rate"] == 0.0 and c["data_rate"] == 0.0 and not c["causal"]
    d = rates[(3, 1)]  # feature 3 writes nothing: every condition samples the same tokens
    assert np.array_equal(d["pinned_tokens"], d["baseline_tokens"]) and d["pinned_rate"] == d["baseline_rate"] == 1
    assert not d["causal"] and d["causal_p"] == 1.0
    # the verdict from the expected rates: the edge, not the controls; the sampled verdict kept beside it
    assert r["expected_pinned_rate"] > 0.99 and r["expected_baseline_rate"] <= 0.25 and r["expected_effect"] > 0.7
    assert r["sampled_causal"] and r["sampled_causal_p"] < 1e-5 and r["causal_p"] == r["effect_p"] < 1e-5
    assert c["expected_effect"] <= 0 and c["effect_p"] > 0.5 and not c["sampled_causal"]
    assert d["expected_effect"] == 0 and d["effect_p"] == 1.0 and not d["sampled_causal"]
    again = fa.causal_rates(model, sae, ctx, pos, 0, 1, pin=5.0, generator=torch.Generator().manual_seed(6))
    assert all(np.array_equal(again[k], r[k]) for k in r)  # seeded


@pytest.mark.parametrize("sharp", [1000.0, 30.0])
def test_expected_rates_equal_the_sum_over_the_whole_vocabulary(sharp, one_thread):
    """With every token a candidate, E_c(b) = Σ_t p_c(t | b) [j fires on t] exactly, per prefix and condition,
    for the planted edge and both controls: in the sharp model (p nearly one-hot) and in a soft one (p(A) about
    0.55 with feature 0 pinned), where neither the sampled token nor equal weights would give these numbers."""
    model, sae, A, B = _wired(sharp)
    ctx, pos = _wired_contexts(A, B)
    ref = _brute_force(model, sae, ctx, pos, 0, 5.0)
    for i, j in ((0, 1), (0, 2), (3, 1)):
        ref_i = ref if i == 0 else _brute_force(model, sae, ctx, pos, i, 5.0)
        r = fa.causal_rates(model, sae, ctx, pos, i, j, pin=5.0, generator=torch.Generator().manual_seed(6),
                            coverage=1.0, max_candidates=V)
        assert (r["n_candidates"] == V).all() and r["uncovered_mass"] < 1e-6
        for c in ("pinned", "baseline", "natural"):
            assert np.allclose(r[f"{c}_expected"], ref_i[c][:, j], rtol=0, atol=1e-6), (i, j, c)
            assert abs(r[f"expected_{c}_rate"] - ref_i[c][:, j].mean()) < 1e-6
        d = ref_i["pinned"][:, j] - ref_i["baseline"][:, j]
        assert abs(r["expected_effect"] - d.mean()) < 1e-6
        d = r["pinned_expected"] - r["baseline_expected"]
        assert (r["causal"], r["effect_p"]) == fa.expected_causal_decision(d)
        assert r["causal"] == ((i, j) == (0, 1))
    # the planted edge: a large effect, which a swap of the pinned and ablated conditions would turn negative
    p1, b1 = ref["pinned"][:, 1], ref["baseline"][:, 1]
    assert p1.mean() - b1.mean() > 0.4 and (p1 - b1 > 0.3).mean() > 0.9
    if sharp < 100:  # p spread out: one sample per prefix, or equal weights on the tokens, is far from E_c
        assert ((p1 > 0.3) & (p1 < 0.8)).all() and abs(p1.mean() - 1 / V) > 0.3
        r = fa.causal_rates(model, sae, ctx, pos, 0, 1, pin=5.0, generator=torch.Generator().manual_seed(6))
        assert np.abs(r["pinned_expected"] - r["pinned_fires"]).max() > 0.3


def test_partial_coverage_reports_the_uncovered_mass_as_an_error_bound(one_thread):
    """coverage < 1 (or few max_candidates): the union over the conditions of each one's smallest top set;
    E_c(b) falls short of the full sum by at most m_c(b); the chunking of the forward passes changes nothing."""
    model, sae, A, B = _wired(30.0)
    ctx, pos = _wired_contexts(A, B)
    full = _brute_force(model, sae, ctx, pos, 0, 5.0)
    for coverage, cap in ((0.5, V), (0.9, V), (0.99, 3)):
        r = fa.causal_rates(model, sae, ctx, pos, 0, 1, pin=5.0, generator=torch.Generator().manual_seed(6),
                            coverage=coverage, max_candidates=cap, chunk=7)
        assert (r["n_candidates"] < V).all() and (r["n_candidates"] <= 3 * cap).all()
        m = np.stack([r[f"{c}_uncovered"] for c in ("pinned", "baseline", "natural")])
        assert 0 < r["uncovered_mass"] == pytest.approx(m.max()) and r["uncovered_mass"] < 1
        for k, c in enumerate(("pinned", "baseline", "natural")):
            err = full[c][:, 1] - r[f"{c}_expected"]
            assert (err >= -1e-6).all() and (err <= m[k] + 1e-6).all()
            assert abs(full[c][:, 1].mean() - r[f"expected_{c}_rate"]) <= r["uncovered_mass"] + 1e-6
            if cap == V:  # each condition's own top set reaches the coverage
                assert (1 - m[k] >= coverage - 1e-9).all()
        exact = (full["pinned"][:, 1] - full["baseline"][:, 1]).mean()  # the effect over the whole vocabulary
        lo, hi = r["effect_bounds"]
        assert lo - 1e-6 <= exact <= hi + 1e-6 and lo <= r["expected_effect"] <= hi
        assert 0 < r["uncovered_mass_mean"] <= r["uncovered_mass"]
        again = fa.causal_rates(model, sae, ctx, pos, 0, 1, pin=5.0, generator=torch.Generator().manual_seed(6),
                                coverage=coverage, max_candidates=cap)
        assert all(np.array_equal(again[k], r[k]) for k in r)
    assert fa.candidate_mask(torch.tensor([[0.1, 0.6, 0.3]]), 0.6, 5).tolist() == [[False, True, False]]
    assert fa.candidate_mask(torch.tensor([[0.1, 0.6, 0.3]]), 0.61, 5).tolist() == [[False, True, True]]
    assert fa.candidate_mask(torch.tensor([[0.1, 0.6, 0.3]]), 0.99, 1).tolist() == [[False, True, False]]


def test_expected_rates_have_power_where_one_sample_per_prefix_has_not(one_thread):
    """A softer planted edge (pinning raises p(A) from about 0.03 to 0.2): E_pinned > E_ablated on nearly every
    prefix, so the expected rates find it; one sampled token per prefix differs on too few prefixes for the sign
    test, whatever the random numbers."""
    model, sae, A, B = _wired(12.0)
    ctx, pos = _wired_contexts(A, B)
    for seed in range(5):
        r = fa.causal_rates(model, sae, ctx, pos, 0, 1, pin=5.0, generator=torch.Generator().manual_seed(seed))
        assert r["causal"] and r["effect_p"] < 1e-6 and 0.1 < r["expected_effect"] < 0.3
        assert not r["sampled_causal"] and r["sampled_causal_p"] >= fa.CAUSAL_ALPHA


def test_expected_causal_decision_needs_both_the_margin_and_the_sign_test():
    assert fa.expected_causal_decision(np.full(10, 0.5)) == (True, pytest.approx(2.0 ** -10))
    assert not fa.expected_causal_decision(np.full(4, 0.5))[0]  # p = 1/16
    assert not fa.expected_causal_decision(np.full(100, 0.05))[0]  # p tiny, but below the margin
    assert not fa.expected_causal_decision(-np.full(100, 0.5))[0]
    d = np.r_[np.full(10, 0.9), np.full(50, 1e-9)]  # float-rounding differences are ties
    assert fa.expected_causal_decision(d) == (True, pytest.approx(2.0 ** -10))
    assert fa.expected_causal_decision(np.zeros(0)) == (False, 1.0)


def test_causal_rates_equal_cutting_each_context_after_its_position():
    """Reading the whole context at n (causal attention) is the same as running the prefix tokens 0..n."""
    model = _random_model(seed=3)  # not sharp: the samples depend on the random numbers
    sae = StandardSAE(32, 8, StandardSettings(0.0), generator=torch.Generator().manual_seed(1)).eval()
    ctx = torch.randint(0, V, (24, 16), generator=torch.Generator().manual_seed(7))
    pos = np.random.default_rng(0).integers(0, 15, 24)
    i, j, pin = 2, 5, 30.0
    res = fa.causal_rates(model, sae, ctx, pos, i, j, pin, torch.Generator().manual_seed(8))
    u = torch.rand(24, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        for name, value in (("pinned", pin), ("baseline", 0.0), ("natural", None)):
            for b in range(24):
                prefix = ctx[b:b + 1, :pos[b] + 1]
                probs = torch.softmax(model(prefix, _set_last(sae, i, value))[0, -1], -1)
                y = int(torch.searchsorted(probs.cumsum(-1), u[b:b + 1]).clamp_max(V - 1))
                assert res[f"{name}_tokens"][b] == y
                seq = torch.cat([prefix, torch.tensor([[y]])], 1)
                assert res[f"{name}_fires"][b] == bool(sae.encode(model.mlp_acts(seq)[0, -1:])[0, j] > 0)
    assert res["pinned_rate"] == res["pinned_fires"].mean()
    with pytest.raises(ValueError, match="next token"):
        fa.causal_rates(model, sae, ctx[:1], [15], i, j, pin, torch.Generator())


def test_model_automata_tests_each_edge_where_its_source_fires(monkeypatch):
    """The prefixes of edge i -> j end where i fires in the whole contexts, with a next token in the context,
    at most n_pinned of them; the edge's rates are causal_rates' on them."""
    model, sae, A, B = _wired()
    ctx, _ = _wired_contexts(A, B, n=12, seed=9)
    ctx[::3, 15] = A  # the last token: no next token in its context, never a prefix
    ctx[1::2, 4] = B
    edges = [[1, 2], [2, 1]]
    monkeypatch.setattr(fa, "find_automata", lambda *a, **k: [
        {"states": [1, 2], "edges": edges, "lift": [9.0, 9.0], "logit_support": [9.0, 9.0], "count": [5, 5]}])
    seen = []

    def spy(model_, sae_, contexts, positions, i, j, pin, generator, **kw):
        r = real(model_, sae_, contexts, positions, i, j, pin, generator, **kw)
        seen.append((contexts.clone(), np.asarray(positions).copy(), i, j, pin, r))
        return r

    real = fa.causal_rates
    monkeypatch.setattr(fa, "causal_rates", spy)
    found = fa.model_automata(model, sae, ctx, str, n_pinned=5, seed=1)
    n_fire = {1: int((ctx[:, :15] == A).sum()), 2: int((ctx[:, :15] == B).sum())}
    assert n_fire[1] > 5 and n_fire[2] > 5
    a = found[0]
    assert len(seen) == 2
    for (c, pos, i, j, pin, r), e, m in zip(seen, edges, range(2)):
        assert [i, j] == e and len(pos) == a["n_prefixes"][m] == 5 and pin > 0
        assert np.all(pos < 15) and torch.all(c[torch.arange(5), torch.from_numpy(pos)] == (A if i == 1 else B))
        assert set(map(tuple, c.tolist())) <= set(map(tuple, ctx.tolist()))
        assert a["pinned_rate"][m] == round(r["pinned_rate"], 3)
        assert a["baseline_rate"][m] == round(r["baseline_rate"], 3)
        assert a["natural_rate"][m] == round(r["natural_rate"], 3) and a["causal"][m] is r["causal"]
        for key in ("expected_pinned_rate", "expected_baseline_rate", "expected_natural_rate", "expected_effect"):
            assert a[key][m] == round(r[key], 3)
        for key in ("effect_p", "causal_p", "sampled_causal_p", "uncovered_mass"):
            assert a[key][m] == float(f"{r[key]:.3g}")
        assert a["sampled_causal"][m] is r["sampled_causal"] and a["causal_p"][m] == a["effect_p"][m]
    assert len(a["offcontext_pinned_rate"]) == 2
    assert fa.model_automata(model, sae, ctx, str, n_pinned=5, seed=1) == found  # seeded
    assert fa.model_automata(model, sae, ctx, str, n_pinned=5, seed=2)[0]["n_prefixes"] == [5, 5]


def test_feature_setting_adds_the_decoder_direction_at_the_position_only():
    sae = StandardSAE(32, 8, StandardSettings(0.0), generator=torch.Generator().manual_seed(1)).eval()
    acts = torch.rand(3, 5, 32, generator=torch.Generator().manual_seed(2))
    rows, pos = torch.arange(3), torch.tensor([0, 4, 2])
    with torch.no_grad():
        f = sae.encode(acts[rows, pos])[:, 6]
        for value in (0.0, 7.0):
            out = fa._set_feature(sae, 6, rows, pos, value)(acts)
            expect = acts.clone()
            expect[rows, pos] += (value - f)[:, None] * sae.W_d[:, 6]
            assert torch.allclose(out, expect)
        assert fa._set_feature(sae, 6, rows, pos, None)(acts) is acts


def test_firing_prefixes_and_sign_test():
    on = np.zeros(40, bool)
    on[[1, 5, 9, 19, 20, 33, 39]] = True
    has_next = (np.arange(40) % 20) < 19  # contexts of 20 tokens: 19 and 39 have no next token
    assert fa.firing_prefixes(on, has_next, 10, torch.Generator()).tolist() == [1, 5, 9, 20, 33]
    a = fa.firing_prefixes(on, has_next, 3, torch.Generator().manual_seed(1))
    assert len(a) == 3 and set(a) <= {1, 5, 9, 20, 33} and np.all(np.diff(a) > 0)
    assert a.tolist() == fa.firing_prefixes(on, has_next, 3, torch.Generator().manual_seed(1)).tolist()
    assert fa.sign_test(0, 0) == 1.0 and fa.sign_test(5, 0) == pytest.approx(1 / 32)
    assert fa.sign_test(3, 3) > 0.5 and fa.sign_test(10, 0) < fa.CAUSAL_ALPHA


def test_causal_decision_needs_both_the_margin_and_the_sign_test():
    def pairs(both, pinned_only, ablated_only, neither):
        p = [1] * both + [1] * pinned_only + [0] * ablated_only + [0] * neither
        a = [1] * both + [0] * pinned_only + [1] * ablated_only + [0] * neither
        return np.array(p, bool), np.array(a, bool)

    assert fa.causal_decision(*pairs(10, 30, 2, 22)) == (True, pytest.approx(fa.sign_test(30, 2)))
    assert not fa.causal_decision(*pairs(0, 4, 0, 0))[0]  # rates 1 vs 0, but four prefixes: p = 1/16
    assert not fa.causal_decision(*pairs(0, 60, 0, 940))[0]  # p tiny, but 6% more is below the margin
    assert not fa.causal_decision(*pairs(0, 30, 40, 30))[0]  # the ablated rate is higher
    assert fa.causal_decision(np.zeros(0, bool), np.zeros(0, bool)) == (False, 1.0)


def test_example_path_and_top_tokens():
    toks, acts, W, has_next = _planted()
    fire = fa.fire_matrix(acts)
    n = fa.example_path(fire, has_next, [0, 1], length=4)
    assert toks[n:n + 4].tolist() in ([3, 4, 3, 4], [4, 3, 4, 3])
    assert fa.top_tokens(fire, toks, 3) == [7]
    assert fa.example_path(fire, np.zeros_like(has_next), [0, 1]) is None  # no step stays inside a context


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread):
    import analysis_world
    return analysis_world.build(tmp_path_factory.mktemp("world"))


def test_validation_automata_runs_on_whole_contexts_drawn_without_replacement(world):
    from monosemantic.analysis.token_bytes import EOT_ID, token_label

    cfg = dataclasses.replace(world.params.interpretability, automata_contexts=500, automata_pinned=4,
                              automata_min_count=2, logit_k=5)
    model, sae, tokens = world.models["A"], world.saes["A_16"], world.streams["val"].tokens
    found, n_tokens = fa.validation_automata(cfg, model, sae, tokens, world.tok, np.random.default_rng(3))
    n_ctx = model.cfg.n_ctx
    assert n_tokens == len(tokens) // n_ctx * n_ctx  # 500 asked, every whole context used once
    starts = np.sort(np.random.default_rng(3).choice(len(tokens) // n_ctx, size=len(tokens) // n_ctx,
                                                     replace=False)) * n_ctx
    ctx = torch.from_numpy(np.stack([tokens[s:s + n_ctx] for s in starts]).astype(np.int64))
    expect = fa.model_automata(model, sae, ctx, lambda i: token_label(world.tok, int(i)).replace("\n", "↵"),
                               top_k=5, min_count=2, min_lift=cfg.automata_min_lift, max_automata=cfg.automata_max,
                               n_pinned=4, seed=cfg.seed, exclude_token=EOT_ID)
    assert found == expect
    for a in found:
        m = len(a["edges"])
        for key in ("pinned_rate", "baseline_rate", "natural_rate", "data_rate", "offcontext_pinned_rate",
                    "offcontext_baseline_rate", "expected_pinned_rate", "expected_baseline_rate",
                    "expected_natural_rate", "uncovered_mass", "effect_p", "sampled_causal_p"):
            assert len(a[key]) == m and all(0 <= r <= 1 for r in a[key])
        assert all(-1 <= e <= 1 for e in a["expected_effect"])
        assert [type(c) for c in a["causal"] + a["sampled_causal"]] == [bool] * 2 * m
        assert all(0 < n <= 4 for n in a["n_prefixes"])
