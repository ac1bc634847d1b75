"""The interface every dictionary architecture implements.

One file per architecture in this folder (standard.py: the paper's 2023 recipe; standard_2024.py, topk.py,
jumprelu.py, gated.py: the recipes that followed it), each a subclass of `SAE`, registered by one line in
__init__.py. What the training loop (sae/train.py), the evaluation, the analyses and the browser may rely on:

    sae = cls(d, n_features, settings, generator)     settings: an instance of cls.Settings (the run's own keys)
    f = sae.encode(x)          (B, F) non-negative feature activations of activations x (B, d)
    x_hat = sae.decode(f)      (B, d)
    terms = sae.loss(x, step, steps)                  the training loss by autograd (LossTerms)
    sae.init_from_data(x)      data-dependent initialisation from the first inputs (b_d, scales, thresholds)
    sae.before_step(step, steps) / sae.after_step(step, steps)   around each optimizer step
    sae.lr_scale(step, steps)  multiplier of the learning rate at this step (a schedule; 1.0: constant)
    sae.save(out_dir, **metadata) / SAE.load(out_dir)  the SAELens layout (see `save`)
    sae.W_d                    (d, F) decoder, feature i's direction in column i (browser, analyses)

`step` is the 0-based index of the step being taken and `steps` the run's total. An architecture's settings
are a frozen dataclass `Settings` of the keys its `sae_runs` entries carry besides model, n_features and
architecture (core/config.py builds it with the same strict schema as every section: unknown or missing keys
and bad values are reported in one message). `Settings.knob` names its sparsity knob (l1, k, ...): the column
the sweep table and the recipes comparison report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from monosemantic.core.utils import atomic_path, write_json
from monosemantic.sae.model import HOOK_NAME  # noqa: F401 - the hook the SAEs read (cfg.json hook_name)

WEIGHTS_FILE = "sae_weights.safetensors"
CFG_FILE = "cfg.json"
# cfg.json key naming our architecture when SAELens loads it under another name (standard_2024 -> "standard")
ARCH_KEY = "monosemantic_architecture"


@dataclass
class LossTerms:
    """One batch's loss and the feature statistics the training loop logs."""

    total: torch.Tensor  # the training objective, a scalar (carries autograd history on the autograd path)
    mse: torch.Tensor  # mean over elements of (x̂ − x)²
    l1: torch.Tensor  # mean over the batch of Σ_i f_i (logged for every architecture, penalised or not)
    l0: torch.Tensor  # mean over the batch of #{i : f_i > 0}
    fire_counts: torch.Tensor  # (F,) int64: in how many inputs of the batch each feature fired
    # auxiliary terms of `total` besides mse (e.g. {"aux": AuxK loss, "penalty": λ·L0}), logged as train/NAME
    extra: dict[str, torch.Tensor] = field(default_factory=dict)


class SAE(nn.Module):
    """Base class of the dictionary architectures (see the module docstring for the contract)."""

    architecture: ClassVar[str]  # registry key, our name (sae_runs' `architecture`)
    saelens_architecture: ClassVar[str]  # the name SAELens loads it under (cfg.json "architecture")
    Settings: ClassVar[type]  # frozen dataclass of the run's own keys; Settings.knob names the sparsity knob
    resamples: ClassVar[bool] = False  # the paper's dead-feature resampling (sae.resample) applies
    # a closed-form `manual_backward(x, max_density) -> LossTerms` that accumulates the gradients of `loss` into
    # .grad (the CPU fast path), with `set_encoder_screen(setting, device)` (sae.encoder_screen) beside it
    has_manual_backward: ClassVar[bool] = False

    def __init__(self, d: int, n_features: int, settings, generator: torch.Generator | None = None):
        super().__init__()
        self.d, self.n_features, self.settings = d, n_features, settings

    # -------------------------------------------------------------------------------- the model

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor, step: int = 0, steps: int = 1) -> LossTerms:
        raise NotImplementedError

    @torch.no_grad()
    def reconstruction_loss(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Per-input squared reconstruction error ‖x − x̂‖², shape (B,)."""
        return torch.cat([(self(c) - c).pow(2).sum(dim=-1) for c in x.split(chunk)])

    # ------------------------------------------------------------------------------ training hooks

    def init_from_data(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation from the first inputs x (default: none)."""

    def before_step(self, step: int, steps: int) -> None:
        """After the gradients, before the optimizer step (default: nothing)."""

    def after_step(self, step: int, steps: int) -> None:
        """After the optimizer step (default: nothing)."""

    def lr_scale(self, step: int, steps: int) -> float:
        """Learning-rate multiplier at `step` (default: a constant learning rate)."""
        return 1.0

    # ------------------------------------------------------------------------------- persistence

    def saelens_tensors(self) -> dict[str, torch.Tensor]:
        """The weights under SAELens's names and shapes (W_enc (d, F), W_dec (F, d), b_enc, b_dec, ...)."""
        raise NotImplementedError

    def load_saelens_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def saelens_cfg(self) -> dict:
        """cfg.json entries after the metadata (the architecture's own: k, l1_coefficient, ...)."""
        return {}

    def save(self, out_dir: str | Path, **metadata) -> None:
        """Write sae_weights.safetensors and cfg.json in the layout SAELens's SAE.load_from_disk reads.

        `metadata` (e.g. model_name, hook_name, context_size) is recorded at the top level (SAELens < 6 reads
        it there) and under "metadata" (SAELens 6)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.saelens_tensors().items()}
        with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
            save_file(tensors, str(tmp))
        meta = {"model_name": "monosemantic-1L", "hook_name": HOOK_NAME, "hook_layer": 0,
                "hook_head_index": None, "context_size": None, "prepend_bos": False,
                "dataset_path": None, "dataset_trust_remote_code": False,
                "model_from_pretrained_kwargs": {}, "seqpos_slice": [None], **metadata}
        cfg = {
            "architecture": self.saelens_architecture,
            "d_in": self.d,
            "d_sae": self.n_features,
            "dtype": "float32",
            "device": "cpu",
            "apply_b_dec_to_input": True,
            "normalize_activations": "none",
            "reshape_activations": "none",
            "activation_fn": "relu",
            "activation_fn_str": "relu",
            "activation_fn_kwargs": {},
            "finetuning_scaling_factor": False,
            "sae_lens_training_version": None,
            "hook_point": meta["hook_name"],
            "hook_point_layer": meta["hook_layer"],
            **meta,
            "metadata": meta,
            **self.saelens_cfg(),
        }
        write_json(out_dir / CFG_FILE, cfg)

    @classmethod
    def from_saved(cls, cfg: dict, tensors: dict[str, torch.Tensor]) -> "SAE":
        """The SAE a saved cfg.json and its tensors describe (the settings are read back from cfg)."""
        raise NotImplementedError

    @staticmethod
    def read(out_dir: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
        """(cfg.json, tensors) of a saved SAE directory."""
        out_dir = Path(out_dir)
        return json.loads((out_dir / CFG_FILE).read_text()), load_file(str(out_dir / WEIGHTS_FILE))
