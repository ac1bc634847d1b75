"""Stage interpretability: features vs neurons vs random-transformer features on the LLM-free scores of
interpretability.py (paper Figs. 7 and 8), the blinded spot-check (spotcheck.py) and the feature automata
(automata.py, Fig. 11).

Three groups of units: the features of analysis.run, the neurons of analysis.model and the features of
analysis.random_run. Per group, interpretability.n_units units are drawn with one seeded RNG (shared across the
groups, in that order) among those firing at least min_active times on both splits: candidates in a random
order, a block of n_units at a time, until enough pass. A unit's explanation comes from the first
explain_points points of its model's TRAIN activation store (the explainer sees nothing else); its scores from
the first score_points points of the VAL store. A point's key is its token and the subset of its document,
numbered over the union of both splits' subsets (sorted). The logit side uses each unit's logit weights
(logit_weights.py, σ̄ = residual_scale on the validation stream; the end-of-text token is never a candidate)
and the successor statistics of the first successor_tokens train tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from monosemantic.analysis import interpretability as ip
from monosemantic.analysis import logit_weights as lw
from monosemantic.analysis import proxies as px
from monosemantic.analysis.automata import validation_automata
from monosemantic.analysis.spotcheck import spotcheck_entries
from monosemantic.analysis.token_bytes import EOT_ID, token_label
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import ActivationStore
from monosemantic.sae.architectures.base import SAE

SPLITS = ("train", "val")
RECORD_PARAMS = ("n_units", "top_examples", "max_keys", "n_intervals", "per_interval", "n_random", "min_active",
                 "single_token_share", "logit_k", "successor_tokens", "seed")


@dataclass
class Group:
    """The units of one group: a dictionary's features (run) or its model's neurons (run None)."""

    run: str | None
    model_name: str
    stores: dict[str, ActivationStore]  # "train", "val"
    model: Transformer
    sae: SAE | None


def group_units(analysis) -> list[tuple[str, str | None, str]]:
    """(group, run, model) of the three groups: features (analysis.run), neurons (analysis.model),
    random_features (analysis.random_run); the stage loads each into a Group, in this order."""
    return [("features", analysis.run, analysis.model), ("neurons", None, analysis.model),
            ("random_features", analysis.random_run, analysis.random_model)]


def split_points(store, stream, n: int, codes: np.ndarray) -> tuple[int, dict, np.ndarray]:
    """(n, the index of the first n points, the subset code of each point) of a store sampled from `stream`."""
    n = min(n, store.n_points)
    index = {k: v[:n] for k, v in store.index().items()}
    return n, index, codes[stream.doc_subset[stream.doc_of(index["token"])]]


def sample_units(n_total: int, cfg, rng: np.random.Generator,
                 acts_of: Callable[[list[int]], tuple[np.ndarray, np.ndarray]]):
    """(units, their train activations, their val activations): up to cfg.n_units of n_total units firing
    >= cfg.min_active times in both splits, candidates drawn in blocks of n_units from rng.permutation."""
    order = rng.permutation(n_total)
    keep_u, keep_tr, keep_va = [], [], []
    for s in range(0, n_total, cfg.n_units):
        block = order[s:s + cfg.n_units]
        tr, va = acts_of(block.tolist())
        ok = ((tr > 0).sum(0) >= cfg.min_active) & ((va > 0).sum(0) >= cfg.min_active)
        keep_u.append(block[ok]), keep_tr.append(tr[:, ok]), keep_va.append(va[:, ok])
        if sum(len(u) for u in keep_u) >= cfg.n_units:
            break
    u = np.concatenate(keep_u)[:cfg.n_units]
    return u, np.concatenate(keep_tr, 1)[:, :cfg.n_units], np.concatenate(keep_va, 1)[:, :cfg.n_units]


def unit_logit_weights(g: Group, units: np.ndarray, val_tokens: np.ndarray) -> np.ndarray:
    """(units, vocab) logit weights of the sampled units, −inf at the end-of-text token."""
    sigma = lw.residual_scale(g.model, val_tokens)
    W = (lw.feature_logit_weights(g.model, g.sae, sigma, units.tolist()) if g.sae is not None
         else lw.neuron_logit_weights(g.model, sigma)[torch.from_numpy(units)]).numpy()
    W[:, EOT_ID] = -np.inf
    return W


@torch.no_grad()
def analyse(cfg, analysis, tok, streams: dict, groups: dict[str, Group], progress: Callable | None = None):
    """Every group's units scored (module docstring) and the automata of analysis.run's features.

    cfg: params.interpretability; analysis: params.analysis; streams: {"train", "val"} token streams. Returns (metrics/analysis/interpretability.json, {group: per-unit
    records} (units.json), the spot-check entries (spotcheck.write_spotcheck), the figures' data)."""
    names = sorted(set(streams["train"].subsets) | set(streams["val"].subsets))
    codes = {s: np.array([names.index(n) for n in st.subsets], dtype=np.int64) for s, st in streams.items()}
    S, V, val = len(names), tok.get_vocab_size(), streams["val"].tokens
    succ_tokens = np.asarray(streams["train"].tokens[:cfg.successor_tokens]).astype(np.int64)
    succ = ip.successor_counts(succ_tokens, V)
    unigram = np.bincount(succ_tokens, minlength=V)[:V].astype(np.float64)
    split = {}
    for model_name in dict.fromkeys(g.model_name for g in groups.values()):
        st = next(g.stores for g in groups.values() if g.model_name == model_name)
        n_tr, idx_tr, sub_tr = split_points(st["train"], streams["train"], cfg.explain_points, codes["train"])
        n_va, idx_va, sub_va = split_points(st["val"], streams["val"], cfg.score_points, codes["val"])
        keys_tr = ip.point_keys(np.asarray(streams["train"].tokens[idx_tr["token"]]), sub_tr, S)
        split[model_name] = (n_tr, n_va, keys_tr, ip.point_keys(np.asarray(val[idx_va["token"]]), sub_va, S), idx_va)

    rng = np.random.default_rng(cfg.seed)
    out = {"explain_points": {}, "score_points": {}, "subsets": names, "groups": {},
           "params": {k: getattr(cfg, k) for k in RECORD_PARAMS}}
    records, spot = {}, []
    for group, g in groups.items():
        n_tr, n_va, keys_tr, keys_va, idx_va = split[g.model_name]
        out["explain_points"][g.model_name], out["score_points"][g.model_name] = n_tr, n_va

        def acts_of(units, g=g, n_tr=n_tr, n_va=n_va):
            fn = px.feature_columns(g.sae, units) if g.sae is not None else (lambda x: x[:, units])
            return (px.unit_activations(g.stores["train"], n_tr, fn, analysis.batch_size),
                    px.unit_activations(g.stores["val"], n_va, fn, analysis.batch_size))

        units, tr, va = sample_units(g.sae.n_features if g.sae is not None else g.stores["train"].d, cfg, rng, acts_of)
        recs = ip.evaluate_units(tr, keys_tr, va, keys_va, S, top_examples=cfg.top_examples, max_keys=cfg.max_keys,
                                 n_intervals=cfg.n_intervals, per_interval=cfg.per_interval, n_random=cfg.n_random,
                                 single_token_share=cfg.single_token_share, seed=cfg.seed + len(records),
                                 logit_weights=unit_logit_weights(g, units, val), succ=succ, unigram=unigram,
                                 logit_k=cfg.logit_k, units=units,
                                 progress=None if progress is None else (lambda it, gr=group: progress(it, gr)))
        for r in recs:
            r["explanation_text"] = [f"{token_label(tok, t)!r} in {names[s]} ({v})" for t, s, v in r["explanation"]]
            r["promoted_text"] = [token_label(tok, t).replace("\n", "↵") for t in r["promoted"]]
        records[group] = recs
        out["groups"][group] = {"run": g.run, "model": g.model_name, **ip.summarize(recs)}
        if group in ("features", "neurons"):  # the first spotcheck_units sampled units (already in random order)
            spot += spotcheck_entries(group, recs, va, tok, val, idx_va, g.model.cfg.n_ctx, cfg.spotcheck_units,
                                      cfg.n_intervals, cfg.seed + 1)

    automata, n_tok = validation_automata(cfg, groups["features"].model, groups["features"].sae, val, tok,
                                          np.random.default_rng(cfg.seed + 2))
    out["automata"] = {"run": analysis.run, "tokens": n_tok, "found": automata}
    out["headline"] = {**ip.headline(out), "automata": [
        {k: x[k] for k in ("states", "edges", "lift", "pinned_rate", "baseline_rate", "natural_rate", "causal",
                           "expected_pinned_rate", "expected_baseline_rate", "expected_effect", "effect_bounds",
                           "effect_p")}
        for x in automata]}
    figures = {"scores": {g: {k: np.array([r[k] for r in rs]) for k in ("score", "score_weighted")}
                          for g, rs in records.items()},
               "logit_acc": {g: out["groups"][g]["logit_acc"] for g in records},
               "rubric": {g: np.array([r["rubric"]["total"] for r in rs]) for g, rs in records.items()},
               "automata": automata}
    return out, records, spot, figures


def format_study(out: dict) -> str:
    lines = [f"{g:>16}: n={s['n_units']} sim median {s['score_median']:.3f} "
             f"(weighted {s['score_weighted_median']:.3f}, all {s['score_all_median']:.3f}) "
             f"logit acc {s['logit_acc']:.3f} rubric median {s['rubric_median']} single-token {s['single_token_units']}"
             for g, s in out["groups"].items()]
    lines += [f"automaton {x['states']}: edges {x['edges']} lift {x['lift']} expected pinned "
              f"{x['expected_pinned_rate']} ablated {x['expected_baseline_rate']} (effect within {x['effect_bounds']}, "
              f"p {x['effect_p']}; uncovered {x['uncovered_mass']}; "
              f"sampled {x['pinned_rate']} vs {x['baseline_rate']}) natural {x['expected_natural_rate']} "
              f"causal {x['causal']} (sampled {x['sampled_causal']}) "
              f"tokens {x['state_tokens']} e.g. {x['example']!r}"
              for x in out["automata"]["found"]]
    return "\n".join(lines)
