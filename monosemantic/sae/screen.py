"""The bf16 screen of the SAE encoder (sae.encoder_screen: bf16). The dense encoder product W_e x̄ + b_e, the one
cost that sparsity cannot remove, is computed in bf16 with a rigorous error bound; exactly the (input, feature)
entries that the bound cannot decide are recomputed in fp32, so the active set is the fp32 one (`EncoderScreen`,
used by StandardSAE.manual_backward in architectures/standard.py; the derivation of the bound is in its docstring).
"""

from __future__ import annotations

import warnings

import torch


def _offsets(sorted_index: torch.Tensor, n: int) -> torch.Tensor:
    """CSR compressed index: offsets[i] = number of entries with index < i, for a sorted index vector."""
    counts = torch.bincount(sorted_index, minlength=n)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


BF16_U = 2.0**-8  # unit roundoff of bfloat16 (8-bit significand): |bf16(v) − v| ≤ u·|v|
FP32_U = 2.0**-24  # unit roundoff of float32


def _gamma(n: int) -> float:
    """γ_n = n·u/(1 − n·u) for fp32: |fl(Σ_j a_j) − Σ_j a_j| ≤ γ_n Σ_j |a_j| for a sum of n+1 terms (any order)."""
    return n * FP32_U / (1 - n * FP32_U)


def screen_coefficients(d: int) -> tuple[float, float]:
    """(c, g) of the encoder screen's bound for inputs of dimension d; see `EncoderScreen`.

    With u = 2⁻⁸ (bf16) and γ_n for fp32 sums, the screened sum (d + 3 terms, fp32 accumulation) must stay
    ≥ 0 for every entry that fp32 makes active. The worst case over the rounding errors gives

        c ≥ (γ_{d+1} + 2u + u² + γ_{d+3}(1+u)²) / ((1−u)² − γ_{d+3}(1+u)²)     (slack on ‖x̄_b‖‖w_i‖)
        g ≥ γ_{d+1} + u²(1+g) + γ_{d+3}(1+u)²(1+g) + 2·u_fp32                 (slack on |b_e,i|)

    both inflated below for the fp32 rounding of the norms, of c·‖x̄_b‖ and of b_e + g|b_e| (relative
    errors ≤ (d+4)·u_fp32 each; g is taken twice its bound). For d = 512: c ≈ 0.00795, g ≈ 1.8e-4.
    """
    u, gd1, gd3 = BF16_U, _gamma(d + 1), _gamma(d + 3)
    c = (gd1 + 2 * u + u * u + gd3 * (1 + u) ** 2) / ((1 - u) ** 2 - gd3 * (1 + u) ** 2)
    c *= 1 + 4 * (d + 4) * FP32_U + 2.0**-20
    g = 2 * (gd1 + 2 * u * u + gd3 * (1 + u * u)) + 8 * FP32_U
    return c, g


def resolve_encoder_screen(setting: str, device: torch.device | str = "cpu") -> str:
    """The screen actually used: "fp32" (none, the fp32 product) or "bf16". auto: bf16 on a CPU with native bf16
    matrix instructions (AMX-BF16 or AVX512-BF16; emulated bf16 is slower than fp32), fp32 elsewhere (on CUDA the
    trainer's "auto" fast path is dense autograd, which the screen does not touch)."""
    if setting == "auto":
        from monosemantic.core.utils import cpu_has_bf16

        return "bf16" if torch.device(device).type == "cpu" and cpu_has_bf16() else "fp32"
    if setting not in ("fp32", "bf16"):
        raise ValueError(f"encoder_screen: {setting!r} not one of fp32, bf16, auto")
    return setting


class EncoderScreen:
    """The active entries of f = ReLU(x̄ W_eᵀ + b_e), found with a bf16 product and a rigorous error bound.

    Exact fp32 (the reference): entry (b, i) is active iff p_bi = fl32(b_e,i + x̄_b·w_i) > 0 (`torch.addmm`).
    Whatever the fp32 summation order, |fl32(b_e + x̄·w) − (b_e + s)| ≤ γ_{d+1}(S + |b_e|), where s = x̄_b·w_i
    exactly and S = Σ_j |x̄_bj||w_ij| ≤ ‖x̄_b‖‖w_i‖ (Cauchy–Schwarz); and the sign of a rounded sum is the sign of
    the computed sum. So p_bi > 0 implies s + b_e > −γ_{d+1}(‖x̄_b‖‖w_i‖ + |b_e|).

    The screen: one bf16 matrix product of augmented rows,

        x̃_b = [x̄_b, c·‖x̄_b‖, 1, 1],    w̃_i = [w_i, ‖w_i‖, hi_i, lo_i],    hi + lo = b_e + g|b_e| (bf16 hi/lo split)

    so that t̃_bi = x̃_b·w̃_i ≈ s + b_e + c‖x̄_b‖‖w_i‖ + g|b_e|, with the slack terms inside the product (no extra
    pass over the (B, F) matrix). Rounding x̃, w̃ to bf16 changes each product by at most (2u+u²)|x̄_j w_ij|
    (u = 2⁻⁸; products of bf16 numbers are exact in fp32), hi+lo represents b_e + g|b_e| within u²; the
    accumulation over the d+3 terms is in fp32 (oneDNN/MKL bf16 GEMMs on CPU and tensor cores accumulate in
    fp32: the bound is valid for that accumulation, and `tests/test_encoder_screen.py` checks the measured
    error of this machine's kernel against it), adding at most γ_{d+3}·Σ|x̃_j w̃_ij|; the final rounding of the
    fp32 accumulator to the bf16 output preserves its sign. With c, g from `screen_coefficients` these errors
    sum to less than the slack, hence

        p_bi > 0  (active in fp32)   ⟹   t̃_bi ≥ 0  (a candidate).

    The candidates (typically 1.5–3× the active entries of a trained SAE) are then recomputed in fp32,
    b_e + x̄_b·w_i by `torch.sparse.sampled_addmm`, and kept where the value is > 0.

    What is exact and what is not: every entry that the dense fp32 product makes active is a candidate (no
    false negative, by the bound), and every kept entry has a positive fp32 value. The recomputed values are
    fp32 dot products like addmm's, but summed in another order (sampled_addmm vs the BLAS kernel): they
    differ from addmm's in the last bits (~1e-7 relative), so an entry within that distance of zero can be
    active in one and not the other, and the trained weights are not bitwise those of the fp32 path (they
    agree like the CSR path agrees with autograd). A bitwise copy would need addmm's own summation order at
    each candidate; MKL reproduces its entries only for GEMMs of at least a few rows (a gemv of one row
    differs), and regrouping the candidates into such GEMMs gathers W_e rows at a cost above the fp32 product
    it saves.

    Assumptions: finite inputs (checked: `finite`), d ≤ 2¹⁴, no subnormal x̄ or W_e entries (a kernel that
    flushes subnormals to zero would add an error not covered by the relative bound; activations stored in
    fp16 and Kaiming-scale weights are far from 2⁻¹²⁶).
    """

    def __init__(self, W_e: torch.Tensor, b_e: torch.Tensor):
        F, d = W_e.shape
        self.W_e, self.b_e, self.d = W_e, b_e, d
        self.c, self.g = screen_coefficients(d)
        w_norm = W_e.norm(dim=1)
        b_slack = b_e + self.g * b_e.abs()
        hi = b_slack.to(torch.bfloat16)
        lo = (b_slack - hi.float()).to(torch.bfloat16)
        self.W_aug = torch.cat([W_e, w_norm[:, None], hi.float()[:, None], lo.float()[:, None]],
                               dim=1).to(torch.bfloat16)
        self.finite = bool(torch.isfinite(w_norm).all()) and bool(torch.isfinite(b_slack).all())
        self.n_candidates = 0  # candidates passed on so far (diagnostics)

    def candidates(self, x_bar: torch.Tensor) -> torch.Tensor:
        """(n, F) bool: the entries the bound cannot rule out (a superset of the fp32-active entries)."""
        x_norm = x_bar.norm(dim=1, keepdim=True)
        ones = torch.ones_like(x_norm)
        x_aug = torch.cat([x_bar, self.c * x_norm, ones, ones], dim=1).to(torch.bfloat16)
        t = torch.mm(x_aug, self.W_aug.T)
        # t ≥ 0 read off the sign bit (int16 view: half the cost of a bf16 comparison). A −0 counts as negative:
        # it only comes from a negative accumulator rounded to zero (an exact zero sum is +0 under round-to-nearest).
        return t.view(torch.int16) >= 0

    def active_entries(self, x_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, cols, values) of the active entries of ReLU(x̄ W_eᵀ + b_e), sorted by (row, col)."""
        n, F = x_bar.shape[0], self.W_e.shape[0]
        if not bool(torch.isfinite(x_bar).all()):
            raise ValueError("EncoderScreen: non-finite input (use the fp32 path, which reports it)")
        r, c = self.candidates(x_bar).nonzero(as_tuple=True)
        self.n_candidates += r.numel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            cand = torch.sparse_csr_tensor(_offsets(r, n), c, self.b_e[c], (n, F))
            v = torch.sparse.sampled_addmm(cand, x_bar, self.W_e.T).values()  # b_e + x̄_b·w_i in fp32
        keep = v > 0
        return r[keep], c[keep], v[keep]
