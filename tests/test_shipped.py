"""The bundled remote ships every trained artifact that the committed dvc.lock names (README: Quick start), so that
`dvc pull` + `dvc repro` in a fresh clone regenerates every analysis from the same models on any CPU.

A retraining that is committed without `dvc push` (the new dvc.lock names outputs that dvc-store/ lacks) fails
here: every file of every output under artifacts/ of the train_* stages (and the shuffled baseline) must be in
dvc-store/, its .dir manifest and each file it lists."""

import json

import pytest
import yaml

from tools.stage_deps import ROOT

SHIPPED_STAGES = ("train_transformer@", "train_sae@", "shuffle_transformer")
STORE = ROOT / "dvc-store" / "files" / "md5"


def _object(md5: str):
    return STORE / md5[:2] / md5[2:]


def shipped_outputs(lock: dict) -> list[tuple[str, str, str]]:
    return [(name, o["path"], o["md5"]) for name, stage in lock["stages"].items() if name.startswith(SHIPPED_STAGES)
            for o in stage.get("outs", []) if o.get("md5") and o["path"].startswith("artifacts/")]


def missing_objects(md5: str) -> list[str]:
    """The objects of one output (a file, or a .dir manifest and the files it lists) that the store lacks."""
    if not _object(md5).is_file():
        return [md5]
    if not md5.endswith(".dir"):
        return []
    return [entry["md5"] for entry in json.loads(_object(md5).read_text()) if not _object(entry["md5"]).is_file()]


LOCK = yaml.safe_load((ROOT / "dvc.lock").read_text())
OUTPUTS = shipped_outputs(LOCK)


def test_the_trained_stages_are_all_shipped():
    names = {n for n, _, _ in OUTPUTS}
    assert {"train_transformer@A", "train_transformer@B", "shuffle_transformer"} <= names
    assert {f"train_sae@{run}" for run in yaml.safe_load((ROOT / "params.yaml").read_text())["sae_runs"]} <= names


@pytest.mark.parametrize("stage,path,md5", OUTPUTS, ids=[f"{n}:{p}" for n, p, _ in OUTPUTS])
def test_every_trained_output_is_in_the_bundled_remote(stage, path, md5):
    missing = missing_objects(md5)
    assert not missing, (f"{stage}: {path} has {len(missing)} object(s) missing from dvc-store/: run `dvc push` "
                         "and commit dvc-store/ with the dvc.lock that names them")


def test_a_missing_file_of_a_directory_output_is_caught(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "STORE", tmp_path)
    manifest = [{"md5": "aa" + "0" * 30, "relpath": "w"}, {"md5": "bb" + "1" * 30, "relpath": "cfg"}]
    (tmp_path / "cc").mkdir()
    (tmp_path / "cc" / ("2" * 30 + ".dir")).write_text(json.dumps(manifest))
    (tmp_path / "aa").mkdir()
    (tmp_path / "aa" / ("0" * 30)).write_bytes(b"w")
    assert missing_objects("cc" + "2" * 30 + ".dir") == ["bb" + "1" * 30]
    assert missing_objects("dd" + "3" * 30) == ["dd" + "3" * 30]
