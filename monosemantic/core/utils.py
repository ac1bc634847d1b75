"""Small shared helpers: atomic writes, devices, seeds, JSON."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it onto `path` (atomic on POSIX).

    A killed or failing writer leaves no half-written artifact behind, only a removed temp file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# Wall-clock measurements (keys like "seconds", "tokens_per_s", "wall_time_s") differ on every run, so they never
# go into a tracked output: write_json moves them to logs/timings/ (untracked), so that a rerun from scratch
# gives byte-identical outputs and the same md5s in dvc.lock.
TIMING_KEY = re.compile(r"(seconds|_per_s|_time_s|elapsed)$")
TIMINGS_DIR = Path("logs/timings")


def split_timings(obj: Any) -> tuple[Any, Any]:
    """(obj without timing keys, the timing entries alone or None), recursively through dicts and lists."""
    if isinstance(obj, dict):
        kept, timed = {}, {}
        for k, v in obj.items():
            if isinstance(k, str) and TIMING_KEY.search(k):
                timed[k] = v
                continue
            kept[k], t = split_timings(v)
            if t is not None:
                timed[k] = t
        return kept, (timed or None)
    if isinstance(obj, list):
        pairs = [split_timings(v) for v in obj]
        timed = [t for _, t in pairs]
        return [k for k, _ in pairs], (timed if any(t is not None for t in timed) else None)
    return obj, None


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically; timing entries go to logs/timings/<path>.json instead (see TIMING_KEY)."""
    kept, timed = split_timings(obj)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(kept, indent=2, sort_keys=False) + "\n")
    if timed is not None:
        log = TIMINGS_DIR / (str(Path(path)).strip("/").replace("/", "__"))
        with atomic_path(log) as tmp:
            tmp.write_text(json.dumps(timed, indent=2) + "\n")


def write_csv(df, path: str | Path) -> None:
    """Write a pandas frame as CSV atomically (6 significant digits, no index)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def truncate_live(live_dir: Path, step: int) -> None:
    """Drop the dvclive rows logged after `step` by a killed run, so a resumed run's curves have no repeats."""
    for tsv in (Path(live_dir) / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text().splitlines()
        if not lines or "step" not in lines[0].split("\t"):
            continue
        header, rows = lines[0], lines[1:]
        col = header.split("\t").index("step")
        kept = [r for r in rows if int(r.split("\t")[col]) <= step]
        tsv.write_text("\n".join([header, *kept]) + "\n")


class PipelineError(Exception):
    """An error the pipeline expects (bad params, a missing or corrupt artifact, a diverged run): a stage prints
    its message alone, without a traceback (runner.stage). Each part of the package subclasses it."""


class DeviceError(PipelineError, RuntimeError):
    pass


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device: cuda was requested but no CUDA GPU is visible; use device: auto or cpu")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX-BF16 or AVX512-BF16 in /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """The matmul precision actually used: 'fp32' or 'bf16'. 'auto' takes bf16 on a GPU and on a CPU with
    native bf16 matrix instructions, fp32 elsewhere (bf16 emulated in software is slower than fp32)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()) else "fp32"
    if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        print("warning: precision: bf16 on a CPU without bf16 matrix units (no amx_bf16 / avx512_bf16): PyTorch "
              "emulates it, about 8x slower than fp32 (measured on an AVX2 AMD EPYC); precision: auto picks fp32 "
              "here", file=sys.stderr)
    return precision


def autocast(device: torch.device, precision: str = "fp32"):
    """bf16 autocast (matmuls in bf16, reductions and losses in fp32) when precision is 'bf16', else a no-op
    (exact fp32). precision must already be resolved (resolve_precision)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's CPU threads set to n inside the block and restored after it (stages also run in-process in the
    tests). fp32 sums depend on the thread count, so a stage that sets it from params computes the same bits on
    any machine with at least that many cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch.Generator seeded the same way for explicit use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def fail(message: str, code: int = 2) -> None:
    """Print one clear error message (no traceback) and exit; used by the stage scripts."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
