"""Evaluating one dictionary of the sweep on held-out data (stage evaluate_sae; definitions in metrics.py).

The stage (stages/evaluate_sae.py) resolves the artifacts' paths and loads them: `load_run_artifacts` the run's
transformer, SAE and resampling log from their folders. `evaluate_run` takes those with the validation
activations and tokens, and returns the metrics of metrics/sae/RUN.json with the per-feature densities;
`write_density_outputs` writes the densities (artifacts/eval/RUN/feature_density.npy) and their log10
histogram (plots/density/RUN.csv).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from monosemantic.analysis.inputs import load_sae
from monosemantic.core.config import EvaluateConfig, SAERun
from monosemantic.lm.model import Transformer
from monosemantic.sae import metrics
from monosemantic.sae.architectures.base import SAE
from monosemantic.sae.sweep import run_columns
from monosemantic.sae.train import ArtifactError, verify_sae_dir
from monosemantic.core.utils import atomic_path


def load_run_artifacts(name: str, model_dir: str | Path, sae_dir: str | Path,
                       device) -> tuple[Transformer, SAE, list[dict]]:
    """(transformer, SAE in eval mode, resampling log) of run `name`; an ArtifactError naming the stages to
    rerun when one of them does not load."""
    try:
        model = Transformer.load(model_dir, device)
        verify_sae_dir(sae_dir)
        sae = load_sae(sae_dir, device)
    except ArtifactError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. a safetensors or model file that does not parse
        raise ArtifactError(f"cannot load the inputs of evaluate_sae@{name} ({type(e).__name__}: {e}); rerun the "
                            "stages that wrote them (`dvc repro -f train_sae@RUN` / `train_transformer@MODEL`)") from e
    resampling = json.loads((Path(sae_dir) / "resampling.json").read_text())
    return model, sae, resampling


def needs_train_density(cfg: EvaluateConfig, name: str) -> bool:
    """Whether run `name` also counts firings on its model's training store (evaluate.train_density_*)."""
    return cfg.train_density_points > 0 and name in cfg.train_density_runs


def evaluate_run(name: str, run: SAERun, cfg: EvaluateConfig, batch_size: int, model: Transformer,
                 sae: SAE, resampling: list[dict], store, val, device,
                 train_store=None) -> tuple[dict, np.ndarray]:
    """(metrics of run `name` on the validation split, per-feature densities).

    cfg: params.evaluate; batch_size: transformer.batch_size (the loss-recovered contexts); store: the val
    activation store of the run's model; val: the val token stream; train_store: its training store when
    `needs_train_density` (None otherwise)."""
    rec, density = metrics.reconstruction_metrics(lambda x: sae.encode(x.to(device)).cpu(),
                                                  lambda f: sae.decode(f.to(device)).cpu(), store)
    classes = metrics.density_classes(density, cfg.ultralow_density, cfg.dense_density)
    loss = metrics.loss_recovered(model, sae, val, cfg.loss_contexts, batch_size, device)
    n = run.n_features
    result = {"run": name, "model": run.model, "n_features": n, **run_columns(run), **rec, **classes,
              "dead_frac": classes["dead"] / n, "ultralow_frac": classes["ultralow"] / n,
              "dense_frac": classes["dense"] / n, **loss,
              # the paper's two populations of the density histogram (dead, and the ultralow cluster at its valley)
              "density_populations": metrics.density_populations(density),
              # dead-neuron resampling during training: how many features each resampling step replaced
              "resampling": [{"step": r["step"], "n_dead": r["n_dead"], "n_resampled": r["n_resampled"]}
                             for r in resampling]}
    if train_store is not None:
        # the paper's 1e-6 threshold needs millions of points: count firings on the training split's store too
        n_train = min(cfg.train_density_points, train_store.n_points)
        counts = metrics.fire_counts(lambda x: sae.encode(x.to(device)).cpu(), train_store, n_train)
        counts = counts + np.rint(density * store.n_points).astype(np.int64)
        result["train_density"] = metrics.count_density_report(counts, n_train + store.n_points)
    return result, density


def write_density_outputs(density: np.ndarray, eval_dir: str | Path, histogram_csv: str | Path) -> None:
    """eval_dir/feature_density.npy (float64) and the log10 histogram at histogram_csv."""
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(eval_dir / "feature_density.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, density.astype(np.float64))
    edges, counts, _ = metrics.log10_density_histogram(density)
    rows = ["log10_density,features"] + [f"{e:.2f},{c}" for e, c in zip(edges[:-1], counts)]
    with atomic_path(histogram_csv) as tmp:
        tmp.write_text("\n".join(rows) + "\n")


def format_evaluation(name: str, r: dict) -> str:
    frac = r["frac_loss_recovered"]
    frac_text = "undefined (L_zero <= L_clean)" if frac is None else f"{frac:.3f}"
    return (f"{name}: MSE {r['mse']:.4g}  EV {r['explained_variance']:.3f}  L0 {r['l0']:.1f}  dead {r['dead']}  "
            f"ultralow {r['ultralow']}  dense {r['dense']}  loss recovered {frac_text}")
