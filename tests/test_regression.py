"""The regression comparison: which metrics count as moved, and the table it prints."""

from tools import regression
def test_flatten_nested_metrics():
    flat = regression.flatten({"a": {"b": 1, "c": [2.5, {"d": 3}]}, "name": "x", "flag": True})
    assert flat == {"a.b": 1.0, "a.c[0]": 2.5, "a.c[1].d": 3.0}


def test_compare_flags_only_moves_beyond_tolerance():
    base = {"metrics/transformer/A.json:val_loss": 5.0, "metrics/transformer/A.json:subsets.DNA.best_neuron_r": 0.8,
            "metrics/transformer/A.json:tokens_per_s": 1000.0, "metrics/corpus.json:train.total.chars": 100.0}
    same = {**base, "metrics/transformer/A.json:val_loss": 5.005, "metrics/transformer/A.json:tokens_per_s": 5.0}
    assert regression.compare(base, same) == []  # 0.005 nats is inside ±0.01 + 0.2%; timings are ignored
    moved = {**base, "metrics/transformer/A.json:val_loss": 5.1, "metrics/corpus.json:train.total.chars": 101.0}
    rows = regression.compare(base, moved)
    assert [r[0] for r in rows] == ["metrics/corpus.json:train.total.chars", "metrics/transformer/A.json:val_loss"]
    table = regression.format_table(rows)
    assert "5.1" in table and "+0.1" in table and "baseline" in table


def test_another_platform_compares_only_what_no_sae_training_reaches():
    base = {"metrics/sae/A.json:dead": 12, "metrics/sae/A.json:l0": 20.0, "metrics/summary.json:headline.a1_l0": 20.0,
            "metrics/analysis/proxies_A.json:arabic.best_neuron_pearson": 0.7,
            "metrics/analysis/toy.json:mmcs": 0.7, "metrics/tokens.json:train.tokens": 1000}
    chaotic = {**base, "metrics/sae/A.json:dead": 14, "metrics/sae/A.json:l0": 30.0,
               "metrics/summary.json:headline.a1_l0": 30.0}
    assert regression.compare(base, chaotic, same_platform=False) == []
    assert len(regression.compare(base, chaotic, same_platform=True)) == 3
    for key, value in (("metrics/analysis/proxies_A.json:arabic.best_neuron_pearson", 0.6),
                       ("metrics/analysis/toy.json:mmcs", 0.6), ("metrics/tokens.json:train.tokens", 1001)):
        assert [r[0] for r in regression.compare(base, {**base, key: value}, same_platform=False)] == [key]
    assert regression.portable("metrics/transformer/B.json:subsets.Arabic.val_loss")
    assert not regression.portable("metrics/analysis/neurons_vs_features.json:arabic.feature_r")


def test_missing_and_new_metrics_are_reported():
    rows = regression.compare({"metrics/x.json:a": 1.0}, {"metrics/x.json:b": 1.0}, same_platform=True)
    assert {(r[0], r[1], r[2]) for r in rows} == {("metrics/x.json:a", "1", "missing"),
                                                  ("metrics/x.json:b", "missing", "1")}


def test_every_rule_has_a_justification():
    assert all(tol.why for _, tol in regression.TOLERANCES)


def test_integers_compare_exactly_on_any_platform():
    base = {"metrics/sae/A.json:dead": 12, "metrics/sae/A.json:resampling[0].n_resampled": 40,
            "metrics/tokens.json:val.tokens": 77}
    assert regression.compare(base, dict(base)) == []
    rows = regression.compare(base, {**base, "metrics/sae/A.json:resampling[0].n_resampled": 41}, same_platform=True)
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [
        ("metrics/sae/A.json:resampling[0].n_resampled", "40", "41", "exact (an integer)")]
    rows = regression.compare(base, {**base, "metrics/tokens.json:val.tokens": 78}, same_platform=False)
    assert [(r[0], r[4]) for r in rows] == [("metrics/tokens.json:val.tokens", "exact (an integer)")]
    assert regression.flatten({"n": 3, "x": 3.0}) == {"n": 3, "x": 3.0}
    assert isinstance(regression.flatten({"n": 3})["n"], int) and isinstance(regression.flatten({"x": 3.0})["x"], float)


def test_same_platform_is_exact_other_platform_uses_tolerances():
    values = {"metrics/sae/A.json:mse": 0.0123456789, "metrics/sae/A.json:l0": 20.0,
              "artifacts/sae/A/sae_weights.safetensors:sha256": "ab" * 32}
    here = regression.baseline_document(values)
    assert here["platform"] == regression.platform_info()
    assert {"cpu", "isa", "cores", "torch", "numpy"} <= set(here["platform"])
    moved = {**values, "metrics/sae/A.json:mse": 0.0123456789 * (1 + 1e-6)}  # far inside 5%, not bitwise
    rows = regression.compare(here, moved)
    assert [r[0] for r in rows] == ["metrics/sae/A.json:mse"] and "same platform" in rows[0][4]
    assert regression.compare(here, {**values, "metrics/sae/A.json:mse": 0.0123456789 * (1 + 1e-12)}) == []
    other = regression.baseline_document(values, {**here["platform"], "cpu": "another CPU"})
    assert regression.compare(other, moved) == []
    toy = {"metrics/analysis/toy.json:fvu": 0.0123456789}
    assert regression.compare(regression.baseline_document(toy, other["platform"]),
                              {"metrics/analysis/toy.json:fvu": 0.0123456789 * 1.01}) == []  # inside 5% elsewhere
    assert regression.compare(regression.baseline_document(toy, other["platform"]),
                              {"metrics/analysis/toy.json:fvu": 0.0123456789 * 1.1}) != []
    # a weights fingerprint: exact on the same platform, not compared on another
    new_weights = {**values, "artifacts/sae/A/sae_weights.safetensors:sha256": "cd" * 32}
    assert [r[0] for r in regression.compare(here, new_weights)] == ["artifacts/sae/A/sae_weights.safetensors:sha256"]
    assert regression.compare(other, new_weights) == []


def test_collect_fingerprints_weights_and_keeps_integer_metrics(tmp_path):
    (tmp_path / "metrics" / "sae").mkdir(parents=True)
    (tmp_path / "metrics" / "sae" / "A.json").write_text('{"dead": 3, "mse": 0.5, "resampling": [{"step": 5}]}')
    (tmp_path / "artifacts" / "sae" / "A").mkdir(parents=True)
    (tmp_path / "artifacts" / "sae" / "A" / "sae_weights.safetensors").write_bytes(b"weights")
    got = regression.collect(tmp_path)
    import hashlib
    assert got == {"metrics/sae/A.json:dead": 3, "metrics/sae/A.json:mse": 0.5,
                   "metrics/sae/A.json:resampling[0].step": 5,
                   "artifacts/sae/A/sae_weights.safetensors:sha256": hashlib.sha256(b"weights").hexdigest()}


def test_scratch_copy_gets_the_smoke_params_the_full_profile_file_held(tmp_path):
    """configs/smoke.yaml is an overlay of params.yaml: the scratch copy's params.yaml is the merged profile, value
    for value the full smoke profile the regression baseline was made with (tests/golden/profiles/smoke.yaml)."""
    import yaml

    from monosemantic.core.config import load_params

    dest = regression.scratch_copy(tmp_path / "copy")
    golden = yaml.safe_load((regression.ROOT / "tests/golden/profiles/smoke.yaml").read_text())
    assert yaml.safe_load((dest / "params.yaml").read_text()) == golden
    assert load_params(dest / "params.yaml").sae_runs["A_256"].n_features == 256
