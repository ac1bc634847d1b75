"""paper_figures/recipes_frontier.png: the recipes comparison's L0 against the fraction of MLP loss recovered, drawn
in the style of the paper's figures (monosemantic/figures/sae.py) from metrics/recipes.json's rows."""

from __future__ import annotations

from pathlib import Path

from monosemantic.figures.sae import _save, plt


def recipes_frontier(rows: list[dict], matched: dict[str, str], reference: dict, path: str | Path) -> None:
    """L0 (log) against the fraction of MLP loss recovered, one line per architecture over its dictionaries of the
    reference's model and size (its knob sweep); the dictionary matched to the reference's L0 ringed, the
    reference's L0 dotted."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    chosen = set(matched.values())
    for arch in dict.fromkeys(r["architecture"] for r in rows):
        sweep = sorted((r for r in rows if r["architecture"] == arch and r["model"] == reference["model"]
                        and r["n_features"] == reference["n_features"] and r["frac_loss_recovered"] is not None),
                       key=lambda r: r["l0"])
        if not sweep:
            continue
        line, = ax.plot([r["l0"] for r in sweep], [r["frac_loss_recovered"] for r in sweep], marker="o",
                        label=f"{arch} ({sweep[0]['knob']})")
        for r in sweep:
            ax.annotate(f"{r['knob_value']:g}", (r["l0"], r["frac_loss_recovered"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points", color=line.get_color())
            if r["name"] in chosen:
                ax.plot(r["l0"], r["frac_loss_recovered"], marker="o", ms=12, mfc="none", color=line.get_color())
    ax.axvline(reference["l0"], color="0.6", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("L0 (mean active features per token)")
    ax.set_ylabel("fraction of MLP loss recovered")
    ax.set_title(f"SAE recipes on model {reference['model']}, {reference['n_features']} features "
                 f"(dotted: {reference['run']}'s L0; ringed: matched)")
    ax.legend(frameon=False, fontsize=8)
    _save(fig, path)
