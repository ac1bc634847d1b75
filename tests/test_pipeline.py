"""The whole pipeline, end to end, on the smoke profile (params.yaml merged with the overlay configs/smoke.yaml by
tools.regression.scratch_copy) in scratch copies of the repo.

Slow (a few minutes): two full reproductions from scratch, to show that same params give identical outputs.
"""

import json
import subprocess

import pytest
import yaml

from tools import regression
pytestmark = pytest.mark.slow


def lock_hashes(root) -> dict[str, str]:
    """Every stage's output md5s from dvc.lock (timing-free: the lock holds content hashes only)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {f"{stage}:{out['path']}": out["md5"] for stage, body in lock["stages"].items()
            for out in body.get("outs", [])}


@pytest.fixture(scope="module")
def smoke_runs(smoke_reference, tmp_path_factory):
    first = smoke_reference  # shared with test_kill_resume.py (conftest.py); never modified
    second = tmp_path_factory.mktemp("smoke2")
    regression.reproduce(second)
    return first, second, lock_hashes(first), lock_hashes(second)


def test_smoke_pipeline_produces_every_output(smoke_runs):
    root = smoke_runs[0]
    summary = json.loads((root / "metrics/summary.json").read_text())["headline"]
    for key in ("a1_frac_loss_recovered", "a1_l0", "a1_dead_frac", "a1_ultralow_frac", "loss_recovered_by_size"):
        assert key in summary
    assert 0.2 < summary["a1_frac_loss_recovered"] < 1.0
    assert summary["a1_l0"] > 0
    for fig in ("fig12_density_by_l1.png", "fig13_l0_vs_loss_recovered.png", "sae_training_curves.png"):
        assert (root / "paper_figures" / fig).stat().st_size > 10_000
    # the main pipeline (dvc.yaml); experiments/superposition/dvc.yaml runs apart and has no arms in smoke
    status = subprocess.run(["dvc", "status", "-q", "dvc.yaml"], cwd=root, env=regression.venv_env())
    assert status.returncode == 0, "dvc status should be clean right after dvc repro"


def test_smoke_pipeline_is_deterministic(smoke_runs):
    a, b = smoke_runs[2], smoke_runs[3]
    assert a and a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


def test_smoke_metrics_match_the_golden_baseline(smoke_runs):
    root = smoke_runs[0]
    baseline = json.loads(regression.BASELINE.read_text())
    rows = regression.compare(baseline, regression.collect(root))
    assert not rows, "\n" + regression.format_table(rows)


def dvc(root, *args) -> str:
    done = subprocess.run(["dvc", *args], cwd=root, env=regression.venv_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def git(root, *args) -> None:
    subprocess.run(["git", *args], cwd=root, env=regression.git_env(), check=True, capture_output=True)


def test_branch_comparison_worked_example(smoke_runs):
    """The README's worked example on the smoke profile: branch, change λ, repro, diff; then an experiment."""
    root = smoke_runs[1]
    git(root, "add", "-A")
    git(root, "commit", "-qm", "smoke run")
    git(root, "branch", "-M", "main")
    git(root, "checkout", "-qb", "higher-l1")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["sae_runs"]["A_256_l1high"]["l1"] = 0.016
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(root, "repro", "-q")

    pdiff = json.loads(dvc(root, "params", "diff", "main", "--json"))
    changed = pdiff["params.yaml"]["sae_runs.A_256_l1high.l1"]
    assert (changed["old"], changed["new"]) == (0.008, 0.016)
    mdiff = json.loads(dvc(root, "metrics", "diff", "main", "--json"))
    moved = mdiff["metrics/sae/A_256_l1high.json"]
    assert moved["l1_coeff"]["new"] == 0.016 and moved["l0"]["diff"] < 0  # a higher λ gives a sparser code
    assert "metrics/sae/A_256.json" not in mdiff  # the other dictionaries are untouched (cached)
    plots = dvc(root, "plots", "diff", "main", "--json")
    assert "plots/density/A_256_l1high.csv" in plots

    git(root, "add", "-A")
    git(root, "commit", "-qm", "higher l1")
    dvc(root, "exp", "run", "-q", "-S", "sae_runs.A_256_l1high.l1=0.002")
    shown = dvc(root, "exp", "show", "--json")
    assert "0.002" in shown


def find_experiments(node, names: set[str], found: dict) -> dict:
    """The entries of `dvc exp show --json` whose name is in `names` (the JSON nests them per baseline)."""
    if isinstance(node, dict):
        if node.get("name") in names and "data" in node:
            found[node["name"]] = node
        for v in node.values():
            find_experiments(v, names, found)
    elif isinstance(node, list):
        for v in node:
            find_experiments(v, names, found)
    return found


def test_queued_sweep_runs_on_two_workers(smoke_reference, tmp_path):
    """The README's parallel sweep (issue 18): two dictionaries queued as DVC experiments, run by 2 workers, each in
    its own temporary workspace; both finish with their own λ, and the workspace is untouched."""
    import shutil
    import time

    root = tmp_path / "queue"
    shutil.copytree(smoke_reference, root, symlinks=True)  # the shared reference stays unmodified
    git(root, "add", "-A")
    git(root, "commit", "-qm", "smoke run")
    runs = {"A_128": 0.002, "A_256": 0.016}  # smoke: 0.004 both
    for run, l1 in runs.items():
        dvc(root, "exp", "run", "--queue", "-q", "-n", f"sweep-{run}", "-S", f"sae_runs.{run}.l1={l1}",
            f"evaluate_sae@{run}")
    dvc(root, "queue", "start", "--jobs", "2")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = dvc(root, "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    dvc(root, "queue", "stop", "--kill")
    assert "Failed" not in status, status + dvc(root, "queue", "logs", "sweep-A_128")
    found = find_experiments(json.loads(dvc(root, "exp", "show", "--json")), {f"sweep-{r}" for r in runs}, {})
    assert set(found) == {f"sweep-{r}" for r in runs}, status
    for run, l1 in runs.items():
        data = found[f"sweep-{run}"]["data"]
        assert data["params"]["params.yaml"]["data"]["sae_runs"][run]["l1"] == l1
        assert data["metrics"][f"metrics/sae/{run}.json"]["data"]["l1_coeff"] == l1
    baseline = yaml.safe_load((root / "params.yaml").read_text())["sae_runs"]
    assert all(baseline[r]["l1"] != l1 for r, l1 in runs.items())  # the queue ran apart from the workspace
