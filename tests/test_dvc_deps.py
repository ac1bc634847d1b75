"""Stage deps cannot drift: every module of the repository that a stage script reaches by imports is a dep of the
stage (tools/stage_deps.py; `python -m tools.stage_deps --write` regenerates them).

A change in a module that a stage imports but does not list would leave DVC's cached result of that stage in
place although the code that made it changed. A dep that is a folder covers every file under it.
"""

from pathlib import Path

import pytest

from tools.stage_deps import ROOT, code_deps, reached_files, stage_script, stages_of, uncovered

STAGES = [(f"{f.parent.name}:{name}", script, deps)
          for f in [ROOT / "dvc.yaml", *sorted(ROOT.glob("experiments/*/dvc.yaml"))]
          for name, (script, deps) in stages_of(f).items()]


def test_the_walk_follows_imports_transitively():
    files = reached_files(ROOT / "stages" / "train_sae.py")
    rels = {f.relative_to(ROOT).as_posix() for f in files}
    # train_sae imports sae.train, which imports sae.resample
    assert {"monosemantic/sae/train.py", "monosemantic/sae/resample.py", "monosemantic/core/config.py",
            "monosemantic/core/utils.py"} <= rels
    assert "monosemantic/browser/site.py" not in rels
    assert "monosemantic/sae/__init__.py" in rels  # importing monosemantic.sae.train runs it
    assert uncovered(files, ["stages/train_sae.py"]) and not uncovered(files, ["stages", "monosemantic"])


def test_the_params_loaders_validation_import_is_not_a_dep_of_every_stage():
    """core/config.py builds each run's settings with its architecture's Settings (VALIDATION_ONLY): the stages
    that do not touch a dictionary do not depend on the architectures; those that train or load one do."""
    from tools.stage_deps import VALIDATION_ONLY, imported_modules

    config = ROOT / "monosemantic" / "core" / "config.py"
    assert VALIDATION_ONLY == {config.relative_to(ROOT).parts: ("monosemantic.sae",)}
    assert "monosemantic.sae.architectures" in imported_modules(config)  # the exemption is not stale
    arch = ROOT / "monosemantic" / "sae" / "architectures" / "topk.py"
    assert arch not in reached_files(ROOT / "stages" / "train_transformer.py")
    assert arch not in reached_files(ROOT / "stages" / "tokenize_corpus.py")
    for stage in ("train_sae", "evaluate_sae", "browser"):
        assert arch in reached_files(ROOT / "stages" / f"{stage}.py"), stage


def test_folder_deps_cover_subpackages_and_exact_deps_name_files(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "monosemantic" / "lm").mkdir(parents=True)
    (tmp_path / "stages" / "s.py").write_text("from monosemantic.lm import model\n")
    (tmp_path / "monosemantic" / "lm" / "__init__.py").write_text('"""Sub."""\n')
    (tmp_path / "monosemantic" / "lm" / "model.py").write_text("X = 1\n")
    (tmp_path / "monosemantic" / "lm" / "train.py").write_text("Y = 2\n")  # not imported by s.py
    rels = {f.relative_to(tmp_path).as_posix() for f in reached_files(tmp_path / "stages" / "s.py", tmp_path)}
    assert rels == {"stages/s.py", "monosemantic/lm/__init__.py", "monosemantic/lm/model.py"}
    assert code_deps(tmp_path / "stages" / "s.py", tmp_path) == ["stages/s.py", "monosemantic/lm"]
    assert code_deps(tmp_path / "stages" / "s.py", tmp_path, per_file=True) == [
        "stages/s.py", "monosemantic/lm/__init__.py", "monosemantic/lm/model.py"]  # train.py changes nothing
    (tmp_path / "stages" / "s.py").write_text("from monosemantic.lm import model, train\n")
    assert code_deps(tmp_path / "stages" / "s.py", tmp_path, per_file=True) == ["stages/s.py", "monosemantic/lm"]


def test_stage_script_reads_module_and_path_commands():
    assert stage_script("python -m stages.proxies ${item.run}") == ROOT / "stages" / "proxies.py"
    assert stage_script("python stages/proxies.py A") == ROOT / "stages" / "proxies.py"
    assert code_deps(ROOT / "stages" / "corpus_stats.py")[0] == "stages/corpus_stats.py"


@pytest.mark.parametrize("name,script,deps", STAGES, ids=[s[0] for s in STAGES])
def test_stage_deps_cover_every_imported_module(name, script, deps):
    assert script is not None and script.is_file(), f"stage {name}: no script found in its cmd"
    missing = uncovered(reached_files(script), deps)
    assert not missing, (f"stage {name} imports but does not list as deps: {', '.join(missing)} "
                         "(python -m tools.stage_deps --write)")


def test_every_stage_runs_as_a_module():
    """One way to run a stage: `python -m stages.NAME`, no sys.path edits."""
    for name, script, _ in STAGES:
        text = Path(script).read_text()
        assert "sys.path.insert" not in text and "noqa: E402" not in text, f"stage {name}: sys.path edit"
