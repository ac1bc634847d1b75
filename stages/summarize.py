"""Stage summarize: the sweep table, metrics/summary.json's headline, plot data and the first paper figures.

Reads metrics/sae/*.json, the headline blocks of metrics/analysis/*.json, the dose-response table
(metrics/dose_response.json, when the experiment has been run), artifacts/eval/*/feature_density.npy and the
SAE training curves; writes
metrics/sweep.csv, metrics/summary.json, plots/{l0_vs_loss_recovered,sae_training/*}.csv and
paper_figures/{fig12_density_by_l1,fig13_l0_vs_loss_recovered,sae_training_curves}.png.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's own package, also in scratch copies

import json

import numpy as np
import pandas as pd

from monosemantic import figures
from monosemantic.config import ConfigError, load_params
from monosemantic.utils import atomic_path, fail, write_json


def read_curves(run: str) -> pd.DataFrame:
    """One frame per SAE: step and the logged training metrics (dvclive TSVs under artifacts/sae/RUN/live)."""
    frames = []
    for tsv in sorted(Path(f"artifacts/sae/{run}/live/plots/metrics/train").glob("*.tsv")):
        df = pd.read_csv(tsv, sep="\t")
        frames.append(df[["step", tsv.stem]].set_index("step"))
    return pd.concat(frames, axis=1).reset_index() if frames else pd.DataFrame({"step": []})


def write_csv(df: pd.DataFrame, path: str) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def main() -> None:
    try:
        params = load_params()
    except ConfigError as e:
        fail(str(e))
    cfg = params.evaluate
    rows = []
    for name in params.sae_runs:
        path = Path(f"metrics/sae/{name}.json")
        if not path.exists():
            fail(f"{path}: missing; run `dvc repro evaluate_sae@{name}`")
        rows.append(json.loads(path.read_text()))
    sweep = pd.DataFrame(rows)
    cols = ["run", "model", "n_features", "l1_coeff", "mse", "explained_variance", "l0", "l1", "dead",
            "ultralow", "dense", "frac_loss_recovered", "loss_clean", "loss_sae", "loss_zero"]
    write_csv(sweep[cols], "metrics/sweep.csv")

    head = sweep.set_index("run").loc[cfg.headline_run]
    same = sweep[(sweep["model"] == head["model"]) & (sweep["l1_coeff"] == head["l1_coeff"])]
    summary = {"headline": {
        "a1_frac_loss_recovered": float(head["frac_loss_recovered"]),
        "a1_l0": float(head["l0"]),
        "a1_dead_frac": float(head["dead_frac"]),
        "a1_ultralow_frac": float(head["ultralow_frac"]),
        "a1_density_populations": head["density_populations"],  # dead + the ultralow cluster (Fig. 12's valley)
        "loss_recovered_by_size": {str(int(r["n_features"])): float(r["frac_loss_recovered"])
                                   for _, r in same.sort_values("n_features").iterrows()},
    }}
    # The analysis stages' headline numbers (proxies, universality, splitting, toy model, ...).
    for path in sorted(Path("metrics/analysis").glob("*.json")):
        summary["headline"].update(json.loads(path.read_text()).get("headline", {}))
    # The dose-response experiment (experiments/superposition/dvc.yaml, run apart from the plain `dvc repro`):
    # its committed table, tracked here through that pipeline's dvc.lock (which records the table's hash).
    dose = Path("metrics/dose_response.json")
    if dose.exists():
        summary["headline"]["dose_response"] = json.loads(dose.read_text())["dose_response"]
    write_json("metrics/summary.json", summary)

    model_sweep = sweep[sweep["model"] == head["model"]]
    write_csv(model_sweep[["run", "n_features", "l1_coeff", "l0", "frac_loss_recovered"]],
              "plots/l0_vs_loss_recovered.csv")
    densities = {r: np.load(f"artifacts/eval/{r}/feature_density.npy") for r in model_sweep["run"]}
    figures.density_histograms(model_sweep, densities, "paper_figures/fig12_density_by_l1.png",
                               cfg.ultralow_density)
    figures.l0_vs_loss_recovered(model_sweep, "paper_figures/fig13_l0_vs_loss_recovered.png")
    curves = {name: read_curves(name) for name in params.sae_runs}
    for name, df in curves.items():
        write_csv(df, f"plots/sae_training/{name}.csv")
    figures.training_curves(curves, "paper_figures/sae_training_curves.png")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
