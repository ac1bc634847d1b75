"""Feature automata: a planted two-state cycle and a planted self-loop are found from firing data and logit
weights (and nothing else is), and pinning a feature high makes the model emit the token it promotes."""

import dataclasses

import numpy as np
import pytest
import torch

from monosemantic.analysis import automata as fa
from monosemantic.analysis import logit_weights as lw
from monosemantic.lm.model import ModelConfig, build_model
from monosemantic.sae.model import SparseAutoencoder

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


def test_pinning_a_feature_makes_the_model_emit_its_promoted_token():
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=V, d_model=16, d_mlp=32, n_heads=2, n_ctx=16), seed=0).eval()
    sae = SparseAutoencoder(32, 8, 0.0, generator=torch.Generator().manual_seed(1)).eval()
    with torch.no_grad():
        model.W_U.weight.mul_(1000.0)  # a sharp model: samples follow the largest logit
        W = lw.feature_logit_weights(model, sae, 1.0)
    target = int(W[2].argmax())
    prefixes = torch.randint(0, V, (64, 8), generator=torch.Generator().manual_seed(2))
    res = fa.pinned_rate(model, sae, prefixes, 2, 5, pin=1e4, generator=torch.Generator().manual_seed(3))
    assert (res["pinned_tokens"] == target).all()
    assert (res["baseline_tokens"] != target).any()
    assert 0 <= res["pinned_rate"] <= 1 and 0 <= res["baseline_rate"] <= 1


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
