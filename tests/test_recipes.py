"""The recipes comparison (monosemantic/recipes/): shrinkage by hand, the rows, the matched-L0 choice, the partners,
proxy wins, the config of recipes.runs (experiments/recipes/params.yaml), and the two stages end to end on a tiny
world (tests/analysis_world.py) laid out as the pipeline's artifacts/."""

import dataclasses
import math
import re

import numpy as np
import pytest
import torch
import yaml

from monosemantic.core.config import ConfigError, SAERun, load_params
from monosemantic.lm.store import ArrayStore
from monosemantic.recipes import compare as R
from monosemantic.recipes.config import PARAMS, RecipesConfig, load_recipes, recipes_from_dict
from monosemantic.sae.architectures.standard import StandardSettings
from monosemantic.sae.architectures.topk import TopKSettings

from tests import analysis_world


# ------------------------------------------------------------------------------------------------ shrinkage


class Linear:
    """An 'SAE' whose reconstruction is x̂ = x A (encode: the identity)."""

    def __init__(self, a):
        self.a = a

    def encode(self, x):
        return x

    def decode(self, f):
        return f @ self.a


def test_shrinkage_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # x̂ = x/2 on the first dimension, x/2 on the second: E‖x̂‖² = (0.25 + 1) / 2, E[x·x̂] = (0.5 + 2) / 2
    assert R.shrinkage(Linear(0.5 * torch.eye(2)), ArrayStore(x)) == pytest.approx(1.25 / 2.5)
    assert R.shrinkage(Linear(torch.eye(2)), ArrayStore(x)) == pytest.approx(1.0)
    assert R.shrinkage(Linear(0.8 * torch.eye(2)), ArrayStore(x)) == pytest.approx(0.8)  # x̂ = γx gives γ
    # an error orthogonal to x (summed over the points) is not shrinkage: x̂ = x + e, Σ x·e = 0, Σ‖e‖² > 0 gives > 1
    swap = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # x̂ = (x1 + x2, x1 + x2): e = (x2, x1), x·e = 2 x1 x2 = 0 here
    assert R.shrinkage(Linear(swap), ArrayStore(x)) == pytest.approx((1 + 4 + 1 + 4) / (1 + 4))


def test_shrinkage_streams_like_the_one_shot_definition():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 8, generator=g) + 1.0
    a = 0.7 * torch.randn(8, 8, generator=g)
    x_hat = (x @ a).double()
    one_shot = (x_hat.pow(2).sum() / (x.double() * x_hat).sum()).item()
    assert R.shrinkage(Linear(a), ArrayStore(x), batch_size=97) == pytest.approx(one_shot, rel=1e-12)


# ------------------------------------------------------------------------------------------------ rows


def metrics_of(name, arch="topk", model="A", n=4096, l0=25.0, knob="k", value=24, **kw):
    """A metrics/recipes/NAME.json as recipe_run writes it (evaluate_run's columns)."""
    m = {"run": name, "model": model, "n_features": n, "architecture": arch, "knob": knob, knob: value, "l0": l0,
         "frac_loss_recovered": 0.9, "explained_variance": 0.8, "mse": 0.01, "dead": 1, "ultralow": 2, "dense": 3,
         "shrinkage": 0.95, "l1": 4.0, "source": "trained"}
    return {**m, **kw}


def test_row_building_takes_the_knob_and_the_papers_metrics():
    row = R.recipe_row(metrics_of("A_4096", arch="standard", knob="l1_coeff", value=0.0005, l1=5.2))
    assert row == {"name": "A_4096", "architecture": "standard", "model": "A", "n_features": 4096,
                   "knob": "l1_coeff", "knob_value": 0.0005, "l0": 25.0, "frac_loss_recovered": 0.9,
                   "explained_variance": 0.8, "mse": 0.01, "dead": 1, "ultralow": 2, "dense": 3, "shrinkage": 0.95,
                   "proxy_wins": None, "universality_features": None}


def test_matched_choice_is_the_nearest_l0_on_a_log_scale_among_the_references_model_and_size():
    ref = {"name": "A_4096", "model": "A", "n_features": 4096, "l0": 25.0}
    rows = [R.recipe_row(metrics_of(n, l0=l0, **kw)) for n, l0, kw in (
        ("k12", 12.5, {}), ("k48", 50.0, {}),                        # |log 0.5| = |log 2|: a tie, the first wins
        ("k24_B", 25.0, {"model": "B"}), ("k24_small", 25.0, {"n": 1024}),  # other model, other size: not candidates
        ("dead", 0.0, {}),                                           # no positive L0: never chosen
        ("s_lo", 9.0, {"arch": "standard"}), ("s_mid", 20.0, {"arch": "standard"}),
        ("s_hi", 32.0, {"arch": "standard"}),                        # log(25/20) = 0.22 < log(32/25) = 0.25
        ("g_only", 300.0, {"arch": "gated"}))]                        # the only one: chosen however far
    assert R.matched_runs(rows, ref) == {"topk": "k12", "standard": "s_mid", "gated": "g_only"}
    assert R.matched_runs(rows + [R.recipe_row(metrics_of("k26", l0=26.0))], ref)["topk"] == "k26"


def test_partners_share_architecture_and_settings():
    top = lambda model, n, k: SAERun(model, n, "topk", TopKSettings(k, 256, 0.03125, 125), 1)  # noqa: E731
    std = lambda model, n, l1: SAERun(model, n, "standard", StandardSettings(l1), 1)  # noqa: E731
    runs = {"A_4096": std("A", 4096, 5e-4), "A_4096_hi": std("A", 4096, 1e-3), "B_4096": std("B", 4096, 5e-4),
            "A_1024": std("A", 1024, 5e-4), "B_4096_hi": std("B", 4096, 1e-3),
            "k24": top("A", 4096, 24), "k24_1024": top("A", 1024, 24), "k12_B": top("B", 4096, 12)}
    assert R.partners(runs, "A_4096", "B") == ("B_4096", ["A_1024", "A_4096"])
    assert R.partners(runs, "A_4096_hi", "B") == ("B_4096_hi", ["A_4096_hi"])
    assert R.partners(runs, "k24", "B") == (None, ["k24_1024", "k24"])  # B only at another k: no partner


def test_proxy_wins_count_the_proxies_where_the_feature_beats_the_best_neuron():
    proxies = {"arabic": {"feature_r": 0.82, "best_neuron_r": 0.52},
               "hebrew": {"feature_r": 0.74, "best_neuron_r": 0.78},
               "dna": {"feature_r": 0.6, "best_neuron_r": 0.6}, "base64": {"feature_r": 0.4, "best_neuron_r": 0.3}}
    assert R.proxy_wins(proxies) == 2  # a tie is not a win
    assert R.proxy_wins({}) == 0


def test_feature_columns_are_the_architectures_own_features():
    from monosemantic.analysis import proxies as px
    from monosemantic.sae import architectures

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    topk = architectures.get("topk")(8, 16, TopKSettings(2, 4, 0.03125, 10), generator=g)
    std = architectures.get("standard")(8, 16, StandardSettings(1e-3), generator=g)
    idx = [0, 3, 7]
    assert torch.equal(R.feature_columns(topk, idx)(x), topk.encode(x)[:, idx])
    torch.testing.assert_close(R.feature_columns(std, idx)(x), std.encode(x)[:, idx])
    # the standard column formula on a TopK dictionary is not its features (what the function is there to avoid)
    assert not torch.allclose(px.feature_columns(topk, idx)(x), topk.encode(x)[:, idx])


# ------------------------------------------------------------------------------------------------ config


def recipes_dict():
    return yaml.safe_load((analysis_world.ROOT / PARAMS).read_text())


def main_params():
    return load_params(analysis_world.ROOT / "params.yaml")


def test_recipes_runs_are_parsed_like_sae_runs_and_a_wrong_setting_is_rejected():
    data = recipes_dict()
    data["recipes"]["runs"] = {"topk_bad": {"model": "A", "n_features": 4096, "architecture": "topk",
                                            "points_mult": 1, "k": 24, "l1": 0.1, "aux_coeff": 0.03125, "dead_steps": 125}}
    with pytest.raises(ConfigError) as e:
        recipes_from_dict(data, main_params())
    msg = str(e.value)
    assert "recipes.runs.topk_bad.l1: unknown key (architecture 'topk' takes: model, n_features, architecture, " \
           "points_mult, k, k_aux, aux_coeff, dead_steps)" in msg
    assert "recipes.runs.topk_bad.k_aux: missing key" in msg
    assert str(PARAMS) in msg  # the message names the file
    # the same entry under sae_runs of params.yaml is rejected with the same words
    from monosemantic.core.config import params_from_dict

    data = yaml.safe_load((analysis_world.ROOT / "params.yaml").read_text())
    data["sae_runs"]["topk_bad"] = {"model": "A", "n_features": 4096, "architecture": "topk", "points_mult": 1,
                                    "k": 24, "l1": 0.1, "k_aux": 256, "aux_coeff": 0.03125, "dead_steps": 125}
    with pytest.raises(ConfigError, match=r"sae_runs\.topk_bad\.l1: unknown key \(architecture 'topk' takes"):
        params_from_dict(data)


def test_recipes_cross_checks_and_unknown_keys():
    data = recipes_dict()
    data["recipes"]["reference_run"] = "A_2048"  # in sae_runs but not measured here
    data["recipes"]["main_runs"] = ["A_4096", "nope"]
    data["recipes"]["runs"] = {"A_512": {"model": "A", "n_features": 512, "architecture": "topk", "points_mult": 1, "k": 0,
                                         "k_aux": 256, "aux_coeff": 0.03125, "dead_steps": 125},
                               "c": {"model": "C", "n_features": 512, "architecture": "gated", "points_mult": 1,
                                     "l1": 0.1}}
    with pytest.raises(ConfigError) as e:
        recipes_from_dict(data, main_params())
    msg = str(e.value)
    for part in ("recipes.main_runs: 'nope' is not in sae_runs",
                 "recipes.reference_run: 'A_2048' is not in recipes.main_runs",
                 "recipes.runs.A_512.k: must be >= 1, got 0", "recipes.runs.A_512: the name of a run of sae_runs",
                 "recipes.runs.c.model: 'C' is not a trained model"):
        assert part in msg, part
    for bad, part in (({"recipes": {**recipes_dict()["recipes"], "steps": 3}}, "recipes.steps: unknown key"),
                      ({**recipes_dict(), "sae": {}}, "sae: unknown key (known: recipes)"),
                      ({}, "recipes: missing key")):
        with pytest.raises(ConfigError, match=re.escape(part)):
            recipes_from_dict(bad, main_params())


def test_the_default_params_name_a_run_per_architecture_and_a_matched_partner_for_each():
    from monosemantic.sae.architectures import ARCHITECTURES

    params = main_params()
    rc = load_recipes(params, analysis_world.ROOT / PARAMS)
    runs = {n: rc.run(params, n) for n in rc.names()}
    assert {r.architecture for r in runs.values()} == set(ARCHITECTURES)
    for arch in ARCHITECTURES:  # every architecture: >= 3 knob values on A, one with a B partner and another size
        sweep = [n for n, r in runs.items() if r.architecture == arch and r.model == "A"
                 and r.n_features == runs[rc.reference_run].n_features]
        assert len(sweep) >= 3, arch
        full = [n for n in sweep if (p := R.partners(runs, n, "B"))[0] is not None and len(p[1]) >= 2]
        assert len(full) == 1, (arch, full)


# ------------------------------------------------------------------------------------------------ end to end


def test_markdown_table_and_figure(tmp_path):
    from monosemantic.recipes.figure import recipes_frontier

    rows = [R.recipe_row(metrics_of(n, l0=l0, value=k)) for n, l0, k in (("k12", 12.0, 12), ("k24", 24.0, 24))]
    rows += [R.recipe_row(metrics_of("A_4096", arch="standard", knob="l1_coeff", value=5e-4, l0=25.5,
                                     frac_loss_recovered=None))]
    rows[1]["proxy_wins"], rows[1]["universality_features"] = 3, 0.71
    ref = {"run": "A_4096", "model": "A", "n_features": 4096, "l0": 25.5}
    out = {"recipes": rows, "matched": {"topk": "k24", "standard": "A_4096"}, "reference": ref}
    table = R.markdown_table(out).splitlines()
    assert len(table) == 2 + len(rows) and table[1].count("---") == table[0].count("|") - 1
    assert table[3].startswith("| **k24** | topk | k 24 | 24.0 | 0.900 |") and table[3].endswith("| 3 | 0.710 |")
    assert "| – |" in table[4]  # undefined loss recovered
    recipes_frontier(rows, out["matched"], ref, tmp_path / "frontier.png")
    assert (tmp_path / "frontier.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def recipes_world(tmp_path_factory):
    """The analysis world (two random transformers, their stores, tokens) laid out as artifacts/ under a scratch
    root, with a B training store, the main sweep's dictionaries trained on it (A_16, A_8, B_16) and params whose
    recipes compare them with a topk sweep (k 2, 4 on A at 16 features; k 4 on B and at 8 features)."""
    from monosemantic.data.tokenizer import save_tokenizer
    from monosemantic.lm.activations import sample_activations
    from monosemantic.lm.store import ActivationStore
    from monosemantic.sae.train import train_sae

    root = tmp_path_factory.mktemp("recipes")
    art = root / "artifacts"
    w = analysis_world.build(art / "activations")
    sample_activations(w.models["B"], w.streams["train"], art / "activations" / "B" / "train", n_points=800, k=4,
                       shard_points=256, dtype="float32", batch_contexts=8, seed=3, split="train", progress=False)
    for m, model in w.models.items():
        model.save(art / "models" / m)
    save_tokenizer(w.tok, art / "tokenizer" / "tokenizer.json")
    (art / "tokens").mkdir()
    for split, s in w.streams.items():
        np.asarray(s.tokens, dtype=np.uint16).tofile(art / "tokens" / f"{split}.bin")
        np.savez(art / "tokens" / f"{split}_docs.npz", doc_start=s.doc_start, doc_subset=s.doc_subset,
                 subsets=np.array(s.subsets))
    p = w.params
    sae = dataclasses.replace(p.sae, steps=40, batch_size=64, geometric_median_points=128, log_every=20,
                              checkpoint_every=1000, resample=dataclasses.replace(p.sae.resample, steps=()))
    topk = lambda model, n, k: SAERun(model, n, "topk", TopKSettings(k, 8, 0.03125, 10), 1)  # noqa: E731
    rc = RecipesConfig("A_16", ("A_16", "A_8", "B_16"), {"topk_k2": topk("A", 16, 2), "topk_k4": topk("A", 16, 4),
                                                         "topk_k4_B": topk("B", 16, 4), "topk_k4_8": topk("A", 8, 4)})
    params = dataclasses.replace(p, sae=sae, evaluate=dataclasses.replace(p.evaluate, loss_contexts=8),
                                 interpretability=dataclasses.replace(p.interpretability, n_units=6, min_active=2,
                                                                      successor_tokens=5000))
    assert rc.check(params.sae_runs, {"A", "B"}) == []
    for name, run in w.runs.items():  # the main sweep's dictionaries, trained as stage train_sae would
        train_sae(sae, run, ActivationStore(art / "activations" / run.model / "train"), art / "sae" / name,
                  progress=False)
    return root, params, rc


def test_at_mix_proxies_are_features_vs_neurons_numbers_for_the_standard_recipe(recipes_world, monkeypatch):
    from monosemantic.analysis.superposition import features_vs_neurons

    root, params, rc = recipes_world
    monkeypatch.chdir(root)
    inputs = R.Inputs.load(params)
    assert 0 < min(inputs.shares.values()) and len(set(inputs.shares.values())) > 1  # a mix that moves the weights
    a = params.analysis
    for name in ("A_16", "B_16"):
        d = R.dictionary(params, rc, name)
        n = min(a.max_points, d.store.n_points)
        got = R.at_mix_proxies(d.store, d.sae, inputs.streams["val"], inputs.llr, n, a.batch_size, inputs.shares)
        ref = features_vs_neurons(d.store, d.sae, inputs.streams["val"], inputs.llr, n, a.batch_size, None,
                                  inputs.shares)["at_training_mix"]["proxies"]
        assert set(got) == set(ref) == {"arabic", "hebrew", "dna", "base64"}
        for k, row in got.items():
            assert row == {key: ref[k][key] for key in row}, (name, k)


def test_recipe_run_and_the_summary_end_to_end(recipes_world, monkeypatch):
    root, params, rc = recipes_world
    monkeypatch.chdir(root)
    from monosemantic.core.utils import split_timings, write_json
    from monosemantic.recipes.config import recipe_metrics

    for name in rc.names():
        m = R.run_recipe(params, rc, name, torch.device("cpu"), progress=False)
        assert m["run"] == name and 0 < m["l0"] and math.isfinite(m["shrinkage"])
        assert m["source"] == ("trained" if name in rc.runs else "main sweep")
        write_json(recipe_metrics(name), m)
    k2 = R.load_runs(["topk_k2"])["topk_k2"]
    assert k2["knob"] == "k" and k2["k"] == 2 and k2["l0"] <= 2 + 1e-9  # ReLU after TopK: L0 <= k
    assert (root / "artifacts" / "recipes" / "topk_k2" / R.FINGERPRINT_FILE).exists()

    def no_training(*a, **k):
        raise AssertionError("a dictionary trained from the same fingerprint should have been reused")

    monkeypatch.setattr(R, "train_sae", no_training)
    again = R.run_recipe(params, rc, "topk_k2", torch.device("cpu"), progress=False)
    assert split_timings(again)[0] == k2  # the same metrics file, byte for byte
    monkeypatch.undo()
    monkeypatch.chdir(root)

    out = R.summarize(params, rc, progress=lambda *a: None)
    names = {r["name"] for r in out["recipes"]}
    assert names == set(rc.names())
    assert set(out["matched"]) == {"standard", "topk"} and out["matched"]["standard"] == "A_16"
    for arch, name in out["matched"].items():
        row = next(r for r in out["recipes"] if r["name"] == name)
        a = out["matched_analysis"][arch]
        assert row["proxy_wins"] == a["proxy_wins"] and 0 <= a["proxy_wins"] <= 4
        assert set(a["at_training_mix"]) == {"arabic", "hebrew", "dna", "base64"}
        assert a["interpretability"]["n_units"] > 0
    std = out["matched_analysis"]["standard"]
    assert std["universality"]["partner"] == "B_16" and set(std["base64_by_size"]) == {"8", "16"}
    assert out["recipes"][[r["name"] for r in out["recipes"]].index("A_16")]["universality_features"] == \
        std["universality"]["features"]
    table = R.matched_table(out).splitlines()
    assert len(table) == 2 + len(out["matched"]) and "| standard | A_16 |" in table[2]
    unmatched = [r for r in out["recipes"] if r["name"] not in out["matched"].values()]
    assert all(r["proxy_wins"] is None and r["universality_features"] is None for r in unmatched)
    if out["matched"]["topk"] == "topk_k2":  # no B partner nor other size at k 2: null, and the stage says so
        assert out["matched_analysis"]["topk"]["universality"] is None
        assert any("topk" in line for line in R.missing_partners(params, out))
