"""Stage deps cannot drift: every module of the package that a stage script reaches by imports is a dep of the stage.

A change in a module that a stage imports but does not list would leave DVC's cached result of that stage in
place although the code that made it changed. A dep that is a folder covers every file under it.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "monosemantic"


def module_file(dotted: str) -> Path | None:
    """The file of a module of the repository's package (or None for anything outside it)."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Dotted names a file imports (relative imports resolved), including `pkg.name` for `from pkg import name`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def reached_files(script: Path) -> set[Path]:
    """Every file of the package reached from `script` by imports, transitively (package __init__s included)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        for name in imported_modules(f):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ too
                target = module_file(".".join(parts[:i]))
                if target is not None and target not in seen:
                    todo.append(target)
    return seen


def stage_scripts_and_deps() -> list[tuple[str, Path, list[str]]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        match = re.search(r"python3?\s+([\w./-]+\.py)", str(body.get("cmd", "")))
        if match is None:
            continue
        deps = [str(d).rstrip("/") for d in body.get("deps", []) if "${" not in str(d)]
        out.append((name, ROOT / match.group(1), deps))
    return out


def uncovered(files: set[Path], deps: list[str]) -> list[str]:
    rels = sorted(f.relative_to(ROOT).as_posix() for f in files)
    return [r for r in rels if not any(r == d or r.startswith(d + "/") for d in deps)]


def test_the_walk_follows_imports_transitively():
    files = reached_files(ROOT / "stages" / "train_sae.py")
    rels = {f.relative_to(ROOT).as_posix() for f in files}
    # train_sae.py imports sae_train, which imports resample; every module imports the package __init__
    assert {"monosemantic/sae_train.py", "monosemantic/resample.py", "monosemantic/__init__.py",
            "monosemantic/config.py", "monosemantic/utils.py"} <= rels
    assert uncovered(files, ["stages/train_sae.py"]) and not uncovered(files, ["stages", "monosemantic"])


@pytest.mark.parametrize("name,script,deps", stage_scripts_and_deps(), ids=lambda v: v if isinstance(v, str) else "")
def test_stage_deps_cover_every_imported_module(name, script, deps):
    assert script.is_file(), f"stage {name}: script {script} does not exist"
    missing = uncovered(reached_files(script), deps)
    assert not missing, f"stage {name} imports but does not list as deps in dvc.yaml: {', '.join(missing)}"
