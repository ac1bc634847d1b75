"""Stage toy_model: SAEs recover known sparse superposed features (toy-model verification).

    python -m stages.toy_model

Synthetic data with analysis.toy.n_true ground-truth directions in analysis.toy.d dimensions
(monosemantic/analysis/toy.py), SAEs trained by monosemantic.sae.train.train_sae (the code that trains the real
dictionaries) across dictionary sizes and λ, scored by the mean max cosine similarity (MMCS) of the true
directions with the learned decoder vectors. Writes metrics/analysis/toy.json (headline toy_mmcs: the
dictionary with n_features = n_true at λ = analysis.toy.l1), plots/toy_mmcs.csv and
paper_figures/toy_mmcs.png.
"""

import time

from monosemantic.core import paths
from monosemantic.analysis import toy
from monosemantic.figures import analysis as figs
from monosemantic.core.runner import stage
from monosemantic.core.utils import atomic_path, write_json


@stage()
def main(params) -> None:
    t0 = time.perf_counter()
    cfg = params.analysis.toy
    res = toy.run_toy(cfg, progress=True)
    res.update(toy.headline(res, cfg.n_true))
    res["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(paths.analysis_metrics("toy"), res)
    with atomic_path(paths.plot("toy_mmcs.csv")) as tmp:
        tmp.write_text(toy.csv_table(res))
    figs.toy_figure(res["by_size"], res["by_l1"], cfg.n_true, paths.figure("toy_mmcs.png"))
    run = res["headline_run"]
    print(f"toy MMCS ({run['n_features']} features, λ={run['l1']:g}): {res['headline']['toy_mmcs']:.3f}; "
          f"done in {res['seconds']}s")


if __name__ == "__main__":
    main.run()
