"""Worker of tests/test_distributed.py: a tiny SAE trained by `train_sae_distributed` (run under torchrun).

    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py OUT_DIR [STOP_AFTER]
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic import distributed  # noqa: E402
from monosemantic.config import ResampleConfig, SAEConfig, SAERun  # noqa: E402
from monosemantic.store import ArrayStore  # noqa: E402

CFG = SAEConfig(batch_size=64, steps=40, lr=3e-3, geometric_median_points=256, log_every=10, checkpoint_every=10,
                fast_path="auto", resample=ResampleConfig(steps=(30,), dead_window=8, n_inputs=512))
RUN = SAERun(model="A", n_features=48, l1=0.05)


def data(n: int = 2048, d: int = 16, seed: int = 0) -> ArrayStore:
    """Sparse non-negative mixtures of 24 random directions (superposition, as in toy.py)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(24, d, generator=g), dim=1)
    coef = torch.rand(n, 24, generator=g) * (torch.rand(n, 24, generator=g) < 0.1)
    return ArrayStore(torch.relu(coef @ dirs))


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
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
