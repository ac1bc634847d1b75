"""The feature browser's inputs: the browsed dictionary, its model, validation store and token stream, the
dictionaries it is compared with (other sizes of the same model for splitting, the partner model's for
universality) and its feature automata (from the interpretability stage's metrics, when that stage analysed
this dictionary), loaded from the artifacts by the stage (stages/browser.py) or built in memory by a test.
`related_runs` names the dictionaries compared with, `same_points` whether a partner's store holds the same
tokens, `load_automata` reads the automata from the interpretability stage's metrics file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monosemantic.analysis.logit_weights import SIGMA_CONTEXTS


@dataclass
class Partner:
    """Another dictionary: a smaller/larger size of the same model (splitting) or model B (universality)."""

    name: str
    sae: object
    store: object | None = None  # the partner model's val store (universality only)


@dataclass
class BrowserInputs:
    """Everything data.gather reads; dead / ultralow / dense as in params.yaml's evaluate section."""

    run: str
    run_info: dict  # model, n_features, architecture, knob and the settings (stages/browser.py)
    sae: object
    model: object
    store: object  # val activation store of the run's model
    index: dict  # store.index(): doc, pos, token, context_start
    tokens: np.ndarray  # val token stream
    doc_subset: np.ndarray  # subset code of each val document
    subsets: list[str]
    tok: object  # tokenizer
    ultralow_density: float
    dense_density: float
    llr: dict | None = None  # {proxy name: LLR per token id} (proxies.llr_tables)
    split: list[Partner] = field(default_factory=list)
    compare: Partner | None = None
    sigma_contexts: int = SIGMA_CONTEXTS  # val contexts of the logit weights' σ̄ (logit_weights.residual_scale)
    automata: list[dict] = field(default_factory=list)  # the run's feature automata (load_automata); [] if none


def load_automata(path: str | Path, run: str) -> list[dict]:
    """The feature automata of dictionary `run` found by the interpretability stage (analysis/automata.py):
    `automata.found` of its metrics file (metrics/analysis/interpretability.json) when `automata.run` is `run`;
    [] when the file is missing or holds another dictionary's automata."""
    path = Path(path)
    if not path.is_file():
        return []
    section = json.loads(path.read_text(encoding="utf-8")).get("automata") or {}
    return list(section.get("found") or []) if section.get("run") == run else []


def same_recipe(a, b) -> bool:
    """Whether two runs of sae_runs train with the same architecture and settings (λ, k, ...)."""
    return a.architecture == b.architecture and a.settings == b.settings


def related_runs(name: str, sae_runs: dict, cfg) -> tuple[str | None, list[str]]:
    """(universality partner, other dictionary sizes) of run `name` per cfg.compare_run / cfg.split_runs."""
    run = sae_runs[name]
    if cfg.compare_run == "auto":
        cands = [k for k, r in sae_runs.items() if r.model != run.model and r.model != "random"
                 and r.n_features == run.n_features and same_recipe(r, run)]
        pref = "B" if run.model == "A" else "A"
        cands.sort(key=lambda k: (sae_runs[k].model != pref, k))
        compare = cands[0] if cands else None
    else:
        compare = cfg.compare_run or None
    if tuple(cfg.split_runs) == ("auto",):
        split = sorted((k for k, r in sae_runs.items() if r.model == run.model and same_recipe(r, run)
                        and r.n_features != run.n_features), key=lambda k: sae_runs[k].n_features)
    else:
        split = [k for k in cfg.split_runs if k != name]
    return compare, split


def same_points(store, partner_store, n: int) -> bool:
    """Whether the first n points of two val stores sit on the same tokens (universality compares them)."""
    return np.array_equal(store.index()["token"][:n], partner_store.index()["token"][:n])
