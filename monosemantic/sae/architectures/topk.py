"""The topk architecture: the TopK sparse autoencoder of Gao et al. (2024), "Scaling and evaluating sparse
autoencoders" (OpenAI), sections 2.3 and 2.4 and appendix A.2, as their reference code trains it
(github.com/openai/sparse_autoencoder, sparse_autoencoder/train.py).

For an MLP activation vector x in R^d and a dictionary of F features:

    x̄ = x − b_d                                   (pre-encoder bias: subtract the decoder bias)
    z = W_e x̄ + b_e                               W_e: (F, d), b_e: (F,)      the pre-activations
    f = ReLU(TopK_k(z))                            keep the k largest z_i of each input, zero the rest, then ReLU
    x̂ = W_d f + b_d                               W_d: (d, F), b_d: (d,)

(ReLU after the TopK, as the paper's code and SAELens's TopK both do: a selected z_i ≤ 0 gives f_i = 0, so
L0 ≤ k.) The loss is the paper's normalised MSE plus AuxK:

    L     = s_mse · (1/(B d)) Σ_b ‖x_b − x̂_b‖²  +  α · L_aux
    s_mse = 1 / ((1/(N d)) Σ_n ‖x_n − μ‖²)           fixed from the first N inputs (`init_from_data`), μ their mean
    e     = x − x̂                                   the residual, detached (no gradient reaches the live latents)
    ê     = W_d z_aux                                NO b_d: b_d is already in x̂, hence not in e
    z_aux = ReLU(TopK_{k_aux'}(z restricted to the dead latents)),  k_aux' = min(k_aux, #dead)
    L_aux = ((1/(B d)) Σ_b ‖e_b − ê_b‖²) / ((1/(B d)) Σ_b ‖e_b − ē‖²)     ē the batch mean of e; 0 if NaN

i.e. both terms are MSEs divided by the variance of what they reconstruct: the main term by the variance of
the data (the code's `mse_scale`, a constant), the AuxK term by the variance of the batch's residual (the code's
`normalized_mse`; its decoder output adds b_d and its target adds b_d back, which cancels: ê has no b_d). With no
dead latent (or α = 0) L_aux = 0 (the code's then has no gradient either). The paper's constants: α = 1/32
(`aux_coeff`), k_aux a power of 2 close to d/2 (`k_aux`; 256 for d = 512), a latent is dead when it has not
fired in the last 10M tokens (`dead_steps`: here counted in training steps, 10M / batch size; at batch 1024 that
is ≈ 9800 steps, more than a short run has, so pick it from the run's length).

Dead-latent tracking (the code's `stats_last_nonzero`) is the buffer `steps_since_fired` (F,) int64: the number of
completed training steps since the latent last fired (f_i > 0 for some input of the batch). In `loss` a latent
is dead when it did not fire in the current batch nor in the dead_steps − 1 steps before it
(steps_since_fired + 1 ≥ dead_steps); `after_step` commits the batch's firing. Only a loss computed with
gradients enabled (a training step) is recorded, so evaluating under torch.no_grad() changes nothing.

Initialisation (paper A.1, code FastAutoencoder): W_d Kaiming-uniform like nn.Linear(F, d) with its columns scaled
to unit norm, W_e = W_dᵀ (tied at initialisation only), b_e = 0; `init_from_data` sets b_d to the geometric
median of the first inputs (as the code's init_from_data_) and s_mse. Not followed: the code's rescaling of W_e
after b_d ("we couldn't find clear evidence that this is beneficial", its comment) and its weight EMA.
Training (code training_loop_): the decoder columns are kept at unit norm, the gradient component parallel to
each column is removed before the Adam step (`before_step`) and the columns renormalised after it
(`after_step`); constant learning rate (`lr_scale` = 1). No activation normalisation (the loss is normalised
instead; TopK is scale-equivariant).

Saved layout (base.SAE.save): SAELens architecture "topk" with cfg key `k` (also as activation_fn_kwargs["k"],
which SAELens's pre-6.0 cfg handling reads) and rescale_acts_by_decoder_norm false (SAELens's inference TopK:
topk of the pre-activations, ReLU, scatter, as here), tensors W_enc = W_eᵀ, W_dec = W_dᵀ, b_enc, b_dec; k_aux,
aux_coeff, dead_steps are also recorded for `from_saved`. The buffers (s_mse, steps_since_fired) are training
state: in state_dict (checkpoints), not in the SAELens file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from monosemantic.sae.architectures.base import SAE, LossTerms
from monosemantic.sae.model import geometric_median, remove_parallel_grad

NOTE = ("Gao et al. (2024) TopK SAE in SAELens convention: f = ReLU(TopK_k((x - b_dec) @ W_enc + b_enc)), "
        "x_hat = f @ W_dec + b_dec; rows of W_dec have unit norm")


@dataclass(frozen=True)
class TopKSettings:
    """A run's own keys (sae_runs): k, the AuxK loss's k_aux and coefficient α, the dead window in steps."""

    k: int  # active latents per input (the sparsity knob)
    k_aux: int  # dead latents the AuxK loss uses per input (paper: a power of 2 close to d/2)
    aux_coeff: float  # α (paper: 1/32)
    dead_steps: int  # a latent is dead after this many training steps without firing (paper: 10M tokens)
    knob: ClassVar[str] = "k"

    def check(self) -> list[str]:
        errs = [f"{name}: must be >= 1, got {getattr(self, name)}" for name in ("k", "k_aux", "dead_steps")
                if getattr(self, name) < 1]
        if not (self.aux_coeff >= 0 and math.isfinite(self.aux_coeff)):
            errs.append(f"aux_coeff: must be a finite number >= 0, got {self.aux_coeff}")
        return errs


def topk_relu(z: torch.Tensor, k: int) -> torch.Tensor:
    """ReLU(TopK_k(z)) along the last dimension: the k largest entries of each row, ReLU'd; zeros elsewhere."""
    values, indices = z.topk(k, dim=-1)
    return torch.zeros_like(z).scatter(-1, indices, values.relu())


class TopKSAE(SAE):
    """z = W_e (x − b_d) + b_e; f = ReLU(TopK_k(z)); x̂ = W_d f + b_d; AuxK on the dead latents."""

    architecture = "topk"
    saelens_architecture = "topk"
    Settings = TopKSettings

    def __init__(self, d: int, n_features: int, settings: TopKSettings, generator: torch.Generator | None = None):
        super().__init__(d, n_features, settings)
        for name in ("k", "k_aux"):
            if not 1 <= getattr(settings, name) <= n_features:
                raise ValueError(f"{name} = {getattr(settings, name)} must be in [1, n_features = {n_features}]")
        self.k, self.k_aux = int(settings.k), int(settings.k_aux)
        self.aux_coeff, self.dead_steps = float(settings.aux_coeff), int(settings.dead_steps)
        self.W_e = nn.Parameter(torch.empty(n_features, d))
        self.b_e = nn.Parameter(torch.zeros(n_features))
        self.W_d = nn.Parameter(torch.empty(n_features, d).T)  # (d, F), stored feature-major like standard's
        self.b_d = nn.Parameter(torch.zeros(d))
        self.register_buffer("mse_scale", torch.ones(()))  # s_mse (1 until init_from_data)
        self.register_buffer("steps_since_fired", torch.zeros(n_features, dtype=torch.int64))
        self._fired: torch.Tensor | None = None  # (F,) bool: fired in this step's loss(es), committed by after_step
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.W_d, a=math.sqrt(5), generator=generator)  # nn.Linear(F -> d)
            self.normalize_decoder()
            self.W_e.copy_(self.W_d.T)

    # ---------------------------------------------------------------------------------------- model

    def preactivations(self, x: torch.Tensor) -> torch.Tensor:
        """z = W_e (x − b_d) + b_e, shape (B, F)."""
        return (x - self.b_d) @ self.W_e.T + self.b_e

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """f = ReLU(TopK_k(z)), shape (B, F)."""
        return topk_relu(self.preactivations(x), self.k)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """x̂ = W_d f + b_d, shape (B, d)."""
        return f @ self.W_d.T + self.b_d

    def loss(self, x: torch.Tensor, step: int = 0, steps: int = 1) -> LossTerms:
        """s_mse·MSE + α·L_aux (module docstring); extra["aux"] = α·L_aux."""
        z = self.preactivations(x)
        f = topk_relu(z, self.k)
        x_hat = self.decode(f)
        mse = (x_hat - x).pow(2).mean()
        fire_counts = (f > 0).sum(dim=0)
        fired = fire_counts > 0
        if torch.is_grad_enabled():
            self._fired = fired if self._fired is None else self._fired | fired
        aux = self.auxk_loss(z, (x - x_hat).detach(), self.dead_mask(fired))
        return LossTerms(total=self.mse_scale * mse + self.aux_coeff * aux, mse=mse.detach(),
                         l1=f.sum(dim=-1).mean().detach(), l0=(f > 0).sum(dim=-1, dtype=torch.float32).mean(),
                         fire_counts=fire_counts, extra={"aux": (self.aux_coeff * aux).detach()})

    def dead_mask(self, fired: torch.Tensor) -> torch.Tensor:
        """(F,) bool: not fired in this batch (`fired`) nor in the dead_steps − 1 steps before it."""
        return ~fired & (self.steps_since_fired + 1 >= self.dead_steps)

    def auxk_loss(self, z: torch.Tensor, e: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
        """L_aux: the normalised MSE of ê = W_d z_aux (no b_d) against the residual e (module docstring)."""
        n_dead = int(dead.sum())
        if n_dead == 0 or self.aux_coeff == 0:
            return z.new_zeros(())
        z_aux = topk_relu(z.masked_fill(~dead, -math.inf), min(self.k_aux, n_dead))
        e_hat = z_aux @ self.W_d.T
        return ((e_hat - e).pow(2).mean() / (e - e.mean(dim=0)).pow(2).mean()).nan_to_num(0.0)

    # ------------------------------------------------------------------------------ training hooks

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """b_d ← the geometric median of the first inputs x; s_mse ← 1 / their variance (mean over elements)."""
        self.b_d.copy_(geometric_median(x))
        self.mse_scale.fill_(1.0 / (x.double() - x.double().mean(dim=0)).pow(2).mean().item())

    def before_step(self, step: int, steps: int) -> None:
        """Remove from each decoder column's gradient its component along the column."""
        remove_parallel_grad(self.W_d)

    @torch.no_grad()
    def after_step(self, step: int, steps: int) -> None:
        """Renormalise the decoder columns; commit the step's firing to steps_since_fired."""
        self.normalize_decoder()
        if self._fired is not None:
            self.steps_since_fired.add_(1).masked_fill_(self._fired, 0)
            self._fired = None

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """W_d[:, i] ← W_d[:, i] / ‖W_d[:, i]‖."""
        self.W_d.div_(self.W_d.norm(dim=0, keepdim=True))

    # ------------------------------------------------------------------------------- persistence

    def saelens_tensors(self) -> dict[str, torch.Tensor]:
        return {"W_enc": self.W_e.T, "W_dec": self.W_d.T, "b_enc": self.b_e, "b_dec": self.b_d}

    @torch.no_grad()
    def load_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.W_e.copy_(tensors["W_enc"].T)
        self.W_d.copy_(tensors["W_dec"].T)
        self.b_e.copy_(tensors["b_enc"])
        self.b_d.copy_(tensors["b_dec"])

    def saelens_cfg(self) -> dict:
        """SAELens's `k` (and rescale_acts_by_decoder_norm off); our AuxK settings for `from_saved`.

        k is also written as activation_fn_kwargs["k"] (activation_fn "topk"): a cfg.json without
        sae_lens_version goes through SAELens's handle_pre_6_0_config, which for architecture "topk" reads k from
        activation_fn_kwargs (a KeyError with base.save's empty {})."""
        return {"activation_fn": "topk", "activation_fn_str": "topk", "activation_fn_kwargs": {"k": self.k},
                "k": self.k, "rescale_acts_by_decoder_norm": False, "k_aux": self.k_aux,
                "aux_coeff": self.aux_coeff, "dead_steps": self.dead_steps, "note": NOTE}

    @classmethod
    def from_saved(cls, cfg: dict, tensors: dict[str, torch.Tensor]) -> "TopKSAE":
        """The saved SAE; a topk file SAELens wrote lacks the AuxK keys: the paper's d/2, 1/32 and 1 then."""
        d, n_features = cfg["d_in"], cfg["d_sae"]
        settings = TopKSettings(k=int(cfg["k"]), k_aux=int(cfg.get("k_aux", min(max(d // 2, 1), n_features))),
                                aux_coeff=float(cfg.get("aux_coeff", 1 / 32)), dead_steps=int(cfg.get("dead_steps", 1)))
        sae = cls(d, n_features, settings)
        sae.load_saelens_tensors(tensors)
        return sae
