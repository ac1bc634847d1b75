"""The paper's one-layer transformer: attention block + 512-neuron ReLU MLP block, pre-LayerNorm.

    x      = W_E[tokens] + W_pos[positions]
    x      = x + Attn(LN1(x))                       causal multi-head attention, with biases
    acts   = ReLU(W_in LN2(x) + b_in)               (B, T, d_mlp): the activations the SAE decomposes
    x      = x + W_out acts + b_out
    logits = W_U LN_f(x) + b_U                      untied unembedding

`forward(tokens, mlp_replacement=f)` feeds f(acts) to W_out instead of acts: zero-ablation is
`lambda a: torch.zeros_like(a)`, the SAE splice is `lambda a: sae(a)` (fraction of loss recovered).
`train_loss(tokens, kernels="fused")` is the same mean loss computed faster on CPUs (lm/fused.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from monosemantic.lm.fused import linear_cross_entropy
from monosemantic.core.utils import atomic_path, write_json

MLPReplacement = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int = 128
    d_mlp: int = 512
    n_heads: int = 4
    n_ctx: int = 128

    @classmethod
    def from_params(cls, transformer, vocab_size: int) -> "ModelConfig":
        """From params.transformer (TransformerConfig) and the tokenizer's vocabulary size."""
        return cls(vocab_size=vocab_size, d_model=transformer.d_model, d_mlp=transformer.d_mlp,
                   n_heads=transformer.n_heads, n_ctx=transformer.n_ctx)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)  # W_Q, W_K, W_V stacked, with biases
        self.out = nn.Linear(cfg.d_model, cfg.d_model)  # W_O

    def forward(self, x: torch.Tensor, fp32: bool = False) -> torch.Tensor:
        """fp32: softmax(QK^T)V in fp32 even under bf16 autocast (on CPUs the bf16 kernel's backward is ~3x
        slower than fp32's at this size; the projections stay in the autocast dtype)."""
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))
        if fp32:
            with torch.autocast(x.device.type, enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.W_in = nn.Linear(cfg.d_model, cfg.d_mlp)
        self.W_out = nn.Linear(cfg.d_mlp, cfg.d_model)

    def acts(self, x: torch.Tensor) -> torch.Tensor:
        """Post-ReLU activations (B, T, d_mlp) for the (already normalised) input."""
        return F.relu(self.W_in(x))

    def forward(self, x: torch.Tensor, replacement: MLPReplacement | None = None):
        acts = self.acts(x)
        fed = acts if replacement is None else replacement(acts)
        return self.W_out(fed), acts


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.W_E = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.W_pos = nn.Embedding(cfg.n_ctx, cfg.d_model)
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.W_U = nn.Linear(cfg.d_model, cfg.vocab_size)

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator) -> "Transformer":
        """GPT-2 init from an explicit generator: N(0, 0.02) weights, zero biases, unit LayerNorm gains;
        the two projections writing into the residual stream get 0.02 / sqrt(2 * n_layers)."""
        for name, p in self.named_parameters():
            if name.startswith("ln") or p.dim() == 1:
                p.fill_(1.0 if name.startswith("ln") and name.endswith("weight") else 0.0)
            else:
                std = 0.02 / math.sqrt(2) if name in ("attn.out.weight", "mlp.W_out.weight") else 0.02
                p.normal_(0.0, std, generator=generator)
        return self

    def _mlp_input(self, tokens: torch.Tensor, fp32_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        T = tokens.shape[-1]
        if T > self.cfg.n_ctx:
            raise ValueError(f"sequence of {T} tokens is longer than n_ctx {self.cfg.n_ctx}")
        x = self.W_E(tokens) + self.W_pos(torch.arange(T, device=tokens.device))
        x = x + self.attn(self.ln1(x), fp32=fp32_attention)
        return x, self.ln2(x)

    def _final_residual(self, tokens: torch.Tensor, mlp_replacement: MLPReplacement | None = None,
                        fp32_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """LN_f(x + MLP out), the unembedding's input, and the post-ReLU activations."""
        x, h = self._mlp_input(tokens, fp32_attention)
        out, acts = self.mlp(h, mlp_replacement)
        return self.ln_f(x + out), acts

    def forward(self, tokens: torch.Tensor, mlp_replacement: MLPReplacement | None = None,
                return_mlp_acts: bool = False):
        """Logits (B, T, vocab); with return_mlp_acts also the post-ReLU MLP activations (B, T, d_mlp).

        mlp_replacement maps the post-ReLU activations to what is fed to W_out (the returned acts are always
        the model's own)."""
        r, acts = self._final_residual(tokens, mlp_replacement)
        logits = self.W_U(r)
        return (logits, acts) if return_mlp_acts else logits

    def mlp_acts(self, tokens: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Only the post-ReLU MLP activations (skips W_out and the unembedding): (B, T, d_mlp), or
        (B, k, d_mlp) at `positions` (B, k) when given (W_in then runs on those positions only)."""
        h = self._mlp_input(tokens)[1]
        if positions is not None:
            h = torch.gather(h, 1, positions[:, :, None].expand(-1, -1, h.shape[-1]))
        return self.mlp.acts(h)

    def token_losses(self, tokens: torch.Tensor, mlp_replacement: MLPReplacement | None = None) -> torch.Tensor:
        """Per-token cross-entropy (B, T-1): loss[:, t] is -log p(tokens[:, t+1] | tokens[:, :t+1])."""
        logits = self(tokens[:, :-1], mlp_replacement)
        return token_losses(logits, tokens[:, 1:])

    def train_loss(self, tokens: torch.Tensor, kernels: str = "reference", precision: str = "fp32") -> torch.Tensor:
        """Mean next-token cross-entropy of (B, T+1) windows: the training objective.

        kernels "reference": token_losses(tokens).mean(). "fused": the same loss with attention in fp32 and the
        unembedding fused with the cross-entropy (lm/fused.py: logits never materialised, their products in
        bf16 when precision is bf16), about 2x faster on CPUs; equal to the reference in fp32 up to rounding."""
        if kernels == "reference":
            return self.token_losses(tokens).mean()
        if kernels != "fused":
            raise ValueError(f"kernels must be 'reference' or 'fused', got {kernels!r}")
        r, _ = self._final_residual(tokens[:, :-1], fp32_attention=True)
        return linear_cross_entropy(r.reshape(-1, r.shape[-1]), self.W_U.weight, self.W_U.bias,
                                    tokens[:, 1:].reshape(-1),
                                    torch.bfloat16 if precision == "bf16" else torch.float32)

    # ------------------------------------------------------------------ persistence

    def save(self, out_dir: str | Path) -> None:
        """out_dir/model.safetensors + out_dir/config.json (atomic writes)."""
        out_dir = Path(out_dir)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        with atomic_path(out_dir / "model.safetensors") as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        write_json(out_dir / "config.json", dataclasses.asdict(self.cfg))

    @classmethod
    def load(cls, model_dir: str | Path, device: str | torch.device = "cpu") -> "Transformer":
        model_dir = Path(model_dir)
        for f in ("config.json", "model.safetensors"):
            if not (model_dir / f).exists():
                raise FileNotFoundError(f"{model_dir / f}: missing; run the transformer training stage")
        cfg = ModelConfig(**json.loads((model_dir / "config.json").read_text()))
        model = cls(cfg)
        model.load_state_dict(load_file(str(model_dir / "model.safetensors")))
        return model.to(device).eval()


def token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per position, in fp32, shape of targets."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           reduction="none").view(targets.shape)


def build_model(cfg: ModelConfig, seed: int) -> Transformer:
    """A freshly initialised transformer; the weights depend only on cfg and seed."""
    g = torch.Generator().manual_seed(seed)
    return Transformer(cfg).init_weights(g)
