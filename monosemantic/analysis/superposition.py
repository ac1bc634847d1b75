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
    context_learned      the transformer's validation loss on the subset is below the subset's unigram loss

A neuron that is dedicated to a context is as monosemantic as any feature; the paper's regime is the one where
the context is too rare to get one. The dose-response experiment (dose_response.py) varies the rare subsets'
share of the training mix (mix.py) and measures all of the above for each arm.
"""

from __future__ import annotations

import numpy as np
import torch

from monosemantic.analysis import proxies as px  # proxy -> the corpus subset whose documents are that context
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


def sensitivity_threshold(a: np.ndarray, pos: np.ndarray, s: float) -> float:
    """The threshold τ at which the unit fires (a > τ) on a share >= s of the proxy-positive tokens, as high
    as possible: the ceil(s·n)-th largest activation on positive tokens, just below it."""
    ap = np.sort(a[pos])[::-1]
    m = int(np.ceil(s * ap.size))
    if m == 0 or ap.size == 0:
        return float("inf")
    return float(np.nextafter(ap[m - 1], -np.inf))


def specificity_at(a: np.ndarray, pos: np.ndarray, tau: float) -> float:
    """Share of the tokens with a > τ that are proxy-positive (counts)."""
    above = a > tau
    return float(pos[above].mean()) if above.any() else float("nan")


def matched_specificity(fa: np.ndarray, na: np.ndarray, pos: np.ndarray, cap: float = 0.5) -> dict:
    """Specificity of a feature and a neuron at the same sensitivity s* (module docstring)."""
    if not pos.any():
        return {"sensitivity": float("nan"), "feature": float("nan"), "neuron": float("nan")}
    s = min(cap, float((fa[pos] > 0).mean()), float((na[pos] > 0).mean()))
    if s <= 0:
        return {"sensitivity": 0.0, "feature": float("nan"), "neuron": float("nan")}
    return {"sensitivity": round(s, 4),
            "feature": round(specificity_at(fa, pos, sensitivity_threshold(fa, pos, s)), 4),
            "neuron": round(specificity_at(na, pos, sensitivity_threshold(na, pos, s)), 4)}


def mass_share(acts: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Per unit (columns of acts, or one unit's (n,) activations): the share of its activation mass on the
    points `on` (a context's tokens; a proxy's positive tokens: the specificity of proxies.py), 0 for a unit
    that never fires."""
    total = acts.sum(axis=0, dtype=np.float64)
    inside = acts[on].sum(axis=0, dtype=np.float64)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), 0.0)


def pearson(a: np.ndarray, b: np.ndarray, constant: float = 0.0) -> float:
    """Pearson correlation of two activation (or proxy) vectors; `constant` when either is constant."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return constant
    return float(np.corrcoef(a, b)[0, 1])


# ------------------------------------------------------------------------------------------------
# The comparison for one dictionary
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def features_vs_neurons(store, sae, val, llr: dict[str, np.ndarray], n_points: int, batch_size: int = 8192,
                        feature_counts: np.ndarray | None = None) -> dict:
    """The module docstring's numbers for every proxy, and the decoder spread over all alive features.

    store: held-out activation store; sae: the dictionary; val: the token stream the store was sampled from;
    llr: proxies.llr_tables; feature_counts: firings per feature (alive = > 0; default: fired on these points)."""
    names = [k for k in px.PROXY_NAMES if k in llr]
    index = store.index()
    tids = px.point_tokens(index, val.tokens, n_points)
    subset = val.doc_subset[index["doc"][:n_points]].astype(np.int64)
    points = np.stack([px.proxy_value(llr[k])[tids] for k in names], axis=1).astype(np.float32)
    res = px.match_proxies(store, points, {"features": sae.encode, "neurons": lambda x: x}, n_points, batch_size)
    best_f = [px.best_match(res["features"], j) for j in range(len(names))]
    best_n = [px.best_match(res["neurons"], j) for j in range(len(names))]
    neurons = store.read(0, n_points).numpy()  # (n, d_mlp): read once, the chosen features computed from it
    chosen = px.feature_columns(sae, [b["index"] for b in best_f])
    fa = np.concatenate([chosen(torch.from_numpy(neurons[s:s + batch_size])).numpy()
                         for s in range(0, n_points, batch_size)])  # in the chunks of unit_activations
    # neuron most correlated with each chosen feature (streamed Pearson, proxies.ProxyStats)
    stats = px.ProxyStats(neurons.shape[1], fa.shape[1])
    for s in range(0, n_points, batch_size):
        stats.update(torch.from_numpy(neurons[s:s + batch_size]), torch.from_numpy(fa[s:s + batch_size]))
    corr = stats.result()["pearson"]  # (d_mlp, n_chosen)
    W_d = sae.W_d.detach().cpu().numpy()
    spread = decoder_spread(W_d)
    alive = (feature_counts > 0) if feature_counts is not None else (res["features"]["n_fire"] > 0)
    out = {"n_points": int(n_points), "proxies": {}, "decoder_spread_alive": spread_summary(spread, alive)}
    for j, k in enumerate(names):
        pos = llr[k][tids] > 0
        i = best_f[j]["index"]
        near = int(np.argmax(corr[:, j]))
        sub = PROXY_SUBSET.get(k)
        in_ctx = subset == val.subsets.index(sub) if sub in val.subsets else np.zeros(n_points, bool)
        share = mass_share(neurons, in_ctx)
        out["proxies"][k] = {
            "feature": i, "feature_r": round(best_f[j]["pearson"], 4),
            "feature_specificity": round(best_f[j]["specificity"], 4),
            "best_neuron": best_n[j]["index"], "best_neuron_r": round(best_n[j]["pearson"], 4),
            "best_neuron_specificity": round(best_n[j]["specificity"], 4),
            "nearest_neuron": near, "nearest_neuron_corr": round(float(corr[near, j]), 4),
            "nearest_neuron_r": round(pearson(neurons[:, near], points[:, j]), 4),
            "decoder_neurons_ge_0.1": int(spread["ge_threshold"][i]),
            "neurons_for_half_norm": int(spread["for_half_norm"][i]),
            "specificity_at_matched_sensitivity": matched_specificity(fa[:, j], neurons[:, best_n[j]["index"]], pos),
            "dedicated_neurons": int((share >= DEDICATED_MASS).sum()),
            "context_tokens": int(in_ctx.sum()), "proxy_positive_tokens": int(pos.sum()),
        }
    return out


def headline(fvn: dict) -> dict:
    """summary.json headline "features_vs_neurons": per proxy the five numbers the issue names."""
    keys = ("feature_r", "best_neuron_r", "nearest_neuron_r", "decoder_neurons_ge_0.1", "neurons_for_half_norm")
    return {k: {key: v[key] for key in keys} for k, v in fvn["proxies"].items()}


def context_learned(subsets_report: dict, subset: str) -> bool:
    """The model's validation loss on the subset is below the subset's unigram loss (lm.subset_report)."""
    row = subsets_report.get(subset)
    return bool(row is not None and "unigram_loss" in row and row["loss"] < row["unigram_loss"])
