"""Stage evaluate_sae RUN: held-out metrics of one SAE -> metrics/sae/RUN.json, plots/density/RUN.csv.

MSE, explained variance, L0, L1 and feature densities on the validation activations (held-out documents);
fraction of MLP loss recovered by splicing the SAE into the transformer on validation contexts
(monosemantic/sae/evaluate.py, definitions in monosemantic/sae/metrics.py).
"""

from monosemantic.core import paths
from monosemantic.data.tokenizer import load_stream
from monosemantic.lm.store import ActivationStore
from monosemantic.core.runner import stage
from monosemantic.sae.evaluate import (evaluate_run, format_evaluation, load_run_artifacts, needs_train_density,
                                       write_density_outputs)
from monosemantic.core.utils import resolve_device, write_json


@stage("RUN")
def main(params, name: str) -> None:
    run, cfg, device = params.sae_run(name), params.evaluate, resolve_device(params.device)
    store = ActivationStore(paths.activations_dir(run.model, "val"))
    val = load_stream(paths.TOKENS, "val")
    model, sae, resampling = load_run_artifacts(name, paths.model_dir(run.model), paths.sae_dir(name), device)
    train_store = (ActivationStore(paths.activations_dir(run.model, "train")) if needs_train_density(cfg, name)
                   else None)
    result, density = evaluate_run(name, run, cfg, params.transformer.batch_size, model, sae, resampling, store,
                                   val, device, train_store)
    write_json(paths.sae_metrics(name), result)
    write_density_outputs(density, paths.eval_dir(name), paths.PLOTS / "density" / f"{name}.csv")
    print(format_evaluation(name, result))


if __name__ == "__main__":
    main.run()
