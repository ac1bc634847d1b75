"""Stage interpretability: LLM-free interpretability scores (paper Figs. 7 and 8), features vs neurons vs the
random-transformer features.

    python stages/interpretability.py

For interpretability.n_units units per group — features of analysis.run, neurons of analysis.model, features
of analysis.random_run — drawn with a seeded RNG among the units firing at least min_active times in both
splits: an explanation from the first explain_points points of the model's TRAIN activation store (the
explainer sees nothing else), a simulation score on the paper's held-out mix from the first score_points points
of the VAL store (plain and importance-weighted), the logit-side two-choice accuracy (promoted vs random
tokens, predicted from the explanation and train-stream bigram statistics), and the automatic rubric; plus a
blinded spot-check sheet for a person (artifacts/analysis/interpretability/spotcheck.md, spotcheck_scores.csv;
scripts/spotcheck_scores.py reads a filled sheet back into fig. 7). Exact definitions and what differs from the
paper's LLM explainer: monosemantic/interpretability.py.

Feature automata (paper Fig. 11; monosemantic/automata.py): every feature of analysis.run on automata_contexts
whole validation contexts; edges i -> j with lift and logit support >= automata_min_lift, confirmed by sampling
continuations with feature i pinned at its largest observed activation; the strongest self-loops and two-state
cycles.

Writes metrics/analysis/interpretability.json (headline: "interpretability", "automata"),
artifacts/analysis/interpretability/ (per-unit records and the spot-check), paper_figures/fig7_rubric.png,
fig8_autointerp.png and fig11_automata.png.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from monosemantic import automata as fa  # noqa: E402
from monosemantic import interpretability as ip  # noqa: E402
from monosemantic import interpretability_figures as ifig  # noqa: E402
from monosemantic import logit_weights as lw  # noqa: E402
from monosemantic import proxies as px  # noqa: E402
from monosemantic.config import stage_params  # noqa: E402
from monosemantic.model import Transformer  # noqa: E402
from monosemantic.sae import SparseAutoencoder  # noqa: E402
from monosemantic.store import ActivationStore, StoreError  # noqa: E402
from monosemantic.tokenizer import TokenizerError, load_stream, load_tokenizer  # noqa: E402
from monosemantic.utils import fail, write_json  # noqa: E402

OUT = Path("artifacts/analysis/interpretability")


def split_points(store, stream, n, codes):
    """(n, index of the first n points, subset code of each point) for a store over `stream`."""
    n = min(n, store.n_points)
    index = {k: v[:n] for k, v in store.index().items()}
    sub = codes[stream.doc_subset[stream.doc_of(index["token"])]]
    return n, index, sub


def sample_units(n_total, cfg, rng, acts_of):
    """Seeded sample of up to cfg.n_units units firing >= min_active times in both splits; acts_of(units)
    returns (train acts, val acts) for a list of units. Candidates are drawn in blocks until enough pass."""
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


def context_text(tok, tokens, index, p, n_ctx, before=12, after=4):
    """A validation example as text: the tokens around point p within its context, the token marked."""
    g, c = int(index["token"][p]), int(index["context_start"][p])
    lo, hi = max(c, g - before), min(c + n_ctx, g + after + 1, len(tokens))
    parts = [px.token_label(tok, int(t)) for t in tokens[lo:hi]]
    parts[g - lo] = f"⟦{parts[g - lo]}⟧"
    return "".join(parts).replace("\n", "↵")


def find_automata(cfg, model, sae, val, n_ctx, tok, rng):
    """Fig. 11: the features' automata on automata_contexts whole validation contexts (monosemantic/automata.py)."""
    n_contexts = min(cfg.automata_contexts, len(val) // n_ctx)
    starts = np.sort(rng.choice(len(val) // n_ctx, size=n_contexts, replace=False)) * n_ctx
    ctx = torch.from_numpy(np.stack([np.asarray(val[s:s + n_ctx]) for s in starts]).astype(np.int64))
    label = lambda i: px.token_label(tok, int(i)).replace("\n", "↵")  # noqa: E731
    found = fa.model_automata(model, sae, ctx, label, top_k=cfg.logit_k, min_count=cfg.automata_min_count,
                              min_lift=cfg.automata_min_lift, max_automata=cfg.automata_max,
                              n_pinned=cfg.automata_pinned, seed=cfg.seed, exclude_token=px.EOT_ID)
    return found, int(ctx.numel())


def main() -> None:
    t0 = time.perf_counter()
    params = stage_params()
    cfg, a = params.interpretability, params.analysis
    torch.set_num_threads(cfg.threads)
    torch.set_grad_enabled(False)
    try:
        tok = load_tokenizer("artifacts/tokenizer/tokenizer.json")
        streams = {s: load_stream("artifacts/tokens", s) for s in ("train", "val")}
        names = sorted(set(streams["train"].subsets) | set(streams["val"].subsets))
        codes = {s: np.array([names.index(n) for n in st.subsets], dtype=np.int64) for s, st in streams.items()}
        V = tok.get_vocab_size()
        succ_tokens = np.asarray(streams["train"].tokens[:cfg.successor_tokens]).astype(np.int64)
        succ = ip.successor_counts(succ_tokens, V)
        unigram = np.bincount(succ_tokens, minlength=V)[:V].astype(np.float64)
        groups = {}
        for group, run, model_name in (("features", a.run, a.model), ("neurons", None, a.model),
                                       ("random_features", a.random_run, a.random_model)):
            st = {s: ActivationStore(f"artifacts/activations/{model_name}/{s}") for s in ("train", "val")}
            model = Transformer.load(f"artifacts/models/{model_name}")
            sae = SparseAutoencoder.load(f"artifacts/sae/{run}").eval() if run else None
            groups[group] = (run, model_name, st, model, sae)
    except (StoreError, TokenizerError, FileNotFoundError) as e:
        fail(str(e))
    S = len(names)
    split = {}
    for model_name in {g[1] for g in groups.values()}:
        st = next(g[2] for g in groups.values() if g[1] == model_name)
        n_tr, idx_tr, sub_tr = split_points(st["train"], streams["train"], cfg.explain_points, codes["train"])
        n_va, idx_va, sub_va = split_points(st["val"], streams["val"], cfg.score_points, codes["val"])
        keys_tr = ip.point_keys(np.asarray(streams["train"].tokens[idx_tr["token"]]), sub_tr, S)
        keys_va = ip.point_keys(np.asarray(streams["val"].tokens[idx_va["token"]]), sub_va, S)
        split[model_name] = (n_tr, n_va, keys_tr, keys_va, idx_va)

    rng = np.random.default_rng(cfg.seed)
    out = {"explain_points": {}, "score_points": {}, "subsets": names, "groups": {}, "params": {
        k: getattr(cfg, k) for k in ("n_units", "top_examples", "max_keys", "n_intervals", "per_interval", "n_random",
                                     "min_active", "single_token_share", "logit_k", "successor_tokens", "seed")}}
    records, spot = {}, []
    n_ctx = params.transformer.n_ctx
    for group, (run, model_name, st, model, sae) in groups.items():
        n_tr, n_va, keys_tr, keys_va, idx_va = split[model_name]
        out["explain_points"][model_name], out["score_points"][model_name] = n_tr, n_va

        def acts_of(units, st=st, sae=sae, n_tr=n_tr, n_va=n_va):
            fn = px.feature_columns(sae, units) if sae is not None else (lambda x: x[:, units])
            return (px.unit_activations(st["train"], n_tr, fn, a.batch_size),
                    px.unit_activations(st["val"], n_va, fn, a.batch_size))

        n_total = sae.n_features if sae is not None else st["train"].d
        units, tr, va = sample_units(n_total, cfg, rng, acts_of)
        # Logit weights (the paper's diagonal LayerNorm approximation), σ̄ on 32 validation contexts.
        val = streams["val"].tokens
        starts = np.arange(32) * (len(val) // 32 // n_ctx) * n_ctx
        ctx = torch.from_numpy(np.stack([np.asarray(val[s:s + n_ctx]) for s in starts]).astype(np.int64))
        sigma = lw.residual_std(model, ctx)
        W = (lw.feature_logit_weights(model, sae, sigma, units.tolist()) if sae is not None
             else lw.neuron_logit_weights(model, sigma)[torch.from_numpy(units)]).numpy()
        W[:, px.EOT_ID] = -np.inf  # the special token is never a candidate
        recs = ip.evaluate_units(tr, keys_tr, va, keys_va, S, top_examples=cfg.top_examples, max_keys=cfg.max_keys,
                                 n_intervals=cfg.n_intervals, per_interval=cfg.per_interval, n_random=cfg.n_random,
                                 single_token_share=cfg.single_token_share, seed=cfg.seed + len(records),
                                 logit_weights=W, succ=succ, unigram=unigram, logit_k=cfg.logit_k, units=units,
                                 progress=lambda it, g=group: tqdm(it, desc=g, mininterval=5))
        for r in recs:
            r["explanation_text"] = [f"{px.token_label(tok, t)!r} in {names[s]} ({v})" for t, s, v in r["explanation"]]
            r["promoted_text"] = [px.token_label(tok, t).replace("\n", "↵") for t in r["promoted"]]
        records[group] = recs
        out["groups"][group] = {"run": run, "model": model_name, **ip.summarize(recs)}
        # The blinded spot-check: the first spotcheck_units sampled features and neurons (already random order).
        if group in ("features", "neurons"):
            srng = np.random.default_rng(cfg.seed + 1)
            for j, r in enumerate(recs[:cfg.spotcheck_units]):
                col = va[:, j]
                mix = ip.heldout_mix(col, srng, 8, cfg.n_intervals, 3, 0)
                ex = lambda c: [context_text(tok, val, idx_va, int(p), n_ctx)  # noqa: E731
                                for p in mix["index"][mix["component"] == c]]
                spot.append({"group": group, "unit": r["unit"], "top": ex(0),
                             "intervals": [ex(c) for c in range(1, cfg.n_intervals + 1)], "logits": r["promoted_text"]})

    automata, n_tok = find_automata(cfg, groups["features"][3], groups["features"][4], streams["val"].tokens, n_ctx,
                                    tok, np.random.default_rng(cfg.seed + 2))
    out["automata"] = {"run": a.run, "tokens": n_tok, "found": automata}
    ifig.automata_figure(automata, "paper_figures/fig11_automata.png")
    OUT.mkdir(parents=True, exist_ok=True)
    ip.write_spotcheck(OUT, spot, cfg.seed)
    write_json(OUT / "units.json", records)
    ifig.autointerp_figure({g: {k: np.array([r[k] for r in rs]) for k in ("score", "score_weighted")}
                            for g, rs in records.items()},
                           {g: out["groups"][g]["logit_acc"] for g in records}, "paper_figures/fig8_autointerp.png")
    ifig.rubric_figure({g: np.array([r["rubric"]["total"] for r in rs]) for g, rs in records.items()},
                       "paper_figures/fig7_rubric.png")
    out["headline"] = {**ip.headline(out), "automata": [
        {k: x[k] for k in ("states", "edges", "lift", "pinned_rate", "baseline_rate")} for x in automata]}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json("metrics/analysis/interpretability.json", out)
    for g, s in out["groups"].items():
        print(f"{g:>16}: n={s['n_units']} sim median {s['score_median']:.3f} (weighted {s['score_weighted_median']:.3f}, "
              f"all {s['score_all_median']:.3f}) logit acc {s['logit_acc']:.3f} rubric median {s['rubric_median']} "
              f"single-token {s['single_token_units']}")
    for x in automata:
        print(f"automaton {x['states']}: edges {x['edges']} lift {x['lift']} pinned {x['pinned_rate']} "
              f"(unpinned {x['baseline_rate']}) tokens {x['state_tokens']} e.g. {x['example']!r}")
    print(f"done in {out['seconds']}s")


if __name__ == "__main__":
    if len(sys.argv) != 1:
        fail("usage: python stages/interpretability.py")
    main()
