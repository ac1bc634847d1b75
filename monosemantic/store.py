"""Activation stores: fixed-size, memory-mappable shards of MLP activations plus a manifest.

Layout of a store directory:

    manifest.json          {"n_points", "d", "dtype", "shards": [{"file", "n", "sha256"}], ...}
    shard_00000.npy        (n, d) float16 / float32, or bfloat16 kept as uint16 bits
    index.npz              per point, in store order: doc, pos (position in its document),
                           token (global index into the token stream), context_start (global index)

Readers see a flat array of n_points rows: `store.read(start, stop)` returns float32 rows, touching only the
shards it needs, so memory stays bounded whatever the store size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from .utils import atomic_path, write_json

DTYPES = {"float16": np.float16, "float32": np.float32, "bfloat16": np.uint16}


class StoreError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def to_storage(x: torch.Tensor, dtype: str) -> np.ndarray:
    """float32 tensor -> numpy array in the storage dtype (bfloat16 as its uint16 bit pattern)."""
    if dtype == "bfloat16":
        return x.to(torch.bfloat16).view(torch.uint16).numpy()
    return x.to(getattr(torch, dtype)).numpy()


def from_storage(a: np.ndarray, dtype: str) -> torch.Tensor:
    """numpy rows in the storage dtype -> float32 tensor."""
    t = torch.from_numpy(np.array(a, copy=True))  # memmaps are read-only; copy before handing to torch
    if dtype == "bfloat16":
        t = t.view(torch.bfloat16)
    return t.to(torch.float32)


def save_shard(path: Path, rows: np.ndarray) -> dict:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, rows, allow_pickle=False)
    return {"file": path.name, "n": int(rows.shape[0]), "sha256": sha256_file(path)}


def write_manifest(out_dir: Path, shards: list[dict], d: int, dtype: str, **extra) -> None:
    manifest = {"n_points": int(sum(s["n"] for s in shards)), "d": int(d), "dtype": dtype, **extra,
                "shards": shards}
    write_json(out_dir / "manifest.json", manifest)


def write_index(out_dir: Path, **arrays: np.ndarray) -> None:
    with atomic_path(out_dir / "index.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


class ActivationStore:
    """Read-only view of a store directory as one (n_points, d) float32 array."""

    def __init__(self, path: str | Path, verify: bool = False):
        self.path = Path(path)
        mpath = self.path / "manifest.json"
        if not mpath.exists():
            raise StoreError(f"{self.path}: no manifest.json; run the sampling stage (`dvc repro`)")
        self.manifest = json.loads(mpath.read_text())
        self.n_points: int = self.manifest["n_points"]
        self.d: int = self.manifest["d"]
        self.dtype: str = self.manifest["dtype"]
        self._shards = []
        self._starts = [0]
        for s in self.manifest["shards"]:
            p = self.path / s["file"]
            if not p.exists():
                raise StoreError(f"{p}: shard listed in the manifest is missing; rerun the sampling stage")
            if verify and sha256_file(p) != s["sha256"]:
                raise StoreError(f"{p}: sha256 differs from the manifest; the shard is corrupted")
            self._shards.append(p)
            self._starts.append(self._starts[-1] + s["n"])
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.n_points

    def _map(self, i: int) -> np.ndarray:
        if i not in self._maps:
            self._maps[i] = np.load(self._shards[i], mmap_mode="r")
        return self._maps[i]

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) as float32."""
        if not 0 <= start <= stop <= self.n_points:
            raise IndexError(f"rows [{start}, {stop}) outside store of {self.n_points}")
        parts = []
        i = int(np.searchsorted(self._starts, start, side="right")) - 1
        while start < stop:
            lo, hi = self._starts[i], self._starts[i + 1]
            take = min(stop, hi) - start
            parts.append(self._map(i)[start - lo:start - lo + take])
            start += take
            i += 1
        if not parts:
            return torch.empty(0, self.d)
        return from_storage(np.concatenate(parts) if len(parts) > 1 else parts[0], self.dtype)

    def index(self) -> dict[str, np.ndarray]:
        with np.load(self.path / "index.npz") as z:
            return {k: z[k] for k in z.files}


class ArrayStore:
    """An in-memory store with the same read interface (tests, toy models)."""

    def __init__(self, x: torch.Tensor):
        self.x = x.float()
        self.n_points, self.d = self.x.shape

    def __len__(self) -> int:
        return self.n_points

    def read(self, start: int, stop: int) -> torch.Tensor:
        if not 0 <= start <= stop <= self.n_points:
            raise IndexError(f"rows [{start}, {stop}) outside store of {self.n_points}")
        return self.x[start:stop]
