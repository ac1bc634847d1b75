"""The regression comparison: which metrics count as moved, and the table it prints."""

from monosemantic import regression


def test_flatten_nested_metrics():
    flat = regression.flatten({"a": {"b": 1, "c": [2.5, {"d": 3}]}, "name": "x", "flag": True})
    assert flat == {"a.b": 1.0, "a.c[0]": 2.5, "a.c[1].d": 3.0}


def test_compare_flags_only_moves_beyond_tolerance():
    base = {"metrics/sae/A.json:l0": 20.0, "metrics/sae/A.json:frac_loss_recovered": 0.80,
            "metrics/transformer/A.json:tokens_per_s": 1000.0, "metrics/corpus.json:train.total.chars": 100.0}
    same = {**base, "metrics/sae/A.json:l0": 20.5, "metrics/transformer/A.json:tokens_per_s": 5.0}
    assert regression.compare(base, same) == []  # 2.5% L0 change is inside 5%; timings are ignored
    moved = {**base, "metrics/sae/A.json:frac_loss_recovered": 0.70, "metrics/corpus.json:train.total.chars": 101.0}
    rows = regression.compare(base, moved)
    assert [r[0] for r in rows] == ["metrics/corpus.json:train.total.chars",
                                    "metrics/sae/A.json:frac_loss_recovered"]
    table = regression.format_table(rows)
    assert "0.8" in table and "0.7" in table and "-0.1" in table and "baseline" in table


def test_missing_and_new_metrics_are_reported():
    rows = regression.compare({"metrics/x.json:a": 1.0}, {"metrics/x.json:b": 1.0})
    assert {(r[0], r[1], r[2]) for r in rows} == {("metrics/x.json:a", "1", "missing"),
                                                  ("metrics/x.json:b", "missing", "1")}


def test_every_rule_has_a_justification():
    assert all(tol.why for _, tol in regression.TOLERANCES)
