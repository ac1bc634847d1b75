"""Stage splitting: feature splitting across dictionary sizes (A/0 ... A/1).

    python stages/splitting.py

For the dictionaries analysis.splitting_runs (same model, growing size): decoder cosine similarity of each
feature with its nearest feature in the next smaller dictionary; a UMAP co-embedding of all their decoder
vectors (cosine metric, n_neighbors analysis.umap_n_neighbors, random_state analysis.umap_seed); and the
base64 feature family per size, counted by the rule of monosemantic/splitting.py: at least
analysis.base64_min_specificity of the feature's activation mass on base64-proxy-positive tokens and at least
analysis.base64_min_active firing tokens among the first analysis.max_points validation points. Writes
metrics/analysis/splitting.json (headline base64_features_by_size), artifacts/analysis/umap.npz,
paper_figures/fig1_umap.png and fig9_feature_splitting.png.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monosemantic import analysis_figures as figs  # noqa: E402
from monosemantic import proxies as px  # noqa: E402
from monosemantic import splitting as sp  # noqa: E402
from monosemantic.config import load_params  # noqa: E402
from monosemantic.config import ConfigError  # noqa: E402
from monosemantic.sae import SparseAutoencoder  # noqa: E402
from monosemantic.store import ActivationStore, StoreError  # noqa: E402
from monosemantic.tokenizer import TokenizerError  # noqa: E402
from monosemantic.utils import atomic_path, fail, write_json  # noqa: E402


def main() -> None:
    t0 = time.perf_counter()
    try:
        params = load_params()
        cfg = params.analysis
        runs = list(cfg.splitting_runs)
        models = {params.sae_runs[r].model for r in runs}
        if len(models) != 1:
            fail(f"analysis.splitting_runs must share one model, got {sorted(models)}")
        model = models.pop()
        runs.sort(key=lambda r: params.sae_runs[r].n_features)
        store = ActivationStore(f"artifacts/activations/{model}/val")
        saes = {r: SparseAutoencoder.load(f"artifacts/sae/{r}").eval() for r in runs}
        tok, val, llr = px.load_proxy_tables(names=["base64"])
    except (ConfigError, StoreError, TokenizerError, FileNotFoundError) as e:
        fail(str(e))
    torch.set_grad_enabled(False)
    n = min(cfg.max_points, store.n_points)
    tids = px.point_tokens(store.index(), val.tokens, n)
    points = px.proxy_value(llr["base64"])[tids][:, None].astype(np.float32)
    stats = px.match_proxies(store, points, {r: s.encode for r, s in saes.items()}, n, cfg.batch_size)
    t_enc = time.perf_counter() - t0

    family, counts, per_run = {}, {}, {}
    for r in runs:
        s = stats[r]
        fam = sp.count_family(s["specificity"][:, 0], s["n_fire"], cfg.base64_min_specificity, cfg.base64_min_active)
        family[r] = fam
        size = str(params.sae_runs[r].n_features)
        counts[size] = int(len(fam))
        order = fam[np.argsort(-s["pearson"][fam, 0])]
        per_run[r] = {"n_features": params.sae_runs[r].n_features, "base64_features": [int(i) for i in order],
                      "base64_pearson": [round(float(s["pearson"][i, 0]), 4) for i in order],
                      "base64_specificity": [round(float(s["specificity"][i, 0]), 4) for i in order],
                      "best_base64_pearson": float(s["pearson"][:, 0].max()),
                      "alive": int((s["n_fire"] > 0).sum())}

    vecs = {r: sp.unit_columns(saes[r].W_d) for r in runs}
    parents, pairs = {}, {}
    for small, large in zip(runs, runs[1:]):
        idx, cos = sp.nearest_parents(vecs[large], vecs[small])
        parents[large] = (idx, cos)
        fam_l = family[large]
        pairs[f"{small}->{large}"] = {
            "median_max_cosine": float(np.median(cos)),
            "frac_max_cosine_above_0.7": float((cos > 0.7).mean()),
            "base64_parent_in_family": int(np.isin(idx[fam_l], family[small]).sum()),
            "base64_median_parent_cosine": float(np.median(cos[fam_l])) if len(fam_l) else None,
        }

    t_umap = time.perf_counter()
    allv = np.concatenate([vecs[r] for r in runs])
    groups = np.concatenate([np.full(len(vecs[r]), g) for g, r in enumerate(runs)])
    offsets = dict(zip(runs, np.cumsum([0] + [len(vecs[r]) for r in runs[:-1]]).tolist()))
    emb = sp.umap_embed(allv, cfg.umap_n_neighbors, cfg.umap_min_dist, cfg.umap_seed, cfg.umap_epochs)
    t_umap = time.perf_counter() - t_umap
    with atomic_path("artifacts/analysis/umap.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, embedding=emb, group=groups, runs=np.array(runs))
    figs.umap_figure(emb, groups, runs, "paper_figures/fig1_umap.png",
                     title=f"UMAP co-embedding of the decoder vectors of {', '.join(runs)} (paper Fig. 1)")
    figs.splitting_figure(emb, groups, runs, family, parents, offsets,
                          {r: counts[str(params.sae_runs[r].n_features)] for r in runs},
                          "paper_figures/fig9_feature_splitting.png")
    out = {"runs": runs, "n_points": n,
           "rule": {"min_specificity": cfg.base64_min_specificity, "min_active": cfg.base64_min_active},
           "per_run": per_run, "pairs": pairs,
           "headline": {"base64_features_by_size": counts},
           "seconds": {"encode": round(t_enc, 1), "umap": round(t_umap, 1), "total": round(time.perf_counter() - t0, 1)}}
    write_json("metrics/analysis/splitting.json", out)
    print(f"base64 features by size: {counts}; parent cosine medians: "
          f"{ {k: round(v['median_max_cosine'], 3) for k, v in pairs.items()} } ({out['seconds']})")


if __name__ == "__main__":
    main()
