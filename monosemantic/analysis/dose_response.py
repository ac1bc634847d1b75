"""The dose-response experiment: the rare contexts' share of the training mix against features-vs-neurons.

Each arm (params: superposition.arms) trains a transformer with the arm's seed (A's, 1, except in replicate arms)
on its mix (mix.py) for tokens_mult x superposition.base_steps, samples activations (the train split by the mix,
the held-out split natural, so every arm is measured on the same tokens), trains a dictionary with the recipe of
sae_runs[superposition.run] (on sae_points_mult x activations.n_points points, whatever that run's own points_mult),
and compares features with neurons (superposition.features_vs_neurons), with whether each rare context is still
learned (validation loss below the subset's unigram loss).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from monosemantic.core import paths
from monosemantic.core.config import TransformerConfig
from monosemantic.analysis import proxies as px
from monosemantic.analysis.inputs import load_feature_counts, load_sae
from monosemantic.lm.activations import sample_activations
from monosemantic.lm.train import fingerprint, model_metrics, train, unigram_log_probs
from monosemantic.data.mix import mix_shares, subset_token_counts
from monosemantic.lm.model import ModelConfig, Transformer
from monosemantic.sae.train import train_sae
from monosemantic.lm.store import ActivationStore
from monosemantic.analysis.superposition import (PROXY_SUBSET, blind_unigram_losses, context_learned,
                                                 context_recognized, features_vs_neurons)
from monosemantic.data.tokenizer import load_stream, load_tokenizer


def arm_transformer(params, arm) -> TransformerConfig:
    """An arm's transformer settings: the pipeline's, with the arm's mix and tokens_mult x superposition.base_steps
    steps (an absolute budget: the arms keep their meaning when transformer.steps moves)."""
    return dataclasses.replace(params.transformer, mix=dict(arm.mix),
                               steps=params.superposition.base_steps * arm.tokens_mult)


def arm_model_dir(params, arm_name: str, root: str | Path, precision: str,
                  tokens_dir: str | Path = paths.TOKENS) -> Path:
    """Where run_arm keeps the arm's trained transformer: root/models/FINGERPRINT[:20] of its training settings
    (arm_transformer: the arm's mix, tokens_mult x base_steps), seed, precision and train tokens."""
    arm = params.superposition_arm(arm_name)
    tcfg = arm_transformer(params, arm)
    mcfg = ModelConfig.from_params(tcfg, _vocab_size(tokens_dir))
    key = fingerprint(tcfg, mcfg, arm.seed, load_stream(tokens_dir, "train"), precision)
    return Path(root) / "models" / key[:20]


def run_arm(params, arm_name: str, work_dir: str | Path, device: torch.device, precision: str,
            tokens_dir: str | Path = paths.TOKENS, progress: bool = True) -> dict:
    """Train a transformer seeded like A on the arm's mix, sample activations (train split by the mix, held-out
    split natural), train a dictionary with the headline run's recipe, and compare features with neurons.
    The dictionary is kept in work_dir/sae, the transformer in work_dir/../models/FINGERPRINT (shared by arms
    that train the same transformer); the activations are deleted."""
    t0 = time.perf_counter()
    sp = params.superposition
    arm = params.superposition_arm(arm_name)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    train_stream, val_stream = load_stream(tokens_dir, "train"), load_stream(tokens_dir, "val")
    tcfg = arm_transformer(params, arm)
    vocab = _vocab_size(tokens_dir)
    mcfg = ModelConfig.from_params(tcfg, vocab)
    seed = arm.seed
    # Arms that differ only in their dictionary (sae_points_mult) share one transformer: training is
    # deterministic, so a model saved under the same training fingerprint is the model this arm would train.
    cached = arm_model_dir(params, arm_name, work.parent, precision, tokens_dir)
    if (cached / "train_info.json").exists():  # written last
        model = Transformer.load(cached, device)
        info = json.loads((cached / "train_info.json").read_text())
        print(f"transformer: reusing {cached} (same training fingerprint)")
    else:
        model, info = train(tcfg, mcfg, seed, train_stream, val_stream, device,
                            ckpt_path=work / "transformer.pt", progress=progress, precision=precision)
        model.save(cached)
        (cached / "train_info.json").write_text(json.dumps(info))
        (work / "transformer.pt").unlink(missing_ok=True)
    lm_metrics = model_metrics(model, train_stream, val_stream, tcfg, device)
    blind = blind_unigram_losses(val_stream, unigram_log_probs(train_stream, vocab)["overall"])
    for sub, row in lm_metrics["subsets"].items():
        if sub in blind:
            row["blind_unigram_loss"] = blind[sub]
    acts = work / "activations"
    a = params.activations
    for split, n, mix in (("train", a.n_points * arm.sae_points_mult, arm.mix), ("val", a.val_points, {})):
        sample_activations(model, train_stream if split == "train" else val_stream, acts / split, n_points=n,
                           k=a.tokens_per_context, shard_points=a.shard_points, dtype=a.dtype,
                           batch_contexts=a.batch_contexts, seed=a.seed, split=split, device=device,
                           progress=progress, mix=mix, precision=precision)
    run = dataclasses.replace(params.sae_runs[sp.run], points_mult=arm.sae_points_mult)
    scfg = run.training(params.sae)
    stats = train_sae(scfg, run, ActivationStore(acts / "train"), work / "sae", device=device, progress=progress,
                      metadata={"run_name": f"superposition_{arm_name}"})
    sae = load_sae(work / "sae")
    _, _, llr = px.load_proxy_tables(tokens_dir, str(Path(tokens_dir).parent / "tokenizer" / "tokenizer.json"))
    store = ActivationStore(acts / "val")
    shares = mix_shares(train_stream, arm.mix)
    fvn = features_vs_neurons(store, sae, val_stream, llr, min(params.analysis.max_points, store.n_points),
                              params.analysis.batch_size, load_feature_counts(work / "sae"), shares)
    natural = subset_token_counts(train_stream)
    total = sum(natural.values())
    for k, row in fvn["proxies"].items():
        sub = PROXY_SUBSET[k]
        row["share"] = round(shares[sub], 6)
        row["natural_share"] = round(natural[sub] / total, 6)
        row["context_learned"] = context_learned(lm_metrics["subsets"], sub)
        row["context_recognized"] = context_recognized(lm_metrics["subsets"], sub)
        row["val_loss"] = lm_metrics["subsets"][sub]["loss"]
        row["unigram_loss"] = lm_metrics["subsets"][sub].get("unigram_loss")
        row["blind_unigram_loss"] = lm_metrics["subsets"][sub].get("blind_unigram_loss")
    shutil.rmtree(acts)
    return {"arm": arm_name, "mix": dict(arm.mix), "seed": seed, "tokens_mult": arm.tokens_mult,
            "sae_points_mult": arm.sae_points_mult, "transformer_tokens": info["tokens"],
            "sae_points": scfg.steps * scfg.batch_size, "precision": precision,
            "val_loss": lm_metrics["subsets"]["overall"]["loss"],
            "sae": {k: stats[k] for k in ("mse", "l0", "dead") if k in stats},
            **fvn, "seconds": round(time.perf_counter() - t0, 1)}


def _vocab_size(tokens_dir: str | Path) -> int:
    return load_tokenizer(Path(tokens_dir).parent / "tokenizer" / "tokenizer.json").get_vocab_size()


def dose_response(arms: dict[str, dict], seeds: dict[str, int] | None = None) -> list[dict]:
    """summary.json headline "dose_response": one row per (arm, proxy). An arm's seed is its metrics' (or, for
    metrics written before arms had seeds, `seeds[arm]`, the params' value)."""
    rows = []
    for name, m in arms.items():
        seed = m.get("seed", (seeds or {}).get(name))
        for k, p in m["proxies"].items():
            row = {"arm": name, "seed": seed, "share": p["share"], "proxy": k, "feature_r": p["feature_r"],
                   "best_neuron_r": p["best_neuron_r"], "nearest_neuron_r": p["nearest_neuron_r"],
                   "decoder_neurons_ge_0.1": p["decoder_neurons_ge_0.1"],
                   "dedicated_neurons": p["dedicated_neurons"], "context_learned": p["context_learned"],
                   "tokens_mult": m["tokens_mult"], "sae_points_mult": m["sae_points_mult"]}
            if "context_recognized" in p:
                row["context_recognized"] = p["context_recognized"]
            at = m.get("at_training_mix", {}).get("proxies", {}).get(k)
            if at is not None:  # the same comparison on the points weighted to the arm's training mix
                row["at_training_mix"] = {key: at[key] for key in (
                    "feature_r", "best_neuron_r", "nearest_neuron_r", "decoder_neurons_ge_0.1",
                    "neurons_for_half_norm", "dedicated_neurons")}
                row["at_training_mix"]["specificity_at_matched_sensitivity"] = at["specificity_at_matched_sensitivity"]
            rows.append(row)
    return rows


def replicate_spread(rows: list[dict], groups: dict[str, list[str]]) -> list[dict]:
    """Seed replicates: for each group of arms that differ only in their seed (groups: {label: [arm, ...]}, two or
    more arms) and each proxy, the best feature's and best neuron's r in every arm and the range of their gap
    (feature r − best neuron r), on the natural split and at the training mix; `feature_wins` counts the arms
    whose feature beats the best neuron. This spread, not the bootstrap interval (which resamples only the
    evaluation documents), is the run-to-run variation of a conclusion."""
    out = []
    for label, names in groups.items():
        for proxy in dict.fromkeys(r["proxy"] for r in rows):
            sel = [r for n in names for r in rows if r["arm"] == n and r["proxy"] == proxy]
            if len(sel) < 2:
                continue
            entry = {"group": label, "proxy": proxy, "arms": [r["arm"] for r in sel], "seeds": [r["seed"] for r in sel]}
            for view, get in (("natural", lambda r: r), ("at_training_mix", lambda r: r.get("at_training_mix"))):
                vals = [get(r) for r in sel]
                if any(v is None for v in vals):
                    continue
                gaps = [v["feature_r"] - v["best_neuron_r"] for v in vals]
                entry[view] = {"feature_r": [v["feature_r"] for v in vals],
                               "best_neuron_r": [v["best_neuron_r"] for v in vals],
                               "gap_min": round(min(gaps), 4), "gap_max": round(max(gaps), 4),
                               "feature_wins": sum(g > 0 for g in gaps), "n": len(gaps)}
            out.append(entry)
    return out


def replicate_groups(arms: dict) -> dict[str, list[str]]:
    """Arms (params: superposition.arms) that differ only in their seed, keyed by the first arm's name (params
    order); groups of one are left out."""
    groups: dict[tuple, list[str]] = {}
    for name, arm in arms.items():
        key = (tuple(sorted(arm.mix.items())), arm.tokens_mult, arm.sae_points_mult)
        groups.setdefault(key, []).append(name)
    return {names[0]: names for names in groups.values() if len(names) > 1}


def load_arms(names) -> dict[str, dict]:
    """{arm: metrics/superposition/ARM.json} for the arms `names` (stage superposition_arm)."""
    arms = {}
    for n in names:
        path = paths.superposition_metrics(n)
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run `dvc repro experiments/superposition/dvc.yaml`")
        arms[n] = json.loads(path.read_text())
    return arms
