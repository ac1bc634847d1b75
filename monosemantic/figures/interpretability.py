"""Figures of the LLM-free interpretability scores (paper Figs. 7 and 8), in the style of figures/sae.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monosemantic.figures.sae import _save, plt

COLORS = {"features": "#1f77b4", "neurons": "#d62728", "random_features": "#7f7f7f"}
SHORT = {"features": "features", "neurons": "neurons", "random_features": "random-model\nfeatures"}
LABELS = {"features": "features (A/1)", "neurons": "neurons (model A)", "random_features": "features (random transformer)"}


def _hist(ax, groups: dict[str, np.ndarray], bins: np.ndarray) -> None:
    for g, v in groups.items():
        v = np.asarray(v, float)
        if v.size:
            ax.hist(v, bins=bins, histtype="step", lw=1.8, color=COLORS.get(g), density=True,
                    label=f"{LABELS.get(g, g)}: median {np.median(v):.2f} (n={v.size})")


def autointerp_figure(scores: dict[str, dict[str, np.ndarray]], logit_acc: dict[str, float], path: str | Path) -> None:
    """Paper Fig. 8 analogue: histograms of the simulation score (held-out mix, importance-weighted) per
    group, and the logit-side two-choice accuracy per group (paper: 74% features, 58% neurons)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [1, 1, 0.6]})
    bins = np.linspace(-0.2, 1.0, 25)
    for ax, key, title in ((axes[0], "score", "simulation score (top + intervals + random)"),
                           (axes[1], "score_weighted", "importance-weighted simulation score")):
        _hist(ax, {g: s[key] for g, s in scores.items()}, bins)
        ax.set_xlabel("correlation(simulated, true activation)")
        ax.set_ylabel("density of units")
        ax.set_title(title, fontsize=10)
        ax.legend(frameon=False, fontsize=7)
    names = list(logit_acc)
    axes[2].bar(range(len(names)), [logit_acc[g] for g in names], color=[COLORS.get(g) for g in names])
    axes[2].axhline(0.5, color="k", lw=0.8, ls=":")
    axes[2].set_xticks(range(len(names)), [SHORT.get(g, g) for g in names], fontsize=8)
    axes[2].set_ylim(0, 1)
    axes[2].set_ylabel("two-choice accuracy")
    axes[2].set_title("logit side: promoted vs random tokens", fontsize=10)
    fig.suptitle("LLM-free automated interpretability (paper Fig. 8 analogue; explainer sees the training split only)",
                 fontsize=11)
    _save(fig, path)


def rubric_figure(totals: dict[str, np.ndarray], path: str | Path, hand: dict[str, list[float]] | None = None,
                  max_score: int = 14) -> None:
    """Paper Fig. 7 analogue: distribution of the automatic rubric total (0–14) per group; when hand scores
    of the blinded spot-check are given, a second panel with them."""
    n = 2 if hand else 1
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 3.8), squeeze=False)
    bins = np.arange(-0.5, max_score + 1.5)
    _hist(axes[0, 0], totals, bins)
    axes[0, 0].set_title("automatic rubric (consistency 0–6, logit 0–4, specificity 0–4)", fontsize=10)
    if hand:
        _hist(axes[0, 1], {g: np.asarray(v) for g, v in hand.items()}, bins)
        axes[0, 1].set_title("blinded hand spot-check (paper's rubric)", fontsize=10)
    for ax in axes[0]:
        ax.set_xlabel(f"rubric score (0–{max_score})")
        ax.set_ylabel("density of units")
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle("Interpretability rubric, features vs neurons (paper Fig. 7: median 12 vs 0)", fontsize=11)
    _save(fig, path)


def automata_figure(automata: list[dict], path: str | Path) -> None:
    """Paper Fig. 11 analogue: each automaton as a graph (states = features with their top tokens; edges with
    lift and the causal check's pinned vs ablated rate, expected (or sampled, in a file from before the expected
    rates), solid and marked "causal" when it confirms the edge, dashed otherwise) and an example token path from
    the validation text."""
    from matplotlib.patches import Circle, FancyArrowPatch

    n = max(len(automata), 1)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
        ax.set_xlim(-1.6, 1.6)
        ax.set_ylim(-1.5, 1.3)
        ax.set_aspect("equal")
    if not automata:
        axes[0, 0].text(0, 0, "no automaton passed the thresholds", ha="center", va="center")
    for ax, a in zip(axes.ravel(), automata):
        k = len(a["states"])
        xy = {s: ((-0.8 + 1.6 * m / max(k - 1, 1)) if k > 1 else 0.0, 0.2) for m, s in enumerate(a["states"])}
        for s, (x, y) in xy.items():
            ax.add_patch(Circle((x, y), 0.38, fc="#dbe9f6", ec="#1f77b4", lw=1.5))
            ax.text(x, y + 0.08, f"feature {s}", ha="center", va="center", fontsize=8, weight="bold")
            ax.text(x, y - 0.12, " ".join(f"«{t}»" for t in a.get("state_tokens", {}).get(str(s), [])[:3]),
                    ha="center", va="center", fontsize=7)
        pre = "expected_" if "expected_pinned_rate" in a else ""
        for m, (i, j) in enumerate(a["edges"]):
            pr = a.get(pre + "pinned_rate", [None] * len(a["edges"]))[m]
            br = a.get(pre + "baseline_rate", [None] * len(a["edges"]))[m]
            causal = a.get("causal", [None] * len(a["edges"]))[m]
            label = f"lift {a['lift'][m]:.0f}" + (f"\npinned {pr:.0%}" if pr is not None else "") + \
                (f" vs ablated {br:.0%}" if br is not None else "") + \
                ("" if causal is None else ": causal" if causal else ": not causal")
            style = "--" if causal is False else "-"
            if i == j:
                x, y = xy[i]
                ax.add_patch(FancyArrowPatch((x - 0.2, y + 0.33), (x + 0.2, y + 0.33), connectionstyle="arc3,rad=-1.6",
                                             arrowstyle="-|>", mutation_scale=12, lw=1.3, color="#444", ls=style))
                ax.text(x, y + 0.98, label, ha="center", fontsize=7)
            else:
                (x0, y0), (x1, y1) = xy[i], xy[j]
                rad = -0.4
                ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                             mutation_scale=12, lw=1.3, color="#444", shrinkA=20, shrinkB=20, ls=style))
                ym = y0 + (0.62 if x0 < x1 else -0.62)
                ax.text((x0 + x1) / 2, ym, label, ha="center", va="center", fontsize=7)
        if a.get("example"):
            ax.text(0, -1.2, "example: " + a["example"], ha="center", va="center", fontsize=7, wrap=True)
    fig.suptitle("Feature automata: logit weights promote the tokens the next feature fires on (paper Fig. 11)",
                 fontsize=11)
    _save(fig, path)
