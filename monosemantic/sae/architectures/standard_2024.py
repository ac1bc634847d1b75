"""The standard SAE as Anthropic trained it after "Towards Monosemanticity": "Circuits Updates – April 2024",
section "Training SAEs" (transformer-circuits.pub/2024/april-update/index.html#training-saes).

On activations normalised by one scalar s (fixed from the first inputs, `init_from_data`) so that E‖s·x‖ = √d:

    x_n = s·x
    f   = ReLU(W_e x_n + b_e)                      W_e: (F, d), b_e: (F,)     (no pre-encoder bias: see below)
    x̂_n = W_d f + b_d                              W_d: (d, F), b_d: (d,)
    L   = (1/B) Σ_b ‖x_n,b − x̂_n,b‖²  +  λ_t (1/B) Σ_b Σ_i f_b,i ‖W_d,i‖₂

i.e. the squared error summed over the d dimensions of the normalised activations and averaged over the batch
(not the mean over elements of the 2023 recipe), plus the L1 norm of f weighted by each feature's decoder norm.
The decoder columns are NOT constrained to unit norm (the weighting takes the place of the constraint: shrinking
f_i by growing ‖W_d,i‖ no longer lowers the penalty) and dead features are not resampled.

Initialisation: the columns of W_d point in independent uniformly random directions (normalised Gaussians from the
run's generator) with the fixed norm `init_decoder_norm` (dictionary_learning's AutoEncoderNew and SAELens's
"heuristic" initialisation use 0.1); W_e = W_dᵀ at initialisation only (untied afterwards); b_e = 0, b_d = 0.

Schedules (`steps`: the run's total, `step`: the 0-based index of the step being taken):

    λ_t      = λ · min(1, step / (l1_warmup_frac · steps))              λ warmed up linearly from 0
    lr_scale = min(1, (steps − step) / (lr_decay_frac · steps))        linear decay to 0 over the last fraction

(a fraction of 0 switches either off), the forms of dictionary_learning's get_sparsity_warmup_fn and
get_lr_schedule. The update's values: λ warmed up over the first 5% of training, the learning rate decayed over
the last 20%; SAELens's training tutorial (docs/training_saes.md, activations normalised as here) uses λ = 5 and
Adam at lr 5·10⁻⁵. `before_step` clips the L2 norm of the gradient of all the SAE's parameters to `grad_clip`
(torch.nn.utils.clip_grad_norm_; dictionary_learning clips at 1).

Raw activations in, raw activations out: encode(x) takes raw x and decode(f) returns raw x̂ = x̂_n / s. Both are
computed with the normalisation folded into the weights,

    W_enc = s·W_eᵀ (d, F),  b_enc = b_e,  W_dec = W_dᵀ / s (F, d),  b_dec = b_d / s
    f = ReLU(x W_enc + b_enc),   x̂ = f W_dec + b_dec

which are exactly the tensors `save` writes: SAELens's "standard" SAE (normalize_activations "none") and our
`from_saved` (s = 1) compute f and x̂ from raw activations with the same operations on the same numbers.

As in the update and unlike the 2023 recipe, the encoder has no pre-encoder bias (f = ReLU(W_e x + b_e)): the
saved cfg.json says apply_b_dec_to_input false, so that SAELens does not subtract b_dec either. Where this
differs from the update: s is fixed once from the first inputs the training loop passes to `init_from_data`
(E‖x‖ estimated on them) instead of on the whole dataset; the initial decoder norm is a setting
(`init_decoder_norm`) rather than one fixed value.

The loss is reported in LossTerms as: mse = mean over elements of (x̂ − x)² in RAW units (comparable across
architectures), extra["recon"] = the first term of L (normalised units), extra["penalty"] = the second, so that
total = recon + penalty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from monosemantic.sae.architectures.base import ARCH_KEY, SAE, LossTerms


@dataclass(frozen=True)
class Standard2024Settings:
    l1: float  # λ, the coefficient of Σ_i f_i ‖W_d,i‖ after the warm-up
    l1_warmup_frac: float  # λ rises linearly from 0 over this fraction of the steps (update: 0.05)
    lr_decay_frac: float  # the learning rate falls linearly to 0 over this last fraction (update: 0.2)
    grad_clip: float  # max L2 norm of the gradient of all parameters (dictionary_learning: 1)
    init_decoder_norm: float  # norm of each decoder column at initialisation (dictionary_learning, SAELens: 0.1)
    knob: ClassVar[str] = "l1"

    def check(self) -> list[str]:
        errs = [] if self.l1 >= 0 else [f"l1: must be >= 0, got {self.l1}"]
        for name in ("l1_warmup_frac", "lr_decay_frac"):
            if not 0 <= getattr(self, name) <= 1:
                errs.append(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.l1_warmup_frac + self.lr_decay_frac > 1:
            errs.append(f"l1_warmup_frac + lr_decay_frac: must be <= 1 (the warm-up ends before the decay "
                        f"starts), got {self.l1_warmup_frac} + {self.lr_decay_frac}")
        errs += [f"{name}: must be positive, got {getattr(self, name)}"
                 for name in ("grad_clip", "init_decoder_norm") if not getattr(self, name) > 0]
        return errs


class Folded(NamedTuple):
    """The weights with the activation scale folded in (SAELens's names and shapes)."""

    W_enc: torch.Tensor  # (d, F) = s·W_eᵀ
    b_enc: torch.Tensor  # (F,)  = b_e
    W_dec: torch.Tensor  # (F, d) = W_dᵀ / s
    b_dec: torch.Tensor  # (d,)  = b_d / s


class Standard2024SAE(SAE):
    """f = ReLU(W_e (s·x) + b_e); x̂ = (W_d f + b_d) / s; penalty λ_t Σ_i f_i ‖W_d,i‖ (module docstring)."""

    architecture = "standard_2024"
    saelens_architecture = "standard"
    Settings = Standard2024Settings

    def __init__(self, d: int, n_features: int, settings: Standard2024Settings,
                 generator: torch.Generator | None = None):
        super().__init__(d, n_features, settings)
        # W_d has the paper's shape (d, F), stored feature-major (each feature's column contiguous)
        self.W_d = nn.Parameter(torch.randn(n_features, d, generator=generator).T)
        with torch.no_grad():
            self.W_d.mul_(settings.init_decoder_norm / self.W_d.norm(dim=0, keepdim=True))
        self.W_e = nn.Parameter(self.W_d.detach().T.clone())  # W_e = W_dᵀ at initialisation only
        self.b_e = nn.Parameter(torch.zeros(n_features))
        self.b_d = nn.Parameter(torch.zeros(d))
        self.register_buffer("scale", torch.ones(()))  # s: x_n = s·x (set by init_from_data; 1 when loaded)

    # ---------------------------------------------------------------------------------------- model

    def folded(self) -> Folded:
        """(W_enc, b_enc, W_dec, b_dec) = (s·W_eᵀ, b_e, W_dᵀ/s, b_d/s): what encode/decode use and save writes."""
        s = self.scale
        return Folded((self.W_e * s).T, self.b_e, (self.W_d / s).T, self.b_d / s)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """f = ReLU(W_e (s·x) + b_e) = ReLU(x W_enc + b_enc), shape (B, F)."""
        w = self.folded()
        return torch.relu(x @ w.W_enc + w.b_enc)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """x̂ = (W_d f + b_d) / s = f W_dec + b_dec, raw units, shape (B, d)."""
        w = self.folded()
        return f @ w.W_dec + w.b_dec

    def l1_coefficient(self, step: int, steps: int) -> float:
        """λ_t = λ · min(1, step / (l1_warmup_frac · steps)): linear warm-up from 0."""
        warmup = self.settings.l1_warmup_frac * steps
        return self.settings.l1 * (min(1.0, step / warmup) if warmup > 0 else 1.0)

    def lr_scale(self, step: int, steps: int) -> float:
        """min(1, (steps − step) / (lr_decay_frac · steps)): 1 until the decay starts, then linearly to 0."""
        decay = self.settings.lr_decay_frac * steps
        return min(1.0, (steps - step) / decay) if decay > 0 else 1.0

    def loss(self, x: torch.Tensor, step: int = 0, steps: int = 1) -> LossTerms:
        """L = mean_b ‖s·x − (W_d f + b_d)‖² + λ_t mean_b Σ_i f_i ‖W_d,i‖ (module docstring)."""
        f = self.encode(x)
        x_hat_n = f @ self.W_d.T + self.b_d  # the reconstruction of the normalised activations s·x
        err = x_hat_n - self.scale * x
        recon = err.pow(2).sum(dim=-1).mean()
        penalty = self.l1_coefficient(step, steps) * (f * self.W_d.norm(dim=0)).sum(dim=-1).mean()
        active = f > 0
        return LossTerms(total=recon + penalty, mse=err.detach().pow(2).mean() / self.scale.pow(2),
                         l1=f.detach().sum(dim=-1).mean(), l0=active.sum(dim=-1, dtype=torch.float32).mean(),
                         fire_counts=active.sum(dim=0),
                         extra={"recon": recon.detach(), "penalty": penalty.detach()})

    # ------------------------------------------------------------------------------ training hooks

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """s = √d / mean_b ‖x_b‖, so that the normalised inputs have E‖s·x‖ = √d."""
        self.scale.fill_(math.sqrt(self.d) / x.double().norm(dim=-1).mean().item())

    def before_step(self, step: int, steps: int) -> None:
        """Clip the L2 norm of the gradient of all parameters to grad_clip (kept in `last_grad_norm`)."""
        self.last_grad_norm = float(torch.nn.utils.clip_grad_norm_(self.parameters(), self.settings.grad_clip))

    # ------------------------------------------------------------------------------- persistence

    def saelens_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.folded()._asdict())

    @torch.no_grad()
    def load_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load folded tensors; the scale becomes 1 (they already act on raw activations)."""
        self.W_e.copy_(tensors["W_enc"].T)
        self.b_e.copy_(tensors["b_enc"])
        self.W_d.copy_(tensors["W_dec"].T)
        self.b_d.copy_(tensors["b_dec"])
        self.scale.fill_(1.0)

    def saelens_cfg(self) -> dict:
        """No pre-encoder bias; λ as `l1_coefficient` and the other settings under their names (for from_saved)."""
        st = self.settings
        return {ARCH_KEY: self.architecture, "apply_b_dec_to_input": False, "l1_coefficient": st.l1,
                "l1_warmup_frac": st.l1_warmup_frac, "lr_decay_frac": st.lr_decay_frac, "grad_clip": st.grad_clip,
                "init_decoder_norm": st.init_decoder_norm,
                "note": "Anthropic April 2024 update SAE, activation scale folded in: f = ReLU(x @ W_enc + b_enc), "
                        "x_hat = f @ W_dec + b_dec (no pre-encoder bias); rows of W_dec are not unit norm"}

    @classmethod
    def from_saved(cls, cfg: dict, tensors: dict[str, torch.Tensor]) -> "Standard2024SAE":
        settings = cls.Settings(l1=cfg["l1_coefficient"], l1_warmup_frac=cfg["l1_warmup_frac"],
                                lr_decay_frac=cfg["lr_decay_frac"], grad_clip=cfg["grad_clip"],
                                init_decoder_norm=cfg["init_decoder_norm"])
        sae = cls(cfg["d_in"], cfg["d_sae"], settings)
        sae.load_saelens_tensors(tensors)
        return sae
