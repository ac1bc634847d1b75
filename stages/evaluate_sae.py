"""Stage evaluate_sae RUN: held-out metrics of one SAE -> metrics/sae/RUN.json, plots/density/RUN.csv.

MSE, explained variance, L0, L1 and feature densities on the validation activations (held-out documents);
fraction of MLP loss recovered by splicing the SAE into the transformer on validation contexts
(monosemantic/sae/evaluate.py, definitions in monosemantic/sae/metrics.py).
"""

from monosemantic import paths
from monosemantic.runner import stage
from monosemantic.sae.evaluate import evaluate_run, format_evaluation, write_density_outputs
from monosemantic.utils import resolve_device, write_json


@stage("RUN")
def main(params, name: str) -> None:
    result, density = evaluate_run(params, name, resolve_device(params.device))
    write_json(paths.sae_metrics(name), result)
    write_density_outputs(density, name)
    print(format_evaluation(name, result))


if __name__ == "__main__":
    main.run()
