"""Universality (paper: "Universality"): do two transformers trained from different seeds learn the same
features? For every unit u of dictionary A, the maximum over units v of dictionary B of the Pearson
correlation of their activations over the same validation tokens,

    maxcorr(u) = max_v corr(a_u, b_v),   corr = (E[a b] − E[a] E[b]) / (σ_a σ_b).

The activation stores of A, B (and the random model) hold the same tokens in the same order (activations.py),
so row n of each store is the same token.

Cost. The cross moments S = Σ_n a_n b_nᵀ (F_A × F_B) are all that is needed besides the per-unit sums. SAE
features are sparse (L0 ≪ F), so S is accumulated as a CSR sparse (F_A × chunk) times dense (chunk × F_B)
product, O(N · L0_A · F_B) instead of O(N · F_A · F_B); neurons (dense, 512) use a dense product. S is kept
in float64 only for dense inputs; for 4096 × 4096 features it is float32 (64 MB). Units that never fire (zero
variance) get NaN and are left out of the medians; `summarize` can also leave out units that fire on fewer
than min_active tokens (ultralow-density features, whose few firings correlate with nothing).

`analyse` is stage universality: features and neurons of two dictionaries, and the correlation of the logit
weights of each feature of A with those of its best match in B (paper Fig. 6).
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import numpy as np
import torch

from monosemantic.analysis import logit_weights as lw
from monosemantic.analysis.proxies import headline_key
from monosemantic.lm.store import StoreError

Encoder = Callable[[torch.Tensor], torch.Tensor]


class CrossMoments:
    """Streaming Σa, Σa², Σb, Σb² and Σ a bᵀ over chunks of paired activations."""

    def __init__(self, n_a: int, n_b: int, dtype=torch.float32):
        self.n = 0
        self.s_a = torch.zeros(n_a, dtype=torch.float64)
        self.s_aa = torch.zeros(n_a, dtype=torch.float64)
        self.s_b = torch.zeros(n_b, dtype=torch.float64)
        self.s_bb = torch.zeros(n_b, dtype=torch.float64)
        self.s_ab = torch.zeros(n_a, n_b, dtype=dtype)
        self.fire_a = torch.zeros(n_a, dtype=torch.int64)  # tokens on which each A unit is nonzero

    def update(self, a: torch.Tensor, b: torch.Tensor, sparse: bool | None = None) -> None:
        a, b = a.float(), b.float()
        self.n += a.shape[0]
        self.s_a += a.sum(0, dtype=torch.float64)
        self.s_aa += a.pow(2).sum(0, dtype=torch.float64)
        self.s_b += b.sum(0, dtype=torch.float64)
        self.s_bb += b.pow(2).sum(0, dtype=torch.float64)
        self.fire_a += (a != 0).sum(0)
        if sparse is None:
            sparse = (a != 0).float().mean().item() < 0.05
        if sparse:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # sparse CSR is "beta"
                aT = a.T.contiguous().to_sparse_csr()
                prod = aT @ b
        else:
            prod = a.T @ b
        self.s_ab += prod.to(self.s_ab.dtype)

    def correlation_rows(self, rows: slice) -> torch.Tensor:
        """Pearson correlations of A units `rows` with every B unit (float32, NaN for zero variance)."""
        n = self.n
        mu_a, mu_b = self.s_a[rows] / n, self.s_b / n
        sd_a = (self.s_aa[rows] / n - mu_a ** 2).clamp_min(0).sqrt()
        sd_b = (self.s_bb / n - mu_b ** 2).clamp_min(0).sqrt()
        cov = self.s_ab[rows].double() / n - mu_a[:, None] * mu_b[None, :]
        denom = sd_a[:, None] * sd_b[None, :]
        # relative variance floor: constant units (float rounding leaves ~1e-16 relative variance) are NaN
        ok = (sd_a[:, None] > 1e-6 * (mu_a.abs()[:, None] + 1e-12)) & (sd_b[None, :] > 1e-6 * (mu_b.abs()[None, :] + 1e-12))
        corr = torch.where(ok & (denom > 0), cov / denom.clamp_min(1e-300), torch.full_like(cov, float("nan")))
        return corr.clamp(-1, 1).float()

    def max_corr(self, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """For every A unit: (max correlation over B units, argmax); NaN/−1 for a constant A unit."""
        F = self.s_a.shape[0]
        best = np.full(F, np.nan, dtype=np.float64)
        arg = np.full(F, -1, dtype=np.int64)
        for s in range(0, F, chunk):
            c = self.correlation_rows(slice(s, min(s + chunk, F)))
            valid = ~torch.isnan(c)
            filled = torch.where(valid, c, torch.full_like(c, -np.inf))
            m, i = filled.max(dim=1)
            has = valid.any(dim=1)
            best[s:s + len(m)] = np.where(has.numpy(), m.double().numpy(), np.nan)
            arg[s:s + len(m)] = np.where(has.numpy(), i.numpy(), -1)
        return best, arg


@torch.no_grad()
def max_correlations(store_a, store_b, encode_a: Encoder, encode_b: Encoder, n_points: int,
                     batch_size: int = 8192, sparse: bool | None = None) -> dict[str, np.ndarray]:
    """Max correlation of every A unit with any B unit over the first n_points rows of both stores."""
    if store_a.n_points < n_points or store_b.n_points < n_points:
        raise ValueError(f"stores hold {store_a.n_points} and {store_b.n_points} points, fewer than {n_points}")
    moments = None
    for start in range(0, n_points, batch_size):
        stop = min(start + batch_size, n_points)
        a = encode_a(store_a.read(start, stop))
        b = encode_b(store_b.read(start, stop))
        if moments is None:
            dense_small = a.shape[1] * b.shape[1] <= 1 << 20
            moments = CrossMoments(a.shape[1], b.shape[1], torch.float64 if dense_small else torch.float32)
        moments.update(a, b, sparse)
    best, arg = moments.max_corr()
    return {"max_corr": best, "argmax": arg, "mean_activation": (moments.s_a / moments.n).numpy(),
            "n_fire": moments.fire_a.numpy()}


def summarize(max_corr: np.ndarray, n_fire: np.ndarray | None = None, min_active: int = 1) -> dict[str, float]:
    """Median / mean / quartiles of the max correlations over units that fired (non-NaN) on at least
    min_active tokens (n_fire: per-unit counts; None: every non-NaN unit)."""
    keep = ~np.isnan(max_corr)
    if n_fire is not None:
        keep &= np.asarray(n_fire) >= min_active
    v = max_corr[keep]
    if v.size == 0:
        return {"median": float("nan"), "mean": float("nan"), "q25": float("nan"), "q75": float("nan"),
                "units": 0}
    return {"median": float(np.median(v)), "mean": float(v.mean()), "q25": float(np.quantile(v, 0.25)),
            "q75": float(np.quantile(v, 0.75)), "units": int(v.size)}


def rowwise_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of x[i] with y[i] for every row (e.g. logit weights of matched features)."""
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean(1, keepdims=True)
    den = np.sqrt((x ** 2).sum(1) * (y ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (x * y).sum(1) / den, np.nan)


# ------------------------------------------------------------------------------------------------
# Stage universality (paper Figs. 6 and 10)
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def analyse(a, b, val, cfg, proxies: dict | None = None) -> tuple[dict, dict]:
    """Dictionary a against dictionary b (inputs.Dictionary with their models) on the first cfg.max_points
    validation tokens; proxies: a's proxy features (inputs.load_proxy_matches), highlighted when given.

    Returns (metrics/analysis/universality_A_B.json, the figures' data: "features" and "neurons" (max
    correlations of the units firing on >= cfg.universality_min_active tokens, else NaN), "logit_corr" (each A
    feature's logit-weight correlation with its best B match) and "highlight" ({proxy: feature}))."""
    t0 = time.perf_counter()
    n = min(cfg.max_points, a.store.n_points, b.store.n_points)
    if not np.array_equal(a.store.index()["token"][:n], b.store.index()["token"][:n]):
        raise StoreError(f"the val stores of {a.run.model} and {b.run.model} do not hold the same tokens in the "
                         "same order")
    feats = max_correlations(a.store, b.store, a.sae.encode, b.sae.encode, n, cfg.batch_size)
    t_feat = time.perf_counter() - t0
    neurons = max_correlations(a.store, b.store, lambda x: x, lambda x: x, n, cfg.batch_size, sparse=False)
    # Logit-weight similarity of each A feature and its best B match (paper Fig. 6).
    la = lw.feature_logit_weights(a.model, a.sae, lw.residual_scale(a.model, val.tokens)).numpy()
    lb = lw.feature_logit_weights(b.model, b.sae, lw.residual_scale(b.model, val.tokens)).numpy()
    ok = feats["argmax"] >= 0
    logit_corr = np.full(len(ok), np.nan)
    logit_corr[ok] = rowwise_corr(la[ok], lb[feats["argmax"][ok]])

    m = cfg.universality_min_active
    out = {"run_a": a.name, "run_b": b.name, "n_points": n, "min_active": m,
           "features": summarize(feats["max_corr"], feats["n_fire"], m),
           "neurons": summarize(neurons["max_corr"], neurons["n_fire"], m),
           "features_all_fired": summarize(feats["max_corr"]),
           "neurons_all_fired": summarize(neurons["max_corr"]),
           "features_logit_corr_median": float(np.nanmedian(logit_corr)) if ok.any() else None,
           "features_never_fired_a": int(np.isnan(feats["max_corr"]).sum())}
    highlight = {}
    if proxies is not None:
        out["proxy_features"] = {}
        for k, p in proxies.items():
            i = highlight[k] = p["feature"]["index"]
            out["proxy_features"][k] = {"feature": i, "max_corr": float(feats["max_corr"][i]),
                                        "best_match": int(feats["argmax"][i]), "logit_corr": float(logit_corr[i])}
    key = (headline_key("universality_median_max_corr", b.name, cfg.compare_run) if a.name == cfg.run
           else f"universality_median_max_corr_{a.name}_vs_{b.name}")
    out["headline"] = {key: {"features": round(out["features"]["median"], 4),
                             "neurons": round(out["neurons"]["median"], 4)}}
    out["seconds"] = {"features": round(t_feat, 1), "total": round(time.perf_counter() - t0, 1)}
    figure = {"features": np.where(feats["n_fire"] >= m, feats["max_corr"], np.nan),
              "neurons": np.where(neurons["n_fire"] >= m, neurons["max_corr"], np.nan),
              "logit_corr": logit_corr, "highlight": highlight}
    return out, figure
