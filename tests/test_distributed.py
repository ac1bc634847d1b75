"""Data-parallel SAE training (monosemantic/scale/distributed.py): 2 gloo processes = 1 process at the same global batch.

The 2-process run is launched with torchrun (tests/ddp_worker.py); the reference is the plain one-process
sae_train.train_sae. Tolerance: the gradient all-reduce sums in another order than one process does, so the
weights agree to float32 rounding accumulated over 40 Adam steps and one resampling: atol 1e-5, rtol 1e-5
(measured max |difference| 1.2e-7 on W_dec, 6e-8 on W_enc); the resampling records (step, dead, resampled), the
dead features and the per-feature counts must be identical (global statistics, not rank 0's half).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from monosemantic.scale import distributed
from monosemantic.sae.train import train_sae

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ddp_worker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def torchrun(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run([*TORCHRUN, str(ROOT / "tests" / "ddp_worker.py"), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr


def test_local_slice():
    assert distributed.local_slice(8, 1, 2) == slice(4, 8)
    with pytest.raises(ValueError, match="divisible"):
        distributed.local_slice(9, 0, 2)


def test_two_gloo_processes_equal_one_process(tmp_path, one_thread):
    ref = tmp_path / "one"
    ref_stats = train_sae(ddp_worker.CFG, ddp_worker.RUN, ddp_worker.data(), ref, progress=False)
    assert ref_stats["n_resampled"] > 0  # the comparison covers a resampling step

    # two processes, stopped after step 25 (checkpoint at 20) and resumed: same as one uninterrupted process
    two = tmp_path / "two"
    torchrun(str(two), "25")
    assert not Path(f"{two / 'ckpt'}.rank1").exists()  # rank 1 leaves nothing behind

    a, b = load_file(ref / "sae_weights.safetensors"), load_file(two / "sae" / "sae_weights.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-5)
    assert json.loads((two / "sae" / "resampling.json").read_text()) == \
        json.loads((ref / "resampling.json").read_text())
    stats = json.loads((two / "sae" / "train_stats.json").read_text())
    assert stats["dead"] == ref_stats["dead"]
    assert stats["feature_counts_inputs"] == ref_stats["feature_counts_inputs"]  # global counts, not per rank
    assert np.array_equal(np.load(two / "sae" / "feature_counts.npy"), np.load(ref / "feature_counts.npy"))


def test_transformer_two_gloo_processes_equal_one_process(tmp_path, one_thread):
    """Data-parallel transformer training (DataParallel in lm.train.train): 2 processes, each on half of every
    global batch, killed after step 12 (checkpoint at 10) and resumed, against one uninterrupted process.
    Tolerance: the gradient all-reduce sums in another order (float32 rounding over 20 AdamW steps)."""
    from monosemantic.lm.model import Transformer
    from monosemantic.lm.train import train

    cfg, model_cfg, train_s, val_s = ddp_worker.transformer_setup()
    ref, _ = train(cfg, model_cfg, 1, train_s, val_s, torch.device("cpu"), progress=False)
    two = tmp_path / "two"
    log = torchrun("--transformer", str(two), "12")
    assert log.count("resuming from") == 2, log  # both ranks resumed from their step-10 checkpoints
    got = Transformer.load(two / "model")
    a, b = ref.state_dict(), got.state_dict()
    assert a.keys() == b.keys()
    moved = max((a[k] - build_init(model_cfg)[k]).abs().max().item() for k in a)
    assert moved > 1e-3  # the models trained: equality is not just the shared initialisation
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-5)
    assert not (two / "ckpt" / "A.rank1.pt").exists() and (two / "live").exists()


def build_init(model_cfg):
    from monosemantic.lm.model import build_model

    return build_model(model_cfg, 1).state_dict()
