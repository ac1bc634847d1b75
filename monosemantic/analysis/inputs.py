"""What the analysis stages read: a dictionary of the sweep with its model's held-out activations, and the
proxy features an earlier stage found.

`load_dictionary` loads one SAE run (params.sae_runs) with the validation activation store of its transformer
(the held-out documents; activations.py samples every model's store on the same tokens) and, when asked, the
transformer itself; `load_feature_counts` the firings per feature counted in training; `load_proxy_matches`
the proxy features of metrics/analysis/proxies_RUN.json (stage proxies).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monosemantic import paths
from monosemantic.config import Params, SAERun
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import ActivationStore
from monosemantic.sae.model import SparseAutoencoder


@dataclass
class Dictionary:
    """One dictionary of the sweep and what it is measured on."""

    name: str                       # the key of sae_runs, e.g. A_4096 (the paper's A/1)
    run: SAERun
    store: ActivationStore          # its model's validation activations (anything with read, index, n_points)
    sae: SparseAutoencoder
    model: Transformer | None = None


def load_sae(name: str) -> SparseAutoencoder:
    return SparseAutoencoder.load(paths.sae_dir(name)).eval()


def load_dictionary(params: Params, name: str, with_model: bool = False) -> Dictionary:
    """Run `name` of params.sae_runs (a ConfigError naming the known runs otherwise) with its model's val store."""
    run = params.sae_run(name)
    store = ActivationStore(paths.activations_dir(run.model, "val"))
    sae = load_sae(name)
    model = Transformer.load(paths.model_dir(run.model)) if with_model else None
    return Dictionary(name, run, store, sae, model)


def load_feature_counts(sae_dir: str | Path) -> np.ndarray | None:
    """Firings per feature over training (a trained dictionary's feature_counts.npy), None when absent."""
    path = Path(sae_dir) / "feature_counts.npy"
    return np.load(path) if path.exists() else None


def load_proxy_matches(name: str, required: bool = True) -> dict | None:
    """{proxy: {"feature": {"index", "pearson", ...}, "neuron": {...}, ...}} of run `name` (stage proxies);
    when missing, None if not `required`."""
    path = paths.analysis_metrics(f"proxies_{name}")
    if not path.exists():
        if not required:
            return None
        raise FileNotFoundError(f"{path}: missing; run `python -m stages.proxies {name}` first")
    return json.loads(path.read_text())["proxies"]
