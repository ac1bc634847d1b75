#!/usr/bin/env python3
"""Mutation test: apply plausible bugs, one at a time, to a scratch copy of the repository and check that the
unit tests kill each one (some test fails).

    python scripts/mutation_test.py                 # every mutation; prints a table (mutation, killed by)
    python scripts/mutation_test.py --only 1 3      # some of them (numbers from --list)
    python scripts/mutation_test.py --list

The copy holds the code and tests only (no data, no outputs); the repository itself is never modified. Each
mutation runs the fast test files in TESTS with `pytest -x` and records the first failing test. Not in CI
(it runs the unit tests once per mutation: about a minute each on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_sae.py", "tests/test_sae_train.py", "tests/test_resample.py", "tests/test_metrics.py",
         "tests/test_store.py", "tests/test_transformer_nan.py", "tests/test_activations.py",
         "tests/test_config.py"]  # test_config: the profiles (merged onto params.yaml) against their golden copies
COPY = ["monosemantic", "stages", "tools", "tests", "configs", "params.yaml", "pyproject.toml", "dvc.yaml"]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str


MUTATIONS = [
    Mutation("decoder parallel-gradient removal deleted (StandardSAE.before_step)",
             "monosemantic/sae/architectures/standard.py", "        self.remove_parallel_grad()\n", ""),
    Mutation("resampled encoder scale 1.0 instead of 0.2 (resample.py)", "monosemantic/sae/resample.py",
             "directions * (encoder_scale * mean_alive_norm)", "directions * (1.0 * mean_alive_norm)"),
    Mutation("resampled encoder scale 1.0 instead of cfg's 0.2 (SAETrainer.resample)", "monosemantic/sae/train.py",
             "self.cfg.resample.encoder_scale, generator)", "1.0, generator)"),
    Mutation("resampled encoder scale 1.0 in the smoke profile (an overlay of params.yaml)", "configs/smoke.yaml",
             "n_inputs: 4096}}", "n_inputs: 4096, encoder_scale: 1.0}}"),
    Mutation("resampling picks inputs with probability ∝ loss, not loss²", "monosemantic/sae/resample.py",
             "prob = loss.double().pow(2)", "prob = loss.double()"),
    Mutation("Adam moments of resampled features not reset", "monosemantic/sae/resample.py",
             "            state[key][index] = 0.0", "            pass"),
    Mutation("MSE summed instead of averaged (StandardSAE.loss)", "monosemantic/sae/architectures/standard.py",
             "mse = (x_hat - x).pow(2).mean()", "mse = (x_hat - x).pow(2).sum()"),
    Mutation("off-by-one in the sampled positions' token index (activations.py)", "monosemantic/lm/activations.py",
             "token = (starts[:, None] + pos)", "token = (starts[:, None] + pos + 1)"),
    Mutation("off-by-one in the positions whose activations are kept (activations.py)",
             "monosemantic/lm/activations.py", "acts = model.mlp_acts(toks, torch.from_numpy(pos).to(device))",
             "acts = model.mlp_acts(toks, torch.from_numpy(np.maximum(pos - 1, 0)).to(device))"),
    Mutation("loss recovered accepts a non-positive denominator", "monosemantic/sae/metrics.py",
             "    if not loss_zero > loss_clean:", "    if False:"),
    Mutation("shard sha256 not verified at open", "monosemantic/lm/store.py",
             "                    if sha256_file(p) != s[\"sha256\"]:", "                    if False:"),
    Mutation("transformer NaN loss not checked", "monosemantic/lm/train.py",
             "        check_finite(loss, step + 1, advice=", "        (lambda *a, **k: None)(loss, step + 1, advice="),
    Mutation("SAE checkpoint not resumed (fingerprint ignored)", "monosemantic/sae/train.py",
             "    state = checkpoint.load() if resume else None", "    state = None"),
]


def scratch(dest: Path) -> None:
    for rel in COPY:
        src = ROOT / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / rel)


def run_one(m: Mutation, work: Path) -> tuple[str, float]:
    """'' when every test passed (the mutation survived), else the first failing test."""
    dest = work / "repo"
    if dest.exists():
        shutil.rmtree(dest)
    scratch(dest)
    path = dest / m.file
    text = path.read_text()
    if m.old not in text:
        raise SystemExit(f"mutation {m.name!r}: the text to mutate is not in {m.file}; update MUTATIONS")
    path.write_text(text.replace(m.old, m.new))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(dest),
           "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf", *TESTS],
                       cwd=dest, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode == 0:
        return "", seconds
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", r.stdout, re.M)
    return (failed[0] if failed else f"pytest exit {r.returncode}: {r.stdout[-300:]}"), seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", type=int, nargs="*", help="mutation numbers (1-based)")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    if args.list:
        for i, m in enumerate(MUTATIONS, 1):
            print(f"{i:2d}. {m.name}  [{m.file}]")
        return 0
    chosen = [(i, MUTATIONS[i - 1]) for i in (args.only or range(1, len(MUTATIONS) + 1))]
    rows, survived = [], 0
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        for i, m in chosen:
            killer, seconds = run_one(m, Path(tmp))
            survived += not killer
            rows.append((str(i), m.name, killer or "SURVIVED", f"{seconds:.0f} s"))
            print(f"[{i}] {m.name}: {killer or 'SURVIVED'} ({seconds:.0f} s)", flush=True)
    print("\n| # | mutation | killed by | time |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
