"""The whole pipeline, end to end, on the smoke profile (configs/smoke.yaml) in scratch copies of the repo.

Slow (a few minutes): two full reproductions from scratch, to show that same params give identical outputs.
"""

import json
import subprocess

import pytest
import yaml

from monosemantic import regression

pytestmark = pytest.mark.slow


def lock_hashes(root) -> dict[str, str]:
    """Every stage's output md5s from dvc.lock (timing-free: the lock holds content hashes only)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {f"{stage}:{out['path']}": out["md5"] for stage, body in lock["stages"].items()
            for out in body.get("outs", [])}


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    first = tmp_path_factory.mktemp("smoke1")
    second = tmp_path_factory.mktemp("smoke2")
    regression.reproduce(first)
    regression.reproduce(second)
    return first, second


def test_smoke_pipeline_produces_every_output(smoke_runs):
    root, _ = smoke_runs
    summary = json.loads((root / "metrics/summary.json").read_text())["headline"]
    for key in ("a1_frac_loss_recovered", "a1_l0", "a1_dead_frac", "a1_ultralow_frac", "loss_recovered_by_size"):
        assert key in summary
    assert 0.2 < summary["a1_frac_loss_recovered"] < 1.0
    assert summary["a1_l0"] > 0
    for fig in ("fig12_density_by_l1.png", "fig13_l0_vs_loss_recovered.png", "sae_training_curves.png"):
        assert (root / "paper_figures" / fig).stat().st_size > 10_000
    status = subprocess.run(["dvc", "status", "-q"], cwd=root, env=regression.venv_env())
    assert status.returncode == 0, "dvc status should be clean right after dvc repro"


def test_smoke_pipeline_is_deterministic(smoke_runs):
    first, second = smoke_runs
    a, b = lock_hashes(first), lock_hashes(second)
    assert a and a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}


def test_smoke_metrics_match_the_golden_baseline(smoke_runs):
    root, _ = smoke_runs
    baseline = json.loads(regression.BASELINE.read_text())
    rows = regression.compare(baseline, regression.collect(root))
    assert not rows, "\n" + regression.format_table(rows)
