"""The sweep over dictionary sizes and L1 coefficients: its table, the headline numbers and the training curves.

`sweep_table(rows)` is metrics/sweep.csv (one row per run of sae_runs, from metrics/sae/RUN.json);
`headline(sweep, run)` the A/1 numbers of metrics/summary.json (loss recovered, L0, dead and ultralow
fractions, and loss recovered by dictionary size at the same model and λ); `collect_headlines` adds the
analysis stages' own headline blocks and the dose-response table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

SWEEP_COLUMNS = ["run", "model", "n_features", "l1_coeff", "mse", "explained_variance", "l0", "l1", "dead",
                 "ultralow", "dense", "frac_loss_recovered", "loss_clean", "loss_sae", "loss_zero"]


def sweep_table(rows: list[dict]) -> pd.DataFrame:
    """One row per run: the evaluate_sae metrics (all columns; SWEEP_COLUMNS is what metrics/sweep.csv keeps)."""
    return pd.DataFrame(rows)


def headline(sweep: pd.DataFrame, run: str) -> dict:
    """The headline run's numbers, and loss recovered by size over the runs of the same model and λ."""
    head = sweep.set_index("run").loc[run]
    same = sweep[(sweep["model"] == head["model"]) & (sweep["l1_coeff"] == head["l1_coeff"])]
    return {
        "a1_frac_loss_recovered": float(head["frac_loss_recovered"]),
        "a1_l0": float(head["l0"]),
        "a1_dead_frac": float(head["dead_frac"]),
        "a1_ultralow_frac": float(head["ultralow_frac"]),
        "a1_density_populations": head["density_populations"],  # dead + the ultralow cluster (Fig. 12's valley)
        # firings counted on the training split too, so that the paper's 1e-6 means a few firings
        **({"a1_train_density": head["train_density"]}
           if "train_density" in head and isinstance(head["train_density"], dict) else {}),
        "loss_recovered_by_size": {str(int(r["n_features"])): float(r["frac_loss_recovered"])
                                   for _, r in same.sort_values("n_features").iterrows()},
    }


def collect_headlines(analysis_dir: Path, dose_response: Path) -> dict:
    """The `headline` blocks of metrics/analysis/*.json (sorted by file name), and the dose-response table when the
    experiment has been run (experiments/superposition/dvc.yaml, apart from the plain `dvc repro`)."""
    out: dict = {}
    for path in sorted(Path(analysis_dir).glob("*.json")):
        out.update(json.loads(path.read_text()).get("headline", {}))
    if Path(dose_response).exists():
        doc = json.loads(Path(dose_response).read_text())
        out["dose_response"] = doc["dose_response"]
        if doc.get("replicates"):
            out["features_vs_neurons_across_trainings"] = verdicts_across_trainings(doc["replicates"])
    return out


def verdicts_across_trainings(replicates: list[dict], view: str = "at_training_mix") -> dict:
    """The features-vs-neurons verdict as "k of n trainings": per group of replicate arms (one mix and budget,
    several seeds: metrics/dose_response.json `replicates`) and proxy, in how many trainings the best feature's r
    beats the best neuron's (`view`: at the training mix, the headline comparison), with the range of the gap
    (feature r - best neuron r) over the trainings, and the number of proxies won in most trainings (> n / 2)."""
    out: dict = {}
    for row in replicates:
        v = row.get(view)
        if not v:
            continue
        group = out.setdefault(row["group"], {"arms": row["arms"], "seeds": row["seeds"], "proxies": {}})
        group["proxies"][row["proxy"]] = {"verdict": f"{v['feature_wins']} of {v['n']}",
                                          "feature_wins": v["feature_wins"], "n": v["n"],
                                          "gap_min": v["gap_min"], "gap_max": v["gap_max"]}
    for group in out.values():
        group["proxies_won_in_most_trainings"] = sum(p["feature_wins"] * 2 > p["n"]
                                                     for p in group["proxies"].values())
    return out


def read_curves(live_dir: Path) -> pd.DataFrame:
    """An SAE's logged training metrics (the dvclive TSVs under artifacts/sae/RUN/live), one column each by step."""
    frames = []
    for tsv in sorted(Path(live_dir).glob("plots/metrics/train/*.tsv")):
        df = pd.read_csv(tsv, sep="\t")
        frames.append(df[["step", tsv.stem]].set_index("step"))
    return pd.concat(frames, axis=1).reset_index() if frames else pd.DataFrame({"step": []})
