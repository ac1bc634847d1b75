"""Regression check: reproduce the smoke profile in a scratch copy and compare every metric to a baseline.

    python -m monosemantic.regression check     # run smoke in a scratch copy, compare to tests/golden/smoke.json
    python -m monosemantic.regression accept    # run smoke, rewrite the baseline (a deliberate change of numbers)
    python -m monosemantic.regression compare DIR   # compare an already reproduced copy's metrics/ only

The baseline is every number in every metrics/**/*.json file of the smoke run, flattened to "file:key.path".
Each number has a tolerance chosen by the first matching rule in TOLERANCES (see the justification beside each
rule); timings are ignored. A run on the same machine is bit-identical (the tests check that), so the
tolerances only absorb floating-point differences between CPUs and BLAS builds, which training amplifies a
little; they are far below the change a real code or parameter change produces.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tests" / "golden" / "smoke.json"
PROFILE = "configs/smoke.yaml"
OUTPUT_DIRS = ("metrics", "plots", "paper_figures", "dvclive", "browser")


@dataclass(frozen=True)
class Tol:
    abs: float = 0.0
    rel: float = 0.0
    why: str = ""

    def ok(self, base: float, new: float) -> bool:
        if math.isnan(base) or math.isnan(new):
            return math.isnan(base) and math.isnan(new)
        return abs(new - base) <= self.abs + self.rel * abs(base)


IGNORE = Tol(math.inf, 0, "timing: depends on the machine and its load")
# First match wins. Patterns are fnmatch patterns over "file:key.path".
TOLERANCES: list[tuple[str, Tol]] = [
    ("*tokens_per_s*", IGNORE), ("*samples_per_s*", IGNORE), ("*seconds*", IGNORE), ("*wall*", IGNORE),
    ("*time*", IGNORE),
    ("metrics/corpus.json:*", Tol(0, 0, "corpus statistics are exact counts of the bundled data")),
    ("metrics/tokens.json:*", Tol(0, 1e-9, "the BPE tokenizer is deterministic: counts are exact")),
    ("*frac_loss_recovered*", Tol(0.03, 0, "a ratio of loss differences; ~1e-3 cross-CPU noise amplified by "
                                           "the small L_zero - L_clean of the smoke model")),
    ("*loss*", Tol(0.01, 0.002, "cross-entropy in nats after a few hundred fp32 steps; BLAS differences "
                                "move it by ~1e-3")),
    ("*explained_variance*", Tol(0.02, 0, "a fraction in [0, 1]")),
    ("*pearson*", Tol(0.05, 0, "a correlation of one feature picked among many; a near-tie can swap it")),
    ("*corr*", Tol(0.05, 0, "a median of correlations")),
    ("*mmcs*", Tol(0.02, 0, "mean max cosine similarity in [0, 1]")),
    ("*_frac", Tol(0.02, 0, "a fraction of features")),
    ("*share*", Tol(0.005, 0, "a share of tokens")),
    ("*:dead", Tol(2, 0.05, "a count of features: a feature at the edge can flip; 2 or 5%")),
    ("*:ultralow", Tol(2, 0.05, "a count of features: a feature at the edge can flip; 2 or 5%")),
    ("*:dense", Tol(2, 0.05, "a count of features: a feature at the edge can flip; 2 or 5%")),
    ("*base64_features_by_size*", Tol(2, 0.05, "a count of features by a threshold rule; 2 or 5%")),
    ("*", Tol(0, 0.05, "any other number (MSE, L0, L1, indices): 5% relative")),
]


def tolerance(key: str) -> Tol:
    for pattern, tol in TOLERANCES:
        if fnmatch.fnmatch(key, pattern):
            return tol
    raise AssertionError("the last rule matches everything")


def flatten(obj, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}[{i}]"))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix] = float(obj)
    return out


def collect(root: Path) -> dict[str, float]:
    """Every number of every metrics/**/*.json under root, keyed "relative/path.json:key.path"."""
    values: dict[str, float] = {}
    for path in sorted((root / "metrics").rglob("*.json")):
        rel = path.relative_to(root).as_posix()
        for k, v in flatten(json.loads(path.read_text())).items():
            values[f"{rel}:{k}"] = v
    return values


def compare(baseline: dict[str, float], current: dict[str, float]) -> list[tuple[str, str, str, str, str]]:
    """Rows (key, baseline, current, difference, allowed) for every metric outside its tolerance."""
    rows = []
    for key in sorted(set(baseline) | set(current)):
        tol = tolerance(key)
        if tol is IGNORE:
            continue
        if key not in current:
            rows.append((key, f"{baseline[key]:.6g}", "missing", "", ""))
        elif key not in baseline:
            rows.append((key, "missing", f"{current[key]:.6g}", "", ""))
        elif not tol.ok(baseline[key], current[key]):
            b, c = baseline[key], current[key]
            rows.append((key, f"{b:.6g}", f"{c:.6g}", f"{c - b:+.3g}", f"±{tol.abs + tol.rel * abs(b):.3g}"))
    return rows


def format_table(rows) -> str:
    header = ("metric", "baseline", "now", "change", "allowed")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def scratch_copy(dest: Path, profile: str = PROFILE) -> Path:
    """A scratch git repository with the working tree's files (tracked and untracked, not ignored; without the
    committed outputs of the default run) and data/, with `profile` as its params.yaml."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if rel == "dvc.lock" or rel.split("/")[0] in OUTPUT_DIRS:
            continue  # the default run's committed outputs: the copy makes its own
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if (ROOT / "data").exists():
        shutil.copytree(ROOT / "data", dest / "data", dirs_exist_ok=True)
    shutil.copy2(ROOT / profile, dest / "params.yaml")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "scratch"]):
        subprocess.run(cmd, cwd=dest, check=True, env=git_env(), capture_output=True)
    return dest


def git_env() -> dict[str, str]:
    """venv_env() plus a committer identity, so scratch repositories can commit on any machine."""
    who = {"GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@localhost"}
    return {**venv_env(), **who, "GIT_COMMITTER_NAME": who["GIT_AUTHOR_NAME"],
            "GIT_COMMITTER_EMAIL": who["GIT_AUTHOR_EMAIL"]}


def venv_env() -> dict[str, str]:
    """The environment with this interpreter's bin directory first on PATH (dvc.yaml commands call `python`)."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}


def reproduce(dest: Path, profile: str = PROFILE) -> float:
    """Scratch copy + `dvc repro`; returns the wall time of the reproduction in seconds."""
    scratch_copy(dest, profile)
    if not (dest / "data").exists():
        subprocess.run(["dvc", "pull", "-q", "data.dvc"], cwd=dest, check=True, env=venv_env())
    t0 = time.perf_counter()
    subprocess.run(["dvc", "repro", "-q"], cwd=dest, check=True, env=venv_env())
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m monosemantic.regression", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["check", "accept", "compare"])
    ap.add_argument("dir", nargs="?", help="for compare: a reproduced copy of the repository")
    ap.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = ap.parse_args(argv)

    if args.command == "compare":
        current = collect(Path(args.dir))
    else:
        work = Path(tempfile.mkdtemp(prefix="monosemantic-smoke-"))
        try:
            seconds = reproduce(work)
            print(f"[regression] smoke reproduction: {seconds:.0f} s in {work}")
            current = collect(work)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    if args.command == "accept":
        BASELINE.parent.mkdir(parents=True, exist_ok=True)
        BASELINE.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"[regression] baseline rewritten: {BASELINE.relative_to(ROOT)} ({len(current)} metrics)")
        return 0
    if not BASELINE.exists():
        print(f"[regression] no baseline at {BASELINE}; create it with `python -m monosemantic.regression accept`")
        return 1
    rows = compare(json.loads(BASELINE.read_text()), current)
    if rows:
        print(f"[regression] {len(rows)} metric(s) moved beyond tolerance:\n" + format_table(rows))
        print("[regression] if the change is deliberate: python -m monosemantic.regression accept")
        return 1
    print(f"[regression] all {len(current)} metrics within tolerance of the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
