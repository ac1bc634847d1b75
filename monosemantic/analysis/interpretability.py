"""LLM-free interpretability scores (paper Figs. 7 and 8): features vs neurons vs random-transformer features.

The paper measures interpretability two ways, both needing people or an LLM: a blinded rubric scored by hand
(Fig. 7: median 12 for features vs 0 for neurons) and automated interpretability (Fig. 8: Claude writes an
explanation of a unit from its top examples, a second Claude predicts the unit's activations on held-out
text from the explanation alone, and the score is the correlation between predicted and true activations;
from the explanation it also predicts which tokens the unit's logit weights promote: 74% vs 58%). No LLM is
available here, so we keep the paper's *design* (explain on one split, simulate from the explanation alone on
another, score on the paper's held-out mix) with a transparent, mechanical explainer and simulator.

What the explainer sees (the training split only: the first `explain_points` points of the model's TRAIN
activation store, i.e. tokens of the train token stream) and what it produces:

* a key per point: (token id, subset of its document) — the token and the kind of text it is in (English,
  code, Arabic, ...), the two things a reader of a highlighted example sees at a glance;
* the unit's `top_examples` highest activations; the keys occurring among them are the candidate keys;
* for each candidate key, the unit's mean activation over *every* training occurrence of that key (zeros
  included): the explanation "fires on token t in subset s, with strength v(t, s)";
* the explanation keeps the `max_keys` candidate keys with the largest v, rescaled to 0–10 as in the paper.

It does not see the held-out (validation) split, the unit's weights, its logit weights, or anything about the
other units. Unlike the paper's LLM it cannot generalise beyond the listed keys (a feature for "any Arabic
token" is explained by its top few Arabic tokens only), nor read the preceding context, so our scores are a
lower bound on what a context-reading explainer would reach; both features and neurons get the same
explainer, so the comparison is fair.

Simulator: the predicted activation of a held-out token is v(key) when its key is in the explanation, else 0.

Scoring (paper's held-out mix, on the VALIDATION store): the unit's `top_examples` largest activations, up
to `per_interval` examples drawn (seeded) from each of `n_intervals` equal-width intervals of (0, max], and
`n_random` points drawn uniformly from all held-out points. The score is the Pearson correlation of simulated
and true activations on the mix (0 when either is constant). The importance-weighted score reweights each mix
example x by p(x)/q(x), the population probability 1/N over the mix's sampling probability
q(x) = Σ_c n_c [x ∈ c] / |c| (components c: top, each interval, random), so that it estimates the
correlation on the whole held-out distribution; `score_all` is that correlation computed exactly.

Single-token units (paper appendix): a unit whose explanation's first token carries at least
`single_token_share` of the unit's training activation mass is flagged, and medians are reported with and
without them.

Logit side (paper: 74% features vs 58% neurons). From the explanation alone — its tokens and strengths — the
predictor scores every vocabulary token y by how much more often y follows the explanation's tokens than it
occurs overall in the training token stream (the "world knowledge" an LLM brings, here bigram statistics):

    s(y) = log( (Σ_t v_t C[t, y] / Σ_t v_t C[t, ·] + ε) / (P(y) + ε) )

and the task is the paper's: tell the `logit_k` tokens the unit's logit weights promote most from `logit_k`
random vocabulary tokens. Accuracy is the two-choice accuracy over all (promoted, random) pairs (ties count
one half; chance 0.5), i.e. the area under the ROC curve of s.

Automatic rubric (Fig. 7 analogue; the paper's hand rubric has 14 points: confidence, per-interval
consistency, logit consistency, specificity; confidence needs a person and is not scored):

    activation consistency  0–6   6 × mean over non-empty intervals of the share of held-out interval examples
                                  whose key is in the explanation
    logit consistency       0–4   4 × max(0, 2 × logit accuracy − 1)
    specificity             0–4   4 × P(unit fires | the explanation predicts it fires), on all held-out points
    total                   0–14  (each item rounded to an integer, as a rater would)

The blinded spot-check sheet (spotcheck.py) asks a person for the items a machine cannot judge, on the same
0–14 scale. The stage that scores the three groups of units is interpretability_study.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import sparse

SCALE = 10.0  # the paper's simulator predicts activations on a 0–10 scale
RUBRIC_MAX = {"consistency": 6, "logit": 4, "specificity": 4}


# ------------------------------------------------------------------------------------------------
# Explanation and simulation
# ------------------------------------------------------------------------------------------------


def point_keys(tokens: np.ndarray, subsets: np.ndarray, n_subsets: int) -> np.ndarray:
    """Key of each point: token · n_subsets + subset (int64)."""
    return np.asarray(tokens, dtype=np.int64) * int(n_subsets) + np.asarray(subsets, dtype=np.int64)


@dataclass
class Explanation:
    """A unit's explanation: keys (token·S + subset) with strengths v on a 0–10 scale, best first."""

    keys: np.ndarray  # int64
    values: np.ndarray  # float64, 0–10
    n_subsets: int
    top_token_share: float  # share of the unit's training activation mass on its most massive token

    @property
    def tokens(self) -> np.ndarray:
        return self.keys // self.n_subsets

    def token_weights(self, vocab_size: int) -> np.ndarray:
        """Strength per token id (summed over subsets)."""
        return np.bincount(self.tokens, weights=self.values, minlength=vocab_size)[:vocab_size]


def explain(acts: np.ndarray, keys: np.ndarray, n_subsets: int, top_examples: int, max_keys: int,
            order: np.ndarray | None = None) -> Explanation:
    """Explanation of one unit from its activations `acts` (n,) on the training points with keys `keys` (n,).

    Candidate keys: those of the unit's `top_examples` largest positive activations. v(key) = the unit's mean
    activation over all training points with that key. Keeps the `max_keys` largest, scaled so the largest is
    10. `order` (optional): np.argsort(keys, kind="stable"), when many units share the same keys."""
    acts = np.asarray(acts, dtype=np.float64)
    pos = np.flatnonzero(acts > 0)
    if pos.size == 0:
        return Explanation(np.zeros(0, np.int64), np.zeros(0), n_subsets, 0.0)
    k = min(top_examples, pos.size)
    top = pos[np.argpartition(-acts[pos], k - 1)[:k]]
    cand = np.unique(keys[top])
    # Mean activation of each candidate key over all its training occurrences.
    order = np.argsort(keys, kind="stable") if order is None else order
    sk = keys[order]
    lo, hi = np.searchsorted(sk, cand, "left"), np.searchsorted(sk, cand, "right")
    csum = np.concatenate([[0.0], np.cumsum(acts[order])])
    means = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)
    keep = np.argsort(-means, kind="stable")[:max_keys]
    keep = keep[means[keep] > 0]
    vals = means[keep]
    vals = SCALE * vals / vals.max() if vals.size else vals
    tok = keys[pos] // n_subsets
    mass = np.bincount(tok, weights=acts[pos])
    share = float(mass.max() / mass.sum()) if mass.sum() > 0 else 0.0
    return Explanation(cand[keep].astype(np.int64), vals, n_subsets, share)


def simulate(expl: Explanation, keys: np.ndarray) -> np.ndarray:
    """Simulated activation of each point: v(key) if the key is in the explanation, else 0."""
    keys = np.asarray(keys, dtype=np.int64)
    if expl.keys.size == 0 or keys.size == 0:
        return np.zeros(len(keys))
    table = np.zeros(int(max(keys.max(), expl.keys.max())) + 1)  # keys are small integers (token·S + subset)
    table[expl.keys] = expl.values
    return table[keys]


# ------------------------------------------------------------------------------------------------
# The held-out mix and its scores
# ------------------------------------------------------------------------------------------------


def interval_members(acts: np.ndarray, n_intervals: int) -> list[np.ndarray]:
    """Indices of the positive activations in each of n_intervals equal-width intervals of (0, max]."""
    pos = np.flatnonzero(acts > 0)
    if pos.size == 0:
        return [np.zeros(0, np.int64) for _ in range(n_intervals)]
    top = acts[pos].max()
    b = np.minimum((acts[pos] / top * n_intervals).astype(np.int64), n_intervals - 1)
    b = np.where(acts[pos] >= top, n_intervals - 1, b)
    return [pos[b == j] for j in range(n_intervals)]


def heldout_mix(acts: np.ndarray, rng: np.random.Generator, top_examples: int, n_intervals: int,
                per_interval: int, n_random: int) -> dict[str, np.ndarray]:
    """The paper's held-out mix: top examples, up to per_interval examples from each activation interval,
    n_random uniform examples. Returns indices (with repeats across components), the component of each
    (0 top, 1..n_intervals the intervals, n_intervals+1 random) and the importance weights p/q (see module)."""
    n = len(acts)
    pos = np.flatnonzero(acts > 0)
    k = min(top_examples, pos.size)
    comps = [pos[np.argsort(-acts[pos], kind="stable")[:k]]]
    members = interval_members(acts, n_intervals)
    for m in members:
        comps.append(rng.choice(m, size=min(per_interval, m.size), replace=False) if m.size else m)
    comps.append(rng.integers(0, n, size=n_random) if n_random and n else np.zeros(0, np.int64))
    idx = np.concatenate(comps).astype(np.int64)
    comp = np.concatenate([np.full(len(c), j) for j, c in enumerate(comps)]).astype(np.int64)
    # q(x) = Σ_c n_c [x ∈ c] / |c|
    q = np.zeros(len(idx))
    sizes = [k] + [m.size for m in members] + [n]
    sets = [comps[0]] + members + [None]
    for j, (c, size) in enumerate(zip(comps, sizes)):
        if len(c) == 0:
            continue
        inside = np.ones(len(idx), bool) if sets[j] is None else np.isin(idx, sets[j])
        q += inside * len(c) / size
    w = (1.0 / n) / q if n else q
    return {"index": idx, "component": comp, "weight": w}


def pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """(Weighted) Pearson correlation; 0 when either side is constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2:
        return 0.0
    w = np.ones_like(x) if w is None else np.asarray(w, np.float64)
    w = w / w.sum()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    if vx <= 1e-12 * max(1.0, mx * mx) or vy <= 1e-12 * max(1.0, my * my):
        return 0.0
    return float((w * (x - mx) * (y - my)).sum() / np.sqrt(vx * vy))


def simulation_scores(expl: Explanation, acts: np.ndarray, keys: np.ndarray, mix: dict[str, np.ndarray]) -> dict:
    """Scores of one unit on held-out points (acts, keys): on the mix, importance-weighted, and on all points."""
    sim_all = simulate(expl, keys)
    i = mix["index"]
    return {"score": pearson(sim_all[i], acts[i]), "score_weighted": pearson(sim_all[i], acts[i], mix["weight"]),
            "score_all": pearson(sim_all, acts)}


# ------------------------------------------------------------------------------------------------
# Logit side
# ------------------------------------------------------------------------------------------------


def successor_counts(tokens: np.ndarray, vocab_size: int) -> sparse.csr_matrix:
    """C[a, b] = number of times token b follows token a in the stream (sparse, vocab × vocab)."""
    t = np.asarray(tokens, dtype=np.int64)
    pair = t[:-1] * vocab_size + t[1:]
    u, c = np.unique(pair, return_counts=True)
    return sparse.csr_matrix((c.astype(np.float64), (u // vocab_size, u % vocab_size)), shape=(vocab_size, vocab_size))


def successor_scores(token_weights: np.ndarray, succ: sparse.csr_matrix, unigram: np.ndarray,
                     eps: float = 1e-6) -> np.ndarray:
    """s(y) = log((Σ_t v_t C[t, y] / Σ_t v_t C[t, ·] + ε) / (P(y) + ε)) for every token y."""
    row = np.asarray(succ.T @ np.asarray(token_weights, np.float64)).ravel()
    total = row.sum()
    p_next = row / total if total > 0 else row
    p = unigram / unigram.sum()
    return np.log((p_next + eps) / (p + eps))


def two_choice_accuracy(scores: np.ndarray, promoted: np.ndarray, random: np.ndarray) -> float:
    """Share of (promoted, random) pairs where the promoted token scores higher (ties: 1/2)."""
    a, b = scores[promoted][:, None], scores[random][None, :]
    return float(((a > b) + 0.5 * (a == b)).mean())


def logit_candidates(logit_weights: np.ndarray, k: int, rng: np.random.Generator,
                     exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k most promoted tokens of a unit, and k random vocabulary tokens outside them (and `exclude`)."""
    w = np.asarray(logit_weights, np.float64).copy()
    if exclude is not None:
        w[exclude] = -np.inf
    promoted = np.argsort(-w, kind="stable")[:k]
    pool = np.setdiff1d(np.arange(len(w)), promoted)
    if exclude is not None:
        pool = np.setdiff1d(pool, exclude)
    return promoted, rng.choice(pool, size=min(k, pool.size), replace=False)


# ------------------------------------------------------------------------------------------------
# Rubric, per unit and for a population
# ------------------------------------------------------------------------------------------------


def rubric(expl: Explanation, acts: np.ndarray, keys: np.ndarray, mix: dict[str, np.ndarray], n_intervals: int,
           logit_acc: float | None) -> dict:
    """The automatic rubric items of one unit (see module docstring) on held-out points."""
    sim = simulate(expl, keys)
    shares = []
    for j in range(1, n_intervals + 1):
        i = mix["index"][mix["component"] == j]
        if i.size:
            shares.append(float((sim[i] > 0).mean()))
    cons = float(np.mean(shares)) if shares else 0.0
    pred = sim > 0
    spec = float((acts[pred] > 0).mean()) if pred.any() else 0.0
    logit = 0.0 if logit_acc is None else max(0.0, 2 * logit_acc - 1)
    items = {"consistency": int(round(RUBRIC_MAX["consistency"] * cons)),
             "logit": int(round(RUBRIC_MAX["logit"] * logit)),
             "specificity": int(round(RUBRIC_MAX["specificity"] * spec))}
    return {**items, "total": sum(items.values()), "interval_shares": shares, "precision": spec}


def evaluate_units(train_acts: np.ndarray, train_keys: np.ndarray, val_acts: np.ndarray, val_keys: np.ndarray,
                   n_subsets: int, *, top_examples: int, max_keys: int, n_intervals: int, per_interval: int,
                   n_random: int, single_token_share: float, seed: int, logit_weights: np.ndarray | None = None,
                   succ: sparse.csr_matrix | None = None, unigram: np.ndarray | None = None, logit_k: int = 10,
                   units: np.ndarray | None = None, progress: Callable | None = None) -> list[dict]:
    """Every score of each column of train_acts (n, U) / val_acts (m, U): explanation from the training split,
    simulation scores and rubric on the held-out split, logit accuracy when logit_weights (U, vocab), the
    successor counts and the unigram counts are given. `units` names the columns in the records."""
    U = train_acts.shape[1]
    units = np.arange(U) if units is None else np.asarray(units)
    rng = np.random.default_rng(seed)
    recs = []
    it = range(U) if progress is None else progress(range(U))
    order = np.argsort(train_keys, kind="stable")
    for u in it:
        a_tr, a_va = np.asarray(train_acts[:, u], np.float64), np.asarray(val_acts[:, u], np.float64)
        expl = explain(a_tr, train_keys, n_subsets, top_examples, max_keys, order)
        mix = heldout_mix(a_va, rng, top_examples, n_intervals, per_interval, n_random)
        rec = {"unit": int(units[u]), **simulation_scores(expl, a_va, val_keys, mix),
               "single_token": bool(expl.top_token_share >= single_token_share),
               "top_token_share": round(expl.top_token_share, 4),
               "explanation": [[int(k // n_subsets), int(k % n_subsets), round(float(v), 2)]
                               for k, v in zip(expl.keys, expl.values)]}
        acc = None
        if logit_weights is not None and succ is not None and unigram is not None:
            promoted, rand = logit_candidates(logit_weights[u], logit_k, rng)
            scores = successor_scores(expl.token_weights(succ.shape[0]), succ, unigram)
            acc = two_choice_accuracy(scores, promoted, rand) if expl.keys.size else 0.5
            rec["logit_acc"] = acc
            rec["promoted"] = [int(t) for t in promoted]
        rec["rubric"] = rubric(expl, a_va, val_keys, mix, n_intervals, acc)
        recs.append(rec)
    return recs


def summarize(recs: list[dict]) -> dict:
    """Medians and means of a population's scores (all units, and without single-token units)."""
    def block(rs):
        out = {"n_units": len(rs)}
        if not rs:
            return out
        for k in ("score", "score_weighted", "score_all"):
            v = np.array([r[k] for r in rs])
            out[f"{k}_median"], out[f"{k}_mean"] = round(float(np.median(v)), 4), round(float(v.mean()), 4)
        if "logit_acc" in rs[0]:
            out["logit_acc"] = round(float(np.mean([r["logit_acc"] for r in rs])), 4)
        tot = np.array([r["rubric"]["total"] for r in rs])
        out["rubric_median"], out["rubric_mean"] = float(np.median(tot)), round(float(tot.mean()), 3)
        for item in RUBRIC_MAX:
            out[f"rubric_{item}_mean"] = round(float(np.mean([r["rubric"][item] for r in rs])), 3)
        return out

    res = block(recs)
    res["single_token_units"] = int(sum(r["single_token"] for r in recs))
    res["without_single_token"] = block([r for r in recs if not r["single_token"]])
    return res


def headline(metrics: dict) -> dict:
    """metrics/summary.json headline block from metrics/analysis/interpretability.json's content:
    {"interpretability": {group: {"sim_score_median", "sim_score_weighted_median", "logit_acc",
    "rubric_median"}}}."""
    out = {}
    for group, s in metrics["groups"].items():
        out[group] = {"sim_score_median": s.get("score_median"),
                      "sim_score_weighted_median": s.get("score_weighted_median"),
                      "logit_acc": s.get("logit_acc"), "rubric_median": s.get("rubric_median"),
                      "n_units": s.get("n_units")}
    return {"interpretability": out}
