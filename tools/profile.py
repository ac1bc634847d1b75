"""Apply a profile: params.yaml (the default) merged with configs/NAME.yaml, validated, written as a params file.

    python -m tools.profile smoke                  # rewrites params.yaml in place (`git checkout params.yaml` goes back)
    python -m tools.profile paper --out /tmp/p.yaml    # writes the merged params elsewhere; params.yaml untouched
    python -m tools.profile --list                 # the profiles in configs/

A profile (configs/*.yaml) holds only the values that differ from params.yaml; the merge rule is
monosemantic.core.config.merge_profile (mappings merge key by key, the keys of REPLACED_WHOLE are replaced whole).
The result is validated by the full schema before anything is written. The file written starts with a line
naming the profile: a params.yaml that starts with it is not the default, so applying another profile onto it is
refused (restore the default first: `git checkout params.yaml`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from monosemantic.core.config import ConfigError, params_from_dict, profile_dict, profile_path

ROOT = Path(__file__).resolve().parents[1]


class _Flow(dict):
    """A mapping written on one line, as params.yaml writes a run of the sweep ({model: A, n_features: 512, ...})."""


class _Dumper(yaml.SafeDumper):
    """Sections in block style, one key a line; lists and the innermost mappings of a section on one line."""


_Dumper.add_representer(_Flow, lambda d, m: d.represent_mapping("tag:yaml.org,2002:map", m, flow_style=True))
_Dumper.add_representer(list, lambda d, s: d.represent_sequence("tag:yaml.org,2002:seq", s, flow_style=True))


def _styled(value, depth: int = 0):
    """value with every mapping below a top-level section that holds no mapping marked _Flow."""
    if not isinstance(value, dict):
        return value
    inner = {k: _styled(v, depth + 1) for k, v in value.items()}
    leaf = not any(isinstance(v, dict) and v for v in value.values())
    return _Flow(inner) if depth >= 2 and leaf else inner


def to_yaml(data: dict) -> str:
    """A complete params mapping as readable YAML, in its own key order (sort_keys=False)."""
    return yaml.dump(_styled(data), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def header(name: str) -> str:
    """The first lines of a written params file; the first matches monosemantic.core.config.GENERATED."""
    return (f"# profile: {name} (written by python -m tools.profile {name}: params.yaml merged with "
            f"configs/{name}.yaml)\n"
            "# Edit the profile, not this file; `git checkout params.yaml` restores the default params.yaml.\n")


def render(name: str, base: str | Path | None = None) -> str:
    """The merged, validated params file of profile `name` (a name in configs/ or a path), as YAML text."""
    path = profile_path(name, ROOT)
    if not Path(path).is_file():
        known = ", ".join(p.stem for p in sorted((ROOT / "configs").glob("*.yaml")))
        raise ConfigError(f"{path}: no such profile (known: {known})")
    data = profile_dict(path, base if base is not None else ROOT / "params.yaml")
    params_from_dict(data, f"params.yaml + {path}")
    text = header(Path(path).stem) + to_yaml(data)
    if yaml.safe_load(text) != data:  # the YAML round trip keeps every value (and type)
        raise ConfigError(f"{path}: the merged params do not survive a YAML round trip")
    return text


def apply(name: str, out: str | Path | None = None, base: str | Path | None = None) -> Path:
    """Write the merged params of profile `name` to `out` (default: params.yaml, in place); returns the path."""
    text = render(name, base)
    dest = Path(out) if out is not None else ROOT / "params.yaml"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.profile", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", help="a profile in configs/ (smoke, medium, paper) or a path to one")
    ap.add_argument("--out", help="write here instead of params.yaml")
    ap.add_argument("--base", help="the default params file to merge onto (default: params.yaml)")
    ap.add_argument("--list", action="store_true", help="list the profiles in configs/")
    args = ap.parse_args(argv)
    if args.list or not args.name:
        print("\n".join(p.stem for p in sorted((ROOT / "configs").glob("*.yaml"))))
        return 0 if args.list else 2
    try:
        dest = apply(args.name, args.out, args.base)
    except ConfigError as e:
        print(f"[profile] {e}", file=sys.stderr)
        return 1
    print(f"[profile] {args.name}: wrote {dest}" + ("" if args.out else " (`git checkout params.yaml` goes back)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
