"""Strict loading of a YAML mapping into frozen dataclasses: the generic half of the configuration.

A dataclass is its own schema. Its annotations say what each key holds: int, float, str, bool, a Literal of
allowed strings, tuple[T, ...], tuple[T1, T2], dict[K, V] or a nested dataclass. No field has a default, so every
key must be spelled in the file (params.yaml holds every value, and DVC sees every one of them).

`build` walks the mapping and collects every problem (a missing key, an unknown key, a wrong type, a value
outside its Literal) into one list, so that the caller raises one ConfigError naming them all before any compute
starts; monosemantic/core/config.py adds the checks across keys (a positive size, a run of the sweep, ...).
A dataclass whose entries are laid out otherwise in the file (a run of the sweep: its architecture's settings
beside its own keys) builds itself: a classmethod `from_params(data, where, errs)`, which `build_fields` helps.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from monosemantic.core.utils import PipelineError


class ConfigError(PipelineError, ValueError):
    """Raised for an invalid params file; the message lists every problem found."""


def not_positive(section: str, cfg: Any, names: tuple[str, ...]) -> list[str]:
    """One message per field of cfg named in `names` whose value is not > 0."""
    return [f"{section}.{name}: must be positive, got {getattr(cfg, name)}" for name in names
            if getattr(cfg, name) <= 0]


def _shown(value: Any) -> str:
    """The value as a message shows it; YAML 1.1 reads a bare on/off/yes/no as a boolean, so say so."""
    if isinstance(value, bool):
        return f"{value!r} (YAML reads a bare on/off/yes/no/true/false as a boolean: quote the string)"
    return repr(value)


def _convert(tp: Any, value: Any, where: str, errs: list[str]) -> Any:
    """The YAML value converted to the annotated type; a message appended to errs on a mismatch."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        own = getattr(tp, "from_params", None)
        return own(value, where, errs) if own is not None else build(tp, value, where, errs)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) or value not in allowed:
            errs.append(f"{where}: {_shown(value)} not one of {', '.join(map(str, allowed))}")
            return None
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errs.append(f"{where}: expected a number, got {_shown(value)}")
            return None
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errs.append(f"{where}: expected an integer, got {_shown(value)}")
            return None
        return value
    if tp is str:
        if not isinstance(value, str):
            errs.append(f"{where}: expected a string, got {_shown(value)}")
            return None
        return value
    if tp is bool:
        if not isinstance(value, bool):
            errs.append(f"{where}: expected true/false, got {value!r}")
            return None
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            errs.append(f"{where}: expected a list, got {value!r}")
            return None
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]", errs) for i, v in enumerate(value))
        if len(value) != len(args):
            errs.append(f"{where}: expected {len(args)} values, got {len(value)}")
            return None
        return tuple(_convert(a, v, f"{where}[{i}]", errs) for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        ktp, vtp = typing.get_args(tp)
        if not isinstance(value, dict):
            errs.append(f"{where}: expected a mapping, got {value!r}")
            return None
        return {_convert(ktp, k, f"{where} key", errs): _convert(vtp, v, f"{where}.{k}", errs)
                for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unions are not supported in config ({where})")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


MISSING = "missing key (a params file spells every key, as params.yaml does)"


def build(cls: type, data: Any, where: str, errs: list[str]) -> Any:
    """An instance of dataclass `cls` from mapping `data` (at dotted path `where`), or None with errs extended.

    Every field is a required key; keys that are not fields are errors too."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        errs.append(f"{where or 'params'}: expected a mapping, got {data!r}")
        return None
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            errs.append(f"{prefix}{key}: unknown key (known: {', '.join(names)})")
    kwargs = build_fields(cls, names, data, where, errs, MISSING)
    if errs:
        return None
    return cls(**kwargs)


def build_fields(cls: type, names: list[str], data: dict, where: str, errs: list[str], missing: str) -> dict:
    """{name: value} of the fields `names` of dataclass `cls` present in `data`, converted to their annotated
    types; for each absent one the message `missing` appended to errs (as for every problem of a value)."""
    prefix = f"{where}." if where else ""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], prefix + name, errs)
        else:
            errs.append(f"{prefix}{name}: {missing}")
    return kwargs

