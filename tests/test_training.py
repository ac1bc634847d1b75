"""The resumable-training helper (monosemantic/core/training.py) on its own: fingerprint, checkpoint integrity and
fingerprint check, RNG round trip, dvclive rows trimmed on resume, the non-finite loss stop."""

import hashlib
import json

import pytest
import torch

from monosemantic.core import training
from monosemantic.core.training import (CHECKPOINT_MAGIC, Checkpointer, CorruptCheckpointError, LiveLog,
                                   NonFiniteLossError, check_finite, checkpoint_state, restore_rng, rng_state)


def test_fingerprint_is_sha256_of_sorted_json_then_data():
    expected = hashlib.sha256(b'{"a": [1, 2], "b": "x"}' + b"\x01\x02").hexdigest()
    assert training.fingerprint({"b": "x", "a": [1, 2]}, b"\x01\x02") == expected
    assert training.fingerprint({"a": [1, 2], "b": "x"}) != expected  # the data bytes count
    assert training.fingerprint({"p": (0.9, 0.99)}) == training.fingerprint({"p": [0.9, 0.99]})


def test_code_digest_hashes_package_files():
    digest = training.code_digest(("core/training.py",))
    expected = hashlib.sha256(training.PACKAGE.joinpath("core/training.py").read_bytes()).hexdigest()
    assert digest == {"core/training.py": expected}


def test_save_then_load_round_trips_and_records_its_sha256(tmp_path):
    ckpt = Checkpointer(tmp_path / "sub" / "run.pt", "fp-1")
    assert ckpt.load() is None  # nothing saved yet
    ckpt.save({"step": 7, "w": torch.arange(4.0), "rows": [{"n": 2}]})
    data = (tmp_path / "sub" / "run.pt").read_bytes()
    head = len(CHECKPOINT_MAGIC)
    assert data.startswith(CHECKPOINT_MAGIC) and data[head + 64:head + 65] == b"\n"
    assert data[head:head + 64].decode() == hashlib.sha256(data[head + 65:]).hexdigest()
    state = ckpt.load()
    assert state["step"] == 7 and state["rows"] == [{"n": 2}] and state["fingerprint"] == "fp-1"
    assert torch.equal(state["w"], torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["run.pt"]  # no temp file left behind
    ckpt.remove()
    assert not (tmp_path / "sub" / "run.pt").exists()


def test_one_flipped_byte_is_rejected_with_a_clear_message(tmp_path, capsys):
    path = tmp_path / "run.pt"
    Checkpointer(path, "fp").save({"w": torch.ones(100)})
    data = bytearray(path.read_bytes())
    data[-50] ^= 0x01  # inside the tensor bytes: torch.load alone would read it without complaint
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=r"run\.pt: corrupted checkpoint \(sha256 differs"):
        checkpoint_state(path)
    assert Checkpointer(path, "fp").load() is None
    assert "corrupted checkpoint" in capsys.readouterr().out


def test_a_file_of_another_format_is_rejected(tmp_path, capsys):
    path = tmp_path / "old.pt"
    torch.save({"step": 3, "fingerprint": "fp"}, path)  # a plain torch.save file (no magic, no digest)
    assert Checkpointer(path, "fp").load() is None
    assert "corrupted checkpoint" in capsys.readouterr().out


def test_checkpoint_of_another_fingerprint_is_ignored(tmp_path, capsys):
    path = tmp_path / "run.pt"
    Checkpointer(path, "settings-A").save({"step": 5})
    assert Checkpointer(path, "settings-B").load() is None
    assert "written for different settings, data or code; starting afresh" in capsys.readouterr().out
    assert path.exists() and Checkpointer(path, "settings-A").load()["step"] == 5  # kept, only not resumed


def test_no_path_means_no_checkpointing(tmp_path):
    ckpt = Checkpointer(None, "fp")
    ckpt.save({"step": 1})
    ckpt.remove()
    assert ckpt.load() is None and list(tmp_path.iterdir()) == []


def test_rng_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(123)
    gen = torch.Generator().manual_seed(5)
    torch.rand(3), torch.rand(3, generator=gen)  # advance both
    Checkpointer(tmp_path / "r.pt", "fp").save({"rng": rng_state(data=gen)})
    expected = torch.rand(4), torch.randint(100, (4,), generator=gen)
    torch.manual_seed(0)  # disturb both
    gen2 = torch.Generator().manual_seed(99)
    restore_rng(Checkpointer(tmp_path / "r.pt", "fp").load()["rng"], data=gen2)
    assert torch.equal(torch.rand(4), expected[0])
    assert torch.equal(torch.randint(100, (4,), generator=gen2), expected[1])


def test_live_log_trims_rows_after_the_checkpoint_on_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # dvclive must write nothing outside its folder
    live_dir = tmp_path / "live"
    log = LiveLog(live_dir, None)
    for step in (1, 2, 3, 4):
        log.log(step, {"train/loss": step / 2, "train/dead": step})
    # killed here (no end()); the last checkpoint was written at step 2
    resumed = LiveLog(live_dir, 2)  # the killed run's rows 3 and 4 go
    resumed.log(3, {"train/loss": 9.5, "train/dead": 7})
    resumed.end()
    rows = (live_dir / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    assert [r.split("\t") for r in rows] == [["step", "loss"], ["1", "0.5"], ["2", "1.0"], ["3", "9.5"]]
    dead = (live_dir / "plots" / "metrics" / "train" / "dead.tsv").read_text().splitlines()
    assert [r.split("\t")[1] for r in dead[1:]] == ["1", "2", "7"]  # ints stay ints
    assert json.loads((live_dir / "metrics.json").read_text())["step"] == 3
    LiveLog(live_dir, None).end()  # a fresh run starts from an empty folder
    assert not (live_dir / "plots").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live"]


def test_check_finite_stops_on_nan_and_inf_with_the_step_and_parts():
    check_finite(torch.tensor(1.5), 3)  # finite: nothing happens
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 24 \(mse nan, l1 0\.25\); "
                                                 r"stopped before the optimizer step"):
        check_finite(torch.tensor(float("nan")), 24, mse=torch.tensor(float("nan")), l1=torch.tensor(0.25))
    with pytest.raises(NonFiniteLossError, match=r"\(inf\) at step 2; .*; lower the lr$"):
        check_finite(torch.tensor(float("inf")), 2, advice="lower the lr")
