"""STUB (to be written): the topk architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monosemantic.sae.architectures.base import SAE


@dataclass(frozen=True)
class TopKSettings:
    k: float
    knob: ClassVar[str] = "k"


class TopKSAE(SAE):
    architecture = "topk"
    saelens_architecture = "topk"
    Settings = TopKSettings
