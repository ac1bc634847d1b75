"""Evaluating one dictionary of the sweep on held-out data (stage evaluate_sae; definitions in metrics.py).

`evaluate_run` loads the run's SAE, its model and the validation activations and tokens, and returns the
metrics of metrics/sae/RUN.json with the per-feature densities; `write_density_outputs` writes the densities
(artifacts/eval/RUN/feature_density.npy) and their log10 histogram (plots/density/RUN.csv).
"""

from __future__ import annotations

import json

import numpy as np

from monosemantic import paths
from monosemantic.config import Params
from monosemantic.data.tokenizer import load_stream
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import ActivationStore
from monosemantic.sae import metrics
from monosemantic.sae.model import SparseAutoencoder
from monosemantic.sae.train import ArtifactError, verify_sae_dir
from monosemantic.utils import atomic_path


def evaluate_run(params: Params, name: str, device) -> tuple[dict, np.ndarray]:
    """(metrics of run `name` on the validation split, per-feature densities)."""
    run, cfg = params.sae_run(name), params.evaluate
    store = ActivationStore(paths.activations_dir(run.model, "val"))
    val = load_stream(paths.TOKENS, "val")
    try:
        model = Transformer.load(paths.model_dir(run.model), device)
        verify_sae_dir(paths.sae_dir(name))
        sae = SparseAutoencoder.load(paths.sae_dir(name), device).eval()
    except ArtifactError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. a safetensors or model file that does not parse
        raise ArtifactError(f"cannot load the inputs of evaluate_sae@{name} ({type(e).__name__}: {e}); rerun the "
                            "stages that wrote them (`dvc repro -f train_sae@RUN` / `train_transformer@MODEL`)") from e
    resampling = json.loads((paths.sae_dir(name) / "resampling.json").read_text())

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
    if cfg.train_density_points > 0 and name in cfg.train_density_runs:
        # the paper's 1e-6 threshold needs millions of points: count firings on the training split's store too
        train = ActivationStore(paths.activations_dir(run.model, "train"))
        n_train = min(cfg.train_density_points, train.n_points)
        counts = metrics.fire_counts(lambda x: sae.encode(x.to(device)).cpu(), train, n_train)
        counts = counts + np.rint(density * store.n_points).astype(np.int64)
        result["train_density"] = metrics.count_density_report(counts, n_train + store.n_points)
    return result, density


def write_density_outputs(density: np.ndarray, name: str) -> None:
    """artifacts/eval/RUN/feature_density.npy (float64) and plots/density/RUN.csv (log10 histogram)."""
    out = paths.eval_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "feature_density.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, density.astype(np.float64))
    edges, counts, _ = metrics.log10_density_histogram(density)
    rows = ["log10_density,features"] + [f"{e:.2f},{c}" for e, c in zip(edges[:-1], counts)]
    with atomic_path(paths.PLOTS / "density" / f"{name}.csv") as tmp:
        tmp.write_text("\n".join(rows) + "\n")


def format_evaluation(name: str, r: dict) -> str:
    frac = r["frac_loss_recovered"]
    frac_text = "undefined (L_zero <= L_clean)" if frac is None else f"{frac:.3f}"
    return (f"{name}: MSE {r['mse']:.4g}  EV {r['explained_variance']:.3f}  L0 {r['l0']:.1f}  dead {r['dead']}  "
            f"ultralow {r['ultralow']}  dense {r['dense']}  loss recovered {frac_text}")
