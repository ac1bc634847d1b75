"""Figures of the feature analyses (issue 6), in the style of figures/sae.py (Agg, PNG via figures.sae._save).

Every function takes plain arrays and a path, so the figures can be redrawn without recomputing.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np

from monosemantic.figures.sae import _save, plt

PROXY_TITLES = {"arabic": "Arabic script", "hebrew": "Hebrew script", "dna": "DNA", "base64": "base64"}
GREY, LIGHT = "#bbbbbb", "#dddddd"
# Token labels may hold characters DejaVu Sans lacks (rare Arabic forms); they render as boxes, no need to warn.
warnings.filterwarnings("ignore", message="Glyph .* missing from font")


def _llr_bins(llr: np.ndarray, n_pos_bins: int = 4) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Masks, labels and colours: tokens the hypothesis cannot produce, LLR ≤ 0, then positive LLR bins."""
    fin = np.isfinite(llr)
    pos_vals = np.unique(llr[fin & (llr > 0)])
    masks = [~fin, fin & (llr <= 0)]
    labels = ["not in proxy alphabet", "proxy LLR ≤ 0"]
    colors = [LIGHT, GREY]
    if pos_vals.size:
        if pos_vals.size <= n_pos_bins:
            edges = np.concatenate([[0.0], (pos_vals[:-1] + pos_vals[1:]) / 2, [np.inf]])
        else:
            edges = np.unique(np.concatenate([[0.0], np.quantile(llr[fin & (llr > 0)],
                                                                  np.linspace(0, 1, n_pos_bins + 1)[1:-1]), [np.inf]]))
        cmap = plt.get_cmap("plasma")
        k = len(edges) - 1
        for i in range(k):
            lo, hi = edges[i], edges[i + 1]
            masks.append(fin & (llr > lo) & (llr <= hi))
            labels.append(f"LLR in ({lo:.1f}, {hi:.1f}]" if np.isfinite(hi) else f"LLR > {lo:.1f}")
            colors.append(cmap(0.15 + 0.7 * i / max(k - 1, 1)))
    return masks, labels, colors


def proxy_histograms(name: str, units: dict[str, tuple[str, np.ndarray]], llr: np.ndarray, path: str | Path,
                     n_bins: int = 40) -> None:
    """Paper Fig. 2 style, for one proxy: per unit (the best feature, the best neuron), the histogram of its
    nonzero activations stacked by the token's proxy LLR (log counts), and the expected-value plot
    (activation × count per bin: where the unit's activation mass comes from)."""
    masks, labels, colors = _llr_bins(llr)
    fig, axes = plt.subplots(len(units), 2, figsize=(10, 3.0 * len(units)), squeeze=False)
    for row, (key, (title, act)) in enumerate(units.items()):
        on = act > 0
        top = act[on].max() if on.any() else 1.0
        edges = np.linspace(0, top, n_bins + 1)
        centers = (edges[:-1] + edges[1:]) / 2
        counts = [np.histogram(act[on & m], bins=edges)[0] for m in masks]
        for col, values in ((0, counts), (1, [c * centers for c in counts])):
            ax = axes[row, col]
            bottom = np.zeros(n_bins)
            for v, lab, colr in zip(values, labels, colors):
                ax.bar(centers, v, width=edges[1] - edges[0], bottom=bottom, color=colr, label=lab, linewidth=0)
                bottom += v
            ax.set_xlabel("activation")
            if col == 0:
                ax.set_yscale("symlog", linthresh=1)
                ax.set_ylabel("tokens (log)")
                ax.set_title(f"{title}: activation histogram")
            else:
                ax.set_ylabel("activation × count")
                ax.set_title(f"{title}: expected value (activation mass)")
    axes[0, 1].legend(frameon=False, fontsize=7, loc="upper right")
    fig.suptitle(f"{PROXY_TITLES.get(name, name)}: activations stacked by proxy log-likelihood ratio "
                 f"(paper Fig. 2)", y=1.01)
    fig.tight_layout()
    _save(fig, path)


def logit_weight_histograms(panels: list[dict], path: str | Path) -> None:
    """Paper Fig. 3 style: each proxy feature's logit weights over the vocabulary, tokens of the proxy
    (LLR > 0) stacked over the others; its top tokens listed. panels: dicts with keys title, weights
    (vocab,), positive (vocab bool), top (list of token strings)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, p in zip(axes[0], panels):
        w, pos = p["weights"], p["positive"]
        edges = np.linspace(w.min(), w.max(), 60)
        ax.hist([w[~pos], w[pos]], bins=edges, stacked=True, color=[GREY, "#c44e52"],
                label=["other tokens", "proxy tokens (LLR > 0)"])
        ax.set_yscale("log")
        ax.set_xlabel("logit weight")
        ax.set_title(p["title"], fontsize=9)
        ax.text(0.02, 0.98, "top: " + " ".join(repr(t) for t in p["top"][:6]), transform=ax.transAxes,
                fontsize=6, va="top", wrap=True)
    axes[0, 0].set_ylabel("tokens (log)")
    axes[0, -1].legend(frameon=False, fontsize=7, loc="center right")
    fig.suptitle("Logit weights of the proxy features: W_U · diag(γ/σ̄) · W_out · d_i (paper Fig. 3)", y=1.02)
    fig.tight_layout()
    _save(fig, path)


def ablation_figure(panels: list[dict], path: str | Path) -> None:
    """Paper Fig. 4 style: per proxy feature, in one validation context, its activation per token (top) and
    the change in log-likelihood of the next token when the feature is ablated (bottom). panels: dicts with
    title, tokens (list of str), activation (T,), delta (T,) (delta[t]: predicting token t+1)."""
    fig, axes = plt.subplots(2 * len(panels), 1, figsize=(12, 2.6 * len(panels)), squeeze=False)
    for k, p in enumerate(panels):
        activation, delta = p["activation"], p["delta"]
        x = np.arange(len(activation))
        ax = axes[2 * k, 0]
        ax.bar(x, activation, color="#dd8452")
        ax.set_ylabel("activation", fontsize=7)
        ax.set_title(p["title"], fontsize=9)
        ax.set_xticks([])
        ax = axes[2 * k + 1, 0]
        ax.bar(x[:len(delta)] + 0.5, delta, color=np.where(delta >= 0, "#55a868", "#c44e52"), width=0.8)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel("Δ log p(next)", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels([t.replace("\n", "⏎") for t in p["tokens"]], rotation=90, fontsize=6)
        ax.set_xlim(-0.5, len(activation) - 0.5)
    fig.suptitle("Feature ablation: change in next-token log-likelihood when the feature is removed "
                 "(x − f_i·d_i) (paper Fig. 4)", y=1.0)
    fig.tight_layout()
    _save(fig, path)


def neuron_basis_figure(weights: np.ndarray, top: list[int], mass: dict[str, np.ndarray], subsets: list[str],
                        title: str, path: str | Path) -> None:
    """Paper Fig. 5 style: a feature's decoder vector in the neuron basis (one bar per neuron), and how the
    activation mass of the most heavily weighted neurons (and of the feature) spreads over corpus subsets.
    mass: {label: (n_subsets,) fractions}."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 3.6), gridspec_kw={"width_ratios": [2.2, 1]})
    ax0.bar(np.arange(len(weights)), weights, width=1.0, color="#4c72b0")
    for n in top:
        ax0.annotate(str(n), (n, weights[n]), fontsize=6, ha="center",
                     va="bottom" if weights[n] >= 0 else "top")
    ax0.set_xlabel("neuron")
    ax0.set_ylabel("decoder weight")
    ax0.set_title(f"{title}: decoder vector in the neuron basis")
    labels = list(mass)
    bottom = np.zeros(len(labels))
    cmap = plt.get_cmap("tab10")
    for j, s in enumerate(subsets):
        v = np.array([mass[lab][j] for lab in labels])
        ax1.barh(labels, v, left=bottom, color=cmap(j % 10), label=s)
        bottom += v
    ax1.invert_yaxis()
    ax1.set_xlabel("share of activation mass by corpus subset")
    ax1.set_title("feature vs its top neurons (by |decoder weight|)")
    ax1.legend(frameon=False, fontsize=7, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    fig.suptitle(f"{title} in the neuron basis, and where its largest-|weight| neurons' activation goes "
                 "(paper Fig. 5)", y=1.03)
    fig.tight_layout()
    _save(fig, path)


def universality_histogram(features: np.ndarray, neurons: np.ndarray, path: str | Path,
                           labels: tuple[str, str] = ("A", "B"), baseline: dict[str, np.ndarray] | None = None) -> None:
    """Paper Fig. 10 style: distribution of each unit's max activation correlation with any unit of the other
    model, features vs neurons (weighted to fractions, so the 4096 features and 512 neurons compare)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    bins = np.linspace(-0.1, 1, 45)
    series = [("features", features, "#4c72b0"), ("neurons", neurons, "#dd8452")]
    for key, v in (baseline or {}).items():
        series.append((key, v, "#999999" if "neuron" in key else "#55a868"))
    for lab, v, col in series:
        v = v[~np.isnan(v)]
        if v.size:
            ax.hist(v, bins=bins, weights=np.full(v.size, 1 / v.size), histtype="step", lw=1.6, color=col,
                    label=f"{lab} (median {np.median(v):.2f}, n={v.size})")
    ax.set_xlabel(f"max Pearson correlation of activations ({labels[0]} unit vs any {labels[1]} unit)")
    ax.set_ylabel("fraction of units")
    ax.set_title(f"Universality: {labels[0]} vs {labels[1]} (paper Fig. 10)")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    _save(fig, path)


def universality_scatter(act_corr: np.ndarray, logit_corr: np.ndarray, path: str | Path,
                         labels: tuple[str, str] = ("A", "B"), highlight: dict[str, int] | None = None) -> None:
    """Paper Fig. 6 style: for each feature of A and its most correlated feature of B, the activation
    correlation against the correlation of their logit weights."""
    fig, ax = plt.subplots(figsize=(5, 4.4))
    ok = ~np.isnan(act_corr) & ~np.isnan(logit_corr)
    ax.scatter(act_corr[ok], logit_corr[ok], s=3, alpha=0.35, color="#4c72b0", linewidths=0)
    for name, i in (highlight or {}).items():
        if 0 <= i < len(act_corr) and ok[i]:
            ax.scatter([act_corr[i]], [logit_corr[i]], s=30, color="#c44e52")
            ax.annotate(name, (act_corr[i], logit_corr[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("activation correlation (max over B features)")
    ax.set_ylabel("logit-weight correlation of the pair")
    ax.set_xlim(-0.05, 1.02)
    ax.set_ylim(-1.02, 1.02)
    ax.set_title(f"{labels[0]} features vs their best {labels[1]} match (paper Fig. 6)")
    _save(fig, path)


def umap_figure(emb: np.ndarray, groups: np.ndarray, group_names: list[str], path: str | Path,
                title: str = "UMAP of the decoder vectors of A/0 … A/1 (paper Fig. 1)") -> None:
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = plt.get_cmap("viridis")
    for g, name in enumerate(group_names):
        m = groups == g
        ax.scatter(emb[m, 0], emb[m, 1], s=2 if m.sum() > 2000 else 4, alpha=0.5,
                   color=cmap(g / max(len(group_names) - 1, 1)), label=f"{name} ({m.sum()})", linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(frameon=False, markerscale=4, fontsize=8)
    ax.set_title(title)
    _save(fig, path)


def splitting_figure(emb: np.ndarray, groups: np.ndarray, group_names: list[str], family: dict[str, np.ndarray],
                     parents: dict[str, tuple[np.ndarray, np.ndarray]], offsets: dict[str, int],
                     counts: dict[str, int], path: str | Path, family_name: str = "base64") -> None:
    """Paper Fig. 9 style: (left) number of family features per dictionary size; (right) the family's
    features in the UMAP co-embedding, each linked to its nearest decoder vector (parent) in the next smaller
    dictionary. family: {run: feature indices}; parents: {run: (parent index into the smaller run, cosine)};
    offsets: row of each run's first feature in emb."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1, 1.6]})
    names = list(counts)
    ax0.bar(range(len(names)), [counts[n] for n in names], color="#4c72b0")
    ax0.set_xticks(range(len(names)))
    ax0.set_xticklabels(names)
    for i, n in enumerate(names):
        ax0.annotate(str(counts[n]), (i, counts[n]), ha="center", va="bottom", fontsize=8)
    ax0.set_ylabel(f"{family_name} features")
    ax0.set_title(f"{family_name} features per dictionary size")
    ax1.scatter(emb[:, 0], emb[:, 1], s=1, color="#dddddd", linewidths=0)
    cmap = plt.get_cmap("viridis")
    runs = list(family)
    for g, run in enumerate(runs):
        idx = family[run]
        rows = offsets[run] + idx
        col = cmap(group_names.index(run) / max(len(group_names) - 1, 1))
        ax1.scatter(emb[rows, 0], emb[rows, 1], s=18, color=col, label=f"{run} ({len(idx)})", edgecolors="k",
                    linewidths=0.3, zorder=3)
        if run in parents and g > 0:
            prev = runs[g - 1]
            pidx, cos = parents[run]
            for r, p, c in zip(rows, pidx[idx], cos[idx]):
                pr = offsets[prev] + p
                ax1.plot([emb[r, 0], emb[pr, 0]], [emb[r, 1], emb[pr, 1]], color="k", lw=0.4, alpha=min(1, max(c, 0.1)))
    ax1.set_xticks([])
    ax1.set_yticks([])
    ax1.legend(frameon=False, fontsize=7)
    ax1.set_title(f"{family_name} features in the co-embedding, linked to their nearest parent")
    fig.suptitle(f"Feature splitting: the {family_name} feature as the dictionary grows (paper Fig. 9)", y=1.02)
    fig.tight_layout()
    _save(fig, path)


def toy_figure(by_size: list[dict], by_l1: list[dict], n_true: int, path: str | Path) -> None:
    """MMCS between learned decoder vectors and the ground-truth features of the toy data."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax0.plot([r["n_features"] for r in by_size], [r["mmcs"] for r in by_size], marker="o")
    ax0.axvline(n_true, color="#c44e52", ls="--", lw=0.8, label=f"{n_true} true features")
    ax0.set_xscale("log", base=2)
    ax0.set_xlabel("learned dictionary size")
    ax0.set_ylabel("MMCS with ground truth")
    ax0.set_ylim(0, 1.02)
    ax0.legend(frameon=False)
    ax0.set_title(f"vs dictionary size (λ = {by_size[0]['l1']:g})" if by_size else "")
    ax1.plot([r["l1"] for r in by_l1], [r["mmcs"] for r in by_l1], marker="o", label="MMCS")
    ax1.set_xscale("log")
    ax1.set_ylim(0, 1.02)
    ax1.set_xlabel("λ (L1 coefficient)")
    ax1.set_ylabel("MMCS")
    ax2 = ax1.twinx()
    ax2.plot([r["l1"] for r in by_l1], [r["l0"] for r in by_l1], marker="s", color="#999999", label="L0")
    ax2.set_yscale("log")
    ax2.set_ylabel("L0", color="#777777")
    ax1.set_title(f"vs λ ({n_true} learned features)")
    fig.suptitle("Toy model: SAEs recover known superposed features (mean max cosine similarity)", y=1.02)
    fig.tight_layout()
    _save(fig, path)


def dose_response_line_arms(rows: list[dict], mixed: Mapping[str, Mapping[str, float]] = MappingProxyType({})
                            ) -> set[str]:
    """The arms joined by the dose-response lines: the plain budget (tokens_mult and sae_points_mult 1) whose mix
    gives every named context one share (natural included), with the reference seed (the smallest seed among the
    arms; rows without one count as it); the others (more tokens, more SAE points, the arms in `mixed`, whose
    contexts have different shares, replicates with another seed) are separate markers."""
    ref = _reference_seed(rows)
    return {r["arm"] for r in rows if r["tokens_mult"] == 1 and r["sae_points_mult"] == 1 and r["arm"] not in mixed
            and r.get("seed", ref) == ref}


def _reference_seed(rows: list[dict]) -> int | None:
    return min((r["seed"] for r in rows if r.get("seed") is not None), default=None)


def mix_label(mix: Mapping[str, float]) -> str:
    """A mix with different shares per context, in the legend: {Arabic: 0.003, DNA: 0.01} -> "mixed 0.3/1%"."""
    return "mixed " + "/".join(f"{100 * share:g}" for share in mix.values()) + "%"


def _marker_tag(r: dict, mixed: Mapping[str, Mapping[str, float]], ref_seed: int | None) -> str:
    """The label beside an arm's marker off the lines: what differs from the plain arms (`mixed`: arm -> its mix,
    labelled by `mix_label`, so two different mixes get two markers)."""
    tags = [f"{r['tokens_mult']}x tokens" if r["tokens_mult"] > 1 else "",
            f"{r['sae_points_mult']}x SAE points" if r["sae_points_mult"] > 1 else "",
            mix_label(mixed[r["arm"]]) if r["arm"] in mixed else "",
            f"seed {r['seed']}" if r.get("seed", ref_seed) != ref_seed else ""]
    return ", ".join(t for t in tags if t)


_EXTRA_MARKERS = ("*", "D", "P", "X", "v", "h", "p", "<", ">")


def _marker_styles(tags: list[str]) -> dict[str, tuple[str, float]]:
    """Each off-line tag's (marker, x factor): its own marker shape (named in the legend) and its own step to the
    right of the arm of the same share (log axis), so replicates and variants at one share do not overlap."""
    unique = list(dict.fromkeys(t for t in tags if t))
    return {t: (_EXTRA_MARKERS[i % len(_EXTRA_MARKERS)], 1.07 ** (i + 1)) for i, t in enumerate(unique)}


BUDGET_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860")  # 1x, 4x, 16x, ... tokens


def dose_response_gaps(rows: list[dict], proxy: str) -> dict[int, list[dict]]:
    """The budget view of the dose-response: for `proxy`, per transformer budget (tokens_mult), one point per arm
    with {arm, share, gap, learned, mixed_shares}: gap = best feature r − best neuron r at the arm's training mix
    (the headline's comparison; on the natural split for arms measured before it existed), sorted by share."""
    out: dict[int, list[dict]] = {}
    for r in rows:
        if r["proxy"] != proxy:
            continue
        at = r.get("at_training_mix") or r
        out.setdefault(r["tokens_mult"], []).append(
            {"arm": r["arm"], "share": r["share"], "gap": at["feature_r"] - at["best_neuron_r"],
             "learned": r["context_learned"]})
    return {b: sorted(pts, key=lambda p: p["share"]) for b, pts in sorted(out.items())}


def _dose_response_budget_row(row_axes, rows: list[dict], proxies: list[str],
                              mixed: Mapping[str, Mapping[str, float]]) -> None:
    """Bottom row: feature r − best neuron r at the training mix against the share, one colour per transformer
    budget (tokens_mult); circles: every rare context at one share, diamonds: mixed shares; hollow: not learned."""
    gaps = {k: dose_response_gaps(rows, k) for k in proxies}
    budgets = sorted({b for g in gaps.values() for b in g})
    values = [p["gap"] for g in gaps.values() for pts in g.values() for p in pts]
    lim = max([abs(v) for v in values] + [0.05]) * 1.1
    for ax, k in zip(row_axes, proxies):
        for budget, pts in gaps[k].items():
            color = BUDGET_COLORS[budgets.index(budget) % len(BUDGET_COLORS)]
            for p in pts:
                ax.scatter(p["share"], p["gap"], marker="D" if p["arm"] in mixed else "o", s=30, color=color,
                           facecolors=color if p["learned"] else "none", zorder=3)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_ylim(-lim, lim)
        ax.set_xscale("log")
        ticks = sorted({p["share"] for pts in gaps[k].values() for p in pts})
        ax.set_xticks(ticks, [f"{100 * t:.2g}%" for t in ticks], fontsize=7)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_title(f"{k}: feature r − best neuron r, at the training mix", fontsize=8)
        ax.set_xlabel("share of training tokens")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], ls="none", marker="o", color=BUDGET_COLORS[i % len(BUDGET_COLORS)],
                          label=f"{b}x transformer tokens") for i, b in enumerate(budgets)]
    handles.append(plt.Line2D([], [], ls="none", marker="D", color="0.4", label="mixed shares"))
    row_axes[0].legend(handles=handles, fontsize=6, frameon=False, loc="lower left")
    row_axes[0].set_ylabel("gap (> 0: the feature wins)")


def dose_response_figure(rows: list[dict], path: str | Path,
                         mixed: Mapping[str, Mapping[str, float]] = MappingProxyType({})) -> None:
    """The superposition experiment (superposition.py): per proxy, Pearson r with the proxy against the rare
    context's share of the training tokens, for the best feature, the best neuron and the neuron nearest to the
    feature; top row on the natural validation split, bottom row (when measured) on the same points weighted to
    each arm's training mix; last row: the gap between feature and best neuron at the training mix, one colour
    per transformer budget (`dose_response_gaps`). Hollow markers: the context is not learned (val loss >= its
    unigram loss). Arms
    with more transformer tokens or more SAE points, whose contexts have different shares, or with another seed
    than the plain arms' are drawn as separate markers, labelled with what differs, not joined to the lines.
    `mixed`: the arms whose contexts have different shares -> their mix {context: share}."""
    proxies = list(dict.fromkeys(r["proxy"] for r in rows))
    on_line, ref_seed = dose_response_line_arms(rows, mixed), _reference_seed(rows)
    tags = {r["arm"]: _marker_tag(r, mixed, ref_seed) for r in rows if r["arm"] not in on_line}
    styles = _marker_styles(list(tags.values()))
    views = [("natural validation split", lambda r: r)]
    if any("at_training_mix" in r for r in rows):
        views.append(("at each arm's training mix", lambda r: r.get("at_training_mix")))
    fig, axes = plt.subplots(len(views) + 1, len(proxies), figsize=(3.4 * len(proxies), 3.0 * (len(views) + 1) + 0.6),
                             squeeze=False)
    series = (("feature_r", "best feature", "C0", "o"), ("best_neuron_r", "best neuron", "C3", "s"),
              ("nearest_neuron_r", "neuron nearest the feature", "C2", "^"))
    for row_axes, (view, get) in zip(axes[:-1], views):
        for ax, k in zip(row_axes, proxies):
            sel = [r for r in rows if r["proxy"] == k and get(r) is not None]
            base = sorted((r for r in sel if r["arm"] in on_line), key=lambda r: r["share"])
            extra = [r for r in sel if r not in base]
            for key, label, color, marker in series:
                ax.plot([r["share"] for r in base], [get(r)[key] for r in base], color=color, lw=1.2, label=label)
                for r in base + extra:
                    tag = tags.get(r["arm"], "")
                    m, step = styles[tag] if tag else (marker, 1.0)  # off-line arms: beside the arm of that share
                    ax.scatter(r["share"] * step, get(r)[key], marker=m, s=70 if m == "*" else 30, color=color,
                               facecolors=color if r["context_learned"] else "none", zorder=3)
            ax.set_ylim(-0.05, 1.0)
            ax.set_xscale("log")
            ticks = sorted({r["share"] for r in sel})
            ax.set_xticks(ticks, [f"{100 * t:.2g}%" for t in ticks], fontsize=7)
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
            ax.set_title(f"{k} ({view})", fontsize=8)
            ax.set_xlabel("share of training tokens")
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel("Pearson r with the proxy")
    _dose_response_budget_row(axes[-1], rows, proxies, mixed)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for tag, (m, _) in styles.items():  # the off-line arms: grey markers, coloured by series in the panels
        handles.append(plt.Line2D([], [], ls="none", marker=m, color="0.4", markersize=8 if m == "*" else 6))
        labels.append(tag)
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(handles), 6), frameon=False)
    names = "/".join(next(iter(mixed.values()))) if mixed else ""  # the order mix_label lists the shares in
    fig.suptitle("Rare contexts: features vs neurons as the context's share falls (hollow: context not learned; "
                 "other markers, right of their share: more transformer tokens or SAE points, mixed shares, or "
                 "another seed)" + (f"\n\"mixed a/b/…%\": the shares of {names}" if names else ""), fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    _save(fig, path)
