"""STUB (to be written): the gated architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monosemantic.sae.architectures.base import SAE


@dataclass(frozen=True)
class GatedSettings:
    l1: float
    knob: ClassVar[str] = "l1"


class GatedSAE(SAE):
    architecture = "gated"
    saelens_architecture = "gated"
    Settings = GatedSettings
