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
"""

from __future__ import annotations

import numpy as np
import torch


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
    d = sae.W_d.detach().T  # (F, d_mlp), rows are decoder vectors
    if features is not None:
        d = d[features]
    return logit_weight_matrix(model.W_U.weight.detach(), model.ln_f.weight.detach(), sigma,
                               model.mlp.W_out.weight.detach(), d, center)


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
