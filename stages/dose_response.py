"""Stage dose_response: the table and figure of the superposition experiment (monosemantic/analysis/superposition.py).

    python -m stages.dose_response

Reads metrics/superposition/ARM.json for every arm of superposition.arms; writes metrics/dose_response.json (the
rows, the spread over seed replicates: arms that differ only in their seed, and the arm pairs of stage arm_pair:
metrics/superposition/pairs/) and
paper_figures/superposition_dose_response.png.
"""

from monosemantic.core import paths
from monosemantic.analysis.dose_response import dose_response, load_arms, replicate_groups, replicate_spread
from monosemantic.experiments.pairs import load_pairs
from monosemantic.figures import analysis as figs
from monosemantic.core.runner import stage
from monosemantic.core.utils import write_json


@stage()
def main(params) -> None:
    arms = params.superposition.arms
    rows = dose_response(load_arms(arms), {name: arm.seed for name, arm in arms.items()})
    replicates = replicate_spread(rows, replicate_groups(arms))
    pairs = load_pairs(arms)  # two trainings measured like A and B: loss recovered, dead / ultralow, universality
    write_json(paths.DOSE_RESPONSE, {"dose_response": rows, "replicates": replicates, "pairs": pairs})
    mixed = {name: arm.mix for name, arm in arms.items() if len(set(arm.mix.values())) > 1}  # different shares
    figs.dose_response_figure(rows, paths.figure("superposition_dose_response.png"), mixed)
    for r in rows:
        print(f"{r['arm']:>24} {r['proxy']:>7} share {r['share']:.4f}: feature r {r['feature_r']:.3f} | best neuron "
              f"{r['best_neuron_r']:.3f} | nearest {r['nearest_neuron_r']:.3f} | learned {r['context_learned']}")
    for g in replicates:
        at = g.get("at_training_mix", g["natural"])
        print(f"replicates of {g['group']} ({', '.join(g['arms'])}) {g['proxy']:>7}: feature beats neuron in "
              f"{at['feature_wins']} of {at['n']} (gap {at['gap_min']:+.3f} … {at['gap_max']:+.3f})")


if __name__ == "__main__":
    main.run()
