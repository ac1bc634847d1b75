"""The paper's figures, drawn with matplotlib (Agg) into paper_figures/ as PNG.

Each function takes plain data (pandas frames / numpy arrays) and a path, so the figures can be redrawn
from committed metrics and plot data without rerunning anything.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from monosemantic.core.utils import atomic_path  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "axes.spines.top": False, "axes.spines.right": False,
                     "axes.titlesize": 11, "axes.labelsize": 10, "font.size": 9})


def _save(fig, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


def density_histograms(sweep: pd.DataFrame, densities: dict[str, np.ndarray], path: str | Path,
                       ultralow: float) -> None:
    """Paper figure 12-style: log10 feature density histograms, one panel per SAE, rows grouped by λ."""
    lambdas = sorted(sweep["l1_coeff"].unique())
    sizes = sorted(sweep["n_features"].unique())
    fig, axes = plt.subplots(len(lambdas), len(sizes), figsize=(3.0 * len(sizes), 2.2 * len(lambdas)),
                             squeeze=False, sharex=True)
    bins = np.arange(-8, 0.01, 0.2)
    for i, lam in enumerate(lambdas):
        for j, n in enumerate(sizes):
            ax = axes[i, j]
            row = sweep[(sweep["l1_coeff"] == lam) & (sweep["n_features"] == n)]
            if row.empty:
                ax.axis("off")
                continue
            density = densities[row.iloc[0]["run"]]
            alive = density[density > 0]
            ax.hist(np.clip(np.log10(alive), -8, 0), bins=bins, color="#4c72b0")
            ax.axvline(np.log10(ultralow), color="#c44e52", lw=0.8, ls="--")
            ax.set_title(f"{row.iloc[0]['run']}: {n} feat., λ={lam:g}\n"
                         f"dead {int((density == 0).sum())}, "
                         f"ultralow {int(((density > 0) & (density < ultralow)).sum())}")
            if i == len(lambdas) - 1:
                ax.set_xlabel("log10 feature density")
            if j == 0:
                ax.set_ylabel("features")
    fig.suptitle("Feature density histograms by dictionary size and L1 coefficient (paper Fig. 12)\n"
                 f"dashed: ultralow threshold {ultralow:g}")
    _save(fig, path)


def l0_vs_loss_recovered(sweep: pd.DataFrame, path: str | Path) -> None:
    """Paper figure 13-style: L0 vs fraction of MLP loss recovered, one line per λ across dictionary sizes."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for lam, group in sweep.groupby("l1_coeff"):
        group = group.sort_values("n_features")
        ax.plot(group["l0"], group["frac_loss_recovered"], marker="o", label=f"λ = {lam:g}")
        for _, r in group.iterrows():
            ax.annotate(str(int(r["n_features"])), (r["l0"], r["frac_loss_recovered"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("L0 (mean active features per token)")
    ax.set_ylabel("fraction of MLP loss recovered")
    ax.set_title("Sparsity vs loss recovered across dictionary sizes (paper Fig. 13)")
    ax.legend(frameon=False)
    _save(fig, path)


def training_curves(curves: dict[str, pd.DataFrame], path: str | Path) -> None:
    """SAE training curves: MSE, L0, dead features and total loss against step, one line per SAE."""
    panels = [("mse", "MSE", True), ("l0", "L0", True), ("dead", "dead features", False),
              ("loss", "total loss", True)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (key, label, log) in zip(axes, panels):
        for run, df in curves.items():
            if key in df:
                ax.plot(df["step"], df[key], label=run, lw=1)
        ax.set_xlabel("step")
        ax.set_title(label)
        if log:
            ax.set_yscale("log")
    axes[0].legend(frameon=False, fontsize=7)
    fig.suptitle("SAE training curves (spikes in dead features: resampling steps)")
    _save(fig, path)
