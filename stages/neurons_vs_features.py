"""Stage neurons_vs_features: the Arabic feature in the neuron basis, and how polysemantic its neurons are.

    python stages/neurons_vs_features.py [RUN] [PROXY]     (defaults: analysis.run, arabic)

The best-matching feature of PROXY (metrics/analysis/proxies_RUN.json): its decoder vector d_i over the 512
neurons (paper Fig. 5); how concentrated it is (how many neurons hold half of ‖d_i‖²); and for the
analysis.top_k neurons with the largest |d_i| entries, where their activation mass goes: its share over the
corpus subsets of the validation points (English, Code, Arabic, ...), the effective number of subsets
exp(entropy), the share on the proxy's tokens and the neuron's Pearson r with the proxy, against the same
numbers for the feature. Writes metrics/analysis/neurons_vs_features.json and
paper_figures/fig5_neuron_basis.png. Also the paper's feature-vs-neuron comparison for all four proxies and the
decoder spread of every alive feature (monosemantic/superposition.py): headline "features_vs_neurons".
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monosemantic import analysis_figures as figs  # noqa: E402
from monosemantic import proxies as px  # noqa: E402
from monosemantic.config import load_params  # noqa: E402
from monosemantic.config import ConfigError  # noqa: E402
from monosemantic.sae import SparseAutoencoder  # noqa: E402
from monosemantic.store import ActivationStore, StoreError  # noqa: E402
from monosemantic.superposition import features_vs_neurons  # noqa: E402
from monosemantic.superposition import headline as fvn_headline  # noqa: E402
from monosemantic.tokenizer import TokenizerError  # noqa: E402
from monosemantic.utils import fail, write_json  # noqa: E402


def spread(mass: np.ndarray) -> dict:
    share = mass / max(mass.sum(), 1e-300)
    nz = share[share > 0]
    return {"share": share, "effective_subsets": float(np.exp(-(nz * np.log(nz)).sum())) if nz.size else 0.0}


def main(name: str | None, proxy: str) -> None:
    t0 = time.perf_counter()
    try:
        params = load_params()
        cfg = params.analysis
        name = name or cfg.run
        run = params.sae_runs[name]
        prox_path = Path(f"metrics/analysis/proxies_{name}.json")
        if not prox_path.exists():
            fail(f"{prox_path}: missing; run `python stages/proxies.py {name}` first")
        if proxy not in px.HYPOTHESES:
            fail(f"proxy {proxy!r} is not one of {', '.join(px.HYPOTHESES)}")
        prox = json.loads(prox_path.read_text())["proxies"][proxy]
        store = ActivationStore(f"artifacts/activations/{run.model}/val")
        sae = SparseAutoencoder.load(f"artifacts/sae/{name}").eval()
        tok, val, llr = px.load_proxy_tables(names=[proxy])
    except (ConfigError, StoreError, TokenizerError, FileNotFoundError, KeyError) as e:
        fail(str(e))
    torch.set_grad_enabled(False)
    i = prox["feature"]["index"]
    w = sae.W_d[:, i].detach().numpy().astype(np.float64)
    order = np.argsort(-np.abs(w))
    cum = np.cumsum(w[order] ** 2) / (w ** 2).sum()
    top = [int(j) for j in order[:cfg.top_k]]

    n = min(cfg.max_points, store.n_points)
    index = store.index()
    subset = val.doc_subset[index["doc"][:n]].astype(np.int64)
    n_sub = len(val.subsets)
    tids = px.point_tokens(index, val.tokens, n)
    p = px.proxy_value(llr[proxy])[tids]
    pos = llr[proxy][tids] > 0
    # activations of the feature and of the top neurons on every point
    fcol = px.feature_columns(sae, [i])
    acts = px.unit_activations(store, n, lambda x: torch.cat([fcol(x), x[:, top]], dim=1), cfg.batch_size)
    units = [f"feature {i}"] + [f"neuron {j}" for j in top]
    rows = {}
    for u, a in zip(units, acts.T):
        a = a.astype(np.float64)
        mass = np.bincount(subset, weights=a, minlength=n_sub)
        s = spread(mass)
        r = float(np.corrcoef(a, p)[0, 1]) if a.std() > 0 and p.std() > 0 else float("nan")
        rows[u] = {"subset_share": {val.subsets[k]: round(float(s["share"][k]), 4) for k in range(n_sub)},
                   "effective_subsets": round(s["effective_subsets"], 3),
                   "proxy_mass_share": round(float(a[pos].sum() / max(a.sum(), 1e-300)), 4),
                   "proxy_pearson": round(r, 4), "fires_on": round(float((a > 0).mean()), 4)}
    for j in top:
        rows[f"neuron {j}"]["decoder_weight"] = round(float(w[j]), 4)
    out = {"run": name, "proxy": proxy, "feature": i,
           "neurons_for_half_norm": int(np.searchsorted(cum, 0.5) + 1),
           "neurons_for_90pct_norm": int(np.searchsorted(cum, 0.9) + 1),
           "top_neurons": top, "units": rows}
    top_neurons = [rows[f"neuron {j}"] for j in top]
    out["headline"] = {"arabic_feature_vs_neurons" if proxy == "arabic" else f"{proxy}_feature_vs_neurons": {
        "neurons_for_half_norm": out["neurons_for_half_norm"],
        "feature_proxy_mass_share": rows[units[0]]["proxy_mass_share"],
        "top_neurons_median_proxy_mass_share": float(np.median([r["proxy_mass_share"] for r in top_neurons])),
        "feature_effective_subsets": rows[units[0]]["effective_subsets"],
        "top_neurons_median_effective_subsets": float(np.median([r["effective_subsets"] for r in top_neurons])),
    }}
    # The paper's comparison for all four proxies (superposition.py): best feature vs best neuron, the neuron
    # nearest the feature, decoder spread, specificity at matched sensitivity, dedicated neurons.
    _, _, llr_all = px.load_proxy_tables()
    counts_path = Path(f"artifacts/sae/{name}/feature_counts.npy")
    fvn = features_vs_neurons(store, sae, val, llr_all, n, cfg.batch_size,
                              np.load(counts_path) if counts_path.exists() else None)
    out["features_vs_neurons"] = fvn
    out["headline"]["features_vs_neurons"] = fvn_headline(fvn)
    out["headline"]["decoder_spread_alive"] = fvn["decoder_spread_alive"]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json("metrics/analysis/neurons_vs_features.json", out)
    mass = {u: np.array([rows[u]["subset_share"][s] for s in val.subsets]) for u in units[:8]}
    figs.neuron_basis_figure(w, top[:5], mass, val.subsets, f"{name} {px.HYPOTHESES[proxy].name} feature {i}",
                             "paper_figures/fig5_neuron_basis.png")
    print(json.dumps(out["headline"], indent=1), f"({out['seconds']}s)")


if __name__ == "__main__":
    if len(sys.argv) > 3:
        fail("usage: python stages/neurons_vs_features.py [RUN_NAME] [PROXY]")
    main(sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2] if len(sys.argv) > 2 else "arabic")
