"""STUB (to be written): the jumprelu architecture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from monosemantic.sae.architectures.base import SAE


@dataclass(frozen=True)
class JumpReLUSettings:
    l0_coeff: float
    knob: ClassVar[str] = "l0_coeff"


class JumpReLUSAE(SAE):
    architecture = "jumprelu"
    saelens_architecture = "jumprelu"
    Settings = JumpReLUSettings
