"""Activation stores refuse bad shards at open, before any compute, with one message naming the file and the fix:
a corrupted shard (sha256), a truncated, padded or missing shard, a shard whose header disagrees with the
manifest, and a manifest whose row count disagrees with its shards."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monosemantic.core.config import profile_dict
from monosemantic.lm import store as S
from monosemantic.lm.store import ActivationStore, StoreError

ROOT = Path(__file__).resolve().parents[1]


def make_store(path: Path, sizes=(100, 100, 56), d=8, dtype="float16", seed=0) -> np.ndarray:
    path.mkdir(parents=True)
    rows = torch.randn(sum(sizes), d, generator=torch.Generator().manual_seed(seed)).abs()
    shards, start = [], 0
    for i, n in enumerate(sizes):
        shards.append(S.save_shard(path / f"shard_{i:05d}.npy", S.to_storage(rows[start:start + n], dtype)))
        start += n
    S.write_manifest(path, shards, d, dtype)
    return S.from_storage(S.to_storage(rows, dtype), dtype).numpy()


def test_intact_store_reads_back(tmp_path):
    expected = make_store(tmp_path / "s")
    store = ActivationStore(tmp_path / "s")
    assert store.n_points == 256 and np.array_equal(store.read(0, 256).numpy(), expected)
    assert np.array_equal(store.read(90, 210).numpy(), expected[90:210])  # across shard boundaries


def test_corrupted_shard_is_refused_at_open(tmp_path):
    make_store(tmp_path / "s")
    shard = tmp_path / "s" / "shard_00001.npy"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x10  # one bit of one value: same size, valid header
    shard.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"shard_00001\.npy: sha256 differs.*sampling stage"):
        ActivationStore(tmp_path / "s")
    ActivationStore(tmp_path / "s", verify=False)  # the cheap checks alone cannot see a flipped bit


def test_verification_is_cached_per_file_version(tmp_path, monkeypatch):
    make_store(tmp_path / "s")
    calls = []
    real = S.sha256_file
    monkeypatch.setattr(S, "sha256_file", lambda p: calls.append(p) or real(p))
    ActivationStore(tmp_path / "s")
    ActivationStore(tmp_path / "s")
    assert len(calls) == 3  # three shards, hashed once per process
    shard = tmp_path / "s" / "shard_00002.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(1, 1))  # a rewritten file is a new version: hashed again
    with pytest.raises(StoreError, match="sha256 differs"):
        ActivationStore(tmp_path / "s")


def test_truncated_shard_is_refused_at_open(tmp_path):
    make_store(tmp_path / "s")
    shard = tmp_path / "s" / "shard_00000.npy"
    shard.write_bytes(shard.read_bytes()[:-16])
    with pytest.raises(StoreError, match=r"shard_00000\.npy: \d+ bytes where its header needs \d+"):
        ActivationStore(tmp_path / "s", verify=False)


def test_missing_shard_and_wrong_header_are_refused(tmp_path):
    make_store(tmp_path / "a")
    (tmp_path / "a" / "shard_00002.npy").unlink()
    with pytest.raises(StoreError, match=r"shard_00002\.npy: shard listed in the manifest is missing"):
        ActivationStore(tmp_path / "a")
    make_store(tmp_path / "b")
    np.save(tmp_path / "b" / "shard_00001.npy", np.zeros((100, 4), np.float16))  # wrong width
    with pytest.raises(StoreError, match=r"holds \(100, 4\) float16 but the manifest lists \(100, 8\)"):
        ActivationStore(tmp_path / "b", verify=False)
    make_store(tmp_path / "c")
    (tmp_path / "c" / "shard_00000.npy").write_bytes(b"not a numpy file at all")
    with pytest.raises(StoreError, match="not a readable .npy shard"):
        ActivationStore(tmp_path / "c", verify=False)


def test_manifest_row_count_must_match_its_shards(tmp_path):
    make_store(tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    manifest["n_points"] = 300
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="the shards hold 256 rows, the manifest says n_points 300"):
        ActivationStore(tmp_path / "s")


def test_train_sae_stage_reports_a_corrupted_shard_without_a_traceback(tmp_path):
    """End to end through the stage script: one line naming the shard, exit code 2, nothing written."""
    import yaml

    params = profile_dict(ROOT / "configs" / "smoke.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run_name = next(iter(params["sae_runs"]))
    model = params["sae_runs"][run_name]["model"]
    store_dir = tmp_path / "artifacts" / "activations" / model / "train"
    make_store(store_dir.parent / "tmp")
    (store_dir.parent / "tmp").rename(store_dir)
    shard = store_dir / "shard_00001.npy"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01
    shard.write_bytes(bytes(data))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "stages.train_sae", run_name], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "shard_00001.npy: sha256 differs" in r.stderr
    assert not (tmp_path / "artifacts" / "sae").exists() and not (tmp_path / "checkpoints").exists()
