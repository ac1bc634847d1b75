"""The loaders of the stages' inputs: a dictionary of the sweep with its model's held-out activations, and the
proxy features an earlier stage found.

The stages resolve where each artifact lives (monosemantic/core/paths.py) and pass the folders and files here; no
function of this module knows the artifact layout. `load_sae` loads a trained dictionary (the one SAE loader
of the package, in eval mode); `load_dictionary` a run of params.sae_runs with the validation activation store
of its transformer (the held-out documents; monosemantic/lm/activations.py samples every model's store on the
same tokens) and, when given its folder, the transformer itself; `load_feature_counts` the firings per feature
counted in training; `load_proxy_matches` the proxy features of metrics/analysis/proxies_RUN.json (stage
proxies).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monosemantic.core.config import SAERun
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import ActivationStore
from monosemantic.sae import architectures
from monosemantic.sae.architectures.base import SAE


@dataclass
class Dictionary:
    """One dictionary of the sweep and what it is measured on."""

    name: str                       # the key of sae_runs, e.g. A_4096 (the paper's A/1)
    run: SAERun
    store: ActivationStore          # its model's validation activations (anything with read, index, n_points)
    sae: SAE
    model: Transformer | None = None


def load_sae(sae_dir: str | Path, device="cpu") -> SAE:
    """The trained dictionary saved in `sae_dir` (SAELens's layout; of the architecture its cfg.json names), on
    `device`, in eval mode."""
    return architectures.load(sae_dir, device).eval()


def load_dictionary(name: str, run: SAERun, store_dir: str | Path, sae_dir: str | Path,
                    model_dir: str | Path | None = None) -> Dictionary:
    """Run `name` (`run`: its params.sae_runs entry) with its model's val store (store_dir), its SAE (sae_dir)
    and, when model_dir is given, its transformer."""
    store = ActivationStore(store_dir)
    sae = load_sae(sae_dir)
    model = Transformer.load(model_dir) if model_dir is not None else None
    return Dictionary(name, run, store, sae, model)


def load_feature_counts(sae_dir: str | Path) -> np.ndarray | None:
    """Firings per feature over training (a trained dictionary's feature_counts.npy), None when absent."""
    path = Path(sae_dir) / "feature_counts.npy"
    return np.load(path) if path.exists() else None


def load_proxy_matches(path: str | Path, name: str, required: bool = True) -> dict | None:
    """{proxy: {"feature": {"index", "pearson", ...}, "neuron": {...}, ...}} of run `name` from stage proxies'
    metrics file `path`; when missing, None if not `required`."""
    path = Path(path)
    if not path.exists():
        if not required:
            return None
        raise FileNotFoundError(f"{path}: missing; run `python -m stages.proxies {name}` first")
    return json.loads(path.read_text())["proxies"]
