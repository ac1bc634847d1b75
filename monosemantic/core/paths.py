"""Where every artifact lives: the one place that spells out the pipeline's paths (relative to the repo root).

The stages run from the repository root (`python -m stages.NAME`), like DVC runs them; the layout is the
artifact table of docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")
DATA = Path("data")                                     # the corpus (data.dvc): {train,val}/*.jsonl.zst
TOKENIZER_DIR = Path("artifacts/tokenizer")
TOKENIZER = TOKENIZER_DIR / "tokenizer.json"
TOKENS = Path("artifacts/tokens")                       # {train,val}.bin + {train,val}_docs.npz
MODELS = Path("artifacts/models")
ACTIVATIONS = Path("artifacts/activations")
SAES = Path("artifacts/sae")
EVAL = Path("artifacts/eval")
ANALYSIS = Path("artifacts/analysis")
SUPERPOSITION = Path("artifacts/superposition")         # the dose-response experiment's scratch (not DVC outputs)
CHECKPOINTS = Path("checkpoints")                       # survives a killed stage: never a DVC output
METRICS = Path("metrics")
PLOTS = Path("plots")
FIGURES = Path("paper_figures")
DVCLIVE = Path("dvclive")
BROWSER = Path("browser")


def model_dir(model: str) -> Path:
    """A transformer: model.safetensors + config.json (model: A, B or random)."""
    return MODELS / model


def activations_dir(model: str, split: str) -> Path:
    """An activation store of `model` on the train or val split (monosemantic/lm/store.py)."""
    return ACTIVATIONS / model / split


def sae_dir(run: str) -> Path:
    """A trained dictionary in SAELens's layout (sae_weights.safetensors, cfg.json, ...)."""
    return SAES / run


def eval_dir(run: str) -> Path:
    return EVAL / run


def transformer_metrics(model: str) -> Path:
    return METRICS / "transformer" / f"{model}.json"


def sae_metrics(run: str) -> Path:
    return METRICS / "sae" / f"{run}.json"


def analysis_metrics(name: str) -> Path:
    """metrics/analysis/NAME.json, e.g. proxies_A_4096, universality_A_4096_B_4096, splitting."""
    return METRICS / "analysis" / f"{name}.json"


def provenance(kind: str, name: str) -> Path:
    """metrics/provenance/KIND_NAME.json: the machine and precision that trained an artifact (kind: transformer,
    sae); strings only (monosemantic/core/provenance.py)."""
    return METRICS / "provenance" / f"{kind}_{name}.json"


def figure(name: str) -> Path:
    """paper_figures/NAME (NAME with its .png)."""
    return FIGURES / name


def analysis_dir(name: str) -> Path:
    """artifacts/analysis/NAME: an analysis's outputs besides its metrics (umap.npz, logit_weights_RUN/, ...)."""
    return ANALYSIS / name


def plot(name: str) -> Path:
    """plots/NAME (NAME with its .csv)."""
    return PLOTS / name


def superposition_dir(arm: str) -> Path:
    """The dose-response arm's transformer and dictionary (scratch, not a DVC output)."""
    return SUPERPOSITION / arm


def superposition_metrics(arm: str) -> Path:
    return METRICS / "superposition" / f"{arm}.json"


DOSE_RESPONSE = METRICS / "dose_response.json"


def browser_dir(run: str) -> Path:
    """The static feature browser of dictionary `run` (open browser/RUN/index.html)."""
    return BROWSER / run


def transformer_checkpoint(model: str) -> Path:
    return CHECKPOINTS / "transformer" / f"{model}.pt"


def sae_checkpoints(run: str) -> Path:
    return CHECKPOINTS / "sae" / run


def remove_empty_checkpoint_dirs() -> None:
    """Leave no empty checkpoints/ folders behind once a run has completed (deepest first)."""
    if not CHECKPOINTS.is_dir():
        return
    # checkpoints/ itself too, unless it is a link (to a folder kept elsewhere, e.g. shared by two clones)
    top = [] if CHECKPOINTS.is_symlink() else [CHECKPOINTS]
    for folder in sorted((p for p in CHECKPOINTS.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                         reverse=True) + top:
        if not any(folder.iterdir()):
            folder.rmdir()
