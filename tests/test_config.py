"""The strict params loader (monosemantic/core/schema.py, monosemantic/core/config.py): every profile spells exactly the
schema's keys once merged, the dataclasses hold no defaults, and each kind of problem gets a message naming its
key, all problems of a file in one ConfigError. The profiles (configs/*.yaml) are overlays of params.yaml: merged
by merge_profile they equal, key for key, the full profile files they replaced (tests/golden/profiles/)."""

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from monosemantic.core.config import (REPLACED_WHOLE, ConfigError, Params, SAERun, is_profile, load_params,
                                      merge_profile, params_from_dict, profile_dict)
from monosemantic.sae import architectures
from monosemantic.sae.architectures.standard import StandardSettings
from tools import profile as profile_tool

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").glob("*.yaml"))
PROFILES = ("params.yaml", *OVERLAYS)
GOLDEN = ROOT / "tests" / "golden" / "profiles"  # the full profile files as they were before the overlays


def complete(profile: str) -> dict:
    """The complete params mapping of `profile`: params.yaml as is, a configs/ overlay merged onto it."""
    return profile_dict(ROOT / profile) if is_profile(ROOT / profile) else yaml.safe_load((ROOT / profile).read_text())


def smoke() -> dict:
    """The smoke profile merged onto params.yaml: a complete params dict for the tests to spoil."""
    return profile_dict(ROOT / "configs" / "smoke.yaml")


def problems(data: dict) -> list[str]:
    """The problems params_from_dict reports for `data`, one per line of its ConfigError."""
    with pytest.raises(ConfigError) as e:
        params_from_dict(data)
    first, *rest = str(e.value).split("\n  - ")
    assert first == "params: invalid parameters:"
    return rest


def sections(cls: type, data: dict, prefix: str = ""):
    """(dotted path, dataclass, mapping) of every section in `data`, following the schema of `cls`: nested
    dataclasses and the entries of a mapping of dataclasses (sae_runs, superposition.arms). A run of sae_runs is
    flat in the file: its keys are SAERun.keys(architecture), its own and its architecture's settings."""
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
    data = complete(profile)
    n = 0
    for where, cls, section in sections(Params, data):
        spelled = set(section)
        schema = (set(SAERun.keys(section["architecture"])) if cls is SAERun
                  else {f.name for f in dataclasses.fields(cls)})
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
    for name, cls in architectures.ARCHITECTURES.items():  # a run's settings: every key spelled in params.yaml
        for f in dataclasses.fields(cls.Settings):
            assert f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING, f"{name}.{f.name}"
        assert cls.Settings.knob in {f.name for f in dataclasses.fields(cls.Settings)}, name


def test_a_run_is_flat_in_params_and_holds_its_architectures_settings():
    run = params_from_dict(smoke()).sae_run("A_256")
    assert run == SAERun(model="A", n_features=256, architecture="standard", settings=StandardSettings(l1=0.004),
                        points_mult=1)
    assert SAERun.keys("standard") == ["model", "n_features", "architecture", "points_mult", "l1"]
    with pytest.raises(ConfigError, match=r"^'relu' is not an SAE architecture \(known: standard, standard_2024, "):
        SAERun.keys("relu")


def test_points_mult_multiplies_a_runs_steps_and_nothing_else():
    p = params_from_dict(smoke())
    run = p.sae_run("A_256")
    assert run.points_mult == 1 and run.training(p.sae) is p.sae
    five = dataclasses.replace(run, points_mult=5).training(p.sae)
    assert five == dataclasses.replace(p.sae, steps=5 * p.sae.steps) and five.steps == 5 * p.sae.steps


def test_run_settings_are_checked_against_the_architecture_all_in_one_message():
    data = smoke()
    runs = data["sae_runs"]
    runs["A_128"]["k"] = 32  # a topk setting on a standard run
    runs["A_256"]["architecture"] = "relu"
    del runs["B_256"]["l1"]
    del runs["random_256"]["architecture"]
    runs["A_256_l1high"]["n_features"] = "many"
    data["sae"]["batch_size"] = "big"
    takes = "architecture 'standard' takes: model, n_features, architecture, points_mult, l1"
    assert sorted(problems(data)) == sorted([
        "sae.batch_size: expected an integer, got 'big'",
        f"sae_runs.A_128.k: unknown key ({takes})",
        "sae_runs.A_256.architecture: 'relu' is not an SAE architecture (known: standard, standard_2024, topk, "
        "jumprelu, gated)",
        "sae_runs.A_256_l1high.n_features: expected an integer, got 'many'",
        f"sae_runs.B_256.l1: missing key ({takes})",
        "sae_runs.random_256.architecture: missing key (a params file spells every key, as params.yaml does)"])


def test_run_setting_values_are_checked_by_the_architecture():
    data = smoke()
    data["sae_runs"]["A_128"]["l1"] = -0.5
    data["sae_runs"]["A_256"]["n_features"] = 0
    data["sae_runs"]["B_256"]["points_mult"] = 0
    assert sorted(problems(data)) == ["sae_runs.A_128.l1: must be >= 0, got -0.5",
                                      "sae_runs.A_256.n_features: must be positive, got 0",
                                      "sae_runs.B_256.points_mult: must be >= 1, got 0"]


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
    text = profile_tool.render("smoke")  # the merged smoke params as `python -m tools.profile smoke` writes them
    assert "  encoder_screen: fp32\n" in text
    for value in ("bf16", "auto", "fp32"):
        (tmp_path / "p.yaml").write_text(text.replace("  encoder_screen: fp32\n", f"  encoder_screen: {value}\n"))
        assert load_params(tmp_path / "p.yaml").sae.encoder_screen == value
    (tmp_path / "p.yaml").write_text(text.replace("  encoder_screen: fp32\n", "  encoder_screen: off\n"))
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


# --- profiles as overlays of params.yaml ---

def same(a, b, where: str = "") -> None:
    """a equals b key for key (in the same order) and value for value, with the same types (1 is not 1.0)."""
    assert type(a) is type(b), f"{where}: {a!r} ({type(a).__name__}) vs {b!r} ({type(b).__name__})"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} vs {list(b)}"
        for key in a:
            same(a[key], b[key], f"{where}.{key}" if where else str(key))
    elif isinstance(a, list):
        assert len(a) == len(b), f"{where}: {a} vs {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


@pytest.mark.parametrize("profile", OVERLAYS)
def test_every_overlay_merges_into_a_valid_params_file(profile):
    assert is_profile(ROOT / profile)
    params = params_from_dict(profile_dict(ROOT / profile), profile)
    assert params == load_params(ROOT / profile)  # load_params merges a configs/ overlay the same way
    assert params.evaluate.headline_run in params.sae_runs


@pytest.mark.parametrize("name", sorted(p.stem for p in GOLDEN.glob("*.yaml")))
def test_overlay_merged_onto_params_equals_the_old_full_profile(name):
    """merge(params.yaml, configs/NAME.yaml) == the full configs/NAME.yaml it replaced: nothing changed. (A
    deliberate change of a default in params.yaml that a profile should not inherit fails here: put the old value
    into the overlay; one it should inherit: update the golden copy.)"""
    same(profile_dict(ROOT / "configs" / f"{name}.yaml"), yaml.safe_load((GOLDEN / f"{name}.yaml").read_text()))
    assert (ROOT / "configs" / f"{name}.yaml").exists(), "a profile was removed: remove its golden copy too"


@pytest.mark.parametrize("profile", OVERLAYS)
def test_overlays_are_short_documented_and_hold_only_differences(profile):
    text = (ROOT / profile).read_text()
    assert len(text.splitlines()) <= 60 and text.startswith("# "), profile
    base, overlay = yaml.safe_load((ROOT / "params.yaml").read_text()), yaml.safe_load(text)

    def redundant(b, o, where=""):
        for key, value in o.items():
            path = f"{where}.{key}" if where else key
            if isinstance(value, dict) and isinstance(b.get(key), dict) and path not in REPLACED_WHOLE:
                yield from redundant(b[key], value, path)
            elif key in b and type(value) is type(b[key]) and value == b[key] and path not in REPLACED_WHOLE:
                yield path
    assert list(redundant(base, overlay)) == [], f"{profile} repeats default values"


def test_replaced_whole_are_exactly_the_schemas_named_mappings():
    """The mappings whose keys the profile names (dict[str, ...] fields: runs, arms, seeds, mix shares) replace
    whole; every section of the schema (a dataclass) merges key by key."""
    found = []

    def walk(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if typing.get_origin(tp) is dict:
                found.append(prefix + f.name)
            elif dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
    walk(Params)
    assert sorted(found) == sorted(REPLACED_WHOLE)


def test_merge_rule():
    base = {"a": 1, "sec": {"x": 1, "y": [1, 2], "sub": {"p": 1, "q": 2}}, "sae_runs": {"A": {"l1": 1}, "B": {"l1": 2}},
            "transformer": {"mix": {"DNA": 0.1}, "seeds": {"A": 1, "B": 2}, "steps": 5}}
    overlay = {"sec": {"y": [3], "sub": {"q": 3}, "new": 0}, "sae_runs": {"C": {"l1": 3}},
               "transformer": {"mix": {}, "seeds": {"A": 7}}}
    merged = merge_profile(base, overlay)
    assert merged == {"a": 1, "sec": {"x": 1, "y": [3], "sub": {"p": 1, "q": 3}, "new": 0},
                      "sae_runs": {"C": {"l1": 3}}, "transformer": {"mix": {}, "seeds": {"A": 7}, "steps": 5}}
    assert list(merged) == ["a", "sec", "sae_runs", "transformer"]  # base's key order
    assert base["sec"]["sub"] == {"p": 1, "q": 2} and base["sae_runs"]["B"] == {"l1": 2}  # inputs untouched
    assert merge_profile(base, {}) == base and merge_profile(base, {}) is not base
    arms = merge_profile({"superposition": {"run": "A", "arms": {"x": {"seed": 1}}}},
                         {"superposition": {"arms": {"y": {"seed": 2}}}})
    assert arms == {"superposition": {"run": "A", "arms": {"y": {"seed": 2}}}}


def test_a_merged_profile_is_validated_by_the_full_schema(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "configs" / "bad.yaml").write_text("sae: {batch_sise: 3}\n")
    with pytest.raises(ConfigError, match=r"sae\.batch_sise: unknown key"):
        load_params(tmp_path / "configs" / "bad.yaml")
    (tmp_path / "configs" / "bad.yaml").write_text("transformer: {seeds: {B: 2}}\n")  # replaced whole: no A
    with pytest.raises(ConfigError, match=r"sae_runs\.A_512\.model: 'A' is not a trained model"):
        load_params(tmp_path / "configs" / "bad.yaml")


def test_tools_profile_writes_the_merged_params_in_place_and_elsewhere(tmp_path, monkeypatch, capsys):
    for rel in ("params.yaml", *OVERLAYS):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text())
    monkeypatch.setattr(profile_tool, "ROOT", tmp_path)
    assert profile_tool.main(["paper", "--out", str(tmp_path / "out" / "p.yaml")]) == 0
    same(yaml.safe_load((tmp_path / "out" / "p.yaml").read_text()), yaml.safe_load((GOLDEN / "paper.yaml").read_text()))
    assert (tmp_path / "params.yaml").read_text() == (ROOT / "params.yaml").read_text()  # --out: untouched
    assert profile_tool.main(["smoke"]) == 0 and "git checkout params.yaml" in capsys.readouterr().out
    written = (tmp_path / "params.yaml").read_text()
    same(yaml.safe_load(written), yaml.safe_load((GOLDEN / "smoke.yaml").read_text()))
    assert load_params(tmp_path / "params.yaml") == load_params(ROOT / "configs" / "smoke.yaml")
    run = "A_128: {model: A, n_features: 128, architecture: standard, points_mult: 1, l1: 0.004}"
    assert f"sae_runs:\n  {run}\n" in written
    # params.yaml is now the applied smoke profile: merging another profile onto it is refused
    assert profile_tool.main(["paper", "--out", str(tmp_path / "p2.yaml")]) == 1
    assert "holds the applied profile 'smoke'" in capsys.readouterr().err
    assert profile_tool.main(["nope", "--out", str(tmp_path / "p3.yaml")]) == 1
    assert "no such profile (known: medium, paper, quick, smoke)" in capsys.readouterr().err


def test_one_precision_by_default_on_every_cpu():
    """fp32 in the default and every CPU profile: `auto` would train in bf16 on CPUs with bf16 units and in fp32
    elsewhere, so the same profile would give other numbers on another CPU; auto/bf16 stay opt-in (GPU profiles)."""
    from pathlib import Path

    from monosemantic.core.config import load_params, profile_dict

    root = Path(__file__).resolve().parents[1]
    assert load_params(root / "params.yaml").precision == "fp32"
    for profile in sorted((root / "configs").glob("*.yaml")):
        expected = "auto" if profile.stem in ("paper", "medium") else "fp32"  # the GPU profiles
        assert profile_dict(profile)["precision"] == expected, profile.name


def test_quick_profile_is_the_default_at_the_one_x_budget():
    """configs/quick.yaml: the default with 1/16 of its transformer steps and every dictionary on the store's points;
    nothing else differs (so its numbers are the 1x arm of the budget comparison)."""
    default, quick = load_params(ROOT / "params.yaml"), load_params(ROOT / "configs" / "quick.yaml")
    assert default.transformer.steps == 16 * quick.transformer.steps == 24000
    assert any(r.points_mult > 1 for r in default.sae_runs.values())
    runs = {k: dataclasses.replace(r, points_mult=1) for k, r in default.sae_runs.items()}
    transformer = dataclasses.replace(default.transformer, steps=1500)
    assert quick == dataclasses.replace(default, transformer=transformer, sae_runs=runs)


def test_an_unknown_arm_is_named_with_the_known_ones():
    p = params_from_dict(complete("params.yaml"))
    assert p.superposition_arm("rare_mixed").tokens_mult == 1
    with pytest.raises(ConfigError, match=r"^arm 'rare_mixd' is not in superposition.arms \(natural, natural_4x_sae, "):
        p.superposition_arm("rare_mixd")
