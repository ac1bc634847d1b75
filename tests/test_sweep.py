"""The sweep table and the headline numbers of metrics/summary.json (monosemantic/sae/sweep.py)."""

import json

import pytest

from monosemantic.data.corpus import Document, corpus_statistics, write_shard
from monosemantic.core.config import SAERun
from monosemantic.sae.architectures.standard import StandardSettings
from monosemantic.sae.sweep import (SWEEP_COLUMNS, collect_headlines, headline, read_curves, run_columns,
                                    sweep_table, verdicts_across_trainings)

OWN = ("run", "model", "n_features", "architecture", "knob", "knob_value", "l1_coeff", "frac_loss_recovered", "l0")


def row(run, model, n, l1, frac, l0=10.0):
    return {"run": run, "model": model, "n_features": n, "architecture": "standard", "knob": "l1_coeff",
            "l1_coeff": l1, "frac_loss_recovered": frac, "l0": l0, "dead_frac": 0.25, "ultralow_frac": 0.5,
            "density_populations": {"dead": 1}, **{c: 0.0 for c in SWEEP_COLUMNS if c not in OWN}}


def test_headline_takes_the_run_and_sizes_at_its_model_and_lambda():
    sweep = sweep_table([row("A_2", "A", 2048, 5e-4, 0.8), row("A_4", "A", 4096, 5e-4, 0.9, l0=21.5),
                         row("A_4_hi", "A", 4096, 1e-3, 0.7), row("B_1", "B", 1024, 5e-4, 0.6),
                         row("A_1", "A", 1024, 5e-4, 0.75)])
    h = headline(sweep, "A_4")
    assert h["a1_frac_loss_recovered"] == 0.9 and h["a1_l0"] == 21.5 and h["a1_dead_frac"] == 0.25
    # sorted by size; the other λ and the other model are left out
    assert list(h["loss_recovered_by_size"].items()) == [("1024", 0.75), ("2048", 0.8), ("4096", 0.9)]
    with pytest.raises(KeyError):
        headline(sweep, "nope")
    assert "a1_train_density" not in h  # only when evaluate.train_density_points counted them
    counted = {**row("A_4", "A", 4096, 5e-4, 0.9), "train_density": {"points": 2_200_000, "dead": 3, "ultralow": 7}}
    h = headline(sweep_table([counted, {**row("A_2", "A", 2048, 5e-4, 0.8), "train_density": float("nan")}]), "A_4")
    assert h["a1_train_density"] == {"points": 2_200_000, "dead": 3, "ultralow": 7}


def test_run_columns_name_the_architecture_and_its_knob():
    run = SAERun(model="A", n_features=4096, architecture="standard", settings=StandardSettings(l1=5e-4), points_mult=1)
    # λ is l1_coeff (the column l1 is the measured mean L1 norm of f), as before the architectures
    assert run_columns(run) == {"architecture": "standard", "knob": "l1_coeff", "l1_coeff": 5e-4}


def test_sweep_table_and_headline_across_architectures():
    """Another architecture's runs (their own knob k) sit in the same table: knob_value is each run's knob, the
    λ column is empty for them, and the headline's sizes stay within its architecture."""
    topk = [{**row(f"A_{n}_topk", "A", n, None, 0.95), "architecture": "topk", "knob": "k", "k": 32}
            for n in (1024, 4096)]
    for r in topk:
        del r["l1_coeff"]
    rows = [row("A_2", "A", 2048, 5e-4, 0.8), row("A_4", "A", 4096, 5e-4, 0.9), *topk]
    sweep = sweep_table(rows)
    table = sweep.reindex(columns=SWEEP_COLUMNS)  # what metrics/sweep.csv keeps
    assert table["knob"].tolist() == ["l1_coeff", "l1_coeff", "k", "k"]
    assert table["knob_value"].tolist() == [5e-4, 5e-4, 32, 32]
    assert table["l1_coeff"].isna().tolist() == [False, False, True, True]
    assert list(headline(sweep, "A_4")["loss_recovered_by_size"]) == ["2048", "4096"]
    assert list(headline(sweep, "A_4096_topk")["loss_recovered_by_size"]) == ["1024", "4096"]


def test_collect_headlines_merges_analysis_files_and_the_dose_response(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"headline": {"x": 1, "y": 2}, "other": 3}))
    (tmp_path / "b.json").write_text(json.dumps({"headline": {"y": 5}}))
    (tmp_path / "c.json").write_text(json.dumps({"no": "headline"}))
    assert collect_headlines(tmp_path, tmp_path / "missing.json") == {"x": 1, "y": 5}  # later files win
    (tmp_path / "dose.json").write_text(json.dumps({"dose_response": [{"arm": "natural"}]}))
    assert collect_headlines(tmp_path / "none", tmp_path / "dose.json") == {"dose_response": [{"arm": "natural"}]}


def test_verdicts_across_trainings_count_k_of_n_at_the_training_mix(tmp_path):
    def rep(proxy, wins, n, natural_wins):
        return {"group": "mix", "proxy": proxy, "arms": ["mix", "mix_seed11"], "seeds": [1, 11],
                "natural": {"feature_wins": natural_wins, "n": n, "gap_min": -0.2, "gap_max": 0.2},
                "at_training_mix": {"feature_wins": wins, "n": n, "gap_min": -0.01 * wins, "gap_max": 0.1}}

    reps = [rep("arabic", 3, 3, 0), rep("hebrew", 2, 3, 3), rep("dna", 1, 3, 3), rep("base64", 0, 3, 3)]
    v = verdicts_across_trainings(reps)["mix"]
    assert {k: p["verdict"] for k, p in v["proxies"].items()} == {"arabic": "3 of 3", "hebrew": "2 of 3",
                                                                  "dna": "1 of 3", "base64": "0 of 3"}
    assert v["proxies_won_in_most_trainings"] == 2 and v["seeds"] == [1, 11]  # 3 of 3 and 2 of 3; 1 of 3 is not
    assert verdicts_across_trainings(reps, "natural")["mix"]["proxies_won_in_most_trainings"] == 3
    assert v["proxies"]["hebrew"]["gap_min"] == -0.02
    (tmp_path / "dose.json").write_text(json.dumps({"dose_response": [], "replicates": reps}))
    assert collect_headlines(tmp_path / "none", tmp_path / "dose.json")["features_vs_neurons_across_trainings"] == \
        verdicts_across_trainings(reps)


def test_read_curves_joins_the_dvclive_tsvs_by_step(tmp_path):
    d = tmp_path / "plots" / "metrics" / "train"
    d.mkdir(parents=True)
    (d / "mse.tsv").write_text("timestamp\tstep\tmse\n0\t0\t0.5\n0\t10\t0.25\n")
    (d / "l0.tsv").write_text("timestamp\tstep\tl0\n0\t0\t100\n0\t10\t20\n")
    df = read_curves(tmp_path)
    assert list(df.columns) == ["step", "l0", "mse"] and df["mse"].tolist() == [0.5, 0.25]
    assert read_curves(tmp_path / "none").empty


def test_corpus_statistics_counts_documents_and_characters(tmp_path):
    for split, docs in (("train", [("English", "abcd"), ("English", "ef"), ("Arabic", "سلام")]),
                        ("val", [("DNA", "ACGT")])):
        write_shard(tmp_path / split / "00.jsonl.zst", [Document(text, subset) for subset, text in docs])
    s = corpus_statistics(tmp_path)
    assert s["train"]["English"] == {"documents": 2, "chars": 6, "char_share": 0.6}
    assert s["train"]["Arabic"]["chars"] == 4 and s["train"]["total"] == {"documents": 3, "chars": 10, "char_share": 1.0}
    assert list(s["train"]) == ["Arabic", "English", "total"] and s["val"]["DNA"]["char_share"] == 1.0


def test_pipeline_verdicts_count_the_trainings_whose_best_feature_beats_the_best_neuron():
    from monosemantic.sae.sweep import pipeline_verdicts

    def fvn(arabic, dna, natural_arabic):  # (feature r, best neuron r) at the training mix, and as the points come
        row = lambda f, n: {"feature_r": f, "best_neuron_r": n, "nearest_neuron_r": n}  # noqa: E731
        return {"proxies": {"arabic": row(*natural_arabic), "dna": row(0.5, 0.5)},
                "at_training_mix": {"proxies": {"arabic": row(*arabic), "dna": row(*dna)}}}

    out = pipeline_verdicts({"A_4096": fvn((0.8, 0.5), (0.61, 0.62), (0.1, 0.9)),
                             "B_4096": fvn((0.7, 0.6), (0.62, 0.61), (0.1, 0.9))}, {"A_4096": 1, "B_4096": 2})
    assert out["runs"] == ["A_4096", "B_4096"] and out["seeds"] == [1, 2]
    assert out["proxies"]["arabic"] == {"verdict": "2 of 2", "feature_wins": 2, "n": 2, "gap_min": 0.1,
                                        "gap_max": 0.3}
    assert out["proxies"]["dna"]["verdict"] == "1 of 2"
    assert out["proxies"]["dna"]["gap_min"] == -0.01 and out["proxies"]["dna"]["gap_max"] == 0.01
    assert out["proxies_won_in_most_trainings"] == 1  # a 1-of-2 is not most
    natural = pipeline_verdicts({"A": fvn((0.8, 0.5), (0, 1), (0.1, 0.9))}, {"A": 1}, view="")
    assert natural["proxies"]["arabic"]["verdict"] == "0 of 1"  # the view read is the one asked for
    assert natural["proxies"]["dna"]["verdict"] == "0 of 1"  # a tie is not a win
