"""Helpers shared by the dictionary architectures (sae/architectures/) and their training (sae/train.py).

    geometric_median(x)        the b_d initialisation of Bricken et al. (2023) (Weiszfeld's algorithm)
    remove_parallel_grad(W_d)  the unit-norm decoder's gradient projection
    sae_metadata(...)          the cfg.json metadata of a run of the sweep

The architectures themselves (the paper's standard SAE and the recipes that followed it) are one file each in
sae/architectures/; `architectures.load(out_dir)` loads a trained one of any architecture.
"""

from __future__ import annotations

import torch

# TransformerLens name of the post-ReLU MLP activations of layer 0 (what the SAE is trained on).
HOOK_NAME = "blocks.0.mlp.hook_post"


def sae_metadata(run_name: str, model: str, n_ctx: int) -> dict:
    """The cfg.json metadata of the sweep's SAE `run_name`, trained on the MLP activations of the transformer
    `model` (contexts of n_ctx tokens): the extra entries `SAE.save` records (SAELens names)."""
    return {"model_name": f"monosemantic-1L-{model}", "hook_name": HOOK_NAME, "context_size": n_ctx,
            "run_name": run_name}


@torch.no_grad()
def remove_parallel_grad(W_d: torch.Tensor) -> None:
    """In place on W_d.grad: remove from each column's gradient its component parallel to that column.

        ∇_i ← ∇_i − ((∇_i · w_i) / ‖w_i‖²) w_i

    so that, to first order, an update along −∇ does not change ‖w_i‖ (the paper keeps columns at unit norm).
    """
    if W_d.grad is None:
        return
    coef = (W_d.grad * W_d).sum(dim=0, keepdim=True) / W_d.pow(2).sum(dim=0, keepdim=True)
    W_d.grad.sub_(coef * W_d)


@torch.no_grad()
def geometric_median(x: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """The point minimising Σ_n ‖x_n − m‖ (Weiszfeld's algorithm), used to initialise b_d.

        m ← Σ_n w_n x_n / Σ_n w_n,   w_n = 1 / max(‖x_n − m‖, ε)

    starting from the mean, in float64, until the step is below tol × (1 + ‖m‖) or after `iters` steps.
    The ε floor avoids division by zero when m lands on a data point.
    """
    x64 = x.double()
    m = x64.mean(dim=0)
    eps = 1e-12
    for _ in range(iters):
        w = 1.0 / (x64 - m).norm(dim=1).clamp_min(eps)
        m_new = (w[:, None] * x64).sum(dim=0) / w.sum()
        done = (m_new - m).norm() <= tol * (1.0 + m.norm())
        m = m_new
        if done:
            break
    return m.to(x.dtype)
