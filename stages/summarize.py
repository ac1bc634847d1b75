"""Stage summarize: the sweep table, metrics/summary.json's headline, plot data and the sweep's paper figures.

Reads metrics/sae/*.json, the headline blocks of metrics/analysis/*.json, the features-vs-neurons comparisons of
A/1 and B/1 (metrics/analysis/neurons_vs_features.json, features_vs_neurons_B_4096.json), the dose-response table
(metrics/dose_response.json, when the experiment has been run), artifacts/eval/*/feature_density.npy and the
SAE training curves (monosemantic/sae/sweep.py); writes metrics/sweep.csv, metrics/summary.json,
plots/{l0_vs_loss_recovered,sae_training/*}.csv and
paper_figures/{fig12_density_by_l1,fig13_l0_vs_loss_recovered,sae_training_curves}.png.
"""

import json

import numpy as np

from monosemantic.core import paths
from monosemantic.figures import sae as figures
from monosemantic.core.runner import stage
from monosemantic.sae.sweep import (SWEEP_COLUMNS, collect_headlines, headline, pipeline_verdicts, read_curves,
                                    sweep_table)
from monosemantic.core.utils import write_csv, write_json


@stage()
def main(params) -> None:
    cfg = params.evaluate
    sweep = sweep_table([json.loads(paths.sae_metrics(name).read_text()) for name in params.sae_runs])
    write_csv(sweep.reindex(columns=SWEEP_COLUMNS), paths.METRICS / "sweep.csv")
    summary = {"headline": {**headline(sweep, cfg.headline_run),
                            **collect_headlines(paths.METRICS / "analysis", paths.METRICS / "dose_response.json")}}
    # the verdict over the pipeline's two trainings: A/1 (stage neurons_vs_features) and B/1 (features_vs_neurons)
    a, b = params.analysis.run, params.analysis.compare_run
    fvn = {a: json.loads(paths.analysis_metrics("neurons_vs_features").read_text())["features_vs_neurons"],
           b: json.loads(paths.analysis_metrics(f"features_vs_neurons_{b}").read_text())["features_vs_neurons"]}
    seeds = {r: params.transformer_seed(params.sae_run(r).model) for r in fvn}
    summary["headline"].setdefault("features_vs_neurons_across_trainings", {})["pipeline"] = \
        pipeline_verdicts(fvn, seeds)
    write_json(paths.METRICS / "summary.json", summary)

    # the paper's Figs. 12 and 13 (by λ): the headline model's dictionaries of the paper's recipe
    model_sweep = sweep[(sweep["model"] == params.sae_run(cfg.headline_run).model)
                        & (sweep["architecture"] == "standard")]
    write_csv(model_sweep[["run", "n_features", "l1_coeff", "l0", "frac_loss_recovered"]],
              paths.PLOTS / "l0_vs_loss_recovered.csv")
    densities = {r: np.load(paths.eval_dir(r) / "feature_density.npy") for r in model_sweep["run"]}
    figures.density_histograms(model_sweep, densities, paths.figure("fig12_density_by_l1.png"), cfg.ultralow_density)
    figures.l0_vs_loss_recovered(model_sweep, paths.figure("fig13_l0_vs_loss_recovered.png"))
    curves = {name: read_curves(paths.sae_dir(name) / "live") for name in params.sae_runs}
    for name, df in curves.items():
        write_csv(df, paths.PLOTS / "sae_training" / f"{name}.csv")
    figures.training_curves(curves, paths.figure("sae_training_curves.png"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main.run()
