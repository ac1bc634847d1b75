"""A feature's effect on the next-token logits (paper: "logit weights", "feature ablation").

Logit weights. Feature i adds f_i · W_out d_i to the residual stream (d_i: its decoder vector in the neuron
basis, W_out: the MLP's output weights). Through the final LayerNorm and the unembedding this changes the
logits by

    ℓ_i = W_U diag(γ / σ̄) C W_out d_i                    (vocab,)

the paper's diagonal approximation of the LayerNorm: γ is ln_f's gain, σ̄ an average standard deviation of
the final residual stream (what the LayerNorm divides by; here the mean over validation tokens of
sqrt(Var(resid) + ε)), and C = I − 11ᵀ/d the mean subtraction LayerNorm also applies (exactly linear; set
center=False to drop it). The ln_f bias and b_U shift every feature's logits alike and are left out.

Ablation. In a context, the MLP activations x_t are replaced by x_t − f_i(x_t) d_i (the feature's own
contribution to the SAE reconstruction removed) through the model's mlp_replacement hook, and the change
in log-likelihood of each next token is recorded:

    Δ_t = log p_ablated(token_{t+1} | ..t) − log p(token_{t+1} | ..t).

σ̄ is one sample for every analysis (and the browser): `residual_scale`, the mean LayerNorm scale on
SIGMA_CONTEXTS whole contexts at equal strides through the validation stream. `analyse` is stage
logit_weights: the logit weights of every feature, the top tokens of the proxy features against the proxy
tokens and the best neurons' (paper Fig. 3), and the ablation of each proxy feature in the validation context
where it is most active (Fig. 4).
"""

from __future__ import annotations

import numpy as np
import torch

from monosemantic.analysis import proxies as px
from monosemantic.analysis.token_bytes import token_label

SIGMA_CONTEXTS = 32  # contexts of the σ̄ sample


@torch.no_grad()
def residual_std(model, tokens: torch.Tensor, batch_size: int = 16) -> float:
    """Mean over positions of the final residual stream's LayerNorm scale sqrt(Var + ε), on (B, T) tokens."""
    total, n = 0.0, 0
    for s in range(0, tokens.shape[0], batch_size):
        t = tokens[s:s + batch_size]
        x, h = model._mlp_input(t)
        out, _ = model.mlp(h)
        resid = x + out
        sd = (resid.var(dim=-1, unbiased=False) + model.ln_f.eps).sqrt()
        total += sd.sum().item()
        n += sd.numel()
    return total / n


def spaced_contexts(tokens: np.ndarray, n_ctx: int, n: int) -> torch.Tensor:
    """(n, n_ctx) int64: n whole contexts at equal strides from the start of a token stream (n clipped to
    [1, the contexts that fit])."""
    n = max(1, min(n, len(tokens) // n_ctx))
    starts = np.arange(n) * (len(tokens) // n // n_ctx) * n_ctx
    return torch.from_numpy(np.stack([np.asarray(tokens[s:s + n_ctx]) for s in starts]).astype(np.int64))


def residual_scale(model, tokens: np.ndarray, n_contexts: int = SIGMA_CONTEXTS) -> float:
    """σ̄: residual_std on `n_contexts` spaced contexts (spaced_contexts) of a token stream (the val split)."""
    return residual_std(model, spaced_contexts(tokens, model.cfg.n_ctx, n_contexts))


@torch.no_grad()
def logit_weight_matrix(W_U: torch.Tensor, gamma: torch.Tensor, sigma: float, W_out: torch.Tensor,
                        vectors: torch.Tensor, center: bool = True) -> torch.Tensor:
    """(n, vocab): W_U diag(γ/σ) C W_out v for each row v of `vectors` (n, d_mlp).

    W_U: (vocab, d_model) (nn.Linear weight), gamma: (d_model,), W_out: (d_model, d_mlp) (nn.Linear weight)."""
    r = vectors.float() @ W_out.float().T  # (n, d_model): what each unit writes into the residual stream
    if center:
        r = r - r.mean(dim=1, keepdim=True)
    r = r * (gamma.float() / sigma)
    return r @ W_U.float().T


def feature_logit_weights(model, sae, sigma: float, features: list[int] | None = None,
                          center: bool = True) -> torch.Tensor:
    """Logit weights of SAE features (all, or the listed ones): (n, vocab)."""
    decoder_rows = sae.W_d.detach().T  # (F, d_mlp), rows are decoder vectors
    if features is not None:
        decoder_rows = decoder_rows[features]
    return logit_weight_matrix(model.W_U.weight.detach(), model.ln_f.weight.detach(), sigma,
                               model.mlp.W_out.weight.detach(), decoder_rows, center)


def neuron_logit_weights(model, sigma: float, center: bool = True) -> torch.Tensor:
    """Logit weights of the MLP neurons themselves (the identity basis): (d_mlp, vocab)."""
    eye = torch.eye(model.mlp.W_out.weight.shape[1])
    return logit_weight_matrix(model.W_U.weight.detach(), model.ln_f.weight.detach(), sigma,
                               model.mlp.W_out.weight.detach(), eye, center)


def top_bottom(weights: torch.Tensor | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the k largest and k smallest entries of each row (largest first / smallest first)."""
    w = torch.as_tensor(weights)
    k = min(k, w.shape[-1])
    return (w.topk(k, dim=-1).indices.numpy(), (-w).topk(k, dim=-1).indices.numpy())


def ablate_feature(sae, feature: int):
    """mlp_replacement removing feature i's contribution: x − f_i(x) d_i (at every position)."""
    w_e, b_e, b_d = sae.W_e[feature].detach(), sae.b_e[feature].detach(), sae.b_d.detach()
    d_i = sae.W_d[:, feature].detach()

    def replace(acts: torch.Tensor) -> torch.Tensor:
        f = torch.relu((acts - b_d) @ w_e + b_e)  # (B, T)
        return acts - f[..., None] * d_i

    return replace


@torch.no_grad()
def ablation_effect(model, sae, tokens: torch.Tensor, feature: int) -> dict[str, np.ndarray]:
    """For (B, T) tokens: the feature's activation at each position (B, T) and the change in next-token
    log-likelihood when it is ablated (B, T−1): delta[:, t] concerns predicting tokens[:, t+1] at position t."""
    clean = model.token_losses(tokens)
    ablated = model.token_losses(tokens, ablate_feature(sae, feature))
    acts = model.mlp_acts(tokens)
    f = torch.relu((acts - sae.b_d) @ sae.W_e[feature] + sae.b_e[feature])
    return {"activation": f.numpy(), "delta_logprob": (clean - ablated).numpy(),
            "clean_logprob": (-clean).numpy()}


# ------------------------------------------------------------------------------------------------
# Stage logit_weights (paper Figs. 3 and 4)
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def analyse(dictionary, proxies: dict, tok, val, llr: dict[str, np.ndarray], cfg) -> tuple[dict, dict, list, list]:
    """Logit weights and ablation of `dictionary` (an inputs.Dictionary with its model) for the proxy features
    `proxies` (inputs.load_proxy_matches; val: the validation token stream, llr: proxies.load_proxy_tables).

    Returns (metrics/analysis/logit_weights_RUN.json, {feature: {"top", "bottom"} token labels} for every
    feature, Fig. 3's panels, Fig. 4's panels). Per proxy: the share of the feature's top cfg.top_k tokens that
    are proxy-positive (LLR > 0), against its best neuron's and the vocabulary's; the ablation in the context of
    the feature's largest activation among the first cfg.max_points points: Δ (module docstring) averaged over
    the positions where the feature fires, split by whether the next token is proxy-positive."""
    model, sae, k, n_ctx = dictionary.model, dictionary.sae, cfg.top_k, dictionary.model.cfg.n_ctx
    label = lambda i: token_label(tok, int(i))  # noqa: E731
    sigma = residual_scale(model, val.tokens)
    W = feature_logit_weights(model, sae, sigma)  # (F, vocab)
    top, bottom = top_bottom(W, k)
    table = {str(i): {"top": [label(t) for t in top[i]], "bottom": [label(t) for t in bottom[i]]}
             for i in range(W.shape[0])}
    ntop, _ = top_bottom(neuron_logit_weights(model, sigma), k)
    out = {"run": dictionary.name, "sigma": sigma, "top_k": k, "proxies": {}}
    panels, abl_panels = [], []
    index = dictionary.store.index()
    names = list(proxies)
    fa = px.unit_activations(dictionary.store, min(cfg.max_points, dictionary.store.n_points),
                             px.feature_columns(sae, [proxies[p]["feature"]["index"] for p in names]), cfg.batch_size)
    for j, p in enumerate(names):
        i, neuron = proxies[p]["feature"]["index"], proxies[p]["neuron"]["index"]
        pos = llr[p] > 0
        share = float(pos[top[i]].mean())
        out["proxies"][p] = {
            "feature": i, "top_tokens": table[str(i)]["top"], "bottom_tokens": table[str(i)]["bottom"],
            "top_k_proxy_share": share, "neuron": neuron, "neuron_top_tokens": [label(t) for t in ntop[neuron]],
            "neuron_top_k_proxy_share": float(pos[ntop[neuron]].mean()), "vocab_proxy_share": float(pos.mean())}
        panels.append({"title": f"{px.HYPOTHESES[p].name}: feature {i} (top-{k} proxy share {share:.0%})",
                       "weights": W[i].numpy(), "positive": pos, "top": table[str(i)]["top"]})
        best = int(np.argmax(fa[:, j]))
        c0, at = int(index["context_start"][best]), int(index["token"][best])
        ctx = torch.from_numpy(np.asarray(val.tokens[c0:c0 + n_ctx]).astype(np.int64))[None]
        out["proxies"][p]["ablation"], (a, delta) = ablation_summary(model, sae, ctx, i, pos, c0, at - c0)
        lo = max(0, min(at - c0 - cfg.ablation_window // 2, n_ctx - cfg.ablation_window))
        hi = min(n_ctx, lo + cfg.ablation_window)
        abl_panels.append({"title": f"{px.HYPOTHESES[p].name} feature {i}: validation context at token {c0 + lo}",
                           "tokens": [label(t) for t in ctx[0, lo:hi]], "activation": a[lo:hi],
                           "delta": delta[lo:min(hi, n_ctx - 1)]})
    out["headline"] = {"logit_top_k_proxy_share": {p: round(out["proxies"][p]["top_k_proxy_share"], 3) for p in names}}
    return out, table, panels, abl_panels


def ablation_summary(model, sae, ctx: torch.Tensor, feature: int, positive: np.ndarray, context_start: int,
                     peak: int) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """Ablation of `feature` in one context (1, T): mean Δ over the positions where it fires (all; next token
    proxy-positive; not), None where no position qualifies. Also returns (activation (T,), Δ (T−1,))."""
    eff = ablation_effect(model, sae, ctx, feature)
    a, delta = eff["activation"][0], eff["delta_logprob"][0]
    active = a[:-1] > 0
    nxt = positive[ctx[0, 1:].numpy()]
    mean = lambda m: float(delta[m].mean()) if m.any() else None  # noqa: E731
    return ({"context_start": context_start, "max_activation_position": peak,
             "mean_delta_where_active": mean(active),
             "mean_delta_where_active_next_is_proxy": mean(active & nxt),
             "mean_delta_where_active_next_not_proxy": mean(active & ~nxt),
             "positions_active": int(active.sum())}, (a, delta))


def format_analysis(out: dict) -> str:
    return "\n".join(
        f"{p:>7} feature {r['feature']}: top tokens {r['top_tokens'][:6]} (proxy share {r['top_k_proxy_share']:.2f}; "
        f"neuron {r['neuron_top_k_proxy_share']:.2f}); ablation Δ where active "
        f"{r['ablation']['mean_delta_where_active']}"
        for p, r in out["proxies"].items())
