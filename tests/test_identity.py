"""The dictionaries depend on what the activation store is made from, not on its bytes (monosemantic/lm/identity.py):
a regenerated store on another CPU keeps the shipped dictionaries, while a change of the model, the tokens, a
sampling setting, the mix, the precision or the sampling code still invalidates them."""

from dataclasses import replace

import yaml

from monosemantic.core.config import load_params
from monosemantic.lm.identity import IDENTITY_FILE, activation_identity, read_identity, write_identity
from tools.stage_deps import ROOT, reached_files, uncovered


def _world(tmp_path):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights-1")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "train.bin").write_bytes(b"\x01\x02")
    (tokens / "val.bin").write_bytes(b"\x03")
    return model, tokens, load_params(ROOT / "params.yaml").activations


def test_identity_is_a_function_of_its_inputs_only(tmp_path):
    model, tokens, cfg = _world(tmp_path)
    first = activation_identity(model, tokens, cfg, {"DNA": 0.01, "Arabic": 0.003}, "fp32")
    again = activation_identity(model, tokens, cfg, {"Arabic": 0.003, "DNA": 0.01}, "fp32")  # order-free mix
    assert first == again
    assert first["tokens_sha256"]["train.bin"] == \
        "a12871fee210fb8619291eaea194581cbd2531e4b23759d225f6806923f63222"  # sha256(b"\x01\x02")
    write_identity(tmp_path / "store", first)
    assert read_identity(tmp_path / "store") == first and (tmp_path / "store" / IDENTITY_FILE).is_file()


def test_every_input_changes_the_identity(tmp_path):
    model, tokens, cfg = _world(tmp_path)
    base = activation_identity(model, tokens, cfg, {}, "fp32")
    assert activation_identity(model, tokens, replace(cfg, seed=cfg.seed + 1), {}, "fp32") != base
    assert activation_identity(model, tokens, replace(cfg, n_points=cfg.n_points + 1), {}, "fp32") != base
    assert activation_identity(model, tokens, cfg, {"DNA": 0.01}, "fp32") != base
    assert activation_identity(model, tokens, cfg, {}, "bf16") != base
    (tokens / "val.bin").write_bytes(b"\x04")
    assert activation_identity(model, tokens, cfg, {}, "fp32") != base
    (tokens / "val.bin").write_bytes(b"\x03")
    model.write_bytes(b"weights-2")
    assert activation_identity(model, tokens, cfg, {}, "fp32") != base
    model.write_bytes(b"weights-1")
    assert activation_identity(model, tokens, cfg, {}, "fp32") == base


def test_train_sae_depends_on_the_identity_and_the_sampling_code_not_the_store():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train_sae"]["do"]
    deps = [str(d) for d in stage["deps"]]
    assert "artifacts/activations/${item.model}/identity.json" in deps
    assert not any(d.rstrip("/").endswith(("/train", "/val")) or d == "artifacts/activations/${item.model}"
                   for d in deps), "the store's bytes differ between CPUs: depend on its identity"
    # the sampling code: every module sample_activations runs is a dep of the dictionaries too
    # (identity.py itself excepted: what it computes is the dep, so a change there reaches identity.json)
    script = ROOT / "stages" / "sample_activations.py"
    sampling = reached_files(script) - {script, ROOT / "monosemantic" / "lm" / "identity.py"}
    assert not uncovered(sampling, [d for d in deps if "${" not in d])
    params = [p if isinstance(p, str) else next(iter(p)) for p in stage["params"]]
    assert "activations" in params and "precision" in params
