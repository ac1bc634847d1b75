"""The sweep over dictionary sizes, architectures and their sparsity knobs (λ, k, ...): its table, the headline
numbers and the training curves.

`run_columns(run)` are the columns of metrics/sae/RUN.json that say which dictionary a run is (its architecture
and settings); `sweep_table(rows)` is metrics/sweep.csv (one row per run of sae_runs, from metrics/sae/RUN.json);
`headline(sweep, run)` the A/1 numbers of metrics/summary.json (loss recovered, L0, dead and ultralow
fractions, and loss recovered by dictionary size at the same model, architecture and knob); `collect_headlines`
adds the analysis stages' own headline blocks and the dose-response table.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

# knob: the column of the run's sparsity knob (l1_coeff for λ, k, ...), knob_value its value; l1_coeff: λ of the
# architectures with an L1 coefficient (empty for the others)
SWEEP_COLUMNS = ["run", "model", "n_features", "architecture", "knob", "knob_value", "l1_coeff", "mse",
                 "explained_variance", "l0", "l1", "dead", "ultralow", "dense", "frac_loss_recovered", "loss_clean",
                 "loss_sae", "loss_zero"]


def run_columns(run) -> dict:
    """A run's architecture and settings (params.sae_runs.NAME) as metrics columns: an `l1` setting (λ) as
    l1_coeff (the column l1 is the measured mean L1 norm of f), every other setting under its own name, and
    `knob`, the column of the architecture's sparsity knob (Settings.knob)."""
    column = lambda key: "l1_coeff" if key == "l1" else key  # noqa: E731
    settings = {column(k): v for k, v in dataclasses.asdict(run.settings).items()}
    return {"architecture": run.architecture, "knob": column(run.settings.knob), **settings}


def sweep_table(rows: list[dict]) -> pd.DataFrame:
    """One row per run: the evaluate_sae metrics (all columns; SWEEP_COLUMNS is what metrics/sweep.csv keeps),
    with knob_value, the value of each run's knob column."""
    sweep = pd.DataFrame(rows)
    sweep["knob_value"] = [r[r["knob"]] for r in rows]
    return sweep


def headline(sweep: pd.DataFrame, run: str) -> dict:
    """The headline run's numbers, and loss recovered by size over the runs of the same model, architecture and
    knob value."""
    head = sweep.set_index("run").loc[run]
    same = sweep[(sweep["model"] == head["model"]) & (sweep["architecture"] == head["architecture"])
                 & (sweep["knob"] == head["knob"]) & (sweep["knob_value"] == head["knob_value"])]
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
        group["proxies"][row["proxy"]] = _verdict(v["feature_wins"], v["n"], v["gap_min"], v["gap_max"])
    for group in out.values():
        group["proxies_won_in_most_trainings"] = _won_in_most(group["proxies"])
    return out


def _verdict(wins: int, n: int, gap_min: float, gap_max: float) -> dict:
    """One proxy's "k of n trainings" entry."""
    return {"verdict": f"{wins} of {n}", "feature_wins": wins, "n": n, "gap_min": gap_min, "gap_max": gap_max}


def _won_in_most(proxies: dict) -> int:
    """The proxies whose feature won in most trainings (> n / 2)."""
    return sum(p["feature_wins"] * 2 > p["n"] for p in proxies.values())


def pipeline_verdicts(fvn_by_run: dict[str, dict], seeds: dict[str, int], view: str = "at_training_mix") -> dict:
    """The features-vs-neurons verdict over the pipeline's own trainings (A/1 and B/1: one dictionary of each
    transformer, from stages neurons_vs_features and features_vs_neurons), in the shape of verdicts_across_trainings:
    per proxy, in how many of the runs the best feature's r beats the best neuron's (`view`: "at_training_mix", or
    "" for the held-out points as they come), with the range of the gap, and the proxies won in most (> n / 2)."""
    runs = list(fvn_by_run)
    out: dict = {"runs": runs, "seeds": [seeds[r] for r in runs], "proxies": {}}
    tables = {r: (f[view] if view else f)["proxies"] for r, f in fvn_by_run.items()}
    for proxy in tables[runs[0]]:
        gaps = [tables[r][proxy]["feature_r"] - tables[r][proxy]["best_neuron_r"] for r in runs]
        out["proxies"][proxy] = _verdict(sum(g > 0 for g in gaps), len(runs), round(min(gaps), 4), round(max(gaps), 4))
    out["proxies_won_in_most_trainings"] = _won_in_most(out["proxies"])
    return out


def read_curves(live_dir: Path) -> pd.DataFrame:
    """An SAE's logged training metrics (the dvclive TSVs under artifacts/sae/RUN/live), one column each by step."""
    frames = []
    for tsv in sorted(Path(live_dir).glob("plots/metrics/train/*.tsv")):
        df = pd.read_csv(tsv, sep="\t")
        frames.append(df[["step", tsv.stem]].set_index("step"))
    return pd.concat(frames, axis=1).reset_index() if frames else pd.DataFrame({"step": []})
