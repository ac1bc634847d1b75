"""STUB (to be written): the standard_2024 architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monosemantic.sae.architectures.base import SAE


@dataclass(frozen=True)
class Standard2024Settings:
    l1: float
    knob: ClassVar[str] = "l1"


class Standard2024SAE(SAE):
    architecture = "standard_2024"
    saelens_architecture = "standard"
    Settings = Standard2024Settings
