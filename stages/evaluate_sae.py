"""Stage evaluate_sae RUN: held-out metrics of one SAE -> metrics/sae/RUN.json, plots/density/RUN.csv.

MSE, explained variance, L0, L1 and feature densities on the validation activations (held-out documents);
fraction of MLP loss recovered by splicing the SAE into the transformer on validation contexts.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's own package, also in scratch copies


import json

import numpy as np

from monosemantic import metrics
from monosemantic.config import ConfigError, load_params
from monosemantic.model import Transformer
from monosemantic.sae import SparseAutoencoder
from monosemantic.sae_train import ArtifactError, verify_sae_dir
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
        verify_sae_dir(f"artifacts/sae/{name}")
        sae = SparseAutoencoder.load(f"artifacts/sae/{name}", device).eval()
        resampling = json.loads(Path(f"artifacts/sae/{name}/resampling.json").read_text())
    except (ConfigError, StoreError, TokenizerError, ArtifactError, FileNotFoundError) as e:
        fail(str(e))
    except Exception as e:  # noqa: BLE001 - e.g. a safetensors or model file that does not parse
        fail(f"cannot load the inputs of evaluate_sae@{name} ({type(e).__name__}: {e}); rerun the stages that "
             "wrote them (`dvc repro -f train_sae@RUN` / `train_transformer@MODEL`)")

    rec, density = metrics.reconstruction_metrics(lambda x: sae.encode(x.to(device)).cpu(),
                                                  lambda f: sae.decode(f.to(device)).cpu(), store)
    classes = metrics.density_classes(density, cfg.ultralow_density, cfg.dense_density)
    loss = metrics.loss_recovered(model, sae, val, cfg.loss_contexts, params.transformer.batch_size, device)
    n = run.n_features
    result = {"run": name, "model": run.model, "n_features": n, "l1_coeff": run.l1, **rec, **classes,
              "dead_frac": classes["dead"] / n, "ultralow_frac": classes["ultralow"] / n,
              "dense_frac": classes["dense"] / n, **loss,
              # the paper's two populations of the density histogram (dead, and the ultralow cluster at its valley)
              "density_populations": metrics.density_populations(density),
              # dead-neuron resampling during training: how many features each resampling step replaced
              "resampling": [{"step": r["step"], "n_dead": r["n_dead"], "n_resampled": r["n_resampled"]}
                             for r in resampling]}
    write_json(f"metrics/sae/{name}.json", result)

    out = Path(f"artifacts/eval/{name}")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "feature_density.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, density.astype(np.float64))
    edges, counts, dead = metrics.log10_density_histogram(density)
    rows = ["log10_density,features"] + [f"{e:.2f},{c}" for e, c in zip(edges[:-1], counts)]
    with atomic_path(f"plots/density/{name}.csv") as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    frac = loss["frac_loss_recovered"]
    frac_text = "undefined (L_zero <= L_clean)" if frac is None else f"{frac:.3f}"
    print(f"{name}: MSE {rec['mse']:.4g}  EV {rec['explained_variance']:.3f}  L0 {rec['l0']:.1f}  "
          f"dead {classes['dead']}  ultralow {classes['ultralow']}  dense {classes['dense']}  "
          f"loss recovered {frac_text}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: python stages/evaluate_sae.py RUN_NAME")
    main(sys.argv[1])
