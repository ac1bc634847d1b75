"""The standard architecture: the sparse autoencoder of Bricken et al. (2023), "Towards Monosemanticity", section
"Autoencoder" (the paper's recipe, the one this package replicates).

For an MLP activation vector x in R^d and a dictionary of F features:

    x̄ = x − b_d                                   (pre-encoder bias: subtract the decoder bias)
    f = ReLU(W_e x̄ + b_e)                         W_e: (F, d), b_e: (F,)
    x̂ = W_d f + b_d                               W_d: (d, F), b_d: (d,)
    L = (1/(B d)) Σ_b ‖x_b − x̂_b‖²  +  λ (1/B) Σ_b Σ_i f_{b,i}

i.e. the mean squared error over all elements plus λ times the L1 norm of f (a sum over features, averaged
over the batch; f ≥ 0 so |f| = f). Encoder and decoder are untied. Both are initialised like PyTorch's
nn.Linear (Kaiming-uniform); the decoder columns are then scaled to unit norm, and kept at unit norm during
training: before each Adam step the gradient component parallel to each column is removed
(`remove_parallel_grad`, in `before_step`), after it the columns are renormalised (`normalize_decoder`, in
`after_step`). b_e starts at zero, b_d at the geometric median of a sample of activations (`init_from_data`:
`geometric_median`, Weiszfeld's algorithm). Dead features are resampled (sae/resample.py; `resamples`). The
learning rate is constant. Settings (sae_runs): λ = `l1`, the sparsity knob.

Two ways to get the gradients, which agree up to floating-point summation order:
  * `loss(x)` + `.backward()`: plain autograd, the reference ("dense" path);
  * `manual_backward(x)`: the same gradients from the closed-form expressions below, exploiting that f is
    sparse (the "sparse" fast path). Only the encoder forward pass is a dense (B, d) × (d, F) product;
    everything after the ReLU touches only the nnz = B·L0 active entries (CSR sparse matrix products).

Saved layout (base.SAE.save; `architectures.load` reads it back): the directory SAELens loads with
`SAE.load_from_disk` (architecture "standard"): `sae_weights.safetensors` with W_enc (d_in, d_sae) = W_eᵀ,
W_dec (d_sae, d_in) = W_dᵀ, b_enc, b_dec, and `cfg.json` (λ as `l1_coefficient`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from monosemantic.sae.architectures.base import SAE, LossTerms
from monosemantic.sae.model import geometric_median, remove_parallel_grad
from monosemantic.sae.screen import EncoderScreen, _offsets, resolve_encoder_screen

ENCODER_BLOCK = 1024  # rows per encoder block in manual_backward
NOTE = ("Bricken et al. (2023) SAE in SAELens convention: f = ReLU((x - b_dec) @ W_enc + b_enc), "
        "x_hat = f @ W_dec + b_dec; rows of W_dec have unit norm")


@dataclass(frozen=True)
class StandardSettings:
    """A run's own keys (sae_runs): λ, the L1 coefficient."""

    l1: float
    knob: ClassVar[str] = "l1"

    def check(self) -> list[str]:
        return [] if self.l1 >= 0 else [f"l1: must be >= 0, got {self.l1}"]


class _ManualParts(NamedTuple):
    """What a branch of `StandardSAE.manual_backward` computes, before ∂L/∂b_d and accumulation."""

    x_hat: torch.Tensor  # (B, d) reconstruction
    g: torch.Tensor  # (B, d) ∂L/∂x̂ = 2(x̂ − x)/(B d)
    grad_W_d: torch.Tensor  # gᵀ f, feature-major like W_d
    grad_W_e: torch.Tensor  # δᵀ x̄
    grad_b_e: torch.Tensor  # Σ_b δ_b
    l1: torch.Tensor  # mean over the batch of Σ_i f_i
    fire_counts: torch.Tensor  # (F,) int64
    nnz: int  # active (input, feature) entries


class StandardSAE(SAE):
    """x̄ = x − b_d; f = ReLU(W_e x̄ + b_e); x̂ = W_d f + b_d. Parameters use the paper's shapes."""

    architecture = "standard"
    saelens_architecture = "standard"
    Settings = StandardSettings
    resamples = True
    has_manual_backward = True

    def __init__(self, d: int, n_features: int, settings: StandardSettings,
                 generator: torch.Generator | None = None):
        super().__init__(d, n_features, settings)
        self.l1_coeff = float(settings.l1)  # λ
        self.W_e = nn.Parameter(torch.empty(n_features, d))
        self.b_e = nn.Parameter(torch.zeros(n_features))
        # W_d has the paper's shape (d, F) but is stored feature-major (W_d.T is contiguous), so each
        # feature's decoder vector is contiguous in memory: the sparse products, the per-column norms and
        # the resampling of columns all read contiguous rows of W_d.T (this changes no value, only strides).
        self.W_d = nn.Parameter(torch.empty(n_features, d).T)
        self.b_d = nn.Parameter(torch.zeros(d))
        # "fp32" | "bf16": how manual_backward finds the active entries (EncoderScreen); set by SAETrainer
        self.encoder_screen = "fp32"
        self.screen_candidates: int | None = None  # candidates the screen passed on in the last step (diagnostics)
        # nn.Linear's default init: kaiming_uniform_(a=√5), i.e. U(−1/√fan_in, 1/√fan_in).
        nn.init.kaiming_uniform_(self.W_e, a=math.sqrt(5), generator=generator)  # Linear(d -> F), fan_in d
        nn.init.kaiming_uniform_(self.W_d, a=math.sqrt(5), generator=generator)  # Linear(F -> d), fan_in F
        self.normalize_decoder()

    def set_encoder_screen(self, setting: str, device: torch.device | str = "cpu") -> str:
        """Resolve sae.encoder_screen (fp32 | bf16 | auto, `resolve_encoder_screen`) for manual_backward."""
        self.encoder_screen = resolve_encoder_screen(setting, device)
        return self.encoder_screen

    # ---------------------------------------------------------------------------------------- forward

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """f = ReLU(W_e (x − b_d) + b_e), shape (B, F)."""
        return torch.relu((x - self.b_d) @ self.W_e.T + self.b_e)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """x̂ = W_d f + b_d, shape (B, d)."""
        return f @ self.W_d.T + self.b_d

    def loss(self, x: torch.Tensor, step: int = 0, steps: int = 1) -> LossTerms:
        """The training loss by autograd (the dense reference path): MSE + λ·mean_b Σ_i f_i (no schedule)."""
        f = self.encode(x)
        x_hat = self.decode(f)
        mse = (x_hat - x).pow(2).mean()
        l1 = f.sum(dim=-1).mean()
        active = f > 0
        return LossTerms(total=mse + self.l1_coeff * l1, mse=mse.detach(), l1=l1.detach(),
                         l0=active.sum(dim=-1, dtype=torch.float32).mean(),
                         fire_counts=active.sum(dim=0))

    # ------------------------------------------------------------------------------- manual gradients

    @torch.no_grad()
    def manual_backward(self, x: torch.Tensor, max_density: float = 0.05,
                        encoder_screen: str | None = None) -> LossTerms:
        """Loss and gradients of `loss(x)` in closed form, accumulated into each parameter's .grad.

        With r = x̂ − x, g = ∂L/∂x̂ = 2r/(B d), and the ReLU mask m = [W_e x̄ + b_e > 0]:

            ∂L/∂W_d = gᵀ f                      (d, F)   only the columns/rows where f ≠ 0 contribute
            δ       = (g W_d + λ/B) ⊙ m         (B, F)   ∂L/∂(pre-activation), zero wherever f = 0
            ∂L/∂W_e = δᵀ x̄                      (F, d)
            ∂L/∂b_e = Σ_b δ_b                   (F,)
            ∂L/∂b_d = Σ_b g_b − W_eᵀ Σ_b δ_b    (d,)     (b_d enters x̂ directly and x̄ with a minus sign)

        δ has the same sparsity pattern as f, so when the fraction of active entries is at most
        `max_density` every product after the encoder is a CSR sparse × dense product costing
        O(B·L0·d) instead of O(B·F·d) (and g W_d is only sampled at the active entries; `_csr_backward`).
        Above it (early in training, when about half the features fire) the same expressions are evaluated
        densely (`_dense_backward`). The fraction is measured on the first ENCODER_BLOCK rows of the batch
        (`_screen_first_block` / `_fp32_first_block`).

        encoder_screen (None: `self.encoder_screen`) "bf16": the active entries of the CSR branch come from
        `EncoderScreen` (a bf16 product with a rigorous error bound, fp32 recomputation of the entries it
        cannot decide) instead of the dense fp32 product; "fp32": the dense fp32 product. See `EncoderScreen` for what
        is exact and what differs (fp32 summation order of the active values).
        """
        x_bar = x - self.b_d
        # The encoder runs one block of rows at a time, so that each (block, F) pre-activation matrix stays
        # in cache while its active entries are extracted. The first block decides the branch.
        blocks = x_bar.split(ENCODER_BLOCK)
        screen = self._bf16_screen(x_bar, encoder_screen)
        if screen is not None:
            dense, pre, active, first = self._screen_first_block(x_bar, blocks, screen, max_density)
        else:
            (dense, pre, active), first = self._fp32_first_block(x_bar, blocks, max_density), None
        if dense:
            parts = self._dense_backward(x, x_bar, pre, active)
        else:
            rows, cols, vals = self._csr_active_entries(blocks, screen, first, pre, active)
            parts = self._csr_backward(x, x_bar, rows, cols, vals)
        return self._apply_manual_grads(x, parts, screen)

    def _preactivations(self, x_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The fp32 pre-activations W_e x̄ + b_e of the rows x_bar, and their ReLU mask m."""
        pre = torch.addmm(self.b_e, x_bar, self.W_e.T)
        return pre, pre > 0

    def _bf16_screen(self, x_bar: torch.Tensor, encoder_screen: str | None) -> EncoderScreen | None:
        """The EncoderScreen when the bf16 screen is selected and applicable; None for the fp32 product."""
        if (self.encoder_screen if encoder_screen is None else encoder_screen) != "bf16":
            return None
        screen = EncoderScreen(self.W_e, self.b_e)
        if not (screen.finite and bool(torch.isfinite(x_bar).all())):
            return None  # the bound needs finite inputs; the fp32 path reports the non-finite loss
        return screen

    def _screen_first_block(self, x_bar: torch.Tensor, blocks: tuple[torch.Tensor, ...], screen: EncoderScreen,
                            max_density: float) -> tuple:
        """bf16 screen: the active entries of the first block decide the branch.

        Returns (dense, pre, active, first): `first` = (rows, cols, values) of the first block's active entries;
        pre and active (the fp32 pre-activations of the whole batch and their mask) only when dense, else None.
        """
        first = screen.active_entries(blocks[0])
        dense = first[0].numel() > max_density * blocks[0].shape[0] * self.n_features
        pre, active = self._preactivations(x_bar) if dense else (None, None)
        return dense, pre, active, first

    def _fp32_first_block(self, x_bar: torch.Tensor, blocks: tuple[torch.Tensor, ...],
                          max_density: float) -> tuple:
        """fp32 product: the first block's pre-activations decide the branch.

        Returns (dense, pre, active): the pre-activations and mask of the first block (CSR branch), or of the
        whole batch when dense.
        """
        pre, active = self._preactivations(blocks[0])
        # count_nonzero on the bool mask, not mask.sum(): the sum widens the (block, F) mask to int64 first,
        # which cost 14 ms per 1024-row block against 0.4 ms (a quarter of a whole step at batch 1024).
        dense = int(torch.count_nonzero(active)) > max_density * pre.numel()
        if dense and len(blocks) > 1:
            pre, active = self._preactivations(x_bar)
        return dense, pre, active

    def _dense_backward(self, x: torch.Tensor, x_bar: torch.Tensor, pre: torch.Tensor,
                        active: torch.Tensor) -> _ManualParts:
        """The closed-form gradients with dense (B, F) products, from the whole batch's pre-activations.

            f = ReLU(pre);  x̂ = W_d f + b_d;  g = 2(x̂ − x)/(B d)
            ∂L/∂W_d = gᵀ f;  δ = (g W_d + λ/B) ⊙ m;  ∂L/∂W_e = δᵀ x̄;  ∂L/∂b_e = Σ_b δ_b
        """
        B, d = x.shape
        fire_counts = active.sum(dim=0)
        nnz = int(fire_counts.sum())
        f = torch.relu(pre)
        x_hat = torch.addmm(self.b_d, f, self.W_d.T)
        g = (x_hat - x) * (2.0 / (B * d))
        grad_W_d = (f.T @ g).T  # = gᵀ f, laid out feature-major like W_d
        delta = (g @ self.W_d + self.l1_coeff / B) * active
        grad_W_e = delta.T @ x_bar
        grad_b_e = delta.sum(dim=0)
        l1 = f.sum() / B
        return _ManualParts(x_hat, g, grad_W_d, grad_W_e, grad_b_e, l1, fire_counts, nnz)

    def _csr_active_entries(self, blocks: tuple[torch.Tensor, ...], screen: EncoderScreen | None,
                            first: tuple | None, pre: torch.Tensor,
                            active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, cols, values) of the active pre-activations of the whole batch, sorted by (row, col), one
        block of rows at a time: from the bf16 screen, or from the fp32 product (`pre`, `active`: block 0's)."""
        rows, cols, vals = [], [], []
        for i, block in enumerate(blocks):
            if screen is not None:
                r, c, v = first if i == 0 else screen.active_entries(block)
            else:
                if i > 0:
                    pre, active = self._preactivations(block)
                r, c = active.nonzero(as_tuple=True)  # active entries, sorted by (row, col)
                v = pre[r, c]
            rows.append(r + i * ENCODER_BLOCK)
            cols.append(c)
            vals.append(v)
        return torch.cat(rows), torch.cat(cols), torch.cat(vals)

    def _csr_backward(self, x: torch.Tensor, x_bar: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                      vals: torch.Tensor) -> _ManualParts:
        """The closed-form gradients with CSR sparse × dense products over the nnz active entries of f.

            x̂ = f_csr W_dᵀ + b_d;  g = 2(x̂ − x)/(B d)
            δ at the active entries = (g W_d)_{b,i} + λ/B  (sampled_addmm: g W_d only where f_{b,i} > 0)
            ∂L/∂W_d = (fᵀ g)ᵀ;  ∂L/∂W_e = δᵀ x̄;  ∂L/∂b_e = Σ_b δ_b   (with the transposed (F, B) pattern)
        """
        B, d = x.shape
        fire_counts = torch.bincount(cols, minlength=self.n_features)
        nnz = cols.numel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            crow = _offsets(rows, B)
            f_csr = torch.sparse_csr_tensor(crow, cols, vals, (B, self.n_features))
            x_hat = f_csr @ self.W_d.T + self.b_d
            g = (x_hat - x) * (2.0 / (B * d))
            # δ at the active entries: (g W_d)_{b,i} sampled where f_{b,i} > 0, plus λ/B.
            delta_csr = torch.sparse.sampled_addmm(
                torch.sparse_csr_tensor(crow, cols, torch.full_like(vals, self.l1_coeff / B),
                                        (B, self.n_features)), g, self.W_d)
            delta_vals = delta_csr.values()
            # Transposed pattern (F, B), sorted by (col, row), for the products with Σ over the batch.
            perm = torch.sort(cols.int(), stable=True).indices  # rows already ascending within a column
            ccol = _offsets(cols, self.n_features)
            fT = torch.sparse_csr_tensor(ccol, rows[perm], vals[perm], (self.n_features, B))
            dT = torch.sparse_csr_tensor(ccol, rows[perm], delta_vals[perm], (self.n_features, B))
            grad_W_d = (fT @ g).T  # (gᵀ f) = (fᵀ g)ᵀ, feature-major like W_d
            grad_W_e = dT @ x_bar
            grad_b_e = torch.zeros(self.n_features, dtype=x.dtype, device=x.device).index_add_(0, cols, delta_vals)
            l1 = vals.sum() / B
        return _ManualParts(x_hat, g, grad_W_d, grad_W_e, grad_b_e, l1, fire_counts, nnz)

    def _apply_manual_grads(self, x: torch.Tensor, parts: _ManualParts, screen: EncoderScreen | None) -> LossTerms:
        """∂L/∂b_d = Σ_b g_b − W_eᵀ Σ_b δ_b; accumulate the four gradients into .grad; the batch's LossTerms."""
        B = x.shape[0]
        grad_b_d = parts.g.sum(dim=0) - parts.grad_b_e @ self.W_e
        self.screen_candidates = screen.n_candidates if screen is not None else None
        mse = (parts.x_hat - x).pow(2).mean()
        for p, grad in ((self.W_e, parts.grad_W_e), (self.b_e, parts.grad_b_e), (self.W_d, parts.grad_W_d),
                        (self.b_d, grad_b_d)):
            if p.grad is None:
                p.grad = grad
            else:
                p.grad += grad
        return LossTerms(total=mse + self.l1_coeff * parts.l1, mse=mse, l1=parts.l1, l0=torch.tensor(parts.nnz / B),
                         fire_counts=parts.fire_counts)

    # ------------------------------------------------------------------------- unit-norm decoder

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Project out of each decoder column's gradient its component along the column (before Adam).

            ∇W_d[:, i] ← ∇W_d[:, i] − (∇W_d[:, i] · ŵ_i) ŵ_i,   ŵ_i = W_d[:, i] / ‖W_d[:, i]‖
        """
        remove_parallel_grad(self.W_d)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """W_d[:, i] ← W_d[:, i] / ‖W_d[:, i]‖ (after each Adam step)."""
        self.W_d.div_(self.W_d.norm(dim=0, keepdim=True))

    # ------------------------------------------------------------------------------ training hooks

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """b_d ← the geometric median of the first inputs x."""
        self.b_d.copy_(geometric_median(x))

    def before_step(self, step: int, steps: int) -> None:
        self.remove_parallel_grad()

    def after_step(self, step: int, steps: int) -> None:
        self.normalize_decoder()

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
        """λ as `l1_coefficient` (read back by `from_saved`), and a note on the convention."""
        return {"l1_coefficient": self.l1_coeff, "note": NOTE}

    @classmethod
    def from_saved(cls, cfg: dict, tensors: dict[str, torch.Tensor]) -> "StandardSAE":
        """The saved SAE, λ from l1_coefficient. Built like a new one first: its Kaiming init draws from the global
        RNG, as loading always has, so that what runs after a load sees the same random state."""
        sae = cls(cfg["d_in"], cfg["d_sae"], StandardSettings(l1=cfg.get("l1_coefficient", 0.0)))
        sae.load_saelens_tensors(tensors)
        return sae
