"""Feature splitting (paper: "Feature splitting"): dictionaries of growing size learned on the same
activations; features of a small dictionary split into families of features in a larger one.

* Decoder cosine similarity: for each feature of the larger dictionary, the largest cosine similarity of its
  decoder vector with any decoder vector of the smaller one (its "parent") — `nearest_parents`.
* UMAP co-embedding of all decoder vectors of the dictionaries (umap-learn, cosine metric, n_neighbors 15 as
  the paper, fixed random_state) — `umap_embed`.
* Counting the features of one family per dictionary (base64 in the paper: 1 feature in A/0, 3 in A/1, many
  in A/2) with a documented rule — `count_family`: a feature belongs to the family when at least
  `min_specificity` of its activation mass lies on the family's proxy-positive tokens and it fires on at least
  `min_active` validation tokens.

`analyse` is stage splitting: for dictionaries of growing size on one model, the base64 family per size, each
feature's nearest parent in the next smaller dictionary, and the UMAP of all their decoder vectors (paper Figs.
1 and 9).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from monosemantic.analysis import proxies as px
from monosemantic.core.config import ConfigError, SAERun


def unit_columns(W_d: torch.Tensor | np.ndarray) -> np.ndarray:
    """Decoder vectors as unit-norm rows (F, d) from W_d (d, F)."""
    w = torch.as_tensor(W_d).detach().float().T
    return (w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of a with every row of b."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def nearest_parents(large: np.ndarray, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `large` (F_l, d): (index of the most similar row of `small`, that cosine)."""
    c = cosine_matrix(large, small)
    idx = c.argmax(axis=1)
    return idx, c[np.arange(len(idx)), idx]


def count_family(specificity: np.ndarray, n_fire: np.ndarray, min_specificity: float, min_active: int) -> np.ndarray:
    """Indices of the features counted in a family (see module docstring)."""
    return np.flatnonzero((specificity >= min_specificity) & (n_fire >= min_active))


def umap_embed(vectors: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
               n_epochs: int | None = None) -> np.ndarray:
    """2-D UMAP of the rows of `vectors` (cosine metric). Deterministic for a fixed seed (single-threaded).
    n_epochs None: umap-learn's default (500 below 10,000 points)."""
    import warnings

    import umap  # umap-learn; imported here, it compiles with numba on first use

    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", random_state=seed,
                        n_components=2, n_epochs=n_epochs, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "n_jobs overridden by random_state": intended
        return reducer.fit_transform(np.asarray(vectors, dtype=np.float32))


# ------------------------------------------------------------------------------------------------
# Stage splitting (paper Figs. 1 and 9)
# ------------------------------------------------------------------------------------------------


def splitting_model(runs: dict[str, SAERun]) -> tuple[list[str], str]:
    """The runs of analysis.splitting_runs ({name: its sae_runs entry}) ordered by size, and the one model they
    share (a ConfigError otherwise)."""
    models = {run.model for run in runs.values()}
    if len(models) != 1:
        raise ConfigError(f"analysis.splitting_runs must share one model, got {sorted(models)}")
    return sorted(runs, key=lambda r: runs[r].n_features), models.pop()


@torch.no_grad()
def analyse(saes: dict, sizes: dict[str, int], store, val, llr_base64: np.ndarray, cfg) -> tuple[dict, dict]:
    """Dictionaries `saes` ({run: SAE}, smallest first; sizes: {run: n_features}) on their model's val store.

    Returns (metrics/analysis/splitting.json, the figures' data: "embedding" (UMAP of every decoder vector,
    smallest dictionary first), "groups" (the dictionary of each row), "runs", "family" ({run: base64 features}),
    "parents" ({larger run: (nearest parent, its cosine) per feature}), "offsets" (first row of each run),
    "counts" ({run: family size}))."""
    t0 = time.perf_counter()
    runs = list(saes)
    n = min(cfg.max_points, store.n_points)
    tids = px.point_tokens(store.index(), val.tokens, n)
    points = px.proxy_value(llr_base64)[tids][:, None].astype(np.float32)
    stats = px.match_proxies(store, points, {r: s.encode for r, s in saes.items()}, n, cfg.batch_size)
    t_enc = time.perf_counter() - t0

    family, counts, per_run = {}, {}, {}
    for r in runs:
        s = stats[r]
        fam = family[r] = count_family(s["specificity"][:, 0], s["n_fire"], cfg.base64_min_specificity,
                                       cfg.base64_min_active)
        counts[str(sizes[r])] = int(len(fam))
        order = fam[np.argsort(-s["pearson"][fam, 0])]
        per_run[r] = {"n_features": sizes[r], "base64_features": [int(i) for i in order],
                      "base64_pearson": [round(float(s["pearson"][i, 0]), 4) for i in order],
                      "base64_specificity": [round(float(s["specificity"][i, 0]), 4) for i in order],
                      "best_base64_pearson": float(s["pearson"][:, 0].max()),
                      "alive": int((s["n_fire"] > 0).sum())}

    vecs = {r: unit_columns(saes[r].W_d) for r in runs}
    parents, pairs = {}, {}
    for small, large in zip(runs, runs[1:]):
        idx, cos = parents[large] = nearest_parents(vecs[large], vecs[small])
        fam_l = family[large]
        pairs[f"{small}->{large}"] = {
            "median_max_cosine": float(np.median(cos)),
            "frac_max_cosine_above_0.7": float((cos > 0.7).mean()),
            "base64_parent_in_family": int(np.isin(idx[fam_l], family[small]).sum()),
            "base64_median_parent_cosine": float(np.median(cos[fam_l])) if len(fam_l) else None,
        }

    t_umap = time.perf_counter()
    emb = umap_embed(np.concatenate([vecs[r] for r in runs]), cfg.umap_n_neighbors, cfg.umap_min_dist,
                     cfg.umap_seed, cfg.umap_epochs)
    t_umap = time.perf_counter() - t_umap
    out = {"runs": runs, "n_points": n,
           "rule": {"min_specificity": cfg.base64_min_specificity, "min_active": cfg.base64_min_active},
           "per_run": per_run, "pairs": pairs, "headline": {"base64_features_by_size": counts},
           "seconds": {"encode": round(t_enc, 1), "umap": round(t_umap, 1),
                       "total": round(time.perf_counter() - t0, 1)}}
    figure = {"embedding": emb, "groups": np.concatenate([np.full(len(vecs[r]), g) for g, r in enumerate(runs)]),
              "runs": runs, "family": family, "parents": parents,
              "offsets": dict(zip(runs, np.cumsum([0] + [len(vecs[r]) for r in runs[:-1]]).tolist())),
              "counts": {r: counts[str(sizes[r])] for r in runs}}
    return out, figure
