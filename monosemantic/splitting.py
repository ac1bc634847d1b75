"""Feature splitting (paper: "Feature splitting"): dictionaries of growing size learned on the same
activations; features of a small dictionary split into families of features in a larger one.

* Decoder cosine similarity: for each feature of the larger dictionary, the largest cosine similarity of its
  decoder vector with any decoder vector of the smaller one (its "parent") — `nearest_parents`.
* UMAP co-embedding of all decoder vectors of the dictionaries (umap-learn, cosine metric, n_neighbors 15 as
  the paper, fixed random_state) — `umap_embed`.
* Counting the features of one family per dictionary (base64 in the paper: 1 feature in A/0, 3 in A/1, many
  in A/2) with a documented rule — `count_family`: a feature belongs to the family when at least
  `min_specificity` of its activation mass lies on the family's proxy-positive tokens and it fires on at least
  `min_active` validation tokens.
"""

from __future__ import annotations

import numpy as np
import torch


def unit_columns(W_d: torch.Tensor | np.ndarray) -> np.ndarray:
    """Decoder vectors as unit-norm rows (F, d) from W_d (d, F)."""
    w = torch.as_tensor(W_d).detach().float().T
    return (w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)).numpy()


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of a with every row of b."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def nearest_parents(large: np.ndarray, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `large` (F_l, d): (index of the most similar row of `small`, that cosine)."""
    c = cosine_matrix(large, small)
    idx = c.argmax(axis=1)
    return idx, c[np.arange(len(idx)), idx]


def count_family(specificity: np.ndarray, n_fire: np.ndarray, min_specificity: float, min_active: int) -> np.ndarray:
    """Indices of the features counted in a family (see module docstring)."""
    return np.flatnonzero((specificity >= min_specificity) & (n_fire >= min_active))


def umap_embed(vectors: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
               n_epochs: int | None = None) -> np.ndarray:
    """2-D UMAP of the rows of `vectors` (cosine metric). Deterministic for a fixed seed (single-threaded).
    n_epochs None: umap-learn's default (500 below 10,000 points)."""
    import warnings

    import umap  # umap-learn; imported here, it compiles with numba on first use

    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, metric="cosine", random_state=seed,
                        n_components=2, n_epochs=n_epochs, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "n_jobs overridden by random_state": intended
        return reducer.fit_transform(np.asarray(vectors, dtype=np.float32))
