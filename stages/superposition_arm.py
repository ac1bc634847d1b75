"""Stage superposition_arm: one arm of the dose-response experiment (monosemantic/analysis/superposition.py).

    python -m stages.superposition_arm ARM

ARM is a key of superposition.arms. Writes artifacts/superposition/ARM/{model,sae}/ and
metrics/superposition/ARM.json. Run all arms with `dvc repro experiments/superposition/dvc.yaml`.
"""

from monosemantic.core import paths
from monosemantic.analysis.dose_response import run_arm
from monosemantic.core.runner import stage
from monosemantic.core.utils import resolve_device, resolve_precision, write_json


@stage("ARM")
def main(params, arm: str) -> None:
    params.superposition_arm(arm)  # a ConfigError for an unknown arm, before any compute
    device = resolve_device(params.device)
    out = run_arm(params, arm, paths.superposition_dir(arm), device, resolve_precision(params.precision, device))
    timing = out.pop("seconds")
    write_json(paths.superposition_metrics(arm), out)
    for k, p in out["proxies"].items():
        print(f"{arm} {k:>7} share {p['share']:.4f}: feature r {p['feature_r']:.3f} | best neuron r "
              f"{p['best_neuron_r']:.3f} | nearest neuron r {p['nearest_neuron_r']:.3f} | decoder >=0.1: "
              f"{p['decoder_neurons_ge_0.1']} | dedicated neurons {p['dedicated_neurons']} | "
              f"learned {p['context_learned']}")
    print(f"done in {timing:.0f}s")


if __name__ == "__main__":
    main.run()
