"""STUB (to be written): the standard architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monosemantic.sae.architectures.base import SAE


@dataclass(frozen=True)
class StandardSettings:
    l1: float
    knob: ClassVar[str] = "l1"


class StandardSAE(SAE):
    architecture = "standard"
    saelens_architecture = "standard"
    Settings = StandardSettings
