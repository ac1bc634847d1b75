"""The strict params loader (monosemantic/schema.py, monosemantic/config.py): every profile spells exactly the
schema's keys, the dataclasses hold no defaults, and each kind of problem gets a message naming its key, all
problems of a file in one ConfigError."""

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from monosemantic.config import ConfigError, Params, load_params, params_from_dict

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("params.yaml", "configs/smoke.yaml", "configs/medium.yaml", "configs/paper.yaml")


def smoke() -> dict:
    """The smoke profile as parsed YAML: a complete params dict for the tests to spoil."""
    return yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())


def problems(data: dict) -> list[str]:
    """The problems params_from_dict reports for `data`, one per line of its ConfigError."""
    with pytest.raises(ConfigError) as e:
        params_from_dict(data)
    first, *rest = str(e.value).split("\n  - ")
    assert first == "params: invalid parameters:"
    return rest


def sections(cls: type, data: dict, prefix: str = ""):
    """(dotted path, dataclass, mapping) of every section in `data`, following the schema of `cls`: nested
    dataclasses and the entries of a mapping of dataclasses (sae_runs, superposition.arms)."""
    yield prefix, cls, data
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, value = hints[f.name], data.get(f.name)
        if dataclasses.is_dataclass(tp):
            yield from sections(tp, value, f"{prefix}{f.name}.")
        elif typing.get_origin(tp) is dict and dataclasses.is_dataclass(typing.get_args(tp)[1]):
            for key, entry in value.items():
                yield from sections(typing.get_args(tp)[1], entry, f"{prefix}{f.name}.{key}.")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_spells_exactly_the_schemas_keys(profile):
    data = yaml.safe_load((ROOT / profile).read_text())
    n = 0
    for where, cls, section in sections(Params, data):
        spelled, schema = set(section), {f.name for f in dataclasses.fields(cls)}
        assert spelled == schema, f"{profile}: {where or 'top level'} misses {schema - spelled}, has {spelled - schema}"
        n += 1
    assert n >= 14  # 12 sections, toy and resample, plus the sweep's runs
    params = load_params(ROOT / profile)  # and the strict loader accepts it
    assert params.browser.run in params.sae_runs


def test_no_dataclass_of_the_schema_has_a_default():
    seen = []
    for where, cls, _ in sections(Params, yaml.safe_load((ROOT / "params.yaml").read_text())):
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, where + f.name
        seen.append(cls.__name__)
    assert {"Params", "SAEConfig", "ResampleConfig", "BrowserConfig", "ToyConfig", "SuperpositionArm"} <= set(seen)


def test_missing_keys_are_named_all_in_one_message():
    data = smoke()
    del data["browser"]["seed"], data["sae"]["resample"]["n_inputs"], data["device"]
    assert sorted(problems(data)) == [
        "browser.seed: missing key (a params file spells every key, as params.yaml does)",
        "device: missing key (a params file spells every key, as params.yaml does)",
        "sae.resample.n_inputs: missing key (a params file spells every key, as params.yaml does)"]


def test_unknown_key_is_named_with_the_known_ones():
    data = smoke()
    data["evaluate"]["headline"] = "A_256"
    assert problems(data) == ["evaluate.headline: unknown key (known: loss_contexts, ultralow_density, "
                              "dense_density, headline_run, train_density_points, train_density_runs)"]


@pytest.mark.parametrize("key, value, message", [
    ("device", "tpu", "device: 'tpu' not one of auto, cpu, cuda"),
    ("precision", "fp16", "precision: 'fp16' not one of fp32, bf16, auto"),
    ("activations.mode", "fifo", "activations.mode: 'fifo' not one of stored, streamed"),
    ("activations.dtype", "int8", "activations.dtype: 'int8' not one of float16, bfloat16, float32"),
    ("sae.fast_path", "csr", "sae.fast_path: 'csr' not one of auto, sparse, dense"),
    ("sae.encoder_screen", "off", "sae.encoder_screen: 'off' not one of fp32, bf16, auto"),
])
def test_a_value_outside_its_literal_lists_the_allowed_ones(key, value, message):
    data = smoke()
    *path, last = key.split(".")
    section = data
    for name in path:
        section = section[name]
    section[last] = value
    assert problems(data) == [message]


def test_a_bare_off_read_as_false_by_yaml_is_explained(tmp_path):
    """`dvc exp run -S sae.encoder_screen=...` writes the value back bare; YAML reads a bare off as false. The
    values are fp32 | bf16 | auto, all read as strings when bare, and a boolean gets a message that says why."""
    text = (ROOT / "configs" / "smoke.yaml").read_text()
    assert "  encoder_screen: fp32 " in text
    for value in ("bf16", "auto", "fp32"):
        (tmp_path / "p.yaml").write_text(text.replace("  encoder_screen: fp32 ", f"  encoder_screen: {value} "))
        assert load_params(tmp_path / "p.yaml").sae.encoder_screen == value
    (tmp_path / "p.yaml").write_text(text.replace("  encoder_screen: fp32 ", "  encoder_screen: off "))
    with pytest.raises(ConfigError, match=r"sae\.encoder_screen: False \(YAML reads a bare on/off/yes/no/true/false "
                                          r"as a boolean: quote the string\) not one of fp32, bf16, auto"):
        load_params(tmp_path / "p.yaml")


def test_wrong_types_are_named():
    data = smoke()
    data["transformer"]["steps"] = "many"
    data["transformer"]["betas"] = [0.9]
    data["analysis"]["toy"]["correlated"] = 1
    data["analysis"]["splitting_runs"] = "A_128"
    data["sae"]["lr"] = True
    assert problems(data) == [
        "transformer.steps: expected an integer, got 'many'",
        "transformer.betas: expected 2 values, got 1",
        "sae.lr: expected a number, got True (YAML reads a bare on/off/yes/no/true/false as a boolean: quote "
        "the string)",
        "analysis.splitting_runs: expected a list, got 'A_128'",
        "analysis.toy.correlated: expected true/false, got 1"]


def test_impossible_values_are_all_reported():
    data = smoke()
    data["transformer"].update(n_heads=3, mix={"Arabic": 1.5})  # 3 does not divide d_model 32
    data["interpretability"].update(n_units=0, single_token_share=1.5)
    data["sae"]["batch_size"] = data["activations"]["n_points"] + 1
    data["activations"].update(mode="streamed", shuffle_buffer=8190)
    data["browser"]["split_runs"] = ["auto", "A_9"]
    data["evaluate"]["train_density_runs"] = ["A_256", "A_7"]
    assert sorted(problems(data)) == sorted([
        "evaluate.train_density_runs: 'A_7' is not in sae_runs",
        "sae.batch_size: 40001 exceeds the 40000 points of the activation store (activations.n_points)",
        "browser: run 'A_9' is not in sae_runs (A_128, A_256, A_256_l1high, B_256, random_256)",
        "transformer.n_heads: 3 must divide d_model 32",
        "transformer.mix: shares must be in [0, 1], got {'Arabic': 1.5}",
        "activations.shuffle_buffer: 8190 must be a multiple of tokens_per_context 16 (whole contexts per block)",
        "interpretability.n_units: must be positive, got 0",
        "interpretability.single_token_share: must be in (0, 1], got 1.5",
        "evaluate.train_density_points: counts firings on the stored training activations; with "
        "activations.mode streamed there is no train store: set it to 0 (or evaluate.train_density_runs to [])"])
    data["activations"]["mode"] = "stored"
    data["evaluate"]["train_density_points"] = -1
    assert "evaluate.train_density_points: must be >= 0 (0: off), got -1" in problems(data)


def test_streamed_activations_need_no_train_density_when_no_run_asks_for_it():
    data = smoke()
    data["activations"].update(mode="streamed", shuffle_buffer=8192)
    data["evaluate"]["train_density_runs"] = []
    assert params_from_dict(data).evaluate.train_density_runs == ()


def test_mix_shares_must_sum_to_at_most_one():
    data = smoke()
    data["transformer"]["mix"] = {"Arabic": 0.6, "Hebrew": 0.6}
    assert problems(data) == ["transformer.mix: shares sum to 1.2 > 1"]
    data["transformer"]["mix"] = {"Arabic": 0.5, "Hebrew": 0.5}
    assert params_from_dict(data).transformer.mix == {"Arabic": 0.5, "Hebrew": 0.5}


def test_sweep_lookups_name_the_known_runs_and_models():
    params = params_from_dict(smoke())
    assert params.sae_run("B_256").model == "B" and params.transformer_seed("B") == 2
    with pytest.raises(ConfigError, match=r"^'A_9' is not in sae_runs \(A_128, A_256, A_256_l1high, B_256, "
                                          r"random_256\)$"):
        params.sae_run("A_9")
    with pytest.raises(ConfigError, match=r"^model 'C' is not in transformer.seeds \(A, B\)$"):
        params.transformer_seed("C")


def test_missing_file_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such params file"):
        load_params(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("sae: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_every_profile_uses_the_papers_resampling_encoder_scale():
    for profile in PROFILES:
        assert load_params(ROOT / profile).sae.resample.encoder_scale == 0.2, profile  # paper: 0.2 x alive norm
