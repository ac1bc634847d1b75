"""What an activation store is made from, as opposed to the bytes it holds.

The store's bytes differ between CPUs: the forward pass rounds differently in its last fp32 bits, then float16
storage keeps some of those differences. A dictionary trained on the committed store must not be invalidated
because a user on another CPU regenerated the store, so `train_sae` depends on the store's identity
(artifacts/activations/MODEL/identity.json, written by sample_activations) instead of its bytes. The identity is
everything the rows are a function of, up to rounding:

    sha256 of the model's weights,  sha256 of every token file,  the sampling settings (the `activations`
    section),  the training mix the train points follow,  the precision the forward pass ran in (resolved).

The sampling *code* is covered by train_sae's own code deps (it imports the sampling modules), so a change of the
model, the tokens, a sampling setting, the mix, the precision or the sampling code still invalidates every
dictionary trained on the store (tests/test_identity.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path

from monosemantic.lm.store import sha256_file
from monosemantic.core.utils import write_json

IDENTITY_FILE = "identity.json"


def activation_identity(model_file: str | Path, token_dir: str | Path, settings, mix: dict | None,
                        precision: str) -> dict:
    """The identity of the activations of the model in `model_file` on the tokens in `token_dir` (see module)."""
    token_dir = Path(token_dir)
    tokens = {p.relative_to(token_dir).as_posix(): sha256_file(p)
              for p in sorted(token_dir.rglob("*")) if p.is_file()}
    return {"model_sha256": sha256_file(Path(model_file)), "tokens_sha256": tokens,
            "activations": asdict(settings) if is_dataclass(settings) else dict(settings),
            "mix": dict(sorted((mix or {}).items())), "precision": precision}


def write_identity(out_dir: str | Path, identity: dict) -> Path:
    path = Path(out_dir) / IDENTITY_FILE
    write_json(path, identity)
    return path


def read_identity(out_dir: str | Path) -> dict:
    return json.loads((Path(out_dir) / IDENTITY_FILE).read_text())
