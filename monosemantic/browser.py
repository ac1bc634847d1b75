"""A static feature browser, like the paper's A/1 interface: an index of every feature of one dictionary and a
page per feature, written as plain files that open from file:// with no network.

What is shown and how it is computed (over the first `max_points` validation points of the run's model):

* density (share of points where the feature fires), max activation, dead / ultralow / dense classes
  (evaluate.ultralow_density, evaluate.dense_density), a histogram of its nonzero activations;
* subset purity: the share of the feature's activation mass on each corpus subset (English, Code, ...), from
  the store's per-point document index;
* proxies: Pearson r of the activations with each per-token proxy (Arabic, Hebrew, DNA, base64;
  monosemantic/proxies.py); the best-matching proxy is the one with the largest r;
* contexts: the `top_examples` highest-activating points, and `per_interval` points sampled (seeded) from each
  of `n_intervals` equal-count quantile intervals of its nonzero activations (the paper's "subsample
  intervals"). The store keeps one activation per sampled point, so every shown context is re-run through the
  transformer and the SAE (its n_ctx window, from the store's context_start) to shade each token by the
  feature's activation; a window of window_before / window_after tokens around the example is kept;
* logit weights: top and bottom tokens and a histogram (monosemantic/logit_weights.py);
* feature splitting: the most similar features (decoder cosine) in the other dictionary sizes of the model;
* universality: the features of the partner dictionary (model B) with the largest activation correlation on
  the same validation points (monosemantic/universality.py).

Output layout (`write_site`):

    OUT/index.html, browser.js, browser.css       the app (monosemantic/browser_assets, copied verbatim)
    OUT/data/index.js                             window.BROWSER_INDEX = {...}: per-feature columns, vocab
    OUT/data/features_NNNN.js                     window.BROWSER_CHUNK(NNNN, {...}): chunk_features pages

Data files are <script>s, not fetch()ed JSON (Chromium blocks fetch from file://). A context's tokens are
packed as fixed-width base-64 digits of their ids and its activations as one base-64 digit each (0..63 of
the feature's largest shown activation), which keeps a 4096-feature browser to a few megabytes per
thousand features.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import logit_weights as lw
from . import proxies as px
from . import splitting as sp
from . import universality as uv
from .utils import atomic_path

ASSETS = Path(__file__).with_name("browser_assets")
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
CLASS_NAMES = ("alive", "dead", "ultralow", "dense")
EOT_LABEL = "<|endoftext|>"


# ------------------------------------------------------------------------------------------------
# Feature activations over the validation points
# ------------------------------------------------------------------------------------------------


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
    """sae.encode as one GEMM with the bias and an in-place ReLU: ReLU((x − b_d) W_eᵀ + b_e)."""
    W_eT, b_e, b_d = sae.W_e.detach().T, sae.b_e.detach(), sae.b_d.detach()
    return lambda x: torch.addmm(b_e, x.to(W_eT.device) - b_d, W_eT).relu_()


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
    """Per feature: density, max, class (0 alive, 1 dead, 2 ultralow, 3 dense), subset shares of the
    activation mass (F, S), and a histogram of the nonzero activations (F, bins) over [0, max]."""
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
    cls = np.zeros(F, dtype=np.int64)
    cls[density == 0] = 1
    cls[(density > 0) & (density < ultralow)] = 2
    cls[density > dense] = 3
    return {"density": density, "max": vmax, "class": cls, "subset_share": shares, "hist": hist}


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


# ------------------------------------------------------------------------------------------------
# Contexts: re-run the transformer and the SAE on the shown windows
# ------------------------------------------------------------------------------------------------


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
    W_e, b_e, b_d = sae.W_e.detach().cpu(), sae.b_e.detach().cpu(), sae.b_d.detach().cpu()
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
        f = torch.relu(torch.einsum("pwd,pd->pw", x - b_d, W_e[feats[sel]]) + b_e[feats[sel]][:, None])
        valid = (w0[sel, None] + np.arange(W_ctx)[None, :]) < lens[local][:, None]
        ids[sel] = np.where(valid, tok[local[:, None], span], -1)
        out[sel] = np.where(valid, f.numpy(), 0.0)
    return ids, out, center


# ------------------------------------------------------------------------------------------------
# Tokens as text
# ------------------------------------------------------------------------------------------------


def vocab_labels(tok) -> tuple[list[str], list[bytes]]:
    """(label of every token id, its bytes): the token's text, bytes of a partial UTF-8 character shown as
    \\xNN (e.g. 'י\\xd7' for a Hebrew letter and the first byte of the next); <|endoftext|> for id 0."""
    vb = px.vocab_bytes(tok)
    labels = [b.decode("utf-8", "backslashreplace") if i != px.EOT_ID else EOT_LABEL for i, b in enumerate(vb)]
    return labels, vb


def _complete_prefix(b: bytes) -> int:
    """Length of the longest prefix of b that does not end inside an incomplete UTF-8 character."""
    for back in range(1, min(4, len(b)) + 1):
        c = b[-back]
        if c < 0x80:
            return len(b)
        if c >= 0xC0:  # a lead byte: complete if enough continuation bytes follow
            need = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
            return len(b) if back >= need else len(b) - back
    return len(b)


def window_texts(ids: np.ndarray, vbytes: list[bytes], labels: list[str]) -> list[str]:
    """The text of each token of a window, decoding the window's bytes jointly: a character whose UTF-8 bytes
    are split over several tokens is shown on the token that completes it (the others show what they
    complete, possibly nothing). Bytes that never form valid UTF-8 are shown as U+FFFD."""
    out, pending = [], b""
    for i in ids:
        i = int(i)
        if i < 0:
            out.append("")
            continue
        if i == px.EOT_ID or not vbytes[i]:
            if pending:
                out[-1] += pending.decode("utf-8", "replace")
                pending = b""
            out.append(labels[i])
            continue
        b = pending + vbytes[i]
        cut = _complete_prefix(b)
        if len(b) - cut > 3:  # not a character in progress after all
            cut = len(b)
        out.append(b[:cut].decode("utf-8", "replace"))
        pending = b[cut:]
    if pending and out:
        out[-1] += pending.decode("utf-8", "replace")
    return out


def b64_int(values: np.ndarray, width: int) -> str:
    """Fixed-width base-64 digits (most significant first) of non-negative integers, concatenated."""
    v = np.asarray(values, dtype=np.int64)
    digits = [(v >> (6 * (width - 1 - k))) & 63 for k in range(width)]
    return "".join("".join(B64[d[j]] for d in digits) for j in range(len(v)))


def b64_decode(s: str, width: int) -> list[int]:
    """Inverse of b64_int."""
    out = []
    for j in range(0, len(s), width):
        n = 0
        for ch in s[j:j + width]:
            n = n * 64 + B64.index(ch)
        out.append(n)
    return out


# ------------------------------------------------------------------------------------------------
# Everything a browser needs, gathered
# ------------------------------------------------------------------------------------------------


@dataclass
class Partner:
    """Another dictionary: a smaller/larger size of the same model (splitting) or model B (universality)."""

    name: str
    sae: object
    store: object | None = None  # the partner model's val store (universality only)


@dataclass
class BrowserInputs:
    run: str
    run_info: dict  # model, n_features, l1
    sae: object
    model: object
    store: object  # val activation store of the run's model
    index: dict  # store.index(): doc, pos, token, context_start
    tokens: np.ndarray  # val token stream
    doc_subset: np.ndarray  # subset code of each val document
    subsets: list[str]
    tok: object  # tokenizer
    llr: dict | None = None  # {proxy name: LLR per token id} (proxies.llr_tables)
    split: list[Partner] = field(default_factory=list)
    compare: Partner | None = None
    ultralow_density: float = 1e-5
    dense_density: float = 0.01
    sigma_contexts: int = 32


def _round(x, sig: int = 4):
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_round(v, sig) for v in x]
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return 0 if x == 0 else None
    return float(f"{x:.{sig}g}")


def _sigma(model, tokens: np.ndarray, n_ctx: int, n: int) -> float:
    n = max(1, min(n, len(tokens) // n_ctx))
    starts = np.arange(n) * (len(tokens) // n // n_ctx) * n_ctx
    toks = torch.from_numpy(np.stack([np.asarray(tokens[s:s + n_ctx]) for s in starts]).astype(np.int64))
    return lw.residual_std(model, toks)


@torch.no_grad()
def gather(inp: BrowserInputs, cfg, log: Callable[[str], None] = print) -> dict:
    """Compute everything the site shows; returns {"index": ..., "features": [per-feature page dicts]}."""
    t0 = time.perf_counter()
    sae, model = inp.sae.eval(), inp.model.eval()
    n = min(cfg.max_points, inp.store.n_points)
    F = sae.n_features
    n_ctx = model.cfg.n_ctx
    point_token = np.asarray(inp.index["token"][:n], dtype=np.int64)
    context_start = np.asarray(inp.index["context_start"][:n], dtype=np.int64)
    point_subset = np.asarray(inp.doc_subset, dtype=np.int64)[np.asarray(inp.index["doc"][:n])]
    point_tok_ids = np.asarray(inp.tokens[point_token]).astype(np.int64)

    acts = sparse_activations(fused_encoder(sae), inp.store, n, cfg.batch_size)
    log(f"  encoded {n:,} points: {len(acts.vals):,} nonzero activations ({time.perf_counter() - t0:.1f} s)")
    summ = feature_summary(acts, point_subset, len(inp.subsets), cfg.hist_bins, inp.ultralow_density,
                           inp.dense_density)

    # proxies: Pearson r of every feature with every proxy
    proxy_names = list(inp.llr) if inp.llr else []
    if proxy_names:
        table = np.stack([px.proxy_value(inp.llr[p]) for p in proxy_names], 1)
        proxy_r = proxy_stats(acts, table[point_tok_ids])["pearson"]
    else:
        proxy_r = np.zeros((F, 0))

    # universality: activation correlations with the partner dictionary on the same points
    compare, uni, n_uni = inp.compare, None, 0
    if compare is not None:
        n_uni = min(cfg.universality_points, n, compare.store.n_points)
        b_acts = sparse_activations(fused_encoder(compare.sae), compare.store, n_uni, cfg.batch_size)
        uni = top_correlations(cross_moments(acts, b_acts, n_uni), max(cfg.similar_per_run, 1))
        del b_acts
        log(f"  {compare.name}: correlations on {n_uni:,} points ({time.perf_counter() - t0:.1f} s)")

    # splitting: nearest decoder directions in the other dictionary sizes
    cols = sp.unit_columns(sae.W_d.detach().cpu())
    similar = {}
    for part in inp.split:
        other = sp.unit_columns(part.sae.W_d.detach().cpu())
        rows_ = []
        for s in range(0, F, 512):  # bounded memory against a very large dictionary
            c = torch.from_numpy(sp.cosine_matrix(cols[s:s + 512], other))
            v, ix = c.topk(min(max(cfg.similar_per_run, 1), c.shape[1]), dim=1)
            rows_ += [list(zip(a, b)) for a, b in zip(ix.tolist(), v.tolist())]
        similar[part.name] = rows_

    # logit weights
    sigma = _sigma(model, inp.tokens, n_ctx, inp.sigma_contexts)
    Wl = lw.feature_logit_weights(model, sae, sigma)  # (F, vocab)
    top, bottom = lw.top_bottom(Wl, cfg.top_logits)
    lmin, lmax = Wl.min(1).values.numpy(), Wl.max(1).values.numpy()
    log(f"  proxies, universality, splitting, logit weights ({time.perf_counter() - t0:.1f} s)")

    # examples and their contexts
    groups = select_examples(acts, cfg.top_examples, cfg.n_intervals, cfg.per_interval, cfg.seed)
    pairs = np.array([(i, r) for i, g in enumerate(groups) for _, rows, _ in g for r in rows],
                     dtype=np.int64).reshape(-1, 2)
    ids, wacts, center = context_windows(model, sae, inp.tokens, pairs, context_start, point_token,
                                         cfg.window_before, cfg.window_after, n_ctx)
    log(f"  {len(pairs):,} contexts from {len(np.unique(context_start[pairs[:, 1]])) if len(pairs) else 0:,} "
        f"model runs ({time.perf_counter() - t0:.1f} s)")

    labels, vbytes = vocab_labels(inp.tok)
    width = 2 if len(labels) <= 64 ** 2 else 3
    features = []
    p = 0
    act_tokens = []
    for i in range(F):
        ex = []
        fmax = max(float(summ["max"][i]), float(wacts[p:p + sum(len(r) for _, r, _ in groups[i])].max(initial=0)))
        counts: dict[int, int] = {}
        for label, rows, vals in groups[i]:
            ctxs = []
            for r, v in zip(rows, vals):
                w_ids, w_act = ids[p], wacts[p]
                keep = w_ids >= 0
                w_ids, w_act = w_ids[keep], w_act[keep]
                q = np.where(w_act > 0, np.maximum(1, np.rint(63 * w_act / fmax)), 0).astype(np.int64)
                texts = window_texts(w_ids, vbytes, labels)
                ov = {str(j): t for j, t in enumerate(texts) if t != labels[w_ids[j]]}
                ctxs.append([b64_int(w_ids, width), "".join(B64[k] for k in q), int(center[p]),
                             _round(v), int(point_subset[r]), ov or 0])
                if label == "Top activations":
                    t = int(point_tok_ids[r])
                    counts[t] = counts.get(t, 0) + 1
                p += 1
            ex.append([label, ctxs])
        act_tokens.append([t for t, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:5]])
        logit_hist = np.histogram(Wl[i].numpy(), bins=cfg.hist_bins, range=(float(lmin[i]), float(lmax[i])))[0]
        features.append({
            "id": i,
            "amax": _round(fmax),
            "h": summ["hist"][i].tolist(),
            "lt": [[int(t), _round(Wl[i, t])] for t in top[i]],
            "lb": [[int(t), _round(Wl[i, t])] for t in bottom[i]],
            "lh": logit_hist.tolist(), "lr": [_round(lmin[i]), _round(lmax[i])],
            "sim": {name: [[j, _round(c)] for j, c in v[i]] for name, v in similar.items()},
            "uni": [[j, _round(r)] for j, r in uni[i]] if uni is not None else [],
            "px": _round(proxy_r[i]) if proxy_names else [],
            "ss": _round(summ["subset_share"][i], 3),
            "ex": ex,
        })

    alive_log = np.log10(summ["density"][summ["density"] > 0])
    dens_edges = np.arange(-8, 0.01, 0.25)
    dens_counts = np.histogram(np.clip(alive_log, -8, 0), bins=dens_edges)[0] if alive_log.size else \
        np.zeros(len(dens_edges) - 1, dtype=np.int64)
    best_proxy = proxy_r.argmax(1) if proxy_names else np.full(F, -1)
    index = {
        "run": inp.run, **inp.run_info, "n_points": n, "n_ctx": n_ctx, "vocab_width": width,
        "subsets": list(inp.subsets), "proxies": proxy_names, "classes": list(CLASS_NAMES),
        "ultralow_density": inp.ultralow_density, "dense_density": inp.dense_density,
        "compare_run": compare.name if compare is not None else None, "universality_points": n_uni,
        "split_runs": [p.name for p in inp.split], "chunk_features": cfg.chunk_features,
        "log_density_hist": {"lo": -8, "width": 0.25, "counts": dens_counts.tolist(),
                             "dead": int((summ["density"] == 0).sum())},
        "vocab": labels,
        "density": _round(summ["density"]), "max": _round(summ["max"]), "cls": summ["class"].tolist(),
        "proxy": best_proxy.tolist(),
        "proxy_r": [_round(proxy_r[i, best_proxy[i]]) if proxy_names else 0 for i in range(F)],
        "subset": summ["subset_share"].argmax(1).tolist(),
        "subset_share": [_round(summ["subset_share"][i].max(), 3) for i in range(F)],
        "uni_id": [u[0][0] if uni and u else -1 for u in (uni or [[]] * F)],
        "uni_r": [_round(u[0][1]) if uni and u else None for u in (uni or [[]] * F)],
        "act_tokens": act_tokens,
        "logit_tokens": [[int(t) for t in top[i][:3]] for i in range(F)],
        "sigma": _round(sigma),
    }
    log(f"  gathered ({time.perf_counter() - t0:.1f} s)")
    return {"index": index, "features": features}


# ------------------------------------------------------------------------------------------------
# Writing the site
# ------------------------------------------------------------------------------------------------


def _js(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def write_site(data: dict, out_dir: str | Path) -> dict:
    """Write the app and its data files into out_dir (replaced atomically as a whole); returns sizes."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for f in ("index.html", "browser.js", "browser.css"):
            shutil.copyfile(ASSETS / f, tmp / f)
        (tmp / "data").mkdir()
        index = dict(data["index"])
        feats = data["features"]
        size = index["chunk_features"]
        n_chunks = (len(feats) + size - 1) // size
        index["chunk_files"] = [f"data/features_{c:04d}.js" for c in range(n_chunks)]
        for c in range(n_chunks):
            part = {str(f["id"]): {k: v for k, v in f.items() if k != "id"} for f in feats[c * size:(c + 1) * size]}
            (tmp / index["chunk_files"][c]).write_text(f"window.BROWSER_CHUNK({c},{_js(part)});\n", encoding="utf-8")
        (tmp / "data" / "index.js").write_text(f"window.BROWSER_INDEX={_js(index)};\n", encoding="utf-8")
        for p in tmp.rglob("*"):
            if p.is_file():
                p.chmod(0o644)
        tmp.chmod(0o755)
        (tmp / "data").chmod(0o755)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            if old.exists():
                shutil.rmtree(old)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return {"files": sum(1 for p in out_dir.rglob("*") if p.is_file()), "bytes": total}


def screenshot_feature(index: dict, feature_pages: list[dict]) -> int:
    """A feature worth showing: the best match of the strongest proxy, else the alive feature with most mass
    on one subset (ties: highest density)."""
    F = len(index["cls"])
    alive = [i for i in range(F) if index["cls"][i] != 1]
    if not alive:
        return 0
    if index["proxies"]:
        return max(alive, key=lambda i: (index["proxy_r"][i] or 0, index["density"][i]))
    return max(alive, key=lambda i: (index["subset_share"][i], index["density"][i]))


# ------------------------------------------------------------------------------------------------
# Headless Chromium
# ------------------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars")


def placeholder_screenshot(png: str | Path, site_dir: str | Path, feature: int) -> None:
    """A PNG that says where the site is, for machines without Chromium (dvc repro must not need one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8, 2))
    fig.text(0.5, 0.5, f"Feature browser written to {site_dir}/index.html (feature {feature}).\n"
             "No screenshot: Chromium is not installed (apt-get install -y chromium chromium-driver).",
             ha="center", va="center")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(site_dir: str | Path, feature: int, png: str | Path, size: tuple[int, int] = (1280, 1600),
               chromium: str | None = None, timeout: float = 120) -> None:
    """Render the page of `feature` with headless Chromium into png (atomic write)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium not found; install it: apt-get install -y chromium chromium-driver")
    url = (Path(site_dir).resolve() / "index.html").as_uri() + f"#f={feature}"
    with tempfile.TemporaryDirectory() as profile, atomic_path(png) as tmp:
        tmp_png = Path(profile) / "shot.png"
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}/user", f"--window-size={size[0]},{size[1]}",
               "--virtual-time-budget=10000", f"--screenshot={tmp_png}", url]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if not tmp_png.exists():
            raise RuntimeError(f"chromium wrote no screenshot (exit {res.returncode}): {res.stderr[-2000:]}")
        shutil.copyfile(tmp_png, tmp)


# ------------------------------------------------------------------------------------------------
# Loading a run from the artifacts (the stage)
# ------------------------------------------------------------------------------------------------


def related_runs(name: str, sae_runs: dict, cfg) -> tuple[str | None, list[str]]:
    """(universality partner, other dictionary sizes) of run `name` per cfg.compare_run / cfg.split_runs."""
    run = sae_runs[name]
    if cfg.compare_run == "auto":
        cands = [k for k, r in sae_runs.items() if r.model != run.model and r.model != "random"
                 and r.n_features == run.n_features and r.l1 == run.l1]
        pref = "B" if run.model == "A" else "A"
        cands.sort(key=lambda k: (sae_runs[k].model != pref, k))
        compare = cands[0] if cands else None
    else:
        compare = cfg.compare_run or None
    if tuple(cfg.split_runs) == ("auto",):
        split = sorted((k for k, r in sae_runs.items() if r.model == run.model and r.l1 == run.l1
                        and r.n_features != run.n_features), key=lambda k: sae_runs[k].n_features)
    else:
        split = [k for k in cfg.split_runs if k != name]
    return compare, split


def load_inputs(root: str | Path, name: str, params, cfg, log: Callable[[str], None] = print) -> BrowserInputs:
    """Everything `gather` needs for run `name`, from the artifacts under root (the repository layout)."""
    from .model import Transformer
    from .sae import SparseAutoencoder
    from .store import ActivationStore

    root = Path(root)
    run = params.sae_runs[name]
    store = ActivationStore(root / f"artifacts/activations/{run.model}/val")
    tok, val, llr = px.load_proxy_tables(str(root / "artifacts/tokens"),
                                         str(root / "artifacts/tokenizer/tokenizer.json"))
    compare_name, split_names = related_runs(name, params.sae_runs, cfg)
    split = []
    for s in split_names:
        d = root / f"artifacts/sae/{s}"
        if not (d / "cfg.json").exists():
            log(f"  warning: {d} missing; {s} left out of the splitting panel")
            continue
        split.append(Partner(s, SparseAutoencoder.load(d).eval()))
    compare = None
    if compare_name:
        crun = params.sae_runs[compare_name]
        d = root / f"artifacts/sae/{compare_name}"
        cstore_dir = root / f"artifacts/activations/{crun.model}/val"
        if (d / "cfg.json").exists() and (cstore_dir / "manifest.json").exists():
            cstore = ActivationStore(cstore_dir)
            n = min(cfg.universality_points, cfg.max_points, store.n_points, cstore.n_points)
            same = np.array_equal(store.index()["token"][:n], cstore.index()["token"][:n])
            if same:
                compare = Partner(compare_name, SparseAutoencoder.load(d).eval(), cstore)
            else:
                log(f"  warning: the val stores of {run.model} and {crun.model} hold different tokens; "
                    "universality left out")
        else:
            log(f"  warning: {d} or {cstore_dir} missing; universality left out")
    return BrowserInputs(
        run=name, run_info={"model": run.model, "n_features": run.n_features, "l1": run.l1},
        sae=SparseAutoencoder.load(root / f"artifacts/sae/{name}").eval(),
        model=Transformer.load(root / f"artifacts/models/{run.model}"), store=store, index=store.index(),
        tokens=val.tokens, doc_subset=val.doc_subset, subsets=val.subsets, tok=tok, llr=llr,
        split=split, compare=compare, ultralow_density=params.evaluate.ultralow_density,
        dense_density=params.evaluate.dense_density)


# ------------------------------------------------------------------------------------------------
# A tiny self-contained input (tests, demos): no artifacts needed
# ------------------------------------------------------------------------------------------------

_TINY_TEXTS = {
    "English": "The cat sat on the mat. The dog ran to the park and the cat followed the dog home. ",
    "Code": "def f(x):\n    return x + 1\n\nfor i in range(10):\n    print(f(i))\n",
    "Arabic": "قال رسول الله صلى الله عليه وسلم في الحديث الشريف ",
    "DNA": "ATGCGTACGTTAGCCGATAGCTAGCTAGGCTAACGTAGCTAGCATCGATCGA",
}


@torch.no_grad()
def synthetic_inputs(seed: int = 0, n_features: int = 24, n_dead: int = 3, n_ctx: int = 16, k: int = 4,
                     repeats: int = 12) -> BrowserInputs:
    """A tiny browser input built in memory: a BPE tokenizer trained on a few sentences of four subsets, a
    random one-layer transformer, a val stream of those sentences, a store of k sampled points per context,
    a random SAE whose last n_dead features never fire, a half-size dictionary (splitting) and a second SAE
    on the same activations (universality)."""
    from .model import ModelConfig, build_model
    from .sae import SparseAutoencoder
    from .store import ArrayStore
    from .tokenizer import EOT_ID as EOT, train_tokenizer

    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    subsets = sorted(_TINY_TEXTS)
    tok = train_tokenizer([t * 4 for t in _TINY_TEXTS.values()], vocab_size=320, min_frequency=2)
    stream, doc_subset, doc_start = [], [], [0]
    for r in range(repeats):
        for s in subsets:
            ids = tok.encode(_TINY_TEXTS[s] * 2, add_special_tokens=False).ids + [EOT]
            stream += ids
            doc_subset.append(subsets.index(s))
            doc_start.append(len(stream))
    tokens = np.asarray(stream, dtype=np.uint16)
    doc_start = np.asarray(doc_start, dtype=np.int64)
    model = build_model(ModelConfig(vocab_size=tok.get_vocab_size(), d_model=16, d_mlp=32, n_heads=2,
                                    n_ctx=n_ctx), seed).eval()
    starts = np.arange(0, len(tokens) - n_ctx + 1, n_ctx)
    pos = np.stack([np.sort(rng.choice(n_ctx, size=k, replace=False)) for _ in starts])
    ctx = torch.from_numpy(np.stack([tokens[s:s + n_ctx] for s in starts]).astype(np.int64))
    acts = model.mlp_acts(ctx, torch.from_numpy(pos)).reshape(-1, 32)
    token = (starts[:, None] + pos).reshape(-1)
    perm = rng.permutation(len(token))
    doc = np.searchsorted(doc_start, token, side="right") - 1
    index = {"doc": doc[perm], "pos": (token - doc_start[doc])[perm], "token": token[perm],
             "context_start": np.repeat(starts, k)[perm]}
    store = ArrayStore(acts[perm])

    def sae(F):
        s = SparseAutoencoder(32, F, 0.01, generator=g)
        s.b_d.copy_(acts.mean(0))
        pre = (acts - s.b_d) @ s.W_e.T
        s.b_e.copy_(-torch.quantile(pre, 0.8, dim=0))  # each feature fires on about a fifth of the points
        return s.eval()

    main = sae(n_features)
    if n_dead:
        main.b_e[-n_dead:] = -1e4
    llr = px.llr_tables(px.vocab_bytes(tok), px.token_counts(tokens, tok.get_vocab_size()))
    return BrowserInputs(run="T_tiny", run_info={"model": "T", "n_features": n_features, "l1": 0.01},
                         sae=main, model=model, store=store, index=index, tokens=tokens,
                         doc_subset=np.asarray(doc_subset, dtype=np.int16), subsets=subsets, tok=tok, llr=llr,
                         split=[Partner("T_half", sae(max(n_features // 2, 1)))],
                         compare=Partner("U_tiny", sae(n_features), store),
                         ultralow_density=1e-3, dense_density=0.3, sigma_contexts=4)
