"""The dictionary architectures: one file each, a subclass of base.SAE, and this registry.

    get(name)        the class registered under `name` (sae_runs' `architecture`)
    load(out_dir)    the trained dictionary saved in out_dir, of whatever architecture its cfg.json names

Adding an architecture: its file here, one line in ARCHITECTURES below, its tests.
"""

from __future__ import annotations

from pathlib import Path

import torch

from monosemantic.core.utils import PipelineError
from monosemantic.sae.architectures.base import ARCH_KEY, SAE
from monosemantic.sae.architectures.gated import GatedSAE
from monosemantic.sae.architectures.jumprelu import JumpReLUSAE
from monosemantic.sae.architectures.standard import StandardSAE
from monosemantic.sae.architectures.standard_2024 import Standard2024SAE
from monosemantic.sae.architectures.topk import TopKSAE

ARCHITECTURES: dict[str, type[SAE]] = {cls.architecture: cls for cls in (
    StandardSAE,       # Bricken et al. (2023): ReLU, L1, unit-norm decoder, resampling (the paper's recipe)
    Standard2024SAE,   # Anthropic's April 2024 update: λ Σ f_i ‖W_d,i‖, no resampling, schedules
    TopKSAE,           # Gao et al. (2024): the k largest pre-activations, AuxK for dead latents
    JumpReLUSAE,       # Rajamanoharan et al. (2024b): JumpReLU, L0 penalty, straight-through estimator
    GatedSAE,          # Rajamanoharan et al. (2024a): gate and magnitude paths, auxiliary loss
)}


class UnknownArchitectureError(PipelineError, ValueError):
    pass


def get(name: str) -> type[SAE]:
    """The class registered as `name`; an error listing the known architectures otherwise."""
    if name not in ARCHITECTURES:
        raise UnknownArchitectureError(f"unknown SAE architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[name]


def load(out_dir: str | Path, device: str | torch.device = "cpu") -> SAE:
    """The dictionary saved in out_dir (SAELens layout); its class from cfg.json (our name, else SAELens's)."""
    cfg, tensors = SAE.read(out_dir)
    cls = get(cfg.get(ARCH_KEY, cfg["architecture"]))
    return cls.from_saved(cfg, tensors).to(device)
