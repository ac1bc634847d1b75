"""Activation stores: fixed-size, memory-mappable shards of MLP activations plus a manifest.

Layout of a store directory:

    manifest.json          {"n_points", "d", "dtype", "shards": [{"file", "n", "sha256"}], ...}
    shard_00000.npy        (n, d) float16 / float32, or bfloat16 kept as uint16 bits
    index.npz              per point, in store order: doc, pos (position in its document),
                           token (global index into the token stream), context_start (global index)

Readers see a flat array of n_points rows: `store.read(start, stop)` returns float32 rows, touching only the
shards it needs, so memory stays bounded whatever the store size.

Opening a store checks it before any compute, with one StoreError naming the shard and the fix: every shard
listed in the manifest exists, its .npy header agrees with the manifest (rows, width, dtype) and the file is
exactly as long as the header says (a truncated copy fails here, not deep inside a memmap), and, with
verify=True (the default), its sha256 equals the manifest's. Hashing runs at ~1.5 GB/s on one core
(measured: a 2 GB store, the default profile's training activations, takes ~1.4 s), so stages keep it on;
a store is hashed at most once per process.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from monosemantic.core.utils import PipelineError, atomic_path, write_json

DTYPES = {"float16": np.float16, "float32": np.float32, "bfloat16": np.uint16}


class StoreError(PipelineError, RuntimeError):
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


FIX = "rerun the sampling stage (`dvc repro -f sample_activations@MODEL`, or `dvc checkout` for a cached copy)"
_VERIFIED: set[tuple] = set()  # (shard path, size, mtime_ns, sha256) already hashed by this process


def check_shard(path: Path, n: int, d: int, dtype: str) -> None:
    """The shard's .npy header says (n, d) rows of `dtype`, and the file holds exactly that many bytes."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, stored = read_header(fh)
            offset = fh.tell()
    except (OSError, ValueError, SyntaxError) as e:
        raise StoreError(f"{path}: not a readable .npy shard ({e}); {FIX}") from None
    if tuple(shape) != (n, d) or fortran or stored != np.dtype(DTYPES[dtype]):
        raise StoreError(f"{path}: holds {tuple(shape)} {stored} but the manifest lists ({n}, {d}) {dtype}; {FIX}")
    expected = offset + n * d * np.dtype(DTYPES[dtype]).itemsize
    size = path.stat().st_size
    if size != expected:
        raise StoreError(f"{path}: {size} bytes where its header needs {expected} (truncated or padded); {FIX}")


class ActivationStore:
    """Read-only view of a store directory as one (n_points, d) float32 array.

    verify: also compare each shard's sha256 with the manifest (see the module docstring for the cost).
    """

    def __init__(self, path: str | Path, verify: bool = True):
        self.path = Path(path)
        mpath = self.path / "manifest.json"
        if not mpath.exists():
            raise StoreError(f"{self.path}: no manifest.json; run the sampling stage (`dvc repro`)")
        try:
            self.manifest = json.loads(mpath.read_text())
            self.n_points: int = int(self.manifest["n_points"])
            self.d: int = int(self.manifest["d"])
            self.dtype: str = self.manifest["dtype"]
            shards = list(self.manifest["shards"])
        except (ValueError, KeyError, TypeError) as e:
            raise StoreError(f"{mpath}: unreadable manifest ({e!r}); {FIX}") from None
        if self.dtype not in DTYPES:
            raise StoreError(f"{mpath}: unknown dtype {self.dtype!r} (known: {', '.join(DTYPES)})")
        if sum(int(s["n"]) for s in shards) != self.n_points:
            raise StoreError(f"{mpath}: the shards hold {sum(int(s['n']) for s in shards)} rows, the manifest "
                             f"says n_points {self.n_points}; {FIX}")
        self._shards = []
        self._starts = [0]
        for s in shards:
            p = self.path / s["file"]
            if not p.exists():
                raise StoreError(f"{p}: shard listed in the manifest is missing; {FIX}")
            check_shard(p, int(s["n"]), self.d, self.dtype)
            if verify:
                st = p.stat()
                key = (str(p.resolve()), st.st_size, st.st_mtime_ns, s["sha256"])
                if key not in _VERIFIED:
                    if sha256_file(p) != s["sha256"]:
                        raise StoreError(f"{p}: sha256 differs from the manifest; the shard is corrupted; {FIX}")
                    _VERIFIED.add(key)
            self._shards.append(p)
            self._starts.append(self._starts[-1] + int(s["n"]))
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
    """An in-memory store with the same read interface (tests, toy models, activations already read)."""

    def __init__(self, x: torch.Tensor):
        self.x = x.float()
        self.n_points, self.d = self.x.shape

    def __len__(self) -> int:
        return self.n_points

    def read(self, start: int, stop: int) -> torch.Tensor:
        if not 0 <= start <= stop <= self.n_points:
            raise IndexError(f"rows [{start}, {stop}) outside store of {self.n_points}")
        return self.x[start:stop]
