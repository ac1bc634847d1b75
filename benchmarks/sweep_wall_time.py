"""End-to-end wall time of the default SAE sweep, per training path: what `dvc repro` spends in train_sae.

    python benchmarks/sweep_wall_time.py [--paths auto dense] [--runs A_512 A_4096 ...] [--out FILE]

For every run of params.yaml's sae_runs and every path of --paths, calls `monosemantic.sae.train.train_sae`
(what stages/train_sae.py calls: geometric median, 2000 steps, dead-feature resampling, outputs written)
with sae.fast_path overridden, into a temporary directory, and times the whole call. Runs alone, one at a time.

It also checks the numerics end to end: each path's final mse, L0 and dead count side by side, and whether the
"auto" path's weights are bitwise the committed artifacts/sae/<run>/sae_weights.safetensors (determinism: the
pipeline ran "auto").

Results: benchmarks/results/sweep-<machine>.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from monosemantic.core.config import load_params  # noqa: E402
from monosemantic.sae.train import train_sae  # noqa: E402
from monosemantic.lm.store import ActivationStore, sha256_file  # noqa: E402
from monosemantic.core.utils import seed_everything  # noqa: E402
from speed import loadavg, machine_info, machine_slug  # noqa: E402

WEIGHTS = "sae_weights.safetensors"


def time_run(params, name: str, path: str, out_dir: Path) -> dict:
    """One train_sae call with fast_path = path, as stages/train_sae.py makes it; wall time of the call."""
    run = params.sae_runs[name]
    cfg = dataclasses.replace(params.sae, fast_path=path)
    store = ActivationStore(ROOT / "artifacts" / "activations" / run.model / "train")
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    stats = train_sae(cfg, run, store, out_dir, device="cpu", resume=False, progress=False,
                      metadata={"run_name": name})
    wall = time.perf_counter() - t0
    committed = ROOT / "artifacts" / "sae" / name / WEIGHTS
    same = sha256_file(out_dir / WEIGHTS) == sha256_file(committed) if committed.exists() else None
    return {"run": name, "path": path, "n_features": run.n_features, "l1": run.settings.l1, "wall_s": round(wall, 1),
            "samples_per_s": round(cfg.steps * cfg.batch_size / wall), "mse": stats["mse"], "l0": stats["l0"],
            "dead": stats["dead"], "n_resampled": stats["n_resampled"], "weights_equal_committed": same}


def table(rows: list[dict], paths: list[str], totals: dict[str, float]) -> str:
    by = {(r["run"], r["path"]): r for r in rows}
    runs = list(dict.fromkeys(r["run"] for r in rows))
    head = ["run", "features"] + [f"{p} (s)" for p in paths]
    if len(paths) == 2:
        head.append(f"{paths[1]} / {paths[0]}")
    head += [f"{p}: mse / L0 / dead" for p in paths]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in runs:
        cells = [name, f"{by[(name, paths[0])]['n_features']:,}"]
        for p in paths:
            cells.append(f"{by[(name, p)]['wall_s']:.0f}")
        if len(paths) == 2:
            cells.append(f"{by[(name, paths[1])]['wall_s'] / by[(name, paths[0])]['wall_s']:.2f}×")
        for p in paths:
            r = by[(name, p)]
            cells.append(f"{r['mse']:.3g} / {r['l0']:.1f} / {r['dead']}")
        lines.append("| " + " | ".join(cells) + " |")
    total = ["**sweep**", ""] + [f"**{totals[p]:.0f}** ({totals[p] / 60:.1f} min)" for p in paths]
    if len(paths) == 2:
        total.append(f"**{totals[paths[1]] / totals[paths[0]]:.2f}×**")
    total += [""] * len(paths)
    lines.append("| " + " | ".join(total) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--paths", nargs="+", default=["auto", "dense"], choices=["auto", "sparse", "dense"])
    ap.add_argument("--runs", nargs="+", default=None, help="default: every run of sae_runs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    params = load_params(args.params)
    runs = args.runs or list(params.sae_runs)
    unknown = [r for r in runs if r not in params.sae_runs]
    if unknown:
        ap.error(f"not in sae_runs: {', '.join(unknown)}")
    info = machine_info()
    res = {"machine": info, "load_start": loadavg(), "steps": params.sae.steps,
           "batch_size": params.sae.batch_size, "rows": []}
    print("machine:", json.dumps(info))
    print(f"load average: {res['load_start']}")
    for path in args.paths:
        for name in runs:
            with tempfile.TemporaryDirectory(prefix=f"sweep-{name}-{path}-") as tmp:
                row = time_run(params, name, path, Path(tmp) / name)
            res["rows"].append(row)
            print(json.dumps(row), flush=True)
    res["load_end"] = loadavg()
    res["totals_s"] = {p: round(sum(r["wall_s"] for r in res["rows"] if r["path"] == p), 1) for p in args.paths}

    print(f"\nMachine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
          f"{info['torch_threads']} threads. Load average {res['load_start']} at start, {res['load_end']} at end.\n")
    print(table(res["rows"], args.paths, res["totals_s"]))
    out = args.out or ROOT / "benchmarks" / "results" / f"sweep-{machine_slug(info)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
