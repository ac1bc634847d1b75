"""tools/reproduction.py: the bands by their definition, per-file counts, the CSV reading and the --check gate."""

import json

from tools.reproduction import band, check, compare_file, numbers_of, report


def test_bands_are_absolute_up_to_one_and_relative_above():
    assert band(0.5, 0.5) == "exact" and band(float("nan"), float("nan")) == "exact"
    assert band(0.5, 0.5 + 9e-7) == "within_1e-6"
    assert band(0.5, 0.5 + 2e-6) == "within_1e-3"
    assert band(0.5, 0.502) == "further"
    assert band(1000.0, 1000.0009) == "within_1e-6"      # 9e-4 <= 1e-6 * 1000
    assert band(1000.0, 1000.5) == "within_1e-3"         # 0.5 <= 1e-3 * 1000
    assert band(1000.0, 1002.0) == "further"
    assert band(3, 4) == "further"


def test_compare_file_counts_every_number_once():
    counts, moved = compare_file({"a": 1, "b": 0.25, "c": 2.0, "d": 7}, {"a": 1, "b": 0.2500004, "c": 2.5, "e": 1})
    assert counts == {"exact": 1, "within_1e-6": 1, "within_1e-3": 0, "further": 1, "only_committed": 1,
                      "only_now": 1}
    assert moved == {"b": (0.25, 0.2500004), "c": (2.0, 2.5)}


def test_csv_numbers_are_keyed_by_row_and_column():
    assert numbers_of("metrics/sweep.csv", "run,l0,dead\nA_512,12.5,3\nA_1024,20,0\n") == \
        {"[0].l0": 12.5, "[0].dead": 3, "[1].l0": 20, "[1].dead": 0}


def test_report_and_check_see_a_moved_headline_number(tmp_path):
    committed = {"metrics/summary.json": json.dumps({"headline": {"r": 0.82, "n": 5}}),
                 "metrics/sae/A.json": json.dumps({"l0": 25.0})}
    now = {"metrics/summary.json": json.dumps({"headline": {"r": 0.8205, "n": 5}}),
           "metrics/sae/A.json": json.dumps({"l0": 25.0})}
    rep = report(committed, now, tmp_path)
    assert rep["files"]["metrics/summary.json"]["within_1e-3"] == 1
    assert rep["files"]["metrics/sae/A.json"]["exact"] == 1
    assert abs(rep["headline_max_abs_diff"] - 0.0005) < 1e-12 and list(rep["headline_not_exact"]) == ["headline.r"]
    assert check(1e-3, ["metrics/summary.json"], committed, now) == []
    assert check(1e-4, ["metrics/summary.json"], committed, now) == \
        ["metrics/summary.json:headline.r: committed 0.82, now 0.8205"]
    assert check(1e-4, ["metrics/sae/*"], committed, now) == []
    assert check(0, ["metrics/sae/*"], committed, {}) == ["metrics/sae/A.json: not regenerated"]


def test_auto_tolerance_is_exact_on_the_cpu_that_trained_the_shipped_artifacts(tmp_path, monkeypatch):
    import tools.reproduction as R

    prov = tmp_path / "metrics" / "provenance"
    prov.mkdir(parents=True)
    here = R.cpu_info()
    (prov / "sae_A.json").write_text(json.dumps({"stage": "train_sae@A", "cpu": here["cpu"], "isa": here["isa"],
                                                 "precision": "fp32"}))
    assert R.auto_tolerance(tmp_path) == 0.0
    (prov / "transformer_A.json").write_text(json.dumps({"stage": "t@A", "cpu": "Other CPU", "isa": ["avx512f"],
                                                         "precision": "fp32"}))
    assert R.auto_tolerance(tmp_path) == R.OTHER_CPU_TOL
    assert [m["stages"] for m in R.shipped_by(tmp_path)] == [["train_sae@A"], ["t@A"]]


def test_the_reports_are_not_compared_as_metrics():
    # the shipping CPU's report and another CPU's (--out) hold this tool's own numbers: never compared
    from tools.reproduction import skipped

    assert skipped("metrics/reproduction.json") and skipped("metrics/reproduction_other_cpu.json")
    assert not skipped("metrics/summary.json") and not skipped("metrics/sae/A_4096.json")


def test_the_report_names_the_pinned_kernels(monkeypatch):
    import tools.reproduction as R

    for k in R.PIN_VARS:
        monkeypatch.delenv(k, raising=False)
    assert R.report({}, {})["this_run"]["kernels_pinned"] == {}
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert R.report({}, {})["this_run"]["kernels_pinned"] == {"ATEN_CPU_CAPABILITY": "avx2"}


def test_pin_cpu_sh_sets_the_variables_the_report_names():
    import subprocess

    import tools.reproduction as R

    out = subprocess.run(["bash", "-c", ". tools/pin_cpu.sh && env"], cwd=R.ROOT, capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert {k: env[k] for k in R.PIN_VARS} == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                                              "ONEDNN_MAX_CPU_ISA": "AVX2",
                                              "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}


def test_pin_variables_are_read_from_the_script(tmp_path):
    from tools.reproduction import pin_variables

    script = tmp_path / "pin.sh"
    script.write_text("# export NOT_THIS=1 (a comment)\nexport A_VAR=avx2   # kernels\nexport B2=\"x y\"\necho export C=1\n")
    assert pin_variables(script) == ("A_VAR", "B2")


def test_cpu_info_names_the_generation_behind_a_vague_model_name():
    """Two AMD EPYC virtual machines both report "AMD EPYC"; family and model tell Zen 3 (25/1) from Zen 4 (25/17)."""
    from monosemantic.core.provenance import cpu_info

    text = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n"
            "flags\t\t: fpu sse4_1 avx avx2 fma avx512f\nprocessor\t: 1\ncpu family\t: 99\nmodel\t\t: 1\n")
    assert cpu_info(text) == {"cpu": "AMD EPYC", "isa": ["avx", "avx2", "avx512f", "fma", "sse4_1"],
                              "cpu_id": "family 25 model 17"}


def test_training_records_name_the_kernel_pins(monkeypatch):
    from monosemantic.core.provenance import PIN_VARS, training_record

    for k in PIN_VARS:
        monkeypatch.delenv(k, raising=False)
    assert training_record("s", "cpu", "fp32")["kernel_pins"] == "none"
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    rec = training_record("s", "cpu", "fp32", kernels="fused")
    assert rec["kernel_pins"] == "ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2" and rec["kernels"] == "fused"
    assert all(isinstance(v, str) or isinstance(v, list) and all(isinstance(x, str) for x in v) for v in rec.values())
