"""A `dvc repro` killed with SIGKILL during train_transformer and again during train_sae resumes from the
checkpoints (outside the DVC outputs, which DVC deletes before rerunning a stage) and ends with every output
hash in dvc.lock equal to an uninterrupted run's (smoke profile, scratch copies). To keep it cheap it
reproduces the pipeline up to `train_sae` only (the stages that train) and compares with the full uninterrupted
run that test_pipeline.py also uses (the `smoke_reference` fixture in conftest.py).
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tools import regression
pytestmark = pytest.mark.slow


def lock_hashes(root: Path) -> dict[str, str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {f"{stage}:{out['path']}": out["md5"] for stage, body in lock["stages"].items()
            for out in body.get("outs", [])}


def start_repro(root: Path, log: Path) -> subprocess.Popen:
    env = regression.venv_env()  # the reference run's environment: thread counts change fp32 rounding
    with open(log, "w") as fh:  # its own session: SIGKILL reaches dvc and the stage it runs
        return subprocess.Popen(["dvc", "repro", "train_sae"], cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_when(proc: subprocess.Popen, root: Path, pattern: str, timeout: float = 900) -> str:
    """SIGKILL the whole process group as soon as a file matching `pattern` exists (a checkpoint written
    mid-stage); returns its path."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(pattern))
        if found:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return found[0].relative_to(root).as_posix()
        if proc.poll() is not None:
            raise AssertionError(f"dvc repro ended (rc {proc.returncode}) before {pattern} appeared")
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"no {pattern} within {timeout} s")


def test_killed_repro_resumes_and_matches_an_uninterrupted_run(smoke_reference, tmp_path):
    root = regression.scratch_copy(tmp_path / "repo")
    if not (root / "data").exists():  # a fresh clone has no data/ until `dvc pull` (regression.reproduce does the same)
        subprocess.run(["dvc", "pull", "-q", "data.dvc"], cwd=root, check=True, env=regression.venv_env())
    # Checkpoint earlier (smoke: every 50 steps of 150) so a kill lands well inside the stage; checkpointing
    # does not change results. The transformer's stays a multiple of lm.LOG_EVERY: its logged train loss is a
    # running mean since the last log, which a checkpoint between two logs does not hold.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["transformer"]["checkpoint_every"] = 25
    params["sae"]["checkpoint_every"] = 10
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    first = start_repro(root, tmp_path / "run1.log")
    killed_lm = kill_when(first, root, "checkpoints/transformer/*.pt")
    second = start_repro(root, tmp_path / "run2.log")
    killed_sae = kill_when(second, root, "checkpoints/sae/*/checkpoint.pt")
    third = start_repro(root, tmp_path / "run3.log")
    assert third.wait(timeout=1800) == 0, (tmp_path / "run3.log").read_text()[-3000:]

    log2, log3 = (tmp_path / "run2.log").read_text(), (tmp_path / "run3.log").read_text()
    model = Path(killed_lm).stem
    # the killed transformer resumed from its checkpoint (DVC may run the other model's chain first, so this is in
    # the second or the third run's log), and the killed SAE resumed in the third run
    assert f"resuming from {killed_lm}" in log2 + log3, (log2 + log3)[-3000:]
    run = Path(killed_sae).parent.name
    assert f"resuming {run} at step" in log3, log3[-3000:]
    assert not (root / "checkpoints").exists()  # every checkpoint removed once its stage completed

    reference = lock_hashes(smoke_reference)
    resumed = lock_hashes(root)
    stages = {key.split(":")[0].split("@")[0] for key in resumed}
    assert {"tokenize", "train_transformer", "shuffle_transformer", "sample_activations", "train_sae"} <= stages
    assert f"train_transformer@{model}:artifacts/models/{model}" in resumed
    assert f"train_sae@{run}:artifacts/sae/{run}" in resumed
    differ = {k: (reference.get(k), v) for k, v in resumed.items() if reference.get(k) != v}
    assert not differ, differ  # every output of the interrupted, resumed run is byte-identical
