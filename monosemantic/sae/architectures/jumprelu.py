"""The jumprelu architecture: the JumpReLU sparse autoencoder of Rajamanoharan et al. (2024), "Jumping Ahead:
Improving Reconstruction Fidelity with JumpReLU Sparse Autoencoders" (Google DeepMind), sections 3 and 4.

On activations normalised by one scalar s (fixed from the first inputs, `init_from_data`) so that E‖s·x‖ = √d:

    x_n = s·x
    z   = W_e (x_n − b_d) + b_e                    W_e: (F, d), b_e: (F,)      the pre-activations
    f   = JumpReLU_θ(z) = z ⊙ H(z − θ)             θ = exp(log_θ) > 0, one threshold per feature (learned)
    x̂_n = W_d f + b_d                              W_d: (d, F), b_d: (d,)
    L   = (1/B) Σ_b ‖x_n,b − x̂_n,b‖²  +  λ (1/B) Σ_b Σ_i H(z_b,i − θ_i)

i.e. the paper's loss: the squared error summed over the d dimensions of the normalised activations, averaged
over the batch (not the mean over elements of the 2023 recipe), plus λ (`l0_coeff`) times L0. H is the
Heaviside step (H(0) = 0: f_i > 0 exactly when z_i > θ_i). encode/decode take and return raw activations.

Gradients (the paper's straight-through estimators, its eqs. 11 and 12), with the rectangle kernel
K(u) = 1 for |u| < 1/2, else 0, and bandwidth ε (`bandwidth`):

    ð/ðθ JumpReLU_θ(z) = −(θ/ε) K((z − θ)/ε)         ∂/∂z JumpReLU_θ(z) = H(z − θ)   (the true derivative)
    ð/ðθ H(z − θ)      = −(1/ε) K((z − θ)/ε)         ∂/∂z H(z − θ) = 0             (L0 reaches only θ)

(`JumpReLUFunction`, `StepFunction`); the optimiser steps log_θ, whose gradient is θ · ∂L/∂θ (the paper's
pseudo-code also trains log θ). The estimator is exactly zero unless some pre-activation lies within ε/2 of θ:
with ε far below the spread of z the thresholds practically never move, which is why ε and θ₀ must be on the
scale of the NORMALISED activations. The paper (and Gemma Scope after it) normalise to E‖x‖² = 1 and use
ε = θ₀ = 0.001 (its appendix I); this project normalises to E‖x‖ = √d, about √d times larger, where the same
choice is ε = θ₀ ≈ 0.001·√d ≈ 0.023 for d = 512. Both are run settings (`bandwidth`, `threshold_init`).

Decoder: unit-norm columns, as in the paper's training (and dictionary_learning's JumpReluTrainer): the gradient
component parallel to each column is removed before the Adam step (`before_step`), the columns renormalised after
it (`after_step`). Initialisation: W_d Kaiming-uniform like nn.Linear(F, d), columns scaled to unit norm,
W_e = W_dᵀ (tied at initialisation only), b_e = 0, θ = threshold_init; `init_from_data` sets s and b_d = the
geometric median of the first normalised inputs. Where this differs from the paper: the pre-encoder bias
(the paper's encoder reads x, not x − b_d; the two parametrise the same functions) and b_d's data-dependent
initialisation; no λ warm-up nor learning-rate schedule (`lr_scale` = 1), no gradient clipping.

Saved layout (base.SAE.save): SAELens architecture "jumprelu", tensors W_enc, W_dec, b_enc, b_dec and `threshold`
= θ (SAELens's inference JumpReLU: ReLU(z) ⊙ [z > threshold], the same as here since θ > 0), with s folded in so
that SAELens encodes raw activations: W_enc = s·W_eᵀ, W_dec = W_dᵀ/s, b_dec = b_d/s (b_enc, threshold unchanged);
`from_saved` loads with s = 1. l0_coeff, bandwidth and threshold_init are recorded in cfg.json for `from_saved`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from monosemantic.sae.architectures.base import SAE, LossTerms
from monosemantic.sae.model import geometric_median, remove_parallel_grad

NOTE = ("Rajamanoharan et al. (2024) JumpReLU SAE in SAELens convention: z = (x - b_dec) @ W_enc + b_enc, "
        "f = z * (z > threshold), x_hat = f @ W_dec + b_dec (the activation normalisation is folded in)")


@dataclass(frozen=True)
class JumpReLUSettings:
    """A run's own keys (sae_runs): λ, the STE bandwidth ε and the initial threshold θ₀ (normalised units)."""

    l0_coeff: float  # λ, the L0 coefficient (the sparsity knob)
    bandwidth: float  # ε of the rectangle kernel (paper: 0.001 at E‖x‖² = 1)
    threshold_init: float  # θ₀ (paper: 0.001 at E‖x‖² = 1)
    knob: ClassVar[str] = "l0_coeff"

    def check(self) -> list[str]:
        errs = [] if self.l0_coeff >= 0 and math.isfinite(self.l0_coeff) else [
            f"l0_coeff: must be a finite number >= 0, got {self.l0_coeff}"]
        return errs + [f"{name}: must be a finite number > 0, got {getattr(self, name)}"
                       for name in ("bandwidth", "threshold_init")
                       if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name)))]


def rectangle(u: torch.Tensor) -> torch.Tensor:
    """The kernel K(u) = 1 for |u| < 1/2, else 0."""
    return (u.abs() < 0.5).to(u.dtype)


def _sum_to(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """grad summed over the leading (batch) dimensions down to the shape of `like` (the broadcast θ)."""
    return grad.reshape(-1, *like.shape).sum(dim=0) if grad.shape != like.shape else grad


class JumpReLUFunction(torch.autograd.Function):
    """z ⊙ H(z − θ); backward: ∂/∂z = H(z − θ), ð/ðθ = −(θ/ε) K((z − θ)/ε) (the paper's eq. 11)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_theta = -(theta / eps) * rectangle((z - theta) / eps) * grad
        return (z > theta).to(grad.dtype) * grad, _sum_to(grad_theta, theta), None


class StepFunction(torch.autograd.Function):
    """H(z − θ); backward: ∂/∂z = 0, ð/ðθ = −(1/ε) K((z − θ)/ε) (the paper's eq. 12)."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        z, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_theta = -(1.0 / eps) * rectangle((z - theta) / eps) * grad
        return torch.zeros_like(z), _sum_to(grad_theta, theta), None


class JumpReLUSAE(SAE):
    """x_n = s·x; z = W_e (x_n − b_d) + b_e; f = z ⊙ H(z − θ); x̂_n = W_d f + b_d; L = ‖x_n − x̂_n‖² + λ L0."""

    architecture = "jumprelu"
    saelens_architecture = "jumprelu"
    Settings = JumpReLUSettings

    def __init__(self, d: int, n_features: int, settings: JumpReLUSettings,
                 generator: torch.Generator | None = None):
        super().__init__(d, n_features, settings)
        self.l0_coeff, self.bandwidth = float(settings.l0_coeff), float(settings.bandwidth)
        self.W_e = nn.Parameter(torch.empty(n_features, d))
        self.b_e = nn.Parameter(torch.zeros(n_features))
        self.W_d = nn.Parameter(torch.empty(n_features, d).T)  # (d, F), stored feature-major like standard's
        self.b_d = nn.Parameter(torch.zeros(d))
        self.log_threshold = nn.Parameter(torch.full((n_features,), math.log(settings.threshold_init)))
        self.register_buffer("scale", torch.ones(()))  # s: x_n = s·x (set by init_from_data; 1 when loaded)
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.W_d, a=math.sqrt(5), generator=generator)  # nn.Linear(F -> d)
            self.normalize_decoder()
            self.W_e.copy_(self.W_d.T)

    @property
    def threshold(self) -> torch.Tensor:
        """θ = exp(log_θ), shape (F,), in units of the normalised pre-activations."""
        return self.log_threshold.exp()

    # ---------------------------------------------------------------------------------------- model

    def preactivations(self, x: torch.Tensor) -> torch.Tensor:
        """z = W_e (s·x − b_d) + b_e for raw activations x, shape (B, F)."""
        return (self.scale * x - self.b_d) @ self.W_e.T + self.b_e

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """f = z ⊙ H(z − θ), shape (B, F)."""
        z = self.preactivations(x)
        return z * (z > self.threshold).to(z.dtype)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """x̂ = (W_d f + b_d) / s, raw activations, shape (B, d)."""
        return (f @ self.W_d.T + self.b_d) / self.scale

    def loss(self, x: torch.Tensor, step: int = 0, steps: int = 1) -> LossTerms:
        """(1/B) Σ_b ‖x_n − x̂_n‖² + λ (1/B) Σ_b L0 (module docstring); extra["penalty"] = λ·L0."""
        z = self.preactivations(x)
        theta = self.threshold
        f = JumpReLUFunction.apply(z, theta, self.bandwidth)
        err = f @ self.W_d.T + self.b_d - self.scale * x  # x̂_n − x_n
        l0 = StepFunction.apply(z, theta, self.bandwidth).sum(dim=-1).mean()
        penalty = self.l0_coeff * l0
        active = f > 0
        return LossTerms(total=err.pow(2).sum(dim=-1).mean() + penalty,
                         mse=(err.detach() / self.scale).pow(2).mean(), l1=f.sum(dim=-1).mean().detach(),
                         l0=active.sum(dim=-1, dtype=torch.float32).mean(), fire_counts=active.sum(dim=0),
                         extra={"penalty": penalty.detach()})

    # ------------------------------------------------------------------------------ training hooks

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """s = √d / mean_b ‖x_b‖ (E‖s·x‖ = √d); b_d ← the geometric median of s·x."""
        self.scale.fill_(math.sqrt(self.d) / x.double().norm(dim=-1).mean().item())
        self.b_d.copy_(geometric_median(self.scale * x))

    def before_step(self, step: int, steps: int) -> None:
        """Remove from each decoder column's gradient its component along the column."""
        remove_parallel_grad(self.W_d)

    def after_step(self, step: int, steps: int) -> None:
        self.normalize_decoder()

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """W_d[:, i] ← W_d[:, i] / ‖W_d[:, i]‖."""
        self.W_d.div_(self.W_d.norm(dim=0, keepdim=True))

    # ------------------------------------------------------------------------------- persistence

    def saelens_tensors(self) -> dict[str, torch.Tensor]:
        """s folded in: W_enc = s·W_eᵀ, W_dec = W_dᵀ/s, b_dec = b_d/s; b_enc, threshold = θ unchanged."""
        s = self.scale
        return {"W_enc": s * self.W_e.T, "W_dec": self.W_d.T / s, "b_enc": self.b_e, "b_dec": self.b_d / s,
                "threshold": self.threshold}

    @torch.no_grad()
    def load_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """The saved (folded) tensors, with s = 1."""
        self.scale.fill_(1.0)
        self.W_e.copy_(tensors["W_enc"].T)
        self.W_d.copy_(tensors["W_dec"].T)
        self.b_e.copy_(tensors["b_enc"])
        self.b_d.copy_(tensors["b_dec"])
        self.log_threshold.copy_(tensors["threshold"].log())

    def saelens_cfg(self) -> dict:
        return {"l0_coefficient": self.l0_coeff, "jumprelu_bandwidth": self.bandwidth,
                "jumprelu_init_threshold": self.settings.threshold_init, "note": NOTE}

    @classmethod
    def from_saved(cls, cfg: dict, tensors: dict[str, torch.Tensor]) -> "JumpReLUSAE":
        """The saved SAE (s = 1); a jumprelu file SAELens wrote may lack our keys: the paper's 0.001 then."""
        settings = JumpReLUSettings(l0_coeff=float(cfg.get("l0_coefficient", 0.0)),
                                    bandwidth=float(cfg.get("jumprelu_bandwidth", 0.001)),
                                    threshold_init=float(cfg.get("jumprelu_init_threshold", 0.001)))
        sae = cls(cfg["d_in"], cfg["d_sae"], settings)
        sae.load_saelens_tensors(tensors)
        return sae
