"""Finite-state automata of features (paper Fig. 11): features that, through their logit weights, predict the
tokens on which other features (or themselves) fire next.

An edge i → j means: feature i fires on token n, and feature j fires on token n + 1 because of it. We accept an
edge when two kinds of evidence agree, and test it causally:

* lift (data):    L_ij = P(j fires at n+1 | i fires at n) / P(j fires)        over consecutive validation tokens
                  of the same context, with at least `min_count` co-firings;
* logit support:  S_ij = mean_{t ∈ top-k promoted tokens of i} r_j(t) / P(j fires), r_j(t) the rate at which
                  j fires on token t (same tokens): i's logit weights promote the tokens on which j fires;
* causal check (in context, `causal_rates`): the prefixes are real validation positions n where i fires (up to
                  `n_pinned` of them, drawn with the seed from the same whole contexts, each with a next token in
                  its context; the prefix is the context up to and including n). At n, feature i is set to a value
                  v by adding (v − f_i) d_i to the MLP activations (f_i its activation there, d_i its decoder
                  direction): PINNED at v = its largest activation seen on these contexts, ABLATED at v = 0, or
                  left alone (natural); p_c(t | b) is the model's next-token distribution at prefix b in
                  condition c. The model is causal, so the whole context is run and read at n (and at n+1 with a
                  token t put there): the same as cutting it after n.
                  Expected rates (the verdict): the candidate set S_b is the union over the three conditions of
                  the smallest set of top tokens of p_c(· | b) whose mass reaches `coverage` (0.99), at most
                  `max_candidates` (256) tokens per condition; fires_j(b, t) is whether j fires at n+1 in a plain
                  forward pass of the prefix followed by t. Then
                      E_c(b) = Σ_{t ∈ S_b} p_c(t | b) fires_j(b, t),   m_c(b) = 1 − Σ_{t ∈ S_b} p_c(t | b),
                  so the exact probability that j fires on the next token lies in [E_c(b), E_c(b) + m_c(b)].
                  `expected_pinned_rate`, `expected_baseline_rate` (ablated) and `expected_natural_rate` are the
                  means of E_c(b) over the prefixes, `uncovered_mass` = max_{b,c} m_c(b) (`uncovered_mass_mean`
                  its mean), and `expected_effect` the mean of d_b = E_pinned(b) − E_ablated(b), whose exact
                  value lies in `effect_bounds` = [mean(d_b − m_ablated(b)), mean(d_b + m_pinned(b))].
                  The edge is causal (`causal`) when expected_effect ≥ CAUSAL_MARGIN (0.1) and the one-sided sign test of the signs of the nonzero
                  d_b (|d_b| ≤ 1e-6 is a tie) gives p < CAUSAL_ALPHA (0.01) (`effect_p`, also `causal_p`): i's
                  own output at n makes the model emit tokens j fires on, in the context where the edge occurs.
                  Sampled rates (the earlier check, kept for comparison): token n+1 is sampled from p_c(· | b)
                  with the same uniform random number in all three conditions; `pinned_rate`, `baseline_rate`
                  and `natural_rate` are the shares of prefixes where j fires on the sampled token, and
                  `sampled_causal` is pinned_rate − baseline_rate ≥ CAUSAL_MARGIN with the paired sign test of
                  the discordant prefixes (j fires pinned only, against ablated only) at p < CAUSAL_ALPHA
                  (`sampled_causal_p`). One sample per prefix has little power. `data_rate` is the share of
                  prefixes where j fires on the real next token.
* out of context (`random_prefix_rates`, the earlier check, kept for comparison): i pinned on the last token of
                  the first T/2 tokens of random validation contexts, against no pin (`offcontext_pinned_rate`,
                  `offcontext_baseline_rate`). For features that fire on a token in a context (base64, UTF-8
                  bytes of Arabic text) j rarely fires there even on the right token, so this one is mostly 0.

Automata: self-loops (i → i, e.g. base64 or DNA: the feature predicts more of its own tokens) and two-state
cycles (i → j → i, e.g. UTF-8 lead / continuation bytes of Arabic or Hebrew characters), ranked by the smaller
of the lifts on their edges. Longer cycles are not searched. The data are activations of every feature on
whole validation contexts (consecutive tokens), not the store's sampled points. Everything is seeded (one
torch.Generator per edge, from the seed and the edge): the same inputs give the same automata and rates.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
import scipy.stats
import torch

from monosemantic.analysis.token_bytes import EOT_ID, token_label

CAUSAL_MARGIN = 0.1  # expected (or sampled) pinned − ablated rate needed for a causal edge
CAUSAL_ALPHA = 0.01  # and the sign test's one-sided p-value below this
TIE = 1e-6  # |d_b| at most this counts as a tie in expected_causal_decision (float rounding)


def fire_matrix(acts: np.ndarray | torch.Tensor) -> sparse.csr_matrix:
    """(T, n) activations -> sparse 0/1 firing matrix (float64)."""
    a = torch.as_tensor(acts)
    idx = (a > 0).nonzero().numpy()
    return sparse.csr_matrix((np.ones(len(idx)), (idx[:, 0], idx[:, 1])), shape=tuple(a.shape))


def lift_matrix(fire: sparse.csr_matrix, has_next: np.ndarray) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
    """Co-firing counts C_ij = #{n: i fires at n, j fires at n+1} over positions with a next token in the same
    context (has_next, (T,) bool), the lift L_ij = (C_ij / N_i) / P(j), and P(j) (on the positions n+1)."""
    nxt = np.flatnonzero(has_next)
    A, B = fire[nxt], fire[nxt + 1]
    C = (A.T @ B).tocsr()
    n_i = np.asarray(A.sum(0)).ravel()
    p_j = np.asarray(B.sum(0)).ravel() / max(len(nxt), 1)
    L = C.copy().tocoo()
    with np.errstate(divide="ignore", invalid="ignore"):
        L.data = (L.data / n_i[L.row]) / p_j[L.col]
    return C, L.tocsr(), p_j


def token_fire_rate(fire: sparse.csr_matrix, tokens: np.ndarray, vocab_size: int) -> sparse.csr_matrix:
    """r_j(t): the share of occurrences of token t on which feature j fires, (vocab, n) sparse."""
    tokens = np.asarray(tokens, dtype=np.int64)
    onehot = sparse.csr_matrix((np.ones(len(tokens)), (tokens, np.arange(len(tokens)))), shape=(vocab_size, len(tokens)))
    counts = np.bincount(tokens, minlength=vocab_size).astype(np.float64)
    R = (onehot @ fire).tocsr()
    inv = sparse.diags(np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0))
    return (inv @ R).tocsr()


def find_automata(fire: sparse.csr_matrix, has_next: np.ndarray, tokens: np.ndarray, logit_weights: np.ndarray, *,
                  top_k: int = 10, min_count: int = 5, min_lift: float = 5.0, max_automata: int = 4,
                  max_overlap: float = 0.5) -> list[dict]:
    """Self-loops and two-state cycles whose every edge has >= min_count co-firings, lift >= min_lift and logit
    support >= min_lift; the strongest max_automata of each kind (by the smallest lift on their edges). The two
    states of a cycle must be different features in the data, not near-duplicates: they fire together on the
    same token at most max_overlap of the time (co-firings / the rarer feature's firings); likewise an automaton
    whose states overlap that much with those of a stronger one of its kind is skipped as a duplicate."""
    C, _, p_j = lift_matrix(fire, has_next)
    R = token_fire_rate(fire, tokens, logit_weights.shape[1])
    top = torch.as_tensor(np.asarray(logit_weights)).topk(min(top_k, logit_weights.shape[1]), dim=1).indices.numpy()
    Cc = C.tocoo()
    n_i = np.asarray(fire[np.flatnonzero(has_next)].sum(0)).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = (Cc.data / n_i[Cc.row]) / p_j[Cc.col]
    ok = (Cc.data >= min_count) & (lift >= min_lift)
    rows, cols, lifts, counts = Cc.row[ok], Cc.col[ok], lift[ok], Cc.data[ok]
    edges, mean_rate = {}, {}
    for i, j, lij, cij in zip(rows, cols, lifts, counts):
        if i not in mean_rate:  # mean over i's top-k promoted tokens of every feature's firing rate
            mean_rate[i] = np.asarray(R[top[i]].mean(0)).ravel()
        support = float(mean_rate[i][j] / p_j[j]) if p_j[j] > 0 else 0.0
        if support >= min_lift:
            edges[(int(i), int(j))] = {"lift": float(lij), "support": support, "count": int(cij)}
    loops = [((i,), [(i, i)]) for (i, j) in edges if i == j]
    fc = fire.tocsc()

    def overlap(i: int, j: int) -> float:
        both = fc[:, i].multiply(fc[:, j]).sum()
        return float(both / max(min(fc[:, i].sum(), fc[:, j].sum()), 1))

    cycles = [((i, j), [(i, j), (j, i)]) for (i, j) in edges
              if i < j and (j, i) in edges and overlap(i, j) <= max_overlap]
    out = []
    for group in (loops, cycles):
        ranked, chosen = sorted(group, key=lambda a: -min(edges[e]["lift"] for e in a[1])), []
        for states, es in ranked:  # greedy: skip near-duplicates of an automaton already chosen
            if len(chosen) < max_automata and not any(overlap(s, t) > max_overlap for c in chosen for s in c
                                                      for t in states):
                chosen.append(states)
            else:
                continue
            out.append({"states": list(states), "edges": [list(e) for e in es],
                        "lift": [round(edges[e]["lift"], 3) for e in es],
                        "logit_support": [round(edges[e]["support"], 3) for e in es],
                        "count": [edges[e]["count"] for e in es]})
    return out


def _set_feature(sae, i: int, rows: torch.Tensor, pos: torch.Tensor, value: float | None):
    """An MLP replacement that sets feature i to `value` at position pos[b] of row b by adding
    (value − f_i) d_i to the activations there (None: the activations unchanged)."""
    w_e, b_e, b_d, d_i = sae.W_e[i], sae.b_e[i], sae.b_d, sae.W_d[:, i]

    def repl(acts: torch.Tensor) -> torch.Tensor:
        if value is None:
            return acts
        out = acts.clone()
        a = acts[rows, pos]
        f = torch.relu((a - b_d) @ w_e + b_e)
        out[rows, pos] = a + (value - f)[:, None] * d_i
        return out

    return repl


def _sample(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: one token per row of probs (B, V) from uniform numbers u (B,)."""
    return torch.searchsorted(probs.cumsum(-1), u[:, None]).clamp_max(probs.shape[-1] - 1)[:, 0]


def _fires(sae, j: int, acts: torch.Tensor) -> torch.Tensor:
    """Whether feature j fires on MLP activations (B, d)."""
    return torch.relu((acts - sae.b_d) @ sae.W_e[j] + sae.b_e[j]) > 0


def sign_test(b: int, c: int) -> float:
    """One-sided exact sign test: P(X ≥ b) for X ~ Binomial(b + c, 1/2); 1 when b + c = 0."""
    return float(scipy.stats.binom.sf(b - 1, b + c, 0.5)) if b + c else 1.0


def causal_decision(pinned: np.ndarray, ablated: np.ndarray) -> tuple[bool, float]:
    """(causal, p) from whether j fired on the sampled token per prefix, pinned and ablated (paired, same random
    numbers): causal when the pinned rate exceeds the ablated one by at least CAUSAL_MARGIN and the sign test
    of the discordant prefixes (fires pinned only, against ablated only) gives p < CAUSAL_ALPHA."""
    # the same rule as the expected rates' on d_b = [fires pinned] − [fires ablated] ∈ {−1, 0, 1}
    return expected_causal_decision(np.asarray(pinned, bool).astype(np.float64) - np.asarray(ablated, bool))


def expected_causal_decision(effects: np.ndarray) -> tuple[bool, float]:
    """(causal, p) from the per-prefix differences d_b = E_pinned(b) − E_ablated(b) of the expected rates:
    causal when mean_b d_b ≥ CAUSAL_MARGIN and the one-sided sign test of the nonzero d_b (|d_b| > TIE; d_b > 0
    against d_b < 0) gives p < CAUSAL_ALPHA."""
    effects = np.asarray(effects, np.float64)
    if effects.size == 0:
        return False, 1.0
    p = sign_test(int((effects > TIE).sum()), int((effects < -TIE).sum()))
    return bool(effects.mean() >= CAUSAL_MARGIN - 1e-12 and p < CAUSAL_ALPHA), p


def candidate_mask(probs: torch.Tensor, coverage: float, max_candidates: int) -> torch.Tensor:
    """(B, V) bool: per row of probs (B, V) the smallest set of top tokens whose mass reaches `coverage` (a token
    is in when the tokens ranked above it hold less than `coverage`; every token when coverage ≥ 1, whatever the
    rounding of the sums), at most max_candidates of them."""
    top, idx = probs.double().sort(-1, descending=True)
    keep = ((top.cumsum(-1) - top) < coverage) | (coverage >= 1)
    keep[:, max(int(max_candidates), 1):] = False
    keep[:, 0] = True
    return torch.zeros(probs.shape, dtype=torch.bool).scatter(-1, idx, keep)


def candidate_fires(model, sae, contexts: torch.Tensor, pos: torch.Tensor, j: int, mask: torch.Tensor,
                    chunk: int = 512) -> torch.Tensor:
    """fires_j(b, t) for every candidate (mask (B, V) true): whether feature j fires at pos[b] + 1 in a plain
    forward pass of row b's prefix (tokens 0..pos[b]) followed by t; False off the candidates. Batched in
    chunks of at most `chunk` sequences, ordered by prefix length and each cut after its longest prefix + 1."""
    b_idx, t_idx = mask.nonzero(as_tuple=True)
    order = torch.argsort(pos[b_idx], stable=True)
    out = torch.zeros(mask.shape, dtype=torch.bool)
    for s in range(0, len(order), chunk):
        bb, tt = b_idx[order[s:s + chunk]], t_idx[order[s:s + chunk]]
        seq = contexts[bb, :int(pos[bb].max()) + 2].clone()
        seq[torch.arange(len(bb)), pos[bb] + 1] = tt
        out[bb, tt] = _fires(sae, j, model.mlp_acts(seq, positions=(pos[bb] + 1)[:, None])[:, 0])
    return out


def firing_prefixes(on: np.ndarray, has_next: np.ndarray, n: int, generator: torch.Generator) -> np.ndarray:
    """Up to n positions (flat indices, ascending) where `on` (T,) is true and a next token of the same context
    follows (has_next), drawn without replacement with `generator`; all of them when there are fewer."""
    cand = np.flatnonzero(np.asarray(on, bool) & np.asarray(has_next, bool))
    if len(cand) > n:
        cand = np.sort(cand[torch.randperm(len(cand), generator=generator)[:n].numpy()])
    return cand


@torch.no_grad()
def causal_rates(model, sae, contexts: torch.Tensor, positions, i: int, j: int, pin: float,
                 generator: torch.Generator, *, coverage: float = 0.99, max_candidates: int = 256,
                 chunk: int = 512) -> dict:
    """The in-context causal check of edge i → j (module docstring). contexts (B, T) token ids, positions (B,)
    the position n of each row's prefix (n + 1 < T), i firing there. With feature i at n pinned at `pin`,
    ablated (0) or left alone (natural): E_c(b) = Σ_{t ∈ S_b} p_c(t | b) fires_j(b, t) over the candidate set
    S_b (candidate_mask, `coverage`, `max_candidates`; union over the conditions) and its uncovered mass
    m_c(b) = 1 − Σ_{t ∈ S_b} p_c(t | b); and one token n+1 sampled per condition with the same random numbers.

    Returns expected_pinned_rate, expected_baseline_rate (ablated), expected_natural_rate (means of E_c),
    expected_effect (mean of E_pinned − E_ablated), effect_bounds (the exact mean effect's bounds),
    uncovered_mass (max of m_c), uncovered_mass_mean, effect_p, causal and causal_p
    (expected_causal_decision; causal_p = effect_p), pinned_rate, baseline_rate, natural_rate (shares of rows
    where j fires on the sampled token), sampled_causal, sampled_causal_p (causal_decision of the sampled
    firings), data_rate (on the real next token), n_prefixes, and per row E_c (pinned_expected, ...), m_c
    (pinned_uncovered, ...), n_candidates (|S_b|), the sampled tokens (pinned_tokens, ...) and j's firing on
    them (pinned_fires, ...)."""
    B, T = contexts.shape
    pos = torch.as_tensor(np.asarray(positions), dtype=torch.long)
    if B == 0:
        return {"pinned_rate": 0.0, "baseline_rate": 0.0, "natural_rate": 0.0, "data_rate": 0.0, "causal": False,
                "causal_p": 1.0, "n_prefixes": 0, "expected_pinned_rate": 0.0, "expected_baseline_rate": 0.0,
                "expected_natural_rate": 0.0, "expected_effect": 0.0, "uncovered_mass": 0.0, "effect_p": 1.0,
                "uncovered_mass_mean": 0.0, "effect_bounds": [0.0, 0.0],
                "sampled_causal": False, "sampled_causal_p": 1.0}
    if bool((pos + 1 >= T).any()) or bool((pos < 0).any()):
        raise ValueError("every prefix needs a next token in its context")
    rows = torch.arange(B)
    u = torch.rand(B, generator=generator)
    x, h = model._mlp_input(contexts)  # causal attention: position n sees only the prefix (tokens 0..n)
    nxt = (pos + 1)[:, None]
    res, probs = {"n_prefixes": int(B)}, {}
    names = ("pinned", "baseline", "natural")
    for name, value in zip(names, (float(pin), 0.0, None)):
        out, _ = model.mlp(h, _set_feature(sae, i, rows, pos, value))
        probs[name] = torch.softmax(model.W_U(model.ln_f((x + out)[rows, pos])).float(), dim=-1)
        y = _sample(probs[name], u)
        seq = contexts.clone()
        seq[rows, pos + 1] = y  # the tokens after n+1 do not reach position n+1
        fires = _fires(sae, j, model.mlp_acts(seq, positions=nxt)[:, 0])
        res[f"{name}_rate"] = float(fires.float().mean())
        res[f"{name}_tokens"], res[f"{name}_fires"] = y.numpy(), fires.numpy()
    mask = torch.stack([candidate_mask(probs[c], coverage, max_candidates) for c in names]).any(0)
    hit = candidate_fires(model, sae, contexts, pos, j, mask, chunk)
    for c in names:
        p = probs[c].double()
        res[f"{c}_expected"] = (p * hit).sum(-1).numpy()
        res[f"{c}_uncovered"] = (1.0 - (p * mask).sum(-1)).clamp_min(0.0).numpy()
        res[f"expected_{c}_rate"] = float(res[f"{c}_expected"].mean())
    res["n_candidates"] = mask.sum(-1).numpy()
    effects = res["pinned_expected"] - res["baseline_expected"]
    res["expected_effect"] = float(effects.mean())
    res["uncovered_mass"] = float(max(res[f"{c}_uncovered"].max() for c in names))
    res["uncovered_mass_mean"] = float(np.mean([res[f"{c}_uncovered"].mean() for c in names]))
    # the exact mean effect lies in [mean(d − m_ablated), mean(d + m_pinned)] (each E_c(b) is short by ≤ m_c(b))
    res["effect_bounds"] = [float((effects - res["baseline_uncovered"]).mean()),
                            float((effects + res["pinned_uncovered"]).mean())]
    res["data_rate"] = float(_fires(sae, j, model.mlp_acts(contexts, positions=nxt)[:, 0]).float().mean())
    res["causal"], res["effect_p"] = expected_causal_decision(effects)
    res["causal_p"] = res["effect_p"]
    res["sampled_causal"], res["sampled_causal_p"] = causal_decision(res["pinned_fires"], res["baseline_fires"])
    return res


@torch.no_grad()
def random_prefix_rates(model, sae, prefixes: torch.Tensor, i: int, j: int, pin: float,
                        generator: torch.Generator) -> dict:
    """The out-of-context check: pin feature i at `pin` on the last token of each prefix (B, T), sample the
    next token from the model, and return how often feature j fires on it, with and without the pin (same
    random numbers): offcontext_pinned_rate, offcontext_baseline_rate, and the sampled tokens
    (offcontext_pinned_tokens, offcontext_baseline_tokens)."""
    B, T = prefixes.shape
    rows, last = torch.arange(B), torch.full((B,), T - 1, dtype=torch.long)
    u = torch.rand(B, generator=generator)
    x, h = model._mlp_input(prefixes)  # only the last position's logits are needed
    res = {}
    for name, value in (("offcontext_pinned", float(pin)), ("offcontext_baseline", None)):
        out, _ = model.mlp(h, _set_feature(sae, i, rows, last, value))
        y = _sample(torch.softmax(model.W_U(model.ln_f((x + out)[:, -1])).float(), dim=-1), u)
        acts = model.mlp_acts(torch.cat([prefixes, y[:, None]], dim=1))[:, -1]
        res[f"{name}_rate"] = float(_fires(sae, j, acts).float().mean())
        res[f"{name}_tokens"] = y.numpy()
    return res


def edge_generator(seed: int, i: int, j: int) -> torch.Generator:
    """The generator of edge i → j: seeded from (seed, i, j), so an edge's rates do not depend on the others."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, i, j]).generate_state(1)[0]))


def example_path(fire: sparse.csr_matrix, has_next: np.ndarray, states: list[int], length: int = 6) -> int | None:
    """First position n where the automaton runs for `length` consecutive tokens (states visited in turn,
    every step within one context), or the longest such run's start; None when it never takes one step."""
    fc = fire.tocsc()
    on = np.stack([np.asarray(fc[:, s].todense()).ravel() > 0 for s in states])  # (k, T)
    T, k = on.shape[1], len(states)
    best, best_len = None, 0
    for phase in range(k):
        run = 0
        for n in range(T):
            ok = on[(phase + n) % k, n] and (run == 0 or has_next[n - 1])
            run = run + 1 if ok else 0
            if run > best_len:
                best, best_len = n - run + 1, run
            if best_len >= length:
                return best
    return best if best_len >= 2 else None


def top_tokens(fire: sparse.csr_matrix, tokens: np.ndarray, feature: int, k: int = 3) -> list[int]:
    """The k tokens on which `feature` fires most often."""
    on = np.asarray(fire.tocsc()[:, feature].todense()).ravel() > 0
    c = np.bincount(np.asarray(tokens)[on])
    return [int(t) for t in np.argsort(-c, kind="stable")[:k] if c[t] > 0]


@torch.no_grad()
def model_automata(model, sae, contexts: torch.Tensor, label, *, top_k: int = 10, min_count: int = 5,
                   min_lift: float = 5.0, max_automata: int = 4, n_pinned: int = 64, seed: int = 0,
                   exclude_token: int | None = None, batch: int = 16, coverage: float = 0.99,
                   max_candidates: int = 256) -> list[dict]:
    """The automata of an SAE's features on whole contexts (B, T) of a model: every feature's activations on
    consecutive tokens, logit weights (logit_weights.py, σ̄ from the first 32 contexts), find_automata, then
    per edge i → j the causal check (causal_rates with coverage and max_candidates; pin = i's largest activation
    seen here; prefixes: up to n_pinned positions of these contexts where i fires, drawn with
    edge_generator(seed, i, j)) and the
    out-of-context one (random_prefix_rates; prefixes: the first T/2 tokens of n_pinned contexts drawn with
    `seed`), each state's top tokens (label(token id) -> str) and an example path of up to 6 tokens.
    Per-edge lists: expected_pinned_rate, expected_baseline_rate (ablated), expected_natural_rate,
    expected_effect, effect_bounds, uncovered_mass, uncovered_mass_mean, effect_p, causal, causal_p (= effect_p), the sampled pinned_rate,
    baseline_rate, natural_rate, sampled_causal, sampled_causal_p, data_rate, n_prefixes, offcontext_pinned_rate,
    offcontext_baseline_rate (rates to 3 decimals; p values and uncovered_mass, an error bound that should not
    round to 0, to 3 significant digits)."""
    from monosemantic.analysis import logit_weights as lw
    n_contexts, T = contexts.shape
    fires, peak = [], torch.zeros(sae.n_features)
    for b in range(0, n_contexts, batch):
        f = sae.encode(model.mlp_acts(contexts[b:b + batch]).reshape(-1, sae.d))
        peak = torch.maximum(peak, f.max(0).values)
        fires.append(fire_matrix(f))
    fire = sparse.vstack(fires).tocsr()
    toks = contexts.reshape(-1).numpy()
    has_next = (np.arange(len(toks)) % T) < T - 1
    W = lw.feature_logit_weights(model, sae, lw.residual_std(model, contexts[:32])).numpy()
    if exclude_token is not None:
        W[:, exclude_token] = -np.inf
    found = find_automata(fire, has_next, toks, W, top_k=top_k, min_count=min_count, min_lift=min_lift,
                          max_automata=max_automata)
    pick = torch.randint(0, n_contexts, (n_pinned,), generator=torch.Generator().manual_seed(seed))
    random_prefixes = contexts[pick, :T // 2]
    fc = fire.tocsc()
    for a in found:
        rates = []
        for i, j in a["edges"]:
            gen = edge_generator(seed, i, j)
            at = firing_prefixes(fc[:, i].toarray().ravel() > 0, has_next, n_pinned, gen)
            r = causal_rates(model, sae, contexts[torch.from_numpy(at // T)], at % T, i, j, float(peak[i]), gen,
                             coverage=coverage, max_candidates=max_candidates)
            rates.append({**r, **random_prefix_rates(model, sae, random_prefixes, i, j, float(peak[i]), gen)})
        for key in ("pinned_rate", "baseline_rate", "natural_rate", "data_rate", "offcontext_pinned_rate",
                    "offcontext_baseline_rate", "expected_pinned_rate", "expected_baseline_rate",
                    "expected_natural_rate", "expected_effect"):
            a[key] = [round(r[key], 3) for r in rates]
        for key in ("causal", "sampled_causal"):
            a[key] = [r[key] for r in rates]
        for key in ("causal_p", "effect_p", "sampled_causal_p", "uncovered_mass", "uncovered_mass_mean"):
            a[key] = [float(f"{r[key]:.3g}") for r in rates]
        a["effect_bounds"] = [[round(v, 3) for v in r["effect_bounds"]] for r in rates]
        a["n_prefixes"] = [r["n_prefixes"] for r in rates]
        a["state_tokens"] = {str(s): [label(x) for x in top_tokens(fire, toks, s)] for s in a["states"]}
        n = example_path(fire, has_next, a["states"])
        a["example"] = "|".join(label(x) for x in toks[n:n + 6]) if n is not None else ""
    return found


def validation_automata(cfg, model, sae, tokens: np.ndarray, tok, rng: np.random.Generator) -> tuple[list[dict], int]:
    """Fig. 11: model_automata on cfg.automata_contexts whole contexts drawn (rng, without replacement) from the
    validation token stream, the end-of-text token excluded from the logit side (cfg: the interpretability
    section of params.yaml). Returns (the automata found, the number of tokens they were found on)."""
    n_ctx = model.cfg.n_ctx
    n_contexts = min(cfg.automata_contexts, len(tokens) // n_ctx)
    starts = np.sort(rng.choice(len(tokens) // n_ctx, size=n_contexts, replace=False)) * n_ctx
    ctx = torch.from_numpy(np.stack([np.asarray(tokens[s:s + n_ctx]) for s in starts]).astype(np.int64))
    label = lambda i: token_label(tok, int(i)).replace("\n", "↵")  # noqa: E731
    found = model_automata(model, sae, ctx, label, top_k=cfg.logit_k, min_count=cfg.automata_min_count,
                           min_lift=cfg.automata_min_lift, max_automata=cfg.automata_max,
                           n_pinned=cfg.automata_pinned, seed=cfg.seed, exclude_token=EOT_ID)
    return found, int(ctx.numel())
