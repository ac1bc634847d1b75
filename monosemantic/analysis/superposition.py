"""Features against neurons, the paper's way, and the dose-response experiment on the rare contexts' share.

The paper's central claim (section "Detailed investigations" and its neuron footnotes): a rare context such as
Arabic script (~0.13% of the Pile's tokens) has a feature that tracks it (Pearson r 0.74 with the proxy) while
no neuron does; the feature is spread over many neurons (27 with |decoder coefficient| >= 0.1, Fig. 5). The
paper compares each feature with *the neuron most correlated with the feature* (footnote values such as 0.18
for base64 and 0.1 for Hebrew). We report, for the best-matching feature of each proxy (proxies.py):

    feature_r            Pearson r of the feature's activation with the proxy (the paper's number)
    best_neuron_r        the largest r of any neuron with the proxy (our stricter comparison)
    nearest_neuron       the neuron whose activation is most correlated with the feature's activation,
    nearest_neuron_corr  that correlation, and
    nearest_neuron_r     that neuron's r with the proxy (the paper's neuron comparison)
    decoder_neurons_ge_0.1   #{j : |d_ij| >= 0.1}, d_i the feature's unit-norm decoder column (Fig. 5)
    neurons_for_half_norm    smallest m with the m largest d_ij² summing to >= ½ ‖d_i‖² (= ½)
    specificity_at_matched_sensitivity   for the feature and the best neuron: threshold each unit so that it
        covers the same share s* of the proxy-positive tokens (s* = the smaller of the two units' sensitivities
        at threshold 0, at most 0.5), then the share of the tokens above threshold that are proxy-positive
    dedicated_neurons    neurons that put >= 75% of their activation mass on the context's tokens (the tokens
                         of documents of that subset)
    feature_mass_on_context  the same share for the chosen feature (paper: 81% of the Arabic feature's firings)
    context_learned      the transformer's validation loss on the subset is below the subset's unigram loss
    context_recognized   ... at least 1 nat below a context-blind unigram's (the whole corpus's) loss on it

Two evaluations of the same 200,000 held-out points (the natural validation split, identical for every arm):

    proxies              every point counts once: the rare contexts are 6-15% of the points
    at_training_mix      points weighted so that each subset has its share of the model's training mix
                         (mix_weights): the paper's measurement, made on its training distribution (the Pile,
                         Arabic ~0.13%), where every firing of a neuron off its context weighs against it as
                         often as it happens in training. Units are chosen anew under the weights.

A neuron that is dedicated to a context is as monosemantic as any feature; the paper's regime is the one where
the context is too rare to get one. The dose-response experiment (dose_response.py) varies the rare subsets'
share of the training mix (mix.py) and measures all of the above for each arm.
"""

from __future__ import annotations

import numpy as np
import torch

from monosemantic.analysis import proxies as px
from monosemantic.lm.store import ArrayStore

# proxy -> the corpus subset whose documents are that context
PROXY_SUBSET = {"arabic": "Arabic", "hebrew": "Hebrew", "dna": "DNA", "base64": "Base64"}
DEDICATED_MASS = 0.75
COEF_THRESHOLD = 0.1


# ------------------------------------------------------------------------------------------------
# Decoder spread in the neuron basis (Fig. 5)
# ------------------------------------------------------------------------------------------------


def _unit_norm(W_d: np.ndarray) -> np.ndarray:
    """W_d (d_mlp, F) in float64 with every nonzero column scaled to unit norm (the coefficients d_ij)."""
    W = np.asarray(W_d, dtype=np.float64)
    norms = np.linalg.norm(W, axis=0)
    return W / np.where(norms > 0, norms, 1.0)


def neurons_for_norm_share(W_d: np.ndarray, share: float) -> np.ndarray:
    """For every feature (column of W_d, (d_mlp, F)): the smallest m such that its m largest squared
    coefficients hold at least `share` of ‖d_i‖² (½: neurons_for_half_norm)."""
    sq = np.sort(_unit_norm(W_d) ** 2, axis=0)[::-1]
    return ((np.cumsum(sq, axis=0) < share - 1e-12).sum(axis=0) + 1).astype(np.int64)


def decoder_spread(W_d: np.ndarray, threshold: float = COEF_THRESHOLD) -> dict[str, np.ndarray]:
    """For every feature (column of W_d, shape (d_mlp, F)): the number of neurons with |coefficient| >=
    threshold (coefficients of the unit-normalised column) and the neurons needed for half of ‖d_i‖²."""
    ge = (np.abs(_unit_norm(W_d)) >= threshold).sum(axis=0)
    return {"ge_threshold": ge.astype(np.int64), "for_half_norm": neurons_for_norm_share(W_d, 0.5)}


def spread_summary(spread: dict[str, np.ndarray], alive: np.ndarray) -> dict:
    """Distribution of the decoder spread over the alive features."""
    ge, half = spread["ge_threshold"][alive], spread["for_half_norm"][alive]
    if ge.size == 0:
        return {"alive_features": 0}
    q = lambda v: {p: float(np.percentile(v, p)) for p in (10, 50, 90)}  # noqa: E731
    return {"alive_features": int(ge.size),
            "decoder_neurons_ge_0.1": q(ge), "neurons_for_half_norm": q(half),
            "share_one_neuron_holds_half": round(float((half == 1).mean()), 4),
            "share_ge_10_neurons": round(float((ge >= 10).mean()), 4)}


# ------------------------------------------------------------------------------------------------
# Thresholded comparisons
# ------------------------------------------------------------------------------------------------


def _w(w: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if w is None else np.asarray(w, dtype=np.float64)


def sensitivity_threshold(a: np.ndarray, pos: np.ndarray, s: float, w: np.ndarray | None = None) -> float:
    """The threshold τ at which the unit fires (a > τ) on a share >= s of the proxy-positive tokens (by weight
    w, counts when None), as high as possible: just below the activation at which the positives' cumulative
    share, from the largest activation down, first reaches s."""
    ap = a[pos]
    order = np.argsort(-ap, kind="stable")
    ap, wp = ap[order], _w(None if w is None else w[pos], ap.size)[order]
    if ap.size == 0 or s <= 0 or wp.sum() <= 0:
        return float("inf")
    m = int(np.searchsorted(np.cumsum(wp) / wp.sum(), s - 1e-12))  # first index whose share reaches s
    return float(np.nextafter(ap[min(m, ap.size - 1)], -np.inf))


def specificity_at(a: np.ndarray, pos: np.ndarray, tau: float, w: np.ndarray | None = None) -> float:
    """Share of the tokens with a > τ that are proxy-positive (by weight w; counts when None)."""
    above = a > tau
    if not above.any():
        return float("nan")
    if w is None:
        return float(pos[above].mean())
    wa = np.asarray(w, dtype=np.float64)[above]
    return float((wa * pos[above]).sum() / wa.sum())


def matched_specificity(fa: np.ndarray, na: np.ndarray, pos: np.ndarray, cap: float = 0.5,
                        w: np.ndarray | None = None) -> dict:
    """Specificity of a feature and a neuron at the same sensitivity s* (module docstring); by weight w."""
    if not pos.any():
        return {"sensitivity": float("nan"), "feature": float("nan"), "neuron": float("nan")}
    wp = _w(None if w is None else w[pos], int(pos.sum()))
    s = min(cap, float((wp * (fa[pos] > 0)).sum() / wp.sum()), float((wp * (na[pos] > 0)).sum() / wp.sum()))
    if s <= 0:
        return {"sensitivity": 0.0, "feature": float("nan"), "neuron": float("nan")}
    return {"sensitivity": round(s, 4),
            "feature": round(specificity_at(fa, pos, sensitivity_threshold(fa, pos, s, w), w), 4),
            "neuron": round(specificity_at(na, pos, sensitivity_threshold(na, pos, s, w), w), 4)}


def mass_share(acts: np.ndarray, on: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Per unit (columns of acts, or one unit's (n,) activations): the share of its activation mass on the
    points `on` (a context's tokens; a proxy's positive tokens: the specificity of proxies.py), 0 for a unit
    that never fires; points weighted by w when given."""
    if w is not None:
        w = np.asarray(w, dtype=np.float64)
        acts = acts * (w[:, None] if acts.ndim == 2 else w)
    total = acts.sum(axis=0, dtype=np.float64)
    inside = acts[on].sum(axis=0, dtype=np.float64)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)


def pearson(a: np.ndarray, b: np.ndarray, constant: float = 0.0, w: np.ndarray | None = None) -> float:
    """Pearson correlation of two activation (or proxy) vectors, weighted by w when given; `constant` when
    either is constant."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if w is None:
        if a.std() == 0 or b.std() == 0:
            return constant
        return float(np.corrcoef(a, b)[0, 1])
    w = np.asarray(w, dtype=np.float64) / np.sum(w)
    da, db = a - w @ a, b - w @ b
    va, vb = w @ (da * da), w @ (db * db)
    if va <= 0 or vb <= 0:
        return constant
    return float((w @ (da * db)) / np.sqrt(va * vb))


def bootstrap_r(units: np.ndarray, proxy: np.ndarray, docs: np.ndarray, w: np.ndarray | None = None,
                n_boot: int = 200, seed: int = 0, level: float = 0.9) -> dict:
    """Document-level bootstrap of the Pearson r of each unit (columns of units, (n, k)) with the proxy, and of
    r(unit 0) - r(unit 1): resample the held-out documents with replacement (a point's weight times its
    document's multiplicity), `level` percentile intervals. The units are the ones chosen on all the points
    (the choice is not redone per sample)."""
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(docs, return_inverse=True)
    base = _w(w, docs.size)
    rs = np.empty((n_boot, units.shape[1]))
    for b in range(n_boot):
        mult = np.bincount(rng.integers(0, uniq.size, uniq.size), minlength=uniq.size)[inv]
        rs[b] = [pearson(units[:, c], proxy, w=base * mult) for c in range(units.shape[1])]
    q = lambda v: [round(float(x), 4) for x in np.percentile(v, [50 * (1 - level), 50 * (1 + level)])]  # noqa: E731
    out = {f"unit{c}_r": q(rs[:, c]) for c in range(units.shape[1])}
    if units.shape[1] >= 2:
        out["gap"] = q(rs[:, 0] - rs[:, 1])
    return out


def mix_weights(subset: np.ndarray, subsets: list[str], target: dict[str, float]) -> tuple[np.ndarray, dict]:
    """Per-point weights that give each corpus subset its `target` share (the training mix, mix.mix_shares) of
    the evaluation points: w = target_s / (points of s / n), so mean(w) = 1 when every subset is present.

    The paper measures its proxies on its training data, where Arabic is ~0.13% of the tokens; evaluating on
    the natural validation split (6-15% of rare tokens) forgives a neuron every firing off its context
    (specificity TP / (TP + FP) with TP scaled by the context's share). Weighting keeps the same tokens
    for every arm and measures each arm at its own training distribution."""
    n = subset.size
    counts = np.bincount(subset, minlength=len(subsets)).astype(np.float64)
    per = np.array([target.get(s, 0.0) / (counts[c] / n) if counts[c] > 0 else 0.0
                    for c, s in enumerate(subsets)])
    return per[subset], {s: round(float(per[c]), 6) for c, s in enumerate(subsets)}


# ------------------------------------------------------------------------------------------------
# The comparison for one dictionary
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def features_vs_neurons(store, sae, val, llr: dict[str, np.ndarray], n_points: int, batch_size: int = 8192,
                        feature_counts: np.ndarray | None = None, target_shares: dict[str, float] | None = None) -> dict:
    """The module docstring's numbers for every proxy, and the decoder spread over all alive features.

    store: held-out activation store; sae: the dictionary; val: the token stream the store was sampled from;
    llr: proxies.llr_tables; feature_counts: firings per feature (alive = > 0; default: fired on these points).
    target_shares ({subset: share}, the training mix): the same numbers again under "at_training_mix", with the
    points weighted to those shares (mix_weights), units chosen anew under the weights."""
    names = [k for k in px.PROXY_NAMES if k in llr]
    index = store.index()
    tids = px.point_tokens(index, val.tokens, n_points)
    subset = val.doc_subset[index["doc"][:n_points]].astype(np.int64)
    points = np.stack([px.proxy_value(llr[k])[tids] for k in names], axis=1).astype(np.float32)
    neurons = store.read(0, n_points).numpy()  # (n, d_mlp): read once, the chosen features computed from it
    W_d = sae.W_d.detach().cpu().numpy()
    spread = decoder_spread(W_d)
    ctx = {k: (subset == val.subsets.index(PROXY_SUBSET[k]) if PROXY_SUBSET.get(k) in val.subsets
               else np.zeros(n_points, bool)) for k in names}
    pos = {k: llr[k][tids] > 0 for k in names}
    w, per_subset = mix_weights(subset, val.subsets, target_shares) if target_shares is not None else (None, None)
    # one pass over the neurons already read: unweighted, and weighted to the training mix when asked
    res, *res_w = px.match_proxies_weighted(ArrayStore(torch.from_numpy(neurons)), points,
                                            {"features": sae.encode, "neurons": lambda x: x}, n_points, batch_size,
                                            [None] + ([w] if w is not None else []))
    alive = (feature_counts > 0) if feature_counts is not None else (res["features"]["n_fire"] > 0)
    out = {"n_points": int(n_points), "proxies": {}, "decoder_spread_alive": spread_summary(spread, alive)}
    docs = np.asarray(index["doc"][:n_points])
    out["proxies"] = _compare(sae, neurons, points, names, res, spread, ctx, pos, batch_size, None, docs)
    if w is not None:
        out["at_training_mix"] = {"target_shares": {s: round(float(v), 6) for s, v in target_shares.items()},
                                  "weights": per_subset,
                                  "proxies": _compare(sae, neurons, points, names, res_w[0], spread, ctx, pos,
                                                      batch_size, w, docs)}
    return out


def _compare(sae, neurons, points, names, res, spread, ctx, pos, batch_size, w, docs) -> dict:
    """Per proxy: the best feature and neuron of `res` (match_proxies), the neuron nearest the feature, the
    decoder spread, specificity at matched sensitivity, dedicated neurons, and 90% document-bootstrap
    intervals of the feature's r, the best neuron's r and their gap (docs: each point's document); points
    weighted by w if given."""
    n_points = neurons.shape[0]
    best_f = [px.best_match(res["features"], j) for j in range(len(names))]
    best_n = [px.best_match(res["neurons"], j) for j in range(len(names))]
    chosen = px.feature_columns(sae, [b["index"] for b in best_f])
    fa = np.concatenate([chosen(torch.from_numpy(neurons[s:s + batch_size])).numpy()
                         for s in range(0, n_points, batch_size)])  # in the chunks of unit_activations
    # neuron most correlated with each chosen feature (streamed Pearson, proxies.ProxyStats)
    stats = px.ProxyStats(neurons.shape[1], fa.shape[1])
    for s in range(0, n_points, batch_size):
        ws = None if w is None else torch.from_numpy(np.asarray(w[s:s + batch_size], dtype=np.float32))
        stats.update(torch.from_numpy(neurons[s:s + batch_size]), torch.from_numpy(fa[s:s + batch_size]), ws)
    corr = stats.result()["pearson"]  # (d_mlp, n_chosen)
    out = {}
    for j, k in enumerate(names):
        i = best_f[j]["index"]
        near = int(np.argmax(corr[:, j]))
        share = mass_share(neurons, ctx[k], w)
        out[k] = {
            "feature": i, "feature_r": round(best_f[j]["pearson"], 4),
            "feature_specificity": round(best_f[j]["specificity"], 4),
            "best_neuron": best_n[j]["index"], "best_neuron_r": round(best_n[j]["pearson"], 4),
            "best_neuron_specificity": round(best_n[j]["specificity"], 4),
            "nearest_neuron": near, "nearest_neuron_corr": round(float(corr[near, j]), 4),
            "nearest_neuron_r": round(pearson(neurons[:, near], points[:, j], w=w), 4),
            "decoder_neurons_ge_0.1": int(spread["ge_threshold"][i]),
            "neurons_for_half_norm": int(spread["for_half_norm"][i]),
            "specificity_at_matched_sensitivity": matched_specificity(fa[:, j], neurons[:, best_n[j]["index"]],
                                                                      pos[k], w=w),
            "dedicated_neurons": int((share >= DEDICATED_MASS).sum()),
            "feature_mass_on_context": round(float(mass_share(fa[:, j], ctx[k], w)), 4),
            "context_tokens": int(ctx[k].sum()), "proxy_positive_tokens": int(pos[k].sum()),
        }
        ci = bootstrap_r(np.stack([fa[:, j], neurons[:, best_n[j]["index"]]], axis=1), points[:, j], docs, w)
        out[k]["bootstrap_90"] = {"feature_r": ci["unit0_r"], "best_neuron_r": ci["unit1_r"],
                                  "feature_minus_neuron": ci["gap"]}
    return out


def headline(fvn: dict) -> dict:
    """summary.json headline "features_vs_neurons": per proxy the five numbers the issue names."""
    keys = ("feature_r", "best_neuron_r", "nearest_neuron_r", "decoder_neurons_ge_0.1", "neurons_for_half_norm")
    return {k: {key: v[key] for key in keys} for k, v in fvn["proxies"].items()}


def blind_unigram_losses(val, log_p: np.ndarray) -> dict[str, float]:
    """Per subset: the cross-entropy of its validation tokens under a context-blind unigram model log_p
    (lm.train.unigram_log_probs(train)["overall"]: one distribution for the whole corpus, natural mix)."""
    tokens, code = np.asarray(val.tokens, dtype=np.int64), val.subset_codes()
    return {name: round(float(-log_p[tokens[code == c]].mean()), 5)
            for c, name in enumerate(val.subsets) if (code == c).any()}


def context_recognized(subsets_report: dict, subset: str, margin: float = 1.0) -> bool:
    """The model predicts the subset's tokens at least `margin` nats better than the context-blind unigram
    (blind_unigram_loss, added to the report by dose_response): it knows it is in the context, even where the
    context's text is close to random (DNA, base64) and the subset's own unigram is near the best possible."""
    row = subsets_report.get(subset)
    return bool(row is not None and row.get("blind_unigram_loss") is not None
                and row["loss"] < row["blind_unigram_loss"] - margin)


def context_learned(subsets_report: dict, subset: str) -> bool:
    """The model's validation loss on the subset is below the subset's unigram loss (lm.subset_report)."""
    row = subsets_report.get(subset)
    return bool(row is not None and "unigram_loss" in row and row["loss"] < row["unigram_loss"])
