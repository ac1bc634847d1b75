"""Worker of tests/test_distributed.py: a tiny SAE trained by `train_sae_distributed`, or a tiny transformer
trained by `train_transformer_distributed` (run under torchrun).

    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py OUT_DIR [STOP_AFTER]
    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py --transformer OUT_DIR [STOP_AFTER]
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic.scale import distributed  # noqa: E402
from monosemantic.core.config import ResampleConfig, SAEConfig, SAERun  # noqa: E402
from monosemantic.lm.store import ArrayStore  # noqa: E402
from monosemantic.sae.architectures.standard import StandardSettings  # noqa: E402

CFG = SAEConfig(batch_size=64, steps=40, lr=3e-3, betas=(0.9, 0.999), geometric_median_points=256, log_every=10,
                checkpoint_every=10, seed=5, fast_path="auto", encoder_screen="fp32",
                resample=ResampleConfig(steps=(30,), dead_window=8, n_inputs=512, encoder_scale=0.2))
RUN = SAERun(model="A", n_features=48, architecture="standard", settings=StandardSettings(l1=0.05), points_mult=1)


def data(n: int = 2048, d: int = 16, seed: int = 0) -> ArrayStore:
    """Sparse non-negative mixtures of 24 random directions (superposition, as in toy.py)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(24, d, generator=g), dim=1)
    coef = torch.rand(n, 24, generator=g) * (torch.rand(n, 24, generator=g) < 0.1)
    return ArrayStore(torch.relu(coef @ dirs))


def transformer_setup():
    """(TransformerConfig, ModelConfig, train stream, val stream): the smoke profile's recipe at toy sizes, on a
    seeded random token stream of two 'documents'."""
    from monosemantic.core.config import load_params
    from monosemantic.data.tokenizer import TokenStream
    from monosemantic.lm.model import ModelConfig

    cfg = dataclasses.replace(load_params(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml").transformer,
                              d_model=16, d_mlp=32, n_heads=2, n_ctx=16, batch_size=8, steps=20, warmup_steps=2,
                              eval_every=10, eval_batches=2, checkpoint_every=5)
    rng = np.random.default_rng(0)
    def stream(n):
        return TokenStream(tokens=rng.integers(0, 64, n).astype(np.uint16), doc_start=np.array([0, n // 2, n]),
                           doc_subset=np.array([0, 1], dtype=np.int16), subsets=["English", "Code"])
    return cfg, ModelConfig.from_params(cfg, 64), stream(4000), stream(1000)


class Killed(Exception):
    pass


def main_transformer(out: str, stop_after: int | None = None) -> None:
    torch.set_num_threads(1)
    distributed.init("cpu")
    cfg, model_cfg, train_s, val_s = transformer_setup()
    out = Path(out)
    kw = dict(ckpt_path=out / "ckpt" / "A.pt", live_dir=out / "live", progress=False)
    if stop_after is not None:
        def on_step(step):
            if step == stop_after:
                raise Killed
        try:
            distributed.train_transformer_distributed(cfg, model_cfg, 1, train_s, val_s, "cpu", on_step=on_step, **kw)
        except Killed:
            pass
    model, _ = distributed.train_transformer_distributed(cfg, model_cfg, 1, train_s, val_s, "cpu", **kw)
    if distributed.world()[0] == 0:
        model.save(out / "model")


def main(out: str, stop_after: int | None = None) -> None:
    """Train; with stop_after, first stop there as if killed (the checkpoint of the step before stays), then
    rerun the same call, which resumes from the checkpoints (one launch: torch's start-up is the slow part)."""
    torch.set_num_threads(1)
    distributed.init("cpu")
    out = Path(out)
    if stop_after is not None:
        assert distributed.train_sae_distributed(CFG, RUN, data(), out / "sae", out / "ckpt", progress=False,
                                                 stop_after=stop_after) == {}
    distributed.train_sae_distributed(CFG, RUN, data(), out / "sae", out / "ckpt", progress=False)


if __name__ == "__main__":
    args = sys.argv[1:]
    entry = main_transformer if args[0] == "--transformer" else main
    args = args[1:] if args[0] == "--transformer" else args
    entry(args[0], int(args[1]) if len(args) > 1 else None)
