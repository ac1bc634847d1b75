"""Stage logit_weights: each feature's effect on the logits, and feature ablation for the proxy features.

    python stages/logit_weights.py [RUN]      (default: analysis.run, the paper's A/1)

Logit weights W_U · diag(γ/σ̄) · C · W_out · d_i for every feature (monosemantic/logit_weights.py; σ̄ the mean
LayerNorm scale of the final residual stream on 32 validation contexts), the top and bottom analysis.top_k
tokens of every feature (artifacts/analysis/logit_weights_RUN/top_tokens.json), and for the four proxy
features (metrics/analysis/proxies_RUN.json) the share of their top tokens that are proxy tokens, against
the same share for the best neurons. Ablation: for each proxy feature, the validation context where it is
most active among the sampled points; the feature's activation and the change in each next-token
log-likelihood when x − f_i·d_i replaces the MLP activations. Writes metrics/analysis/logit_weights_RUN.json,
paper_figures/fig3_logit_weights.png and fig4_ablation.png.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monosemantic import analysis_figures as figs  # noqa: E402
from monosemantic import logit_weights as lw  # noqa: E402
from monosemantic import proxies as px  # noqa: E402
from monosemantic.config import load_params  # noqa: E402
from monosemantic.config import ConfigError  # noqa: E402
from monosemantic.model import Transformer  # noqa: E402
from monosemantic.sae import SparseAutoencoder  # noqa: E402
from monosemantic.store import ActivationStore, StoreError  # noqa: E402
from monosemantic.tokenizer import TokenizerError  # noqa: E402
from monosemantic.utils import fail, write_json  # noqa: E402


def main(name: str | None) -> None:
    t0 = time.perf_counter()
    try:
        params = load_params()
        cfg = params.analysis
        name = name or cfg.run
        if name not in params.sae_runs:
            fail(f"{name!r} is not in params.yaml sae_runs ({', '.join(params.sae_runs)})")
        run = params.sae_runs[name]
        prox_path = Path(f"metrics/analysis/proxies_{name}.json")
        if not prox_path.exists():
            fail(f"{prox_path}: missing; run `python stages/proxies.py {name}` first")
        prox = json.loads(prox_path.read_text())["proxies"]
        store = ActivationStore(f"artifacts/activations/{run.model}/val")
        sae = SparseAutoencoder.load(f"artifacts/sae/{name}").eval()
        model = Transformer.load(f"artifacts/models/{run.model}")
        tok, val, llr = px.load_proxy_tables()
    except (ConfigError, StoreError, TokenizerError, FileNotFoundError) as e:
        fail(str(e))
    torch.set_grad_enabled(False)
    n_ctx = model.cfg.n_ctx
    k = cfg.top_k
    label = lambda i: px.token_label(tok, int(i))  # noqa: E731

    # ---------------------------------------------------------------- logit weights
    n_sigma = 32
    starts = np.arange(n_sigma) * (len(val) // n_sigma // n_ctx) * n_ctx
    toks = torch.from_numpy(np.stack([np.asarray(val.tokens[s:s + n_ctx]) for s in starts]).astype(np.int64))
    sigma = lw.residual_std(model, toks)
    W = lw.feature_logit_weights(model, sae, sigma)  # (F, vocab)
    top, bottom = lw.top_bottom(W, k)
    table = {str(i): {"top": [label(t) for t in top[i]], "bottom": [label(t) for t in bottom[i]]}
             for i in range(W.shape[0])}
    Wn = lw.neuron_logit_weights(model, sigma)
    ntop, _ = lw.top_bottom(Wn, k)
    out = {"run": name, "sigma": sigma, "top_k": k, "proxies": {}}
    panels, abl_panels = [], []
    index = store.index()
    n = min(cfg.max_points, store.n_points)
    names = list(prox)
    feats = [prox[p]["feature"]["index"] for p in names]
    fa = px.unit_activations(store, n, px.feature_columns(sae, feats), cfg.batch_size)
    for j, p in enumerate(names):
        i, neuron = prox[p]["feature"]["index"], prox[p]["neuron"]["index"]
        pos = llr[p] > 0
        share = float(pos[top[i]].mean())
        out["proxies"][p] = {
            "feature": i, "top_tokens": table[str(i)]["top"], "bottom_tokens": table[str(i)]["bottom"],
            "top_k_proxy_share": share, "neuron": neuron, "neuron_top_tokens": [label(t) for t in ntop[neuron]],
            "neuron_top_k_proxy_share": float(pos[ntop[neuron]].mean()),
            "vocab_proxy_share": float(pos.mean()),
        }
        panels.append({"title": f"{px.HYPOTHESES[p].name}: feature {i} (top-{k} proxy share {share:.0%})",
                       "weights": W[i].numpy(), "positive": pos, "top": table[str(i)]["top"]})

        # ---------------------------------------------------------------- ablation
        best = int(np.argmax(fa[:, j]))
        c0, at = int(index["context_start"][best]), int(index["token"][best])
        ctx = torch.from_numpy(np.asarray(val.tokens[c0:c0 + n_ctx]).astype(np.int64))[None]
        eff = lw.ablation_effect(model, sae, ctx, i)
        a, d = eff["activation"][0], eff["delta_logprob"][0]
        active = a[:-1] > 0
        nxt_pos = pos[ctx[0, 1:].numpy()]
        out["proxies"][p]["ablation"] = {
            "context_start": c0, "max_activation_position": at - c0,
            "mean_delta_where_active": float(d[active].mean()) if active.any() else None,
            "mean_delta_where_active_next_is_proxy": float(d[active & nxt_pos].mean()) if (active & nxt_pos).any() else None,
            "mean_delta_where_active_next_not_proxy": float(d[active & ~nxt_pos].mean()) if (active & ~nxt_pos).any() else None,
            "positions_active": int(active.sum()),
        }
        w = cfg.ablation_window
        lo = max(0, min(at - c0 - w // 2, n_ctx - w))
        hi = min(n_ctx, lo + w)
        abl_panels.append({"title": f"{px.HYPOTHESES[p].name} feature {i}: validation context at token {c0 + lo}",
                           "tokens": [label(t) for t in ctx[0, lo:hi]], "activation": a[lo:hi],
                           "delta": d[lo:min(hi, n_ctx - 1)]})
    figs.logit_weight_histograms(panels, "paper_figures/fig3_logit_weights.png")
    figs.ablation_figure(abl_panels, "paper_figures/fig4_ablation.png")
    write_json(f"artifacts/analysis/logit_weights_{name}/top_tokens.json", table)
    out["headline"] = {"logit_top_k_proxy_share": {p: round(out["proxies"][p]["top_k_proxy_share"], 3) for p in names}}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(f"metrics/analysis/logit_weights_{name}.json", out)
    for p in names:
        r = out["proxies"][p]
        print(f"{p:>7} feature {r['feature']}: top tokens {r['top_tokens'][:6]} (proxy share {r['top_k_proxy_share']:.2f}; "
              f"neuron {r['neuron_top_k_proxy_share']:.2f}); ablation Δ where active {r['ablation']['mean_delta_where_active']}")
    print(f"done in {out['seconds']}s")


if __name__ == "__main__":
    if len(sys.argv) > 2:
        fail("usage: python stages/logit_weights.py [RUN_NAME]")
    main(sys.argv[1] if len(sys.argv) == 2 else None)
