"""The reproduction, measured: every number of metrics/ against the committed run, with both machines named.

    python -m tools.reproduction                 compare metrics/ with git HEAD's, write metrics/reproduction.json
    python -m tools.reproduction --ref REV       ... with another commit's
    python -m tools.reproduction --out PATH      ... writing PATH instead (metrics/reproduction_other_cpu.json: the
                                                 committed measurement on a CPU kind other than the shipping one)
    python -m tools.reproduction --check TOL PATTERN [PATTERN ...]
                                                 exit 1 if a number of a file matching a PATTERN (fnmatch over
                                                 paths under metrics/) is further than TOL from the committed one;
                                                 TOL auto: 0 (exact) on the CPU kind that trained the shipped
                                                 artifacts, OTHER_CPU_TOL on any other

After `dvc pull` restores the shipped transformers and dictionaries, `dvc repro` regenerates everything downstream
of them on the user's CPU. This tool says how close that came: per file the count of numbers that are exactly
equal, within 1e-6, within 1e-3 and further apart (a difference d = |now - committed| is "within t" when
d <= t * max(1, |committed|): absolute for numbers up to 1, relative above), plus numbers present on one side
only, and the CPU of the run that trained the shipped artifacts (metrics/provenance/, strings written by the
training stages) beside this machine's. Timings are not compared (they never reach metrics/: utils.write_json).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import json
import subprocess
import sys
from pathlib import Path

from monosemantic.core.provenance import PIN_VARS, cpu_info, pin_variables, pinned_kernels  # noqa: F401 (tests)
from monosemantic.core.utils import atomic_path
from tools.regression import flatten

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("metrics") / "reproduction.json"
SKIP = ("metrics/reproduction*.json", "metrics/provenance/*")  # this tool's outputs; strings only
BANDS = ((0.0, "exact"), (1e-6, "within_1e-6"), (1e-3, "within_1e-3"))
HEADLINE = "metrics/summary.json"
# another CPU kind: the bound the shipped-artifacts issue sets for the headline numbers. Measured on one other kind
# (AMD EPYC with AVX-512, docs/REPRODUCTION.md): every number exact with tools/pin_cpu.sh; without it the headline's
# largest difference was 0.0017 (a tie-break of np.argpartition between numpy's AVX-512 and AVX2 kernels)
OTHER_CPU_TOL = 1e-3


def numbers_of(rel: str, text: str) -> dict[str, float | int]:
    """Every number of a metrics file (JSON, or CSV keyed row.column), keyed by its path in the file."""
    if rel.endswith(".json"):
        return flatten(json.loads(text))
    out: dict[str, float | int] = {}
    for i, row in enumerate(csv.DictReader(io.StringIO(text))):
        for col, cell in row.items():
            try:
                out[f"[{i}].{col}"] = int(cell) if cell.lstrip("-").isdigit() else float(cell)
            except (TypeError, ValueError):
                continue
    return out


def skipped(rel: str) -> bool:
    return any(fnmatch.fnmatch(rel, p) for p in SKIP)


def current_files(root: Path = ROOT) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted((root / "metrics").rglob("*"))
            if p.suffix in (".json", ".csv") and not skipped(p.relative_to(root).as_posix())}


def committed_files(ref: str = "HEAD", root: Path = ROOT) -> dict[str, str]:
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", ref, "--", "metrics"], cwd=root, check=True,
                           capture_output=True, text=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{ref}:{n}"], cwd=root, check=True, capture_output=True,
                              text=True).stdout
            for n in names if n.endswith((".json", ".csv")) and not skipped(n)}


def band(committed: float | int, now: float | int) -> str:
    """The closest band of BANDS that holds |now - committed| (see the module docstring), or "further"."""
    if committed == now or (committed != committed and now != now):  # equal, or both NaN
        return "exact"
    d = abs(now - committed)
    for tol, name in BANDS[1:]:
        if d <= tol * max(1.0, abs(committed)):
            return name
    return "further"


def compare_file(committed: dict, now: dict) -> tuple[dict[str, int], dict[str, tuple]]:
    """(counts per band, plus only_committed / only_now; {key: (committed, now)} of the numbers not exact)."""
    counts = {name: 0 for _, name in BANDS} | {"further": 0, "only_committed": 0, "only_now": 0}
    moved = {}
    for key in sorted(set(committed) | set(now)):
        if key not in now:
            counts["only_committed"] += 1
        elif key not in committed:
            counts["only_now"] += 1
        else:
            b = band(committed[key], now[key])
            counts[b] += 1
            if b != "exact":
                moved[key] = (committed[key], now[key])
    return counts, moved


def shipped_by(root: Path = ROOT) -> list[dict]:
    """The machines that trained the shipped artifacts (metrics/provenance/*.json), one entry per CPU."""
    machines: dict[tuple, dict] = {}
    for p in sorted((root / "metrics" / "provenance").glob("*.json")):
        rec = json.loads(p.read_text())
        key = (rec.get("cpu"), tuple(rec.get("isa", [])), rec.get("precision"))
        machines.setdefault(key, {"cpu": key[0], "isa": list(key[1]), "precision": key[2], "stages": []})
        machines[key]["stages"].append(rec.get("stage", p.stem))
    return list(machines.values())


def report(committed: dict[str, str], now: dict[str, str], root: Path = ROOT, ref: str = "HEAD") -> dict:
    files, worst = {}, {}
    for rel in sorted(set(committed) | set(now)):
        c = numbers_of(rel, committed[rel]) if rel in committed else {}
        n = numbers_of(rel, now[rel]) if rel in now else {}
        counts, moved = compare_file(c, n)
        files[rel] = counts
        if rel == HEADLINE:
            worst = {k: {"committed": a, "now": b, "diff": b - a} for k, (a, b) in moved.items()
                     if k.startswith("headline.")}
    total = {k: sum(f[k] for f in files.values()) for k in next(iter(files.values()), {})}
    headline_max = max((abs(v["diff"]) for v in worst.values()), default=0.0)
    return {"committed": ref, "shipped_artifacts_trained_on": shipped_by(root),
            "this_run": {**cpu_info(), "kernels_pinned": pinned_kernels()},
            "bands": "d = |now - committed| within t when d <= t * max(1, |committed|)",
            "total": total, "headline_max_abs_diff": headline_max, "headline_not_exact": worst, "files": files}


def auto_tolerance(root: Path = ROOT) -> float:
    """0 when this CPU (model and ISA flags) is the one that trained every shipped artifact, else OTHER_CPU_TOL."""
    here = cpu_info()
    machines = shipped_by(root)
    same = bool(machines) and all(m["cpu"] == here["cpu"] and m["isa"] == here["isa"] for m in machines)
    return 0.0 if same else OTHER_CPU_TOL


def check(tol: float, patterns: list[str], committed: dict[str, str], now: dict[str, str]) -> list[str]:
    """Lines naming every number of the matching files further than tol (as in band()) from the committed one."""
    bad = []
    for rel in sorted(committed):
        if not any(fnmatch.fnmatch(rel, p) for p in patterns):
            continue
        if rel not in now:
            bad.append(f"{rel}: not regenerated")
            continue
        c, n = numbers_of(rel, committed[rel]), numbers_of(rel, now[rel])
        for key in sorted(set(c) | set(n)):
            if key not in c or key not in n:
                bad.append(f"{rel}:{key}: on one side only")
            elif band(c[key], n[key]) != "exact" and abs(n[key] - c[key]) > tol * max(1.0, abs(c[key])):
                bad.append(f"{rel}:{key}: committed {c[key]!r}, now {n[key]!r}")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.reproduction", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default="HEAD", help="the committed run to compare with (a git revision)")
    ap.add_argument("--check", nargs="+", metavar=("TOL", "PATTERN"),
                    help="a tolerance and file patterns: exit 1 if any of their numbers is further apart")
    ap.add_argument("--out", default=str(OUT), help=f"the report's path, relative to the repository (default {OUT})")
    args = ap.parse_args(argv)
    committed, now = committed_files(args.ref), current_files()
    if args.check:
        tol = auto_tolerance() if args.check[0] == "auto" else float(args.check[0])
        patterns = args.check[1:]
        bad = check(tol, patterns, committed, now)
        n = sum(len(numbers_of(r, t)) for r, t in committed.items() if any(fnmatch.fnmatch(r, p) for p in patterns))
        if bad:
            print(f"[reproduction] {len(bad)} of {n} numbers further than {tol:g} from {args.ref}:")
            print("\n".join(bad[:50]))
            return 1
        print(f"[reproduction] all {n} numbers of {', '.join(patterns)} within {tol:g} of {args.ref}")
        return 0
    rep = report(committed, now, ROOT, args.ref)
    out = Path(args.out)
    with atomic_path(ROOT / out) as tmp:  # makes the folder; a killed run leaves no half-written report
        tmp.write_text(json.dumps(rep, indent=1) + "\n")
    t = rep["total"]
    print(f"[reproduction] {sum(t.values())} numbers: {t['exact']} exact, {t['within_1e-6']} within 1e-6, "
          f"{t['within_1e-3']} within 1e-3, {t['further']} further; one side only {t['only_committed']} / "
          f"{t['only_now']}; headline max |diff| {rep['headline_max_abs_diff']:.3g} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
