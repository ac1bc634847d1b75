"""A non-finite loss in transformer training stops it with one clear error before the optimizer step, and the
last checkpoint (written before the blow-up) stays on disk and finite."""

import numpy as np
import pytest
import torch

from monosemantic.lm import train as lm
from monosemantic.core.config import TransformerConfig
from monosemantic.lm.model import ModelConfig
from monosemantic.data.tokenizer import TokenStream
from monosemantic.core.training import NonFiniteLossError, checkpoint_state

CPU = torch.device("cpu")

def stream(n=4000, seed=0) -> TokenStream:
    tokens = np.random.default_rng(seed).integers(1, 32, n).astype(np.uint16)
    return TokenStream(tokens, np.array([0, n], dtype=np.int64), np.array([0], dtype=np.int16), ["all"])

def test_nan_loss_stops_transformer_training(tmp_path, monkeypatch):
    cfg = TransformerConfig(d_model=16, d_mlp=32, n_heads=2, n_ctx=16, batch_size=4, steps=12, lr=3e-3,
                            warmup_steps=2, min_lr_frac=0.1, betas=(0.9, 0.95), weight_decay=0.0, grad_clip=1.0,
                            eval_every=100, eval_batches=1, checkpoint_every=4, seeds={"A": 1}, shuffle_seed=3,
                            mix={}, kernels="reference")
    mcfg = ModelConfig.from_params(cfg, 32)
    real = lm.Transformer.token_losses
    calls = {"n": 0}

    def poisoned(self, toks, *args, **kw):  # the 6th training forward pass returns NaN
        out = real(self, toks, *args, **kw)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 6:
                return out * float("nan")
        return out

    monkeypatch.setattr(lm.Transformer, "token_losses", poisoned)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 6; .* lower transformer\.lr"):
        lm.train(cfg, mcfg, 1, stream(), stream(seed=1), CPU, ckpt_path=ckpt, progress=False)
    state = checkpoint_state(ckpt)
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["model"].values())
