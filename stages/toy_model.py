"""Stage toy_model: SAEs recover known sparse superposed features (toy-model verification).

    python stages/toy_model.py

Synthetic data with analysis.toy.n_true ground-truth directions in analysis.toy.d dimensions
(monosemantic/toy.py), SAEs trained by monosemantic.sae_train.train_sae (the code that trains the real
dictionaries) across dictionary sizes and λ, scored by the mean max cosine similarity (MMCS) of the true
directions with the learned decoder vectors. Writes metrics/analysis/toy.json (headline toy_mmcs: the
dictionary with n_features = n_true at λ = analysis.toy.l1), plots/toy_mmcs.csv and
paper_figures/toy_mmcs.png.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic import analysis_figures as figs  # noqa: E402
from monosemantic.config import load_params  # noqa: E402
from monosemantic.config import ConfigError  # noqa: E402
from monosemantic.toy import run_toy  # noqa: E402
from monosemantic.utils import atomic_path, fail, write_json  # noqa: E402


def main() -> None:
    t0 = time.perf_counter()
    try:
        cfg = load_params().analysis
    except ConfigError as e:
        fail(str(e))
    toy = cfg.toy
    res = run_toy(toy, progress=True)
    at_true = [r for r in res["by_size"] if r["n_features"] == toy.n_true]
    head = at_true[0] if at_true else max(res["by_size"], key=lambda r: r["mmcs"])
    res["headline"] = {"toy_mmcs": round(head["mmcs"], 4)}
    res["headline_run"] = {"n_features": head["n_features"], "l1": head["l1"]}
    res["best_mmcs"] = max(r["mmcs"] for r in res["by_size"] + res["by_l1"])
    res["seconds"] = round(time.perf_counter() - t0, 1)
    write_json("metrics/analysis/toy.json", res)
    rows = ["sweep,n_features,l1,mmcs,l0,fvu,alive"] + [
        f"{sweep},{r['n_features']},{r['l1']:g},{r['mmcs']:.6f},{r['l0']:.4f},{r['fvu']:.6f},{r['alive']}"
        for sweep in ("by_size", "by_l1") for r in res[sweep]]
    with atomic_path("plots/toy_mmcs.csv") as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    figs.toy_figure(res["by_size"], res["by_l1"], toy.n_true, "paper_figures/toy_mmcs.png")
    print(f"toy MMCS ({head['n_features']} features, λ={head['l1']:g}): {head['mmcs']:.3f}; done in {res['seconds']}s")


if __name__ == "__main__":
    main()
