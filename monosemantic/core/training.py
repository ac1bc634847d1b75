"""Resumable training, shared by the transformer loop (lm/train.py) and the SAE loop (sae/train.py).

A training run that is killed restarts from its last checkpoint and ends bit-identical to an uninterrupted run.
What that takes, in one place:

* `fingerprint(run, data)`: what identifies a run, the sha256 of its settings (JSON, sorted keys) followed by
  bytes that identify its data. A checkpoint is resumed only by a run with the same fingerprint.
* `Checkpointer(path, fingerprint)`: `save(state)` writes one atomic file, CHECKPOINT_MAGIC + the sha256 of the
  torch.save payload + a newline + the payload (the digest inside the same file: no kill can leave a checkpoint
  and its checksum out of step); `load()` returns the state, or None with one message when the file is absent,
  corrupted (its sha256 differs), unreadable, or written for another fingerprint. Never a partial resume.
* `rng_state(**generators)` / `restore_rng(state, **generators)`: torch's global RNG and the run's own
  generators (data order, resampling), saved with the checkpoint so a resumed run draws the same numbers.
* `LiveLog(live_dir, resume_step)`: the dvclive curves (never touching dvc.yaml or DVC experiments). A resumed
  run first drops the rows a killed run logged after its checkpoint (utils.truncate_live), so the curves equal
  an unbroken run's; a fresh run starts from an empty folder.
* `check_finite(loss, step)`: a NaN/inf loss stops training with NonFiniteLossError before the optimizer step,
  so the last checkpoint on disk stays good.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import torch

from monosemantic.core.utils import PipelineError, atomic_path, truncate_live

PACKAGE = Path(__file__).resolve().parents[1]  # monosemantic/: code_digest's file names are relative to it
CHECKPOINT_MAGIC = b"monosemantic checkpoint, sha256 of the torch.save payload below: "


class CorruptCheckpointError(PipelineError, ValueError):
    pass


class NonFiniteLossError(PipelineError, RuntimeError):
    pass


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(run: dict, data: bytes = b"") -> str:
    """sha256 of the run's settings (JSON with sorted keys; values JSON cannot encode are written as str)
    followed by `data`, bytes that identify the training data."""
    return sha256(json.dumps(run, sort_keys=True, default=str).encode() + data)


def code_digest(files: tuple[str, ...]) -> dict[str, str]:
    """{file: sha256} of package files (paths relative to monosemantic/): the code a checkpoint depends on."""
    return {name: sha256((PACKAGE / name).read_bytes()) for name in files}


# ---------------------------------------------------------------------------------------- checkpoints


def write_checkpoint(path: Path, state: dict) -> None:
    """One atomic file: CHECKPOINT_MAGIC, the payload's sha256 (64 hex digits), a newline, the torch.save payload."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(CHECKPOINT_MAGIC + sha256(payload).encode() + b"\n" + payload)


def checkpoint_state(path: Path) -> dict:
    """The state of a checkpoint file (tensors on the CPU) after checking its sha256; CorruptCheckpointError if
    the file is not a checkpoint or its payload differs from the digest it records."""
    data = Path(path).read_bytes()
    head = len(CHECKPOINT_MAGIC)
    digest, payload = data[head:head + 64], data[head + 65:]
    if not data.startswith(CHECKPOINT_MAGIC) or sha256(payload).encode() != digest:
        raise CorruptCheckpointError(f"{path}: corrupted checkpoint (sha256 differs from the one it records)")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


class Checkpointer:
    """The checkpoint of one run at `path` (None: no checkpointing), valid only for `fingerprint`."""

    def __init__(self, path: str | Path | None, fingerprint: str):
        self.path = Path(path) if path is not None else None
        self.fingerprint = fingerprint

    def save(self, state: dict) -> None:
        if self.path is not None:
            write_checkpoint(self.path, {**state, "fingerprint": self.fingerprint})

    def load(self) -> dict | None:
        """The saved state if the file exists, is intact and was written for this fingerprint; else None,
        after one message saying why the run starts afresh."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = checkpoint_state(self.path)
        except CorruptCheckpointError as e:
            print(f"{e}; starting afresh")
            return None
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is discarded, never resumed
            print(f"{self.path}: unreadable checkpoint ({type(e).__name__}: {e}); starting afresh")
            return None
        if state.get("fingerprint") != self.fingerprint:
            print(f"{self.path}: written for different settings, data or code; starting afresh")
            return None
        return state

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------- RNG state


def rng_state(**generators: torch.Generator) -> dict:
    """torch's global (CPU) RNG state and that of each named generator."""
    return {"torch": torch.get_rng_state(), **{name: g.get_state() for name, g in generators.items()}}


def restore_rng(state: dict, **generators: torch.Generator) -> None:
    """Put back what rng_state saved: the global RNG and the generators of the same names."""
    torch.set_rng_state(state["torch"])
    for name, g in generators.items():
        g.set_state(state[name])


# ---------------------------------------------------------------------------------------- curves, NaN stop


class LiveLog:
    """dvclive curves in live_dir (None: nothing is logged). resume_step: the step a resumed run restarts from
    (rows logged after it are dropped first), or None for a fresh run (the folder is cleared)."""

    def __init__(self, live_dir: str | Path | None, resume_step: int | None):
        self.live = None
        if live_dir is None:
            return
        from dvclive import Live

        live_dir = Path(live_dir)
        if resume_step is None:
            if live_dir.exists():
                shutil.rmtree(live_dir)  # curves of a run that is not resumed
        else:
            truncate_live(live_dir, resume_step)
        self.live = Live(dir=str(live_dir), resume=resume_step is not None, save_dvc_exp=False, dvcyaml=None,
                         report=None)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """Log each value at `step` as given (an int is written as an int, a float as a float)."""
        if self.live is None:
            return
        self.live.step = step
        for name, value in metrics.items():
            self.live.log_metric(name, value)

    def summary(self) -> None:
        """Write the latest values to live_dir/metrics.json now (end() does it too)."""
        if self.live is not None:
            self.live.make_summary()

    def end(self) -> None:
        if self.live is not None:
            self.live.end()


def check_finite(loss: torch.Tensor, step: int, advice: str = "", **parts: torch.Tensor) -> None:
    """Raise NonFiniteLossError when `loss` is NaN or ±inf at training step `step` (1-based), before the
    optimizer step; the message gives the loss, the named `parts` (e.g. mse, l1) and `advice`."""
    if torch.isfinite(loss.detach()).item():
        return
    detail = ", ".join(f"{name} {value.item()}" for name, value in parts.items())
    raise NonFiniteLossError(f"non-finite loss ({loss.item()}) at step {step}" + (f" ({detail})" if detail else "")
                             + "; stopped before the optimizer step (the last checkpoint is kept)"
                             + (f"; {advice}" if advice else ""))
