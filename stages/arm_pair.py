"""Stage arm_pair ARM_A ARM_B: two trained arms of the dose-response experiment measured like A_4096 and B_4096.

    python -m stages.arm_pair budget16x_rare_mixed budget16x_rare_mixed_seed2

Both arms must have been run (stages/superposition_arm.py keeps their transformers and dictionaries in
artifacts/superposition/). For each dictionary: the fraction of MLP loss recovered, L0 and dead / ultralow / dense
counts on the natural validation split; between the two: universality, the median max activation correlation of
features and of neurons (monosemantic/experiments/pairs.py). Writes
metrics/superposition/pairs/ARM_A__ARM_B.json.
"""

from monosemantic.core.runner import stage
from monosemantic.core.utils import resolve_device, resolve_precision, write_json
from monosemantic.experiments.pairs import evaluate_pair, pair_metrics


@stage("ARM_A", "ARM_B")
def main(params, arm_a: str, arm_b: str) -> None:
    for arm in (arm_a, arm_b):
        params.superposition_arm(arm)  # a ConfigError for an unknown arm, before any compute
    device = resolve_device(params.device)
    out = evaluate_pair(params, arm_a, arm_b, device, resolve_precision(params.precision, device))
    write_json(pair_metrics(arm_a, arm_b), out)
    for arm, e in out["evaluation"].items():
        print(f"{arm}: loss recovered {e['frac_loss_recovered']:.4f} | L0 {e['l0']:.1f} | dead {e['dead']} | "
              f"ultralow {e['ultralow']} of {e['n_features']}")
    u = out["universality"]
    print(f"universality (median max corr): features {u['features']['median']:.3f}, "
          f"neurons {u['neurons']['median']:.3f}")


if __name__ == "__main__":
    main.run()
