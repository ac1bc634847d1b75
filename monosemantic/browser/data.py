"""What the feature browser shows about one dictionary, computed over the first `max_points` validation points
of its model (`gather`; the inputs come from inputs.py, the site is written by site.py):

* density (share of points where the feature fires), max activation, the density classes of
  sae/metrics.py (dead, ultralow, dense), a histogram of its nonzero activations;
* subset purity: the share of the feature's activation mass on each corpus subset (English, Code, ...), from
  the store's per-point document index;
* proxies: Pearson r of the activations with each per-token proxy (Arabic, Hebrew, DNA, base64;
  analysis/proxies.py); the best-matching proxy is the one with the largest r;
* contexts: the `top_examples` highest-activating points, and `per_interval` points sampled (seeded) from each
  of `n_intervals` equal-count quantile intervals of its nonzero activations (the paper's "subsample
  intervals"). The store keeps one activation per sampled point, so every shown context is re-run through the
  transformer and the SAE (its n_ctx window, from the store's context_start) to shade each token by the
  feature's activation; a window of window_before / window_after tokens around the example is kept;
* logit weights: top and bottom tokens and a histogram (analysis/logit_weights.py);
* feature splitting: the most similar features (decoder cosine, analysis/splitting.py) in the other
  dictionary sizes of the model;
* universality: the features of the partner dictionary (model B) with the largest activation correlation on
  the same validation points (analysis/universality.py).

Features are sparse (L0 ≪ F), so the dictionary is encoded once into its nonzero activations (SparseActs) and
the proxies' and universality's moments are accumulated from those alone; the statistics themselves
(ProxyStats.result, CrossMoments.correlation_rows) are the analyses' own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from monosemantic.analysis import logit_weights as lw
from monosemantic.analysis import proxies as px
from monosemantic.analysis import splitting
from monosemantic.analysis import universality as uv
from monosemantic.browser.inputs import BrowserInputs
from monosemantic.sae import metrics

CLASS_NAMES = metrics.DENSITY_CLASSES  # the class codes of feature_summary (metrics.density_class), for the site


@dataclass
class SparseActs:
    """All nonzero feature activations of n_points points, grouped by feature (feature-major, stable by row):
    feature i's entries are rows[offsets[i]:offsets[i+1]], vals[...]."""

    rows: np.ndarray  # int32 point index
    vals: np.ndarray  # float32 activation (> 0)
    offsets: np.ndarray  # int64 (F + 1,)
    n_points: int

    @property
    def n_features(self) -> int:
        return len(self.offsets) - 1

    def feature(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.offsets[i], self.offsets[i + 1]
        return self.rows[s:e], self.vals[s:e]

    def feature_of(self) -> np.ndarray:
        """The feature of every stored entry."""
        return np.repeat(np.arange(self.n_features, dtype=np.int64), np.diff(self.offsets))


def fused_encoder(sae) -> Callable[[torch.Tensor], torch.Tensor]:
    """sae.encode; for the standard architecture as one GEMM with the bias and an in-place ReLU:
    ReLU((x − b_d) W_eᵀ + b_e) (the other architectures: their own encode)."""
    if sae.architecture != "standard":
        device = next(sae.parameters()).device
        return lambda x: sae.encode(x.to(device))
    W_eT, b_e, b_d = sae.W_e.detach().T, sae.b_e.detach(), sae.b_d.detach()
    return lambda x: torch.addmm(b_e, x.to(W_eT.device) - b_d, W_eT).relu_()


def window_activations(sae, x: torch.Tensor, feats: np.ndarray, chunk: int = 256) -> torch.Tensor:
    """(p, W) activations of feature feats[q] at the W tokens of window q of x (p, W, d). Standard: only that
    feature's encoder row, ReLU((x − b_d)·w_i + b_i); another architecture (a feature may depend on the others:
    TopK): its encode of chunk windows at a time, then that feature's column."""
    if sae.architecture == "standard":
        W_e, b_e, b_d = sae.W_e.detach().cpu(), sae.b_e.detach().cpu(), sae.b_d.detach().cpu()
        return torch.relu(torch.einsum("pwd,pd->pw", x - b_d, W_e[feats]) + b_e[feats][:, None])
    device, idx = next(sae.parameters()).device, torch.from_numpy(np.asarray(feats, dtype=np.int64))
    out = []
    for s in range(0, len(x), chunk):
        xs = x[s:s + chunk]
        f = sae.encode(xs.reshape(-1, xs.shape[-1]).to(device)).cpu().reshape(len(xs), xs.shape[1], -1)
        out.append(f.gather(2, idx[s:s + chunk, None, None].expand(-1, xs.shape[1], 1)).squeeze(2))
    return torch.cat(out) if out else torch.zeros(0, x.shape[1])


@torch.no_grad()
def sparse_activations(encode: Callable[[torch.Tensor], torch.Tensor], store, n_points: int,
                       batch_size: int) -> SparseActs:
    """Encode the first n_points rows of `store` chunk by chunk, keeping only the nonzero activations."""
    rows, feats, vals = [], [], []
    n_features = 0
    for start in range(0, n_points, batch_size):
        stop = min(start + batch_size, n_points)
        f = encode(store.read(start, stop)).float().cpu()
        n_features = f.shape[1]
        ri, fi = f.nonzero(as_tuple=True)  # sorted by row, then feature
        rows.append((ri + start).to(torch.int32).numpy())
        feats.append(fi.to(torch.int32).numpy())
        vals.append(f[ri, fi].numpy())
    rows, feats, vals = (np.concatenate(a) if a else np.zeros(0, t)
                         for a, t in ((rows, np.int32), (feats, np.int32), (vals, np.float32)))
    order = np.argsort(feats, kind="stable")  # feature-major; rows stay ascending within a feature
    counts = np.bincount(feats, minlength=n_features)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return SparseActs(rows[order], vals[order].astype(np.float32), offsets, n_points)


def proxy_stats(acts: SparseActs, proxy_points: np.ndarray) -> dict[str, np.ndarray]:
    """proxies.ProxyStats over the points of `acts` (activations a, proxy values (n_points, P)), accumulated
    from the nonzero activations only (every sum over a·g(p) vanishes where a = 0); same result()."""
    F, P = acts.n_features, proxy_points.shape[1]
    p = np.asarray(proxy_points[:acts.n_points], dtype=np.float64)
    st = px.ProxyStats(F, P)
    feat_of = acts.feature_of()
    a = acts.vals.astype(np.float64)
    pr = p[acts.rows]  # (nnz, P)
    t = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))  # noqa: E731
    st.n = acts.n_points
    st.s_a = t(np.bincount(feat_of, weights=a, minlength=F))
    st.s_aa = t(np.bincount(feat_of, weights=a * a, minlength=F))
    st.s_p, st.s_pp, st.n_pos = t(p.sum(0)), t((p * p).sum(0)), t((p > 0).sum(0))
    st.s_ap = t(np.stack([np.bincount(feat_of, weights=a * pr[:, j], minlength=F) for j in range(P)], 1))
    st.mass_pos = t(np.stack([np.bincount(feat_of, weights=a * (pr[:, j] > 0), minlength=F) for j in range(P)], 1))
    st.fire_pos = t(np.stack([np.bincount(feat_of, weights=(pr[:, j] > 0).astype(np.float64), minlength=F)
                              for j in range(P)], 1))
    st.n_fire = t(np.diff(acts.offsets).astype(np.float64))
    return st.result()


def cross_moments(a: SparseActs, b: SparseActs, n_points: int) -> uv.CrossMoments:
    """universality.CrossMoments of two dictionaries over their first n_points points, from the nonzero
    activations: Σ a bᵀ is a sparse (F_A × n) · (n × F_B) product, O(n · L0_A · L0_B)."""
    import scipy.sparse as sps

    def csr(x: SparseActs):
        keep = x.rows < n_points
        return sps.csr_matrix((x.vals[keep].astype(np.float64), (x.rows[keep], x.feature_of()[keep])),
                              shape=(n_points, x.n_features))

    A, B = csr(a), csr(b)
    m = uv.CrossMoments(a.n_features, b.n_features)
    m.n = n_points
    m.s_a = torch.from_numpy(np.asarray(A.sum(0)).ravel())
    m.s_aa = torch.from_numpy(np.asarray(A.multiply(A).sum(0)).ravel())
    m.s_b = torch.from_numpy(np.asarray(B.sum(0)).ravel())
    m.s_bb = torch.from_numpy(np.asarray(B.multiply(B).sum(0)).ravel())
    m.s_ab = torch.from_numpy((A.T @ B).toarray().astype(np.float32))
    return m


def top_correlations(m: uv.CrossMoments, k: int, chunk: int = 1024) -> list[list[tuple[int, float]]]:
    """Per A unit, the k B units of largest activation correlation, [(index, r)] (empty for a dead unit)."""
    out = []
    F = m.s_a.shape[0]
    for s in range(0, F, chunk):
        c = m.correlation_rows(slice(s, min(s + chunk, F)))
        c = torch.where(torch.isnan(c), torch.full_like(c, -np.inf), c)
        v, ix = c.topk(min(k, c.shape[1]), dim=1)
        for vi, ii in zip(v.tolist(), ix.tolist()):
            out.append([(j, r) for j, r in zip(ii, vi) if math.isfinite(r)])
    return out


def feature_summary(acts: SparseActs, point_subset: np.ndarray, n_subsets: int, bins: int,
                    ultralow: float, dense: float) -> dict[str, np.ndarray]:
    """Per feature: density, max, class (sae/metrics.py: density_class), subset shares of the activation mass (F, S), and a
    histogram of the nonzero activations (F, bins) over [0, max]."""
    F = acts.n_features
    counts = np.diff(acts.offsets)
    density = counts / acts.n_points
    vmax = np.zeros(F, dtype=np.float64)
    hist = np.zeros((F, bins), dtype=np.int64)
    for i in range(F):
        _, v = acts.feature(i)
        if v.size:
            vmax[i] = float(v.max())
            hist[i] = np.histogram(v, bins=bins, range=(0.0, vmax[i]))[0]
    feat_of = acts.feature_of()
    mass = np.bincount(feat_of * n_subsets + point_subset[acts.rows], weights=acts.vals,
                       minlength=F * n_subsets).reshape(F, n_subsets)
    total = mass.sum(1, keepdims=True)
    shares = np.where(total > 0, mass / np.maximum(total, 1e-300), 0.0)
    return {"density": density, "max": vmax, "class": metrics.density_class(density, ultralow, dense),
            "subset_share": shares, "hist": hist}


def select_examples(acts: SparseActs, top_k: int, n_intervals: int, per_interval: int,
                    seed: int = 0) -> list[list[tuple[str, np.ndarray, np.ndarray]]]:
    """Per feature, groups of (label, point rows, activations), each sorted by decreasing activation:
    the top_k highest activations (ties: lower row first), then per_interval points drawn without replacement
    from each of n_intervals equal-count quantile intervals of the nonzero activations (highest first)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(acts.n_features):
        rows, vals = acts.feature(i)
        groups = []
        if vals.size:
            order = np.lexsort((rows, -vals))  # decreasing activation, then increasing row
            r, v = rows[order], vals[order]
            groups.append(("Top activations", r[:top_k], v[:top_k]))
            if n_intervals and per_interval:
                n = v.size
                edges = np.linspace(0, n, n_intervals + 1).round().astype(np.int64)  # over ranks, descending
                for j in range(n_intervals):
                    lo, hi = edges[j], edges[j + 1]
                    if hi <= lo:
                        continue
                    pick = np.sort(rng.choice(hi - lo, size=min(per_interval, hi - lo), replace=False)) + lo
                    q_hi, q_lo = 1 - lo / n, 1 - hi / n
                    label = (f"Interval {j + 1}: activation {v[hi - 1]:.3g}–{v[lo]:.3g} "
                             f"(quantiles {q_lo:.2f}–{q_hi:.2f})")
                    groups.append((label, r[pick], v[pick]))
        out.append(groups)
    return out


@torch.no_grad()
def context_windows(model, sae, tokens: np.ndarray, pairs: np.ndarray, context_start: np.ndarray,
                    point_token: np.ndarray, before: int, after: int, n_ctx: int,
                    batch_contexts: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For (feature, point row) pairs (P, 2): the token ids (P, W) of the window of W = before + 1 + after
    tokens around the point's token within its n_ctx context (shifted to stay inside it; -1 beyond the
    stream), the feature's activation at each of those tokens (P, W), and the point's position in the window.

    Each context is run once, whatever the number of pairs that need it."""
    W = before + 1 + after
    W_ctx = min(W, n_ctx)
    P = len(pairs)
    ids = np.full((P, W_ctx), -1, dtype=np.int64)
    out = np.zeros((P, W_ctx), dtype=np.float32)
    center = np.zeros(P, dtype=np.int64)
    if P == 0:
        return ids, out, center
    feats, prow = pairs[:, 0], pairs[:, 1]
    cs = context_start[prow]
    pos = point_token[prow] - cs  # position in the context
    w0 = np.clip(pos - before, 0, max(n_ctx - W_ctx, 0))
    center[:] = pos - w0
    uniq, inv = np.unique(cs, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    sorted_inv = inv[order]
    n_stream = len(tokens)
    for b in range(0, len(uniq), batch_contexts):
        ctx = uniq[b:b + batch_contexts]
        lens = np.minimum(n_ctx, n_stream - ctx)
        T = int(lens.max())
        tok = np.zeros((len(ctx), T), dtype=np.int64)
        for k, (c, n) in enumerate(zip(ctx, lens)):
            tok[k, :n] = tokens[c:c + n]
        acts = model.mlp_acts(torch.from_numpy(tok)).cpu()  # (C, T, d)
        sel = order[np.searchsorted(sorted_inv, b):np.searchsorted(sorted_inv, b + batch_contexts)]
        local = inv[sel] - b
        span = np.minimum(w0[sel, None] + np.arange(W_ctx)[None, :], T - 1)  # (p, W)
        x = acts[torch.from_numpy(local)[:, None], torch.from_numpy(span)]  # (p, W, d)
        f = window_activations(sae, x, feats[sel])
        valid = (w0[sel, None] + np.arange(W_ctx)[None, :]) < lens[local][:, None]
        ids[sel] = np.where(valid, tok[local[:, None], span], -1)
        out[sel] = np.where(valid, f.numpy(), 0.0)
    return ids, out, center



def nearest_decoders(W_d: torch.Tensor, W_d_other: torch.Tensor, k: int,
                     chunk: int = 512) -> list[list[tuple[int, float]]]:
    """Per feature, the k features of another dictionary with the most similar decoder direction,
    [(index, cosine)] (splitting.cosine_matrix), in row chunks (bounded memory against a large dictionary)."""
    cols, other = splitting.unit_columns(W_d.detach().cpu()), splitting.unit_columns(W_d_other.detach().cpu())
    out = []
    for s in range(0, len(cols), chunk):
        c = torch.from_numpy(splitting.cosine_matrix(cols[s:s + chunk], other))
        v, ix = c.topk(min(k, c.shape[1]), dim=1)
        out += [list(zip(a, b)) for a, b in zip(ix.tolist(), v.tolist())]
    return out


# ------------------------------------------------------------------------------------------------
# Everything the browser shows, gathered
# ------------------------------------------------------------------------------------------------


@dataclass
class FeatureData:
    """What the site shows about a dictionary of F features, before it is encoded for the browser."""

    n_points: int  # validation points used
    summary: dict[str, np.ndarray]  # feature_summary
    point_subset: np.ndarray  # (n_points,) subset code of each point
    point_token_id: np.ndarray  # (n_points,) token id at each point
    proxy_names: list[str]
    proxy_r: np.ndarray  # (F, P) Pearson r with each proxy
    universality: list[list[tuple[int, float]]] | None  # top_correlations with the partner (None: no partner)
    universality_points: int
    similar: dict[str, list[list[tuple[int, float]]]]  # other dictionary size: nearest_decoders
    sigma: float  # the final residual's LayerNorm scale in the logit weights
    logit_weights: torch.Tensor  # (F, vocab)
    logit_top: np.ndarray  # (F, top_logits) token ids
    logit_bottom: np.ndarray
    logit_hist: np.ndarray  # (F, hist_bins) over each feature's [min, max] logit weight
    logit_range: tuple[np.ndarray, np.ndarray]  # per feature (min, max)
    examples: list  # select_examples
    windows: tuple[np.ndarray, np.ndarray, np.ndarray]  # context_windows of every example, in order


@torch.no_grad()
def gather(inp: BrowserInputs, cfg, log: Callable[[str], None] = print) -> FeatureData:
    """Compute everything the site shows about dictionary inp.sae (cfg: params.yaml's browser section)."""
    t0 = time.perf_counter()
    sae, model = inp.sae.eval(), inp.model.eval()
    n = min(cfg.max_points, inp.store.n_points)
    n_ctx = model.cfg.n_ctx
    stream_pos = np.asarray(inp.index["token"][:n], dtype=np.int64)  # each point's place in the token stream
    context_start = np.asarray(inp.index["context_start"][:n], dtype=np.int64)
    point_subset = np.asarray(inp.doc_subset, dtype=np.int64)[np.asarray(inp.index["doc"][:n])]
    token_id = px.point_tokens(inp.index, inp.tokens, n)

    acts = sparse_activations(fused_encoder(sae), inp.store, n, cfg.batch_size)
    log(f"  encoded {n:,} points: {len(acts.vals):,} nonzero activations ({time.perf_counter() - t0:.1f} s)")
    summ = feature_summary(acts, point_subset, len(inp.subsets), cfg.hist_bins, inp.ultralow_density,
                           inp.dense_density)

    proxy_names = list(inp.llr) if inp.llr else []
    if proxy_names:
        table = np.stack([px.proxy_value(inp.llr[p]) for p in proxy_names], 1)
        proxy_r = proxy_stats(acts, table[token_id])["pearson"]
    else:
        proxy_r = np.zeros((sae.n_features, 0))

    compare, uni, n_uni = inp.compare, None, 0
    if compare is not None:
        n_uni = min(cfg.universality_points, n, compare.store.n_points)
        b_acts = sparse_activations(fused_encoder(compare.sae), compare.store, n_uni, cfg.batch_size)
        uni = top_correlations(cross_moments(acts, b_acts, n_uni), max(cfg.similar_per_run, 1))
        del b_acts
        log(f"  {compare.name}: correlations on {n_uni:,} points ({time.perf_counter() - t0:.1f} s)")

    similar = {part.name: nearest_decoders(sae.W_d, part.sae.W_d, max(cfg.similar_per_run, 1))
               for part in inp.split}

    sigma = lw.residual_scale(model, inp.tokens, inp.sigma_contexts)
    Wl = lw.feature_logit_weights(model, sae, sigma)  # (F, vocab)
    top, bottom = lw.top_bottom(Wl, cfg.top_logits)
    lmin, lmax = Wl.min(1).values.numpy(), Wl.max(1).values.numpy()
    logit_hist = np.stack([np.histogram(Wl[i].numpy(), bins=cfg.hist_bins, range=(float(lmin[i]), float(lmax[i])))[0]
                           for i in range(len(Wl))])
    log(f"  proxies, universality, splitting, logit weights ({time.perf_counter() - t0:.1f} s)")

    groups = select_examples(acts, cfg.top_examples, cfg.n_intervals, cfg.per_interval, cfg.seed)
    pairs = np.array([(i, r) for i, g in enumerate(groups) for _, rows, _ in g for r in rows],
                     dtype=np.int64).reshape(-1, 2)
    windows = context_windows(model, sae, inp.tokens, pairs, context_start, stream_pos,
                              cfg.window_before, cfg.window_after, n_ctx)
    log(f"  {len(pairs):,} contexts from {len(np.unique(context_start[pairs[:, 1]])) if len(pairs) else 0:,} "
        f"model runs ({time.perf_counter() - t0:.1f} s)")
    return FeatureData(n_points=n, summary=summ, point_subset=point_subset, point_token_id=token_id,
                       proxy_names=proxy_names, proxy_r=proxy_r, universality=uni, universality_points=n_uni,
                       similar=similar, sigma=sigma, logit_weights=Wl, logit_top=top, logit_bottom=bottom,
                       logit_hist=logit_hist, logit_range=(lmin, lmax), examples=groups, windows=windows)

