"""Stage dose_response: the table and figure of the superposition experiment (monosemantic/superposition.py).

    python stages/dose_response.py [--params params.yaml]

Reads metrics/superposition/ARM.json for every arm of superposition.arms; writes metrics/dose_response.json
and paper_figures/superposition_dose_response.png.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic import analysis_figures as figs  # noqa: E402
from monosemantic.config import stage_params  # noqa: E402
from monosemantic.dose_response import dose_response, load_arms  # noqa: E402
from monosemantic.utils import fail, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = stage_params(args.params)
    try:
        arms = load_arms("metrics/superposition", params.superposition.arms)
    except FileNotFoundError as e:
        fail(f"{e.filename}: missing; run `dvc repro experiments/superposition/dvc.yaml`")
    rows = dose_response(arms)
    write_json("metrics/dose_response.json", {"dose_response": rows})
    figs.dose_response_figure(rows, "paper_figures/superposition_dose_response.png")
    for r in rows:
        print(f"{r['arm']:>24} {r['proxy']:>7} share {r['share']:.4f}: feature r {r['feature_r']:.3f} | best neuron "
              f"{r['best_neuron_r']:.3f} | nearest {r['nearest_neuron_r']:.3f} | learned {r['context_learned']}")


if __name__ == "__main__":
    main()
