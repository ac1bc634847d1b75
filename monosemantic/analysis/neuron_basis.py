"""A proxy's feature in the neuron basis (paper Fig. 5: the Arabic feature), and how polysemantic the neurons it
is made of are.

For the best-matching feature i of a proxy (stage proxies) and its decoder vector d_i over the MLP neurons:

    neurons_for_half_norm, neurons_for_90pct_norm   the smallest m whose m largest d_ij² hold ½ (0.9) of ‖d_i‖²
                                                    (superposition.neurons_for_norm_share)

and, for the feature and the top_k neurons with the largest |d_ij|, where their activation a goes on the first
max_points validation points:

    subset_share        Σ_{points in subset s} a / Σ a over the corpus subsets (English, Code, Arabic, ...)
    effective_subsets   exp(−Σ_s share_s log share_s): 1 for a unit whose mass lies in one subset only
    proxy_mass_share    the share of the mass on proxy-positive tokens (the specificity of proxies.py)
    proxy_pearson       Pearson r with the proxy value (NaN for a unit that is constant on these points)
    fires_on            the share of the points where the unit fires

The paper's point: the feature is specific to its context while the neurons it is spread over fire across
many subsets. `analyse` adds the features-vs-neurons comparison for all four proxies
(superposition.features_vs_neurons).
"""

from __future__ import annotations

import numpy as np
import torch

from monosemantic.analysis import proxies as px
from monosemantic.analysis.superposition import (features_vs_neurons, headline, mass_share,
                                                 neurons_for_norm_share, pearson)


def subset_spread(mass: np.ndarray) -> dict:
    """{"share": mass per subset / total mass, "effective_subsets": exp(entropy of the shares)}."""
    share = mass / max(mass.sum(), 1e-300)
    nz = share[share > 0]
    return {"share": share, "effective_subsets": float(np.exp(-(nz * np.log(nz)).sum())) if nz.size else 0.0}


def unit_profile(acts: np.ndarray, subset: np.ndarray, subsets: list[str], proxy: np.ndarray,
                 positive: np.ndarray) -> dict:
    """The module docstring's per-unit numbers from one unit's activations on n points (subset: each point's
    subset code; proxy: each point's proxy value; positive: its LLR > 0)."""
    a = acts.astype(np.float64)
    s = subset_spread(np.bincount(subset, weights=a, minlength=len(subsets)))
    return {"subset_share": {name: round(float(s["share"][k]), 4) for k, name in enumerate(subsets)},
            "effective_subsets": round(s["effective_subsets"], 3),
            "proxy_mass_share": round(float(mass_share(a, positive)), 4),
            "proxy_pearson": round(pearson(a, proxy, constant=float("nan")), 4),
            "fires_on": round(float((a > 0).mean()), 4)}


@torch.no_grad()
def analyse(dictionary, proxy: str, match: dict, val, llr: dict[str, np.ndarray], cfg,
            feature_counts: np.ndarray | None = None, target_shares: dict[str, float] | None = None) -> tuple[dict, dict]:
    """Stage neurons_vs_features for `dictionary` (inputs.Dictionary) and `proxy`, whose best feature is
    match["feature"]["index"] (inputs.load_proxy_matches(...)[proxy]); llr: every proxy's table; feature_counts:
    firings per feature during training (alive = > 0; None: fired on these points); target_shares: the
    training mix's subset shares (mix.mix_shares), for the comparison at the training mix.

    Returns (metrics/analysis/neurons_vs_features.json, Fig. 5's data: "weights" d_i, "top" neurons,
    "mass" {unit: subset shares}, "subsets", "title")."""
    i = match["feature"]["index"]
    W_d = dictionary.sae.W_d.detach().numpy()
    w = W_d[:, i].astype(np.float64)
    top = [int(j) for j in np.argsort(-np.abs(w))[:cfg.top_k]]
    n = min(cfg.max_points, dictionary.store.n_points)
    index = dictionary.store.index()
    subset = val.doc_subset[index["doc"][:n]].astype(np.int64)
    tids = px.point_tokens(index, val.tokens, n)
    p, pos = px.proxy_value(llr[proxy])[tids], llr[proxy][tids] > 0
    feature = px.feature_columns(dictionary.sae, [i])
    acts = px.unit_activations(dictionary.store, n, lambda x: torch.cat([feature(x), x[:, top]], dim=1), cfg.batch_size)
    units = [f"feature {i}"] + [f"neuron {j}" for j in top]
    rows = {u: unit_profile(a, subset, val.subsets, p, pos) for u, a in zip(units, acts.T)}
    for j in top:
        rows[f"neuron {j}"]["decoder_weight"] = round(float(w[j]), 4)
    out = {"run": dictionary.name, "proxy": proxy, "feature": i,
           "neurons_for_half_norm": int(neurons_for_norm_share(W_d, 0.5)[i]),
           "neurons_for_90pct_norm": int(neurons_for_norm_share(W_d, 0.9)[i]),
           "top_neurons": top, "units": rows}
    top_rows = [rows[f"neuron {j}"] for j in top]
    out["headline"] = {f"{proxy}_feature_vs_neurons": {
        "neurons_for_half_norm": out["neurons_for_half_norm"],
        "feature_proxy_mass_share": rows[units[0]]["proxy_mass_share"],
        "top_neurons_median_proxy_mass_share": float(np.median([r["proxy_mass_share"] for r in top_rows])),
        "feature_effective_subsets": rows[units[0]]["effective_subsets"],
        "top_neurons_median_effective_subsets": float(np.median([r["effective_subsets"] for r in top_rows])),
    }}
    fvn = out["features_vs_neurons"] = features_vs_neurons(dictionary.store, dictionary.sae, val, llr, n,
                                                           cfg.batch_size, feature_counts, target_shares)
    out["headline"]["features_vs_neurons"] = headline(fvn)
    if "at_training_mix" in fvn:
        out["headline"]["features_vs_neurons_at_training_mix"] = headline(fvn["at_training_mix"])
    out["headline"]["decoder_spread_alive"] = fvn["decoder_spread_alive"]
    figure = {"weights": w, "top": top[:5], "subsets": val.subsets,
              "mass": {u: np.array([rows[u]["subset_share"][s] for s in val.subsets]) for u in units[:8]},
              "title": f"{dictionary.name} {px.HYPOTHESES[proxy].name} feature {i}"}
    return out, figure
