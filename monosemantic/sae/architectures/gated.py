"""The gated SAE of Rajamanoharan et al. (2024a), "Improving Dictionary Learning with Gated Sparse Autoencoders"
(Google DeepMind, arXiv:2404.16014): one path decides which features fire, another how strongly.

    x̄      = x − b_d
    π_gate = W_gate x̄ + b_gate                    W_gate: (F, d), b_gate: (F,)
    π_mag  = W_mag x̄ + b_mag,   W_mag = exp(r_mag) ⊙ W_gate   (row i of W_gate rescaled by exp(r_mag,i))
    f      = H(π_gate) ⊙ ReLU(π_mag)              H: the Heaviside step, H(0) = 0
    x̂      = W_d f + b_d                          W_d: (d, F), b_d: (d,)

    L = (1/B) Σ_b [ ‖x_b − x̂_b‖²  +  λ ‖ReLU(π_gate,b)‖₁  +  ‖x_b − x̂_frozen(ReLU(π_gate,b))‖² ]
    x̂_frozen(g) = sg(W_d) g + sg(b_d)             sg: stop-gradient (a detached copy of the decoder)

Squared errors are summed over the d dimensions and averaged over the batch (as in the paper's ‖·‖²₂ and
dictionary_learning's GatedSAETrainer). H passes no gradient, so the gate path (W_gate, b_gate) learns only from
the sparsity term and the auxiliary term L_aux (the third): L_aux makes ReLU(π_gate) reconstruct x through the
decoder, and the decoder is DETACHED there, as in the paper: L_aux reaches neither W_d nor the decoder's use of
b_d. (b_d still receives L_aux's gradient through the encoder's input x̄ = x − b_d, as in the paper and in
dictionary_learning.) SAELens's GatedTrainingSAE (sae_lens/saes/gated_sae.py, read at 6.18.0) reconstructs
through the live decoder in its auxiliary loss: a different objective, which tests/test_arch_gated.py tells
apart from ours.

Decoder norms, as in the paper: the columns of W_d are kept at unit norm (λ's plain L1 on ReLU(π_gate) is only
meaningful with bounded decoder norms): `before_step` removes from each column's gradient its component along
the column, `after_step` renormalises the columns (as the 2023 standard SAE). The variant the authors suggested
later (a comment on the paper's LessWrong post), λ Σ_i ReLU(π_gate)_i ‖W_d,i‖ without the constraint, is not
this one.

Initialisation (dictionary_learning's GatedAutoEncoder, not checked against the paper's text): the columns of W_d are
independent uniformly random unit vectors (normalised Gaussians from the run's generator), W_gate = W_dᵀ,
b_gate = b_mag = r_mag = 0 (so W_mag = W_gate), b_d = 0. Differences from the paper: no resampling of dead
features (the authors describe their original recipe as "L1 penalty and resampling"; `resamples` is False here,
sae/resample.py rewrites standard's W_e/b_e), no λ warm-up or learning-rate schedule, and no normalisation of
the activations (λ acts on the scale of the raw MLP activations); the optimiser (the paper's Adam β's) is the
training loop's.

Saved layout: SAELens's "gated" architecture (sae_lens/saes/gated_sae.py): W_enc (d, F) = W_gateᵀ, b_gate (F,),
r_mag (F,), b_mag (F,), W_dec (F, d) = W_dᵀ, b_dec (d,), no b_enc; SAELens's encode computes
(x − b_dec) @ W_enc + b_gate > 0 and ReLU((x − b_dec) @ (W_enc ⊙ exp(r_mag)) + b_mag), the equations above.
LossTerms: mse = mean over elements of (x̂ − x)²; extra = {"recon": the first term of L, "penalty": λ·L1 of
ReLU(π_gate), "aux": L_aux}, total = recon + penalty + aux.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from monosemantic.sae.architectures.base import SAE, LossTerms
from monosemantic.sae.model import remove_parallel_grad


@dataclass(frozen=True)
class GatedSettings:
    l1: float  # λ, the coefficient of ‖ReLU(π_gate)‖₁
    knob: ClassVar[str] = "l1"

    def check(self) -> list[str]:
        return [] if self.l1 >= 0 else [f"l1: must be >= 0, got {self.l1}"]


class GatedTerms(NamedTuple):
    """The forward pass and the three terms of the gated loss (with autograd history)."""

    f: torch.Tensor  # (B, F) H(π_gate) ⊙ ReLU(π_mag)
    x_hat: torch.Tensor  # (B, d) W_d f + b_d
    recon: torch.Tensor  # mean_b ‖x − x̂‖²
    penalty: torch.Tensor  # λ mean_b ‖ReLU(π_gate)‖₁
    aux: torch.Tensor  # mean_b ‖x − x̂_frozen(ReLU(π_gate))‖², decoder detached


class GatedSAE(SAE):
    """Gate and magnitude paths sharing W_gate; L = recon + λ‖ReLU(π_gate)‖₁ + L_aux (module docstring)."""

    architecture = "gated"
    saelens_architecture = "gated"
    Settings = GatedSettings

    def __init__(self, d: int, n_features: int, settings: GatedSettings, generator: torch.Generator | None = None):
        super().__init__(d, n_features, settings)
        # W_d has the paper's shape (d, F), stored feature-major (each feature's column contiguous)
        self.W_d = nn.Parameter(torch.randn(n_features, d, generator=generator).T)
        self.normalize_decoder()
        self.W_gate = nn.Parameter(self.W_d.detach().T.clone())  # W_gate = W_dᵀ at initialisation
        self.b_gate = nn.Parameter(torch.zeros(n_features))
        self.r_mag = nn.Parameter(torch.zeros(n_features))
        self.b_mag = nn.Parameter(torch.zeros(n_features))
        self.b_d = nn.Parameter(torch.zeros(d))

    # ---------------------------------------------------------------------------------------- model

    def pre_activations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(π_gate, π_mag) = (W_gate x̄ + b_gate, (exp(r_mag) ⊙ W_gate) x̄ + b_mag), x̄ = x − b_d."""
        x_bar = x - self.b_d
        W_enc = self.W_gate.T  # (d, F), SAELens's W_enc
        return x_bar @ W_enc + self.b_gate, x_bar @ (W_enc * self.r_mag.exp()) + self.b_mag

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """f = H(π_gate) ⊙ ReLU(π_mag), shape (B, F)."""
        pi_gate, pi_mag = self.pre_activations(x)
        return (pi_gate > 0).to(pi_mag.dtype) * torch.relu(pi_mag)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """x̂ = W_d f + b_d, shape (B, d)."""
        return f @ self.W_d.T + self.b_d

    def terms(self, x: torch.Tensor) -> GatedTerms:
        """The forward pass and the loss terms, the auxiliary one through a detached decoder."""
        pi_gate, pi_mag = self.pre_activations(x)
        f = (pi_gate > 0).to(pi_mag.dtype) * torch.relu(pi_mag)
        x_hat = self.decode(f)
        gate = torch.relu(pi_gate)
        x_hat_frozen = gate @ self.W_d.detach().T + self.b_d.detach()
        return GatedTerms(f, x_hat, recon=(x_hat - x).pow(2).sum(dim=-1).mean(),
                          penalty=self.settings.l1 * gate.sum(dim=-1).mean(),
                          aux=(x_hat_frozen - x).pow(2).sum(dim=-1).mean())

    def loss(self, x: torch.Tensor, step: int = 0, steps: int = 1) -> LossTerms:
        """L = mean_b ‖x − x̂‖² + λ mean_b ‖ReLU(π_gate)‖₁ + L_aux (no schedule: step and steps are unused)."""
        t = self.terms(x)
        active = t.f > 0
        return LossTerms(total=t.recon + t.penalty + t.aux, mse=(t.x_hat.detach() - x).pow(2).mean(),
                         l1=t.f.detach().sum(dim=-1).mean(), l0=active.sum(dim=-1, dtype=torch.float32).mean(),
                         fire_counts=active.sum(dim=0),
                         extra={"recon": t.recon.detach(), "penalty": t.penalty.detach(), "aux": t.aux.detach()})

    # ------------------------------------------------------------------------------ unit-norm decoder

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
        return {"W_enc": self.W_gate.T, "b_gate": self.b_gate, "r_mag": self.r_mag, "b_mag": self.b_mag,
                "W_dec": self.W_d.T, "b_dec": self.b_d}

    @torch.no_grad()
    def load_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.W_gate.copy_(tensors["W_enc"].T)
        self.W_d.copy_(tensors["W_dec"].T)
        for name in ("b_gate", "r_mag", "b_mag"):
            getattr(self, name).copy_(tensors[name])
        self.b_d.copy_(tensors["b_dec"])

    def saelens_cfg(self) -> dict:
        """λ as `l1_coefficient` (read back by `from_saved`), and a note on the convention."""
        return {"l1_coefficient": self.settings.l1,
                "note": "Rajamanoharan et al. (2024a) gated SAE: f = [(x - b_dec) @ W_enc + b_gate > 0] * "
                        "ReLU((x - b_dec) @ (W_enc * exp(r_mag)) + b_mag), x_hat = f @ W_dec + b_dec; "
                        "rows of W_dec have unit norm"}

    @classmethod
    def from_saved(cls, cfg: dict, tensors: dict[str, torch.Tensor]) -> "GatedSAE":
        """λ from `l1_coefficient` (0 for a gated SAE saved without it, e.g. by SAELens's inference SAE)."""
        sae = cls(cfg["d_in"], cfg["d_sae"], cls.Settings(l1=float(cfg.get("l1_coefficient", 0.0))))
        sae.load_saelens_tensors(tensors)
        return sae
