"""Stage evaluate_sae RUN: held-out metrics of one SAE -> metrics/sae/RUN.json, plots/density/RUN.csv.

MSE, explained variance, L0, L1 and feature densities on the validation activations (held-out documents);
fraction of MLP loss recovered by splicing the SAE into the transformer on validation contexts.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's own package, also in scratch copies


import numpy as np

from monosemantic import metrics
from monosemantic.config import ConfigError, load_params
from monosemantic.model import Transformer
from monosemantic.sae import SparseAutoencoder
from monosemantic.store import ActivationStore, StoreError
from monosemantic.tokenizer import TokenizerError, load_stream
from monosemantic.utils import atomic_path, fail, resolve_device, write_json


def main(name: str) -> None:
    try:
        params = load_params()
        if name not in params.sae_runs:
            fail(f"{name!r} is not in params.yaml sae_runs ({', '.join(params.sae_runs)})")
        run, cfg = params.sae_runs[name], params.evaluate
        device = resolve_device(params.device)
        store = ActivationStore(f"artifacts/activations/{run.model}/val")
        val = load_stream("artifacts/tokens", "val")
        model = Transformer.load(f"artifacts/models/{run.model}", device)
        sae = SparseAutoencoder.load(f"artifacts/sae/{name}", device).eval()
    except (ConfigError, StoreError, TokenizerError, FileNotFoundError) as e:
        fail(str(e))

    rec, density = metrics.reconstruction_metrics(lambda x: sae.encode(x.to(device)).cpu(),
                                                  lambda f: sae.decode(f.to(device)).cpu(), store)
    classes = metrics.density_classes(density, cfg.ultralow_density, cfg.dense_density)
    loss = metrics.loss_recovered(model, sae, val, cfg.loss_contexts, params.transformer.batch_size, device)
    n = run.n_features
    result = {"run": name, "model": run.model, "n_features": n, "l1_coeff": run.l1, **rec, **classes,
              "dead_frac": classes["dead"] / n, "ultralow_frac": classes["ultralow"] / n,
              "dense_frac": classes["dense"] / n, **loss}
    write_json(f"metrics/sae/{name}.json", result)

    out = Path(f"artifacts/eval/{name}")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "feature_density.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, density.astype(np.float64))
    edges, counts, dead = metrics.log10_density_histogram(density)
    rows = ["log10_density,features"] + [f"{e:.2f},{c}" for e, c in zip(edges[:-1], counts)]
    with atomic_path(f"plots/density/{name}.csv") as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    print(f"{name}: MSE {rec['mse']:.4g}  EV {rec['explained_variance']:.3f}  L0 {rec['l0']:.1f}  "
          f"dead {classes['dead']}  ultralow {classes['ultralow']}  dense {classes['dense']}  "
          f"loss recovered {loss['frac_loss_recovered']:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: python stages/evaluate_sae.py RUN_NAME")
    main(sys.argv[1])
