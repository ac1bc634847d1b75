"""Stage deps that cannot drift: the package files each DVC stage reaches by imports, and a rewrite of dvc.yaml.

    python -m tools.stage_deps            list, per stage, the files its script imports but its deps miss
    python -m tools.stage_deps --write    rewrite the code deps (stages/, monosemantic/, tools/ lines) of every
                                          stage in dvc.yaml and experiments/*/dvc.yaml from what it imports

A change in a module that a stage imports but does not list would leave DVC's cached result of that stage in
place although the code that made it changed (tests/test_dvc_deps.py checks it). A dep that is a folder covers
every file under it.

Two granularities. Most stages depend on the *folders* of the subpackages they reach (monosemantic/analysis, ...):
short, readable deps, at the price of a rerun when a sibling module changes. The stages whose outputs are shipped
trained artifacts (TRAINED) list the exact *files* they reach instead, so that an edit to evaluation or analysis
code never invalidates the shipped transformers and dictionaries.

One kind of import is not followed (VALIDATION_ONLY): the params loader (core/config.py) builds each run of
sae_runs with its architecture's Settings (monosemantic.sae.architectures), so that a setting that is not the
architecture's fails with every other problem before any compute. That import validates params.yaml and makes
no output: a stage that trains, loads or evaluates a dictionary reaches the architectures through its own imports
(sae/train.py, analysis/inputs.py) and lists them; every other stage (the corpus, the tokenizer, the transformers)
would otherwise rerun whenever an SAE architecture's file changed.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monosemantic", "stages", "tools")
CODE_DEP = re.compile(r"^(\s*)- (?:monosemantic|stages|tools)(?:/[\w./-]*)?\s*$")
# stages that train what the bundled remote ships: exact per-file code deps (see the module docstring)
TRAINED = ("train_transformer", "train_sae")
CORE = ("monosemantic", "core")  # the infrastructure every stage imports: a folder dep even for TRAINED
# file -> the modules (and their submodules) it imports only to validate params.yaml (see the module docstring)
VALIDATION_ONLY = {("monosemantic", "core", "config.py"): ("monosemantic.sae",)}


def module_file(dotted: str, root: Path = ROOT) -> Path | None:
    """The file of a module of the repository's own packages (None for anything outside them)."""
    parts = dotted.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Dotted names a file imports (relative imports resolved), including `pkg.name` for `from pkg import name`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
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


def reached_files(script: Path, root: Path = ROOT) -> set[Path]:
    """Every file of the repository's packages reached from `script` by imports, transitively (each package's
    __init__.py included: importing a.b.c runs a/__init__ and a/b/__init__ too)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        rel = f.relative_to(root).parts
        for i in range(1, len(rel)):  # the script's own packages
            init = root.joinpath(*rel[:i], "__init__.py")
            if init.is_file() and init not in seen:
                todo.append(init)
        skip = VALIDATION_ONLY.get(rel, ())
        for name in imported_modules(f, root):
            if any(name == m or name.startswith(m + ".") for m in skip):
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                target = module_file(".".join(parts[:i]), root)
                if target is not None and target not in seen:
                    todo.append(target)
    return seen


def stage_script(cmd: str, root: Path = ROOT) -> Path | None:
    """The script a stage's cmd runs: `python -m stages.NAME ...` (or `python path.py ...`)."""
    m = re.search(r"python3?\s+-m\s+([\w.]+)", cmd)
    if m:
        return module_file(m.group(1), root)
    m = re.search(r"python3?\s+([\w./-]+\.py)", cmd)
    return root / m.group(1) if m else None


def stages_of(dvc_yaml: Path) -> dict[str, tuple[Path | None, list[str]]]:
    """name -> (script, deps without ${...} interpolations) for every stage of a dvc.yaml."""
    out = {}
    for name, stage in (yaml.safe_load(dvc_yaml.read_text()).get("stages") or {}).items():
        body = stage.get("do", stage)
        deps = [str(d).rstrip("/") for d in body.get("deps", []) if "${" not in str(d)]
        out[name] = (stage_script(str(body.get("cmd", ""))), deps)
    return out


def uncovered(files: set[Path], deps: list[str], root: Path = ROOT) -> list[str]:
    rels = sorted(f.relative_to(root).as_posix() for f in files)
    return [r for r in rels if not any(r == d or r.startswith(d + "/") for d in deps)]


def code_deps(script: Path, root: Path = ROOT, per_file: bool = False) -> list[str]:
    """What a stage's deps list for its code: its script first, then the package folders it reaches (a module of
    a subpackage, monosemantic/lm/model.py, counts as its folder monosemantic/lm), sorted; per_file: every file it
    reaches instead, except a folder whose every module it reaches (the folder dep is then the same set) and
    monosemantic/core/, the infrastructure every stage runs on. (`monosemantic` and `stages` are namespace
    packages: no __init__.py, nothing runs on their import.)"""
    reached = reached_files(script, root) - {script}
    rest = set()
    for f in reached:
        parts = f.relative_to(root).parts
        folder = root.joinpath(*parts[:2])
        whole_folder = len(parts) >= 3 and (not per_file or parts[:2] == CORE
                                            or set(folder.rglob("*.py")) <= reached)
        rest.add("/".join(parts[:2] if whole_folder else parts))
    return [script.relative_to(root).as_posix()] + sorted(rest)


def rewrite(dvc_yaml: Path, root: Path = ROOT) -> bool:
    """Replace each stage's code-dep lines by code_deps(script), in place of the first one; True if it changed."""
    scripts = {name: s for name, (s, _) in stages_of(dvc_yaml).items()}
    lines, out, stage, done = dvc_yaml.read_text().split("\n"), [], None, set()
    for line in lines:
        m = re.match(r"^  (\w[\w-]*):\s*$", line)
        if m:
            stage = m.group(1)
        dep = CODE_DEP.match(line)
        if dep and stage in scripts and scripts[stage] is not None:
            if stage not in done:
                out += [f"{dep.group(1)}- {d}" for d in code_deps(scripts[stage], root, stage in TRAINED)]
                done.add(stage)
            continue
        out.append(line)
    text = "\n".join(out)
    changed = text != dvc_yaml.read_text()
    dvc_yaml.write_text(text)
    return changed


def main(argv: list[str]) -> int:
    files = [ROOT / "dvc.yaml", *sorted(ROOT.glob("experiments/*/dvc.yaml"))]
    if argv == ["--write"]:
        for f in files:
            print(f"{f.relative_to(ROOT)}: {'rewritten' if rewrite(f) else 'up to date'}")
        return 0
    bad = 0
    for f in files:
        for name, (script, deps) in stages_of(f).items():
            if script is None:
                continue
            missing = uncovered(reached_files(script), deps)
            if missing:
                bad += 1
                print(f"{f.relative_to(ROOT)} stage {name}: missing deps {', '.join(missing)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
