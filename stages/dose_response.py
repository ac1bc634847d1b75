"""Stage dose_response: the table and figure of the superposition experiment (monosemantic/analysis/superposition.py).

    python -m stages.dose_response

Reads metrics/superposition/ARM.json for every arm of superposition.arms; writes metrics/dose_response.json
and paper_figures/superposition_dose_response.png.
"""

from monosemantic import paths
from monosemantic.analysis.dose_response import dose_response, load_arms
from monosemantic.figures import analysis as figs
from monosemantic.runner import stage
from monosemantic.utils import write_json


@stage()
def main(params) -> None:
    arms = params.superposition.arms
    rows = dose_response(load_arms(arms))
    write_json(paths.DOSE_RESPONSE, {"dose_response": rows})
    mixed = {name for name, arm in arms.items() if len(set(arm.mix.values())) > 1}  # contexts at different shares
    figs.dose_response_figure(rows, paths.figure("superposition_dose_response.png"), mixed)
    for r in rows:
        print(f"{r['arm']:>24} {r['proxy']:>7} share {r['share']:.4f}: feature r {r['feature_r']:.3f} | best neuron "
              f"{r['best_neuron_r']:.3f} | nearest {r['nearest_neuron_r']:.3f} | learned {r['context_learned']}")


if __name__ == "__main__":
    main.run()
