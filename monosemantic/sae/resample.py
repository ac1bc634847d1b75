"""Dead-neuron resampling, as in Bricken et al. (2023), "Autoencoder Dead Neuron Resampling".

At each configured step (paper: 25k, 50k, 75k and 100k):

  1. Dead features: those that did not fire in any of the previous `dead_window` steps (paper: 12,500).
  2. Compute the loss of the current autoencoder on a random sample of `n_inputs` inputs (paper: 819,200).
  3. Give each input a probability of being picked proportional to the square of its loss.
  4. For each dead feature i, sample an input x according to these probabilities, and set
         decoder column   W_d[:, i] ← x / ‖x‖
         encoder row      W_e[i]    ← x / ‖x‖ · encoder_scale · mean_{alive j} ‖W_e[j]‖   (paper: 0.2)
         encoder bias     b_e[i]    ← 0
  5. Reset the Adam state (first and second moments) of every modified parameter entry.

Choices the paper leaves open, made here:
  * "Loss" in step 2 is the per-input squared reconstruction error ‖x − x̂‖² (Anthropic's resampling
    is described in terms of the reconstruction loss; the L1 term is not included). Its scale does not matter
    since the probabilities are normalised.
  * The inputs are sampled without replacement (torch.multinomial with a seeded generator), so no two dead
    features receive the same input. If there are fewer inputs with positive loss than dead features, only
    that many features are resampled (the record says how many).
  * The new directions are the raw inputs x, as the paper states, not x − b_d.
  * Only the moments are reset; Adam's step counter is one scalar per parameter tensor and is left as is.
"""

from __future__ import annotations

import torch

from monosemantic.sae.architectures.base import SAE


@torch.no_grad()
def dead_features(last_fired: torch.Tensor, step: int, dead_window: int) -> torch.Tensor:
    """Boolean mask of features that did not fire in steps (step − dead_window, step].

    `last_fired[i]` is the last (1-based) training step in which feature i fired on some input, 0 if never.
    """
    return last_fired <= step - dead_window


@torch.no_grad()
def resample_dead_features(
    sae: SAE,
    optimizer: torch.optim.Optimizer,
    dead: torch.Tensor,
    inputs: torch.Tensor,
    encoder_scale: float,
    generator: torch.Generator,
) -> dict:
    """Reinitialise the `dead` features of `sae` from `inputs` chosen with probability ∝ loss².

    `sae`: an architecture that resamples (`resamples`: standard), with parameters W_e (F, d), b_e (F,), W_d (d, F).

    Modifies sae.W_e rows, sae.W_d columns and sae.b_e entries of the resampled features, and zeroes exactly
    those entries of the optimizer's exp_avg / exp_avg_sq. Returns {"n_dead", "n_resampled", "features",
    "inputs"} (feature indices and the indices into `inputs` that replaced them).
    """
    dead_idx = dead.nonzero(as_tuple=True)[0]
    record = {"n_dead": int(dead_idx.numel()), "n_resampled": 0, "features": [], "inputs": []}
    if dead_idx.numel() == 0:
        return record

    loss = sae.reconstruction_loss(inputs)
    if not torch.isfinite(loss).all():
        raise ValueError(f"resampling: non-finite reconstruction loss on {int((~torch.isfinite(loss)).sum())} "
                         "of the sampled inputs")
    prob = loss.double().pow(2)
    prob[inputs.norm(dim=1) == 0] = 0.0  # a zero input has no direction to copy
    n_positive = int((prob > 0).sum())
    n = min(dead_idx.numel(), n_positive)
    if n == 0:
        return record
    dead_idx = dead_idx[:n]
    chosen = torch.multinomial(prob, n, replacement=False, generator=generator)

    x = inputs[chosen]
    directions = x / x.norm(dim=1, keepdim=True)
    alive = ~dead
    enc_norms = sae.W_e.norm(dim=1)
    mean_alive_norm = enc_norms[alive].mean() if alive.any() else enc_norms.mean()

    sae.W_d[:, dead_idx] = directions.T
    sae.W_e[dead_idx] = directions * (encoder_scale * mean_alive_norm)
    sae.b_e[dead_idx] = 0.0
    reset_adam_state(optimizer, sae.W_d, (slice(None), dead_idx))
    reset_adam_state(optimizer, sae.W_e, (dead_idx,))
    reset_adam_state(optimizer, sae.b_e, (dead_idx,))

    record.update(n_resampled=n, features=dead_idx.tolist(), inputs=chosen.tolist())
    return record


@torch.no_grad()
def reset_adam_state(optimizer: torch.optim.Optimizer, param: torch.Tensor, index: tuple) -> None:
    """Zero Adam's first and second moment estimates of param[index] (no-op before the first step)."""
    state = optimizer.state.get(param, {})
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        if key in state:
            state[key][index] = 0.0
