"""The recipes comparison (issue 29): the SAE architectures that replaced the paper's 2023 recipe, side by side.

Each architecture (sae/architectures/) is swept over its sparsity knob on model A (experiments/recipes/params.yaml:
recipes.runs; the standard recipe's rows are dictionaries of the main sweep, recipes.main_runs, measured as they
are). Every dictionary is measured with the main pipeline's evaluation (sae/evaluate.py evaluate_run; definitions
in sae/metrics.py) on the validation split, and its shrinkage (`shrinkage` below):

    l0, frac_loss_recovered, explained_variance, mse     reconstruction and sparsity
    dead, ultralow, dense                                feature densities (evaluate.ultralow_density, dense_density)
    shrinkage  γ = E‖x̂‖² / E[x·x̂]                      the γ for which x̂/γ is the best rescaling of x̂
                                                         (argmin_γ E‖x̂/γ − x‖²; the "relative reconstruction bias"
                                                         of Rajamanoharan et al. 2024a, Gated SAEs, sec. 5.1):
                                                         1 unbiased, < 1 shrunk towards 0 by an L1 penalty

At matched L0: for each architecture the dictionary of the reference's model and size (recipes.reference_run,
A_4096) whose L0 is nearest the reference's, |log(L0 / L0_ref)| smallest (`matched_runs`), is compared the
paper's ways, each with the main analysis's own code:

    proxy_wins        of the four proxies (arabic, hebrew, dna, base64), on how many the best feature's Pearson r
                      beats the best neuron's, at the training mix (analysis/superposition.py
                      points weighted to transformer.mix as analysis/superposition.py features_vs_neurons
                      weights them; `at_mix_proxies`, which needs only the SAE's encode, so that TopK, JumpReLU
                      and gated features are what the architecture computes)
    universality      median over its features firing on >= analysis.universality_min_active tokens of the max
                      activation correlation with any feature of its partner on model B: the run with the same
                      architecture, settings and size on analysis.compare_model (analysis/universality.py)
    base64 by size    base64 features (analysis/splitting.py count_family) of the matched dictionary and of its
                      partners at other sizes (same model, architecture and settings)
    interpretability  the LLM-free scores of interpretability.n_units sampled features (analysis/
                      interpretability.py evaluate_units, sampled and scored as the interpretability stage does)

A partner the params do not name leaves its entry null (and the stage says which run to add).

Stage recipe_run NAME (`run_recipe`): train NAME (a run of recipes.runs, with the sae section's hyperparameters,
into artifacts/recipes/NAME; a dictionary already trained with the same fingerprint is reused) or take it from
the main sweep (recipes.main_runs), and evaluate it: metrics/recipes/NAME.json. Stage recipes (`summarize`): the
rows, the matched comparison, metrics/recipes.json and paper_figures/recipes_frontier.png.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from monosemantic.analysis import interpretability as ip
from monosemantic.analysis import interpretability_study as study
from monosemantic.analysis import proxies as px
from monosemantic.analysis import universality as uv
from monosemantic.analysis.inputs import Dictionary, load_sae
from monosemantic.analysis.splitting import count_family
from monosemantic.analysis.superposition import decoder_spread, mix_weights
from monosemantic.core import paths
from monosemantic.core.config import SAERun
from monosemantic.data.mix import mix_shares
from monosemantic.data.tokenizer import load_stream
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import ActivationStore
from monosemantic.lm.streaming import open_source
from monosemantic.sae import architectures
from monosemantic.sae.evaluate import evaluate_run, load_run_artifacts
from monosemantic.sae.model import sae_metadata
from monosemantic.sae.train import ArtifactError, _fingerprint, train_sae, verify_sae_dir
from monosemantic.recipes.config import RecipesConfig, recipe_checkpoints, recipe_dir, recipe_metrics

FINGERPRINT_FILE = "recipe_fingerprint.txt"  # beside a trained dictionary: what it was trained from
ROW_KEYS = ("l0", "frac_loss_recovered", "explained_variance", "mse", "dead", "ultralow", "dense", "shrinkage")


# ------------------------------------------------------------------------------------------------
# Stage recipe_run: one dictionary
# ------------------------------------------------------------------------------------------------


def sae_dir(rc: RecipesConfig, name: str) -> Path:
    """Where the dictionary `name` lives: artifacts/recipes/NAME (trained here) or artifacts/sae/NAME (main sweep)."""
    return recipe_dir(name) if name in rc.runs else paths.sae_dir(name)


def train_recipe(params, rc: RecipesConfig, name: str, device, progress: bool = True) -> dict:
    """Train rc.runs[name] on its model's training activations (the store, or the stream: activations.mode)
    with the sae section's hyperparameters; reuse the dictionary when it was trained from the same fingerprint
    (params, run, data, training code: sae/train.py). Returns its train_stats."""
    run, out = rc.runs[name], recipe_dir(name)
    store, sae = open_source(params, run.model, device, points_mult=run.points_mult), run.training(params.sae)
    key = _fingerprint(sae, run, store)  # what a checkpoint of the run must agree on to be resumed
    if (out / FINGERPRINT_FILE).exists() and (out / FINGERPRINT_FILE).read_text().strip() == key:
        try:
            verify_sae_dir(out)
            print(f"{name}: reusing {out} (trained from the same params, data and training code)")
            return json.loads((out / "train_stats.json").read_text())
        except ArtifactError:
            pass  # corrupted or incomplete: train again
    (out / FINGERPRINT_FILE).unlink(missing_ok=True)
    stats = train_sae(sae, run, store, out, device=device, progress=progress,
                      metadata=sae_metadata(name, run.model, params.transformer.n_ctx),
                      ckpt_dir=recipe_checkpoints(name))
    (out / FINGERPRINT_FILE).write_text(key + "\n")
    paths.remove_empty_checkpoint_dirs()
    return stats


@torch.no_grad()
def shrinkage(sae, store, batch_size: int = 8192, device="cpu") -> float:
    """γ = E‖x̂‖² / E[x·x̂] over the points of `store` (sums in float64): 1 for x̂ = x, γ for x̂ = γx."""
    xhat_sq = x_xhat = 0.0
    for start in range(0, store.n_points, batch_size):
        x = store.read(start, min(start + batch_size, store.n_points)).to(device)
        x_hat = sae.decode(sae.encode(x)).double()
        xhat_sq += x_hat.pow(2).sum().item()
        x_xhat += (x.double() * x_hat).sum().item()
    return xhat_sq / x_xhat if x_xhat != 0 else float("nan")


def run_recipe(params, rc: RecipesConfig, name: str, device, progress: bool = True) -> dict:
    """Stage recipe_run: train `name` (a run of recipes.runs) or take it from the main sweep, then evaluate it on
    the validation split (sae/evaluate.py evaluate_run: the metrics of metrics/sae/RUN.json) with its shrinkage."""
    t0 = time.perf_counter()
    run = rc.run(params, name)
    trained = train_recipe(params, rc, name, device, progress) if name in rc.runs else None
    model, sae, resampling = load_run_artifacts(name, paths.model_dir(run.model), sae_dir(rc, name), device)
    store = ActivationStore(paths.activations_dir(run.model, "val"))
    result, _ = evaluate_run(name, run, params.evaluate, params.transformer.batch_size, model, sae, resampling,
                             store, load_stream(paths.TOKENS, "val"), device)
    result["shrinkage"] = shrinkage(sae, store, device=device)
    result["source"] = "main sweep" if trained is None else "trained"
    if trained is not None:
        result["train"] = {k: trained[k] for k in ("steps", "batch_size", "epochs", "dead", "wall_time_s")
                           if k in trained}  # wall_time_s: absent from a reused dictionary's (logs/timings/)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def format_run(m: dict) -> str:
    frac = m["frac_loss_recovered"]
    return (f"{m['run']} ({m['architecture']}, {m['knob']} = {m[m['knob']]:g}, {m['source']}): L0 {m['l0']:.1f}  "
            f"loss recovered {'undefined' if frac is None else f'{frac:.3f}'}  EV {m['explained_variance']:.3f}  "
            f"dead {m['dead']}  dense {m['dense']}  shrinkage {m['shrinkage']:.3f}")


# ------------------------------------------------------------------------------------------------
# The rows and the matched-L0 choice
# ------------------------------------------------------------------------------------------------


def recipe_row(m: dict) -> dict:
    """The row of metrics/recipes.json of one dictionary (m: its metrics/recipes/NAME.json); proxy_wins and
    universality_features stay null unless it is a matched dictionary."""
    return {"name": m["run"], "architecture": m["architecture"], "model": m["model"], "n_features": m["n_features"],
            "knob": m["knob"], "knob_value": m[m["knob"]], **{k: m[k] for k in ROW_KEYS},
            "proxy_wins": None, "universality_features": None}


def matched_runs(rows: list[dict], reference: dict) -> dict[str, str]:
    """{architecture: name}: per architecture, the row on the reference's model with its n_features whose L0 is
    nearest the reference's on a log scale (|log(l0 / l0_ref)|; the first in `rows` order on a tie). Rows
    without a positive L0 are left out."""
    best: dict[str, tuple[float, str]] = {}
    for r in rows:
        if r["model"] != reference["model"] or r["n_features"] != reference["n_features"] or not r["l0"] > 0:
            continue
        gap = abs(math.log(r["l0"] / reference["l0"]))
        if r["architecture"] not in best or gap < best[r["architecture"]][0]:
            best[r["architecture"]] = (gap, r["name"])
    return {arch: name for arch, (_, name) in best.items()}


def partners(runs: dict[str, SAERun], name: str, compare_model: str) -> tuple[str | None, list[str]]:
    """(the run of `runs` on compare_model with the architecture, settings and size of `name`, or None; the runs
    on name's model with its architecture and settings at every size, `name` included, smallest first)."""
    me = runs[name]
    same = [n for n, r in runs.items() if r.architecture == me.architecture and r.settings == me.settings]
    other = next((n for n in same if runs[n].model == compare_model and runs[n].n_features == me.n_features), None)
    sizes = sorted((n for n in same if runs[n].model == me.model), key=lambda n: runs[n].n_features)
    return other, sizes


def proxy_wins(proxies: dict[str, dict]) -> int:
    """Proxies on which the best feature's r is above the best neuron's (at_mix_proxies' per-proxy rows)."""
    return sum(p["feature_r"] > p["best_neuron_r"] for p in proxies.values())


# ------------------------------------------------------------------------------------------------
# The matched comparison
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Inputs:
    """What every matched comparison reads: the validation stream and proxy tables, the training mix's shares,
    the tokenizer and both token streams (interpretability), loaded once."""

    tok: object
    streams: dict  # "train", "val" token streams
    llr: dict[str, np.ndarray]
    shares: dict[str, float]  # the training mix (transformer.mix) of every subset

    @classmethod
    def load(cls, params) -> "Inputs":
        tok, val, llr = px.load_proxy_tables(paths.TOKENS, paths.TOKENIZER)
        train = load_stream(paths.TOKENS, "train")
        return cls(tok, {"train": train, "val": val}, llr, mix_shares(train, params.transformer.mix))


def dictionary(params, rc: RecipesConfig, name: str, with_model: bool = False) -> Dictionary:
    """Run `name` of the comparison with its model's val store (and, when asked, its transformer)."""
    run = rc.run(params, name)
    model = Transformer.load(paths.model_dir(run.model)) if with_model else None
    return Dictionary(name, run, ActivationStore(paths.activations_dir(run.model, "val")),
                      load_sae(sae_dir(rc, name)), model)


def base64_by_size(saes: dict[str, object], store, val, llr_base64: np.ndarray, cfg) -> dict[str, int]:
    """{name: base64 features} of dictionaries on one model's val store, counted by the splitting stage's rule
    (count_family: analysis.base64_min_specificity of the activation mass on base64 tokens, base64_min_active
    firings) on its first analysis.max_points points."""
    n = min(cfg.max_points, store.n_points)
    points = px.proxy_value(llr_base64)[px.point_tokens(store.index(), val.tokens, n)][:, None].astype(np.float32)
    stats = px.match_proxies(store, points, {r: s.encode for r, s in saes.items()}, n, cfg.batch_size)
    return {r: int(len(count_family(s["specificity"][:, 0], s["n_fire"], cfg.base64_min_specificity,
                                    cfg.base64_min_active))) for r, s in stats.items()}


@torch.no_grad()
def interpretability_scores(cfg, analysis, inputs: Inputs, g: study.Group) -> dict:
    """The interpretability stage's scores (interpretability_study.analyse) of one dictionary's features: units
    sampled with cfg.seed, explained on the model's TRAIN store, scored on its VAL store; ip.summarize."""
    streams = inputs.streams
    names = sorted(set(streams["train"].subsets) | set(streams["val"].subsets))
    codes = {s: np.array([names.index(n) for n in st.subsets], dtype=np.int64) for s, st in streams.items()}
    S, V, val = len(names), inputs.tok.get_vocab_size(), streams["val"].tokens
    succ_tokens = np.asarray(streams["train"].tokens[:cfg.successor_tokens]).astype(np.int64)
    n_tr, idx_tr, sub_tr = study.split_points(g.stores["train"], streams["train"], cfg.explain_points, codes["train"])
    n_va, idx_va, sub_va = study.split_points(g.stores["val"], streams["val"], cfg.score_points, codes["val"])
    keys_tr = ip.point_keys(np.asarray(streams["train"].tokens[idx_tr["token"]]), sub_tr, S)
    keys_va = ip.point_keys(np.asarray(val[idx_va["token"]]), sub_va, S)

    def acts_of(units):
        fn = feature_columns(g.sae, units)
        return (px.unit_activations(g.stores["train"], n_tr, fn, analysis.batch_size),
                px.unit_activations(g.stores["val"], n_va, fn, analysis.batch_size))

    units, tr, va = study.sample_units(g.sae.n_features, cfg, np.random.default_rng(cfg.seed), acts_of)
    recs = ip.evaluate_units(tr, keys_tr, va, keys_va, S, top_examples=cfg.top_examples, max_keys=cfg.max_keys,
                             n_intervals=cfg.n_intervals, per_interval=cfg.per_interval, n_random=cfg.n_random,
                             single_token_share=cfg.single_token_share, seed=cfg.seed,
                             logit_weights=study.unit_logit_weights(g, units, val),
                             succ=ip.successor_counts(succ_tokens, V),
                             unigram=np.bincount(succ_tokens, minlength=V)[:V].astype(np.float64),
                             logit_k=cfg.logit_k, units=units)
    return ip.summarize(recs)


def feature_columns(sae, idx: list[int]):
    """Activations of the features `idx` only: the column formula of proxies.feature_columns for the standard
    architecture (a feature depends on its own row of W_e), the full encode otherwise (TopK's features compete
    for the k slots; JumpReLU's thresholds and gated's gate are not in that formula)."""
    if sae.architecture == "standard":
        return px.feature_columns(sae, idx)
    return lambda x: sae.encode(x)[:, idx]


@torch.no_grad()
def at_mix_proxies(store, sae, val, llr: dict[str, np.ndarray], n_points: int, batch_size: int,
                   shares: dict[str, float]) -> dict[str, dict]:
    """Per proxy, at the training mix: the best feature and the best neuron by Pearson r with the points weighted
    to `shares` (superposition.mix_weights; the units chosen under the weights), and the chosen feature's decoder
    spread (neurons with |coefficient| >= 0.1 of its unit-normalised decoder column). For the standard
    architecture these are features_vs_neurons' at_training_mix numbers (a test checks it)."""
    names = [k for k in px.PROXY_NAMES if k in llr]
    index = store.index()
    tids = px.point_tokens(index, val.tokens, n_points)
    subset = val.doc_subset[index["doc"][:n_points]].astype(np.int64)
    points = np.stack([px.proxy_value(llr[k])[tids] for k in names], axis=1).astype(np.float32)
    w, _ = mix_weights(subset, val.subsets, shares)
    res = px.match_proxies(store, points, {"features": sae.encode, "neurons": lambda x: x}, n_points, batch_size, w)
    spread = decoder_spread(sae.W_d.detach().cpu().numpy())
    out = {}
    for j, k in enumerate(names):
        f, nn = px.best_match(res["features"], j), px.best_match(res["neurons"], j)
        out[k] = {"feature": f["index"], "feature_r": round(f["pearson"], 4), "best_neuron": nn["index"],
                  "best_neuron_r": round(nn["pearson"], 4),
                  "decoder_neurons_ge_0.1": int(spread["ge_threshold"][f["index"]])}
    return out


def analyse_matched(params, rc: RecipesConfig, name: str, inputs: Inputs) -> dict:
    """The matched comparison of dictionary `name` (module docstring): proxies at the training mix, universality
    with its partner on analysis.compare_model, base64 features by size and the interpretability scores."""
    t0 = time.perf_counter()
    a = params.analysis
    runs = {n: rc.run(params, n) for n in rc.names()}
    other, sizes = partners(runs, name, a.compare_model)
    d = dictionary(params, rc, name, with_model=True)
    n = min(a.max_points, d.store.n_points)
    at_mix = at_mix_proxies(d.store, d.sae, inputs.streams["val"], inputs.llr, n, a.batch_size, inputs.shares)
    out = {"run": name, "proxy_wins": proxy_wins(at_mix), "at_training_mix": at_mix,
           "universality": None, "base64_by_size": None}
    if other is not None:
        u, _ = uv.analyse(d, dictionary(params, rc, other, with_model=True), inputs.streams["val"], a)
        out["universality"] = {"partner": other, "features": u["features"]["median"],
                               "neurons": u["neurons"]["median"], "features_units": u["features"]["units"]}
    saes = {s: (d.sae if s == name else load_sae(sae_dir(rc, s))) for s in sizes}
    counts = base64_by_size(saes, d.store, inputs.streams["val"], inputs.llr["base64"], a)
    out["base64_by_size"] = {str(runs[s].n_features): counts[s] for s in sizes}
    stores = {s: ActivationStore(paths.activations_dir(d.run.model, s)) for s in study.SPLITS}
    group = study.Group(name, d.run.model, stores, d.model, d.sae)
    out["interpretability"] = interpretability_scores(params.interpretability, a, inputs, group)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


# ------------------------------------------------------------------------------------------------
# Stage recipes: the table, the matched comparison, the figure
# ------------------------------------------------------------------------------------------------


def load_runs(names) -> dict[str, dict]:
    """{name: metrics/recipes/NAME.json} (stage recipe_run)."""
    out = {}
    for n in names:
        path = recipe_metrics(n)
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run `dvc repro experiments/recipes/dvc.yaml`")
        out[n] = json.loads(path.read_text())
    return out


def order_rows(rows: list[dict]) -> list[dict]:
    """Architectures in registry order, then model, size (largest first) and L0."""
    arch = {a: i for i, a in enumerate(architectures.ARCHITECTURES)}
    return sorted(rows, key=lambda r: (arch.get(r["architecture"], len(arch)), r["model"], -r["n_features"], r["l0"]))


def summarize(params, rc: RecipesConfig, inputs: Inputs | None = None, progress=print) -> dict:
    """Stage recipes: the rows of every dictionary (main_runs and runs), the matched dictionary of each
    architecture and its comparison (analyse_matched); fills proxy_wins and universality_features of the
    matched rows."""
    t0 = time.perf_counter()
    rows = order_rows([recipe_row(m) for m in load_runs(rc.names()).values()])
    by_name = {r["name"]: r for r in rows}
    reference = by_name[rc.reference_run]
    matched = matched_runs(rows, reference)
    inputs = inputs or Inputs.load(params)
    analysis = {}
    for arch, name in matched.items():
        analysis[arch] = analyse_matched(params, rc, name, inputs)
        by_name[name]["proxy_wins"] = analysis[arch]["proxy_wins"]
        u = analysis[arch]["universality"]
        by_name[name]["universality_features"] = None if u is None else u["features"]
        progress(f"matched {arch}: {name} (L0 {by_name[name]['l0']:.1f}), {analysis[arch].get('seconds')}s")
    return {"reference": {"run": reference["name"], "model": reference["model"],
                          "n_features": reference["n_features"], "l0": reference["l0"]},
            "recipes": rows, "matched": matched, "matched_analysis": analysis,
            "seconds": round(time.perf_counter() - t0, 1)}


def missing_partners(params, out: dict) -> list[str]:
    """One line per matched dictionary without a universality partner or a second size (which run to add)."""
    lines = []
    for arch, name in out["matched"].items():
        m = out["matched_analysis"][arch]
        if m["universality"] is None:
            lines.append(f"{arch}: no run on {params.analysis.compare_model} with {name}'s architecture, settings and "
                         "size (universality is null): add one to recipes.runs")
        if len(m["base64_by_size"]) < 2:
            lines.append(f"{arch}: no other size of {name} (base64 by size has one entry): add one to recipes.runs")
    return lines


def matched_table(out: dict) -> str:
    """The README's second table: the matched dictionary of each architecture, compared the paper's ways."""
    head = ("| architecture | matched run | L0 | at the training mix: feature r / best neuron r (Ar, He, DNA, b64) | "
            "proxy wins | universality: features / neurons | base64 features by size | sim. score median | "
            "logit acc. | rubric median |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    rows = {r["name"]: r for r in out["recipes"]}
    for arch, name in out["matched"].items():
        m = out["matched_analysis"][arch]
        mix = ", ".join(f"{p['feature_r']:.2f}/{p['best_neuron_r']:.2f}" for p in m["at_training_mix"].values())
        u = m["universality"]
        uni = "–" if u is None else f"{u['features']:.3f} / {u['neurons']:.3f}"
        sizes = ", ".join(f"{n}: {c}" for n, c in m["base64_by_size"].items())
        i = m["interpretability"]
        lines.append(f"| {arch} | {name} | {rows[name]['l0']:.1f} | {mix} | {m['proxy_wins']} | {uni} | {sizes} | "
                     f"{i.get('score_median', float('nan')):.3f} | {i.get('logit_acc', float('nan')):.3f} | "
                     f"{i.get('rubric_median', float('nan')):g} |")
    return "\n".join(lines)


def markdown_table(out: dict) -> str:
    """The README's table: one row per dictionary, the matched ones in bold with their comparison."""
    head = ("| run | architecture | knob | L0 | loss recovered | EV | dead | ultralow | dense | shrinkage | "
            "proxy wins (of 4) | universality |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    matched = set(out["matched"].values())
    fmt = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
    for r in out["recipes"]:
        name = f"**{r['name']}**" if r["name"] in matched else r["name"]
        lines.append(f"| {name} | {r['architecture']} | {r['knob']} {r['knob_value']:g} | {r['l0']:.1f} | "
                     f"{fmt(r['frac_loss_recovered'], '.3f')} | {r['explained_variance']:.3f} | {r['dead']} | "
                     f"{r['ultralow']} | {r['dense']} | {r['shrinkage']:.3f} | {fmt(r['proxy_wins'], 'd')} | "
                     f"{fmt(r['universality_features'], '.3f')} |")
    return "\n".join(lines)
