"""Two trained arms of the dose-response experiment measured like the pipeline's A_4096 and B_4096 (stage arm_pair,
experiments/superposition/dvc.yaml): each dictionary's fraction of MLP loss recovered, L0 and dead / ultralow / dense
counts, and universality between the two. Two trainings of one mix give the spread of these numbers; one training
(the pipeline's A, or one arm) is one draw."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from monosemantic.analysis import universality as uv
from monosemantic.analysis.dose_response import arm_model_dir
from monosemantic.analysis.inputs import Dictionary, load_feature_counts, load_sae
from monosemantic.core import paths
from monosemantic.data.tokenizer import load_stream
from monosemantic.lm.activations import sample_activations
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import ActivationStore
from monosemantic.sae.evaluate import evaluate_run

PAIRS = paths.METRICS / "superposition" / "pairs"

# the evaluate_sae numbers kept for an arm's dictionary (monosemantic/sae/evaluate.py)
EVALUATION_KEYS = ("frac_loss_recovered", "loss_clean", "loss_sae", "loss_zero", "mse", "explained_variance", "l0",
                   "dead", "ultralow", "dense", "n_features")


def pair_metrics(arm_a: str, arm_b: str) -> Path:
    return PAIRS / f"{arm_a}__{arm_b}.json"


def evaluate_pair(params, arm_a: str, arm_b: str, device: torch.device, precision: str,
                  root: str | Path = paths.SUPERPOSITION, tokens_dir: str | Path = paths.TOKENS) -> dict:
    """Arms arm_a and arm_b (run_arm's transformers and dictionaries under root) measured like A_4096 and B_4096:
    each dictionary's loss recovered, L0 and dead / ultralow / dense counts on the natural validation activations
    (evaluate_sae's definitions, params.evaluate), the features that never fired in training, and universality
    between the two (the universality stage's median max activation correlation of features and of neurons,
    params.analysis). Both val stores are sampled with the pipeline's activation seed into root/pair_scratch
    (deleted afterwards), so they hold the same tokens."""
    if arm_a == arm_b:
        raise ValueError("evaluate_pair needs two different arms")
    run = params.sae_runs[params.superposition.run]
    a = params.activations
    val_stream = load_stream(tokens_dir, "val")
    scratch = Path(root) / "pair_scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    dictionaries, evaluation = [], {}
    try:
        for name in (arm_a, arm_b):
            work, model_dir = Path(root) / name, arm_model_dir(params, name, root, precision, tokens_dir)
            if not (model_dir / "train_info.json").exists() or not (work / "sae" / "cfg.json").exists():
                raise FileNotFoundError(f"arm {name}: no trained transformer ({model_dir}) or dictionary "
                                        f"({work / 'sae'}) here; run `python -m stages.superposition_arm {name}`")
            model, sae = Transformer.load(model_dir, device), load_sae(work / "sae", device)
            sample_activations(model, val_stream, scratch / name, n_points=a.val_points, k=a.tokens_per_context,
                               shard_points=a.shard_points, dtype=a.dtype, batch_contexts=a.batch_contexts,
                               seed=a.seed, split="val", device=device, progress=False, precision=precision)
            store = ActivationStore(scratch / name)
            result, _ = evaluate_run(name, run, params.evaluate, params.transformer.batch_size, model, sae, [],
                                     store, val_stream, device)
            counts = load_feature_counts(work / "sae")
            evaluation[name] = {"seed": params.superposition.arms[name].seed,
                                **{k: result[k] for k in EVALUATION_KEYS},
                                **({"never_fired_in_training": int((counts == 0).sum())} if counts is not None
                                   else {})}
            dictionaries.append(Dictionary(name, run, store, sae, model))
        universality, _ = uv.analyse(*dictionaries, val_stream, params.analysis)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"arms": [arm_a, arm_b], "evaluation": evaluation,
            "universality": {k: universality[k] for k in ("n_points", "min_active", "features", "neurons",
                                                          "features_logit_corr_median")}}


def load_pairs(names) -> list[dict]:
    """The measured pairs (metrics/superposition/pairs/*.json) whose two arms are both among `names`, in
    file-name order."""
    names = set(names)
    out = []
    for path in sorted(PAIRS.glob("*.json")):
        pair = json.loads(path.read_text())
        if set(pair["arms"]) <= names:
            out.append(pair)
    return out
