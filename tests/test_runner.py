"""One way to run a stage (monosemantic/core/runner.py), the artifact paths (paths.py) and the stage-deps tool."""

import subprocess
import sys
from pathlib import Path

import pytest

from monosemantic.core import paths
from monosemantic.core.runner import stage
from monosemantic.core.utils import PipelineError
from tools.profile import render

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def in_smoke_dir(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(render("smoke"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_stage_passes_params_and_arguments(in_smoke_dir):
    seen = []

    @stage("RUN", "[OTHER]")
    def main(params, run, other="-"):
        seen.append((params.sae_run(run).model, other))

    main.run(["A_256"])
    main.run(["B_256", "x"])
    assert seen == [("A", "-"), ("B", "x")]


def test_stage_errors_are_one_message(in_smoke_dir, capsys):
    @stage("RUN")
    def main(params, run):
        params.sae_run(run)

    for argv, message in (([], "usage: python -m"), (["A_256", "extra"], "usage: python -m"),
                          (["NO_SUCH_RUN"], "'NO_SUCH_RUN' is not in sae_runs (A_128, A_256")):
        with pytest.raises(SystemExit) as e:
            main.run(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err


def test_pipeline_errors_and_missing_files_have_no_traceback(in_smoke_dir, capsys):
    class Broken(PipelineError):
        pass

    @stage()
    def broken(params):
        raise Broken("the store is corrupt")

    @stage()
    def missing(params):
        (in_smoke_dir / "nothing.json").read_text()

    @stage()
    def bug(params):
        raise KeyError("a bug keeps its traceback")

    for fn, message in ((broken, "the store is corrupt"), (missing, "nothing.json")):
        with pytest.raises(SystemExit):
            fn.run([])
        assert message in capsys.readouterr().err
    with pytest.raises(KeyError):
        bug.run([])


def test_invalid_params_stop_before_the_stage_runs(in_smoke_dir, capsys):
    (in_smoke_dir / "params.yaml").write_text(render("smoke").replace("\ndevice: ", "\ndevice: tpu  #"))
    ran = []

    @stage()
    def main(params):
        ran.append(1)

    with pytest.raises(SystemExit):
        main.run([])
    assert not ran and "device" in capsys.readouterr().err


def test_a_stage_runs_as_a_module_from_the_repo_root(in_smoke_dir):
    r = subprocess.run([sys.executable, "-m", "stages.train_sae", "NO_SUCH_RUN"], cwd=in_smoke_dir,
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2 and "NO_SUCH_RUN" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "stages.train_sae", "--help"], cwd=in_smoke_dir,
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and "usage: python -m stages.train_sae RUN" in r.stdout


def test_paths_and_empty_checkpoint_folders(in_smoke_dir):
    assert paths.sae_dir("A_256") == Path("artifacts/sae/A_256")
    assert paths.activations_dir("B", "val") == Path("artifacts/activations/B/val")
    assert paths.analysis_metrics("proxies_A_256") == Path("metrics/analysis/proxies_A_256.json")
    paths.sae_checkpoints("A_256").mkdir(parents=True)
    (paths.CHECKPOINTS / "transformer").mkdir()
    (paths.CHECKPOINTS / "transformer" / "B.pt").write_bytes(b"kept")
    paths.remove_empty_checkpoint_dirs()
    assert not (paths.CHECKPOINTS / "sae").exists()  # only empty folders below it
    assert (paths.CHECKPOINTS / "transformer" / "B.pt").exists()
    (paths.CHECKPOINTS / "transformer" / "B.pt").unlink()
    paths.remove_empty_checkpoint_dirs()
    assert not paths.CHECKPOINTS.exists()
    # checkpoints/ as a link to a folder elsewhere (two clones sharing it): emptied below, the link kept
    (Path("elsewhere") / "sae" / "A_256").mkdir(parents=True)
    paths.CHECKPOINTS.symlink_to(Path("elsewhere").resolve(), target_is_directory=True)
    paths.remove_empty_checkpoint_dirs()
    assert paths.CHECKPOINTS.is_symlink() and not any(Path("elsewhere").iterdir())


def test_torch_threads_sets_the_count_inside_and_restores_it_even_on_error():
    import torch

    from monosemantic.core.utils import torch_threads

    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    with torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(other):
        raise RuntimeError("a stage failed")
    assert torch.get_num_threads() == before
