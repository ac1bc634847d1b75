"""One arm of the dose-response experiment end to end (monosemantic/analysis/dose_response.py), on the smoke profile's
tokens (the session's smoke reproduction, tests/conftest.py)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monosemantic.analysis import dose_response as D
from monosemantic.experiments import pairs as P
from monosemantic.core.config import SuperpositionArm, load_params

RARE = {"Arabic": 0.02, "Hebrew": 0.02, "DNA": 0.02, "Base64": 0.02}


@pytest.fixture(scope="module")
def arm_run(smoke_reference, tmp_path_factory):
    root = Path(smoke_reference)
    params = load_params(root / "params.yaml")
    rare = SuperpositionArm(mix=RARE, tokens_mult=1, sae_points_mult=1, seed=1)
    sp = dataclasses.replace(params.superposition, arms={"rare": rare})
    params = dataclasses.replace(params, superposition=sp)
    work = tmp_path_factory.mktemp("arms") / "rare"
    out = D.run_arm(params, "rare", work, torch.device("cpu"), "fp32", tokens_dir=root / "artifacts/tokens",
                    progress=False)
    return params, root, work, out


def test_arm_measures_every_proxy_at_its_share(arm_run):
    params, _, work, out = arm_run
    assert set(out["proxies"]) == {"arabic", "hebrew", "dna", "base64"}
    for k, p in out["proxies"].items():
        assert p["share"] == pytest.approx(0.02)
        assert p["natural_share"] > 0.02  # the smoke corpus's natural shares are larger
        for key in ("feature_r", "best_neuron_r", "nearest_neuron_r"):
            assert -1 <= p[key] <= 1
        assert p["best_neuron_r"] >= p["nearest_neuron_r"] - 1e-9  # the best neuron is the best
        assert 1 <= p["decoder_neurons_ge_0.1"] <= params.transformer.d_mlp
        assert isinstance(p["context_learned"], bool) and isinstance(p["context_recognized"], bool)
        assert p["blind_unigram_loss"] > p["unigram_loss"]  # the subset's own unigram knows the context
        at = out["at_training_mix"]["proxies"][k]  # the same points weighted to the arm's 2% share
        assert -1 <= at["feature_r"] <= 1 and at["best_neuron_r"] >= at["nearest_neuron_r"] - 1e-4
        lo, hi = p["bootstrap_90"]["feature_minus_neuron"]
        assert lo - 0.05 <= p["feature_r"] - p["best_neuron_r"] <= hi + 0.05 and lo <= hi
    w = out["at_training_mix"]["weights"]
    assert w["Arabic"] < 1 < w["English"]  # rare contexts weighted down to their 2%, the rest up
    t = params.transformer
    assert out["transformer_tokens"] == params.superposition.base_steps * t.batch_size * t.n_ctx  # tokens_mult 1
    assert not (work / "activations").exists()  # the arm's activations are scratch
    assert (work / "sae" / "sae_weights.safetensors").exists()


def test_arms_with_the_same_transformer_share_it(arm_run, monkeypatch):
    params, root, work, out = arm_run
    more = SuperpositionArm(mix=RARE, tokens_mult=1, sae_points_mult=2, seed=1)
    sp = dataclasses.replace(params.superposition, arms={"rare_more": more})
    params = dataclasses.replace(params, superposition=sp)

    def no_training(*a, **k):
        raise AssertionError("the cached transformer should have been reused")

    monkeypatch.setattr(D, "train", no_training)
    more = D.run_arm(params, "rare_more", work.parent / "rare_more", torch.device("cpu"), "fp32",
                     tokens_dir=root / "artifacts/tokens", progress=False)
    assert more["val_loss"] == out["val_loss"]  # the same model
    assert more["sae_points"] == 2 * out["sae_points"]


def test_load_arms_and_the_table(tmp_path, monkeypatch):

    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics" / "superposition").mkdir(parents=True)
    proxy = {"share": 0.01, "feature_r": 0.7, "best_neuron_r": 0.3, "nearest_neuron_r": 0.2,
             "decoder_neurons_ge_0.1": 27, "dedicated_neurons": 0, "context_learned": True}
    at = {**proxy, "feature_r": 0.8, "neurons_for_half_norm": 9, "specificity_at_matched_sensitivity": {"feature": 1.0}}
    arm = {"tokens_mult": 1, "sae_points_mult": 2, "proxies": {"arabic": proxy, "dna": {**proxy, "feature_r": 0.5}},
           "at_training_mix": {"proxies": {"arabic": at}}}
    (tmp_path / "metrics" / "superposition" / "natural.json").write_text(json.dumps(arm))
    with pytest.raises(FileNotFoundError, match="rare.json: missing; run `dvc repro experiments/superposition"):
        D.load_arms(["natural", "rare"])
    rows = D.dose_response(D.load_arms(["natural"]))
    assert [(r["arm"], r["proxy"], r["feature_r"], r["sae_points_mult"]) for r in rows] == [
        ("natural", "arabic", 0.7, 2), ("natural", "dna", 0.5, 2)]
    assert rows[0]["at_training_mix"]["feature_r"] == 0.8 and "at_training_mix" not in rows[1]
    assert rows[0]["at_training_mix"]["specificity_at_matched_sensitivity"] == {"feature": 1.0}


def test_figure_joins_only_plain_single_share_arms(tmp_path):
    from monosemantic.figures.analysis import dose_response_figure, dose_response_line_arms

    def row(arm, proxy, share, tokens=1, points=1, learned=True):
        return {"arm": arm, "proxy": proxy, "share": share, "tokens_mult": tokens, "sae_points_mult": points,
                "feature_r": 0.5, "best_neuron_r": 0.4, "nearest_neuron_r": 0.3, "context_learned": learned}
    rows = [row("natural", "arabic", 0.13), row("natural", "dna", 0.06),   # natural shares differ by context
            row("rare_1pct", "arabic", 0.01), row("rare_1pct", "dna", 0.01),
            row("rare_4x", "arabic", 0.003, tokens=4), row("rare_4x", "dna", 0.003, tokens=4),
            row("mixed", "arabic", 0.003), row("mixed", "dna", 0.01, learned=False)]
    assert dose_response_line_arms(rows, {"mixed": {"Arabic": 0.003, "DNA": 0.01}}) == {"natural", "rare_1pct"}
    assert dose_response_line_arms(rows) == {"natural", "rare_1pct", "mixed"}
    dose_response_figure(rows, tmp_path / "dose.png", {"mixed": {"Arabic": 0.003, "DNA": 0.01}})
    assert (tmp_path / "dose.png").stat().st_size > 10_000


def test_replicates_are_grouped_by_everything_but_the_seed_and_their_spread_is_reported():
    arm = lambda mix, seed, tokens=1: SuperpositionArm(mix=mix, tokens_mult=tokens, sae_points_mult=1, seed=seed)  # noqa: E731
    arms = {"rare": arm(RARE, 1), "rare_4x": arm(RARE, 1, tokens=4), "natural": arm({}, 1),
            "rare_s11": arm(RARE, 11), "rare_s12": arm(dict(reversed(list(RARE.items()))), 12)}
    assert D.replicate_groups(arms) == {"rare": ["rare", "rare_s11", "rare_s12"]}

    def row(name, seed, f, n, at=None):
        r = {"arm": name, "seed": seed, "proxy": "arabic", "feature_r": f, "best_neuron_r": n}
        return {**r, "at_training_mix": at} if at else r
    rows = [row("rare", 1, 0.8, 0.5, {"feature_r": 0.7, "best_neuron_r": 0.4}),
            row("rare_s11", 11, 0.6, 0.7, {"feature_r": 0.75, "best_neuron_r": 0.5}),
            row("rare_s12", 12, 0.9, 0.6, {"feature_r": 0.5, "best_neuron_r": 0.55}),
            row("natural", 1, 0.3, 0.6)]
    (g,) = D.replicate_spread(rows, D.replicate_groups(arms))
    assert g["arms"] == ["rare", "rare_s11", "rare_s12"] and g["seeds"] == [1, 11, 12]
    assert g["natural"]["feature_wins"] == 2 and g["natural"]["n"] == 3
    assert g["natural"]["gap_min"] == pytest.approx(-0.1) and g["natural"]["gap_max"] == pytest.approx(0.3)
    assert g["at_training_mix"]["feature_r"] == [0.7, 0.75, 0.5] and g["at_training_mix"]["feature_wins"] == 2
    assert g["at_training_mix"]["gap_min"] == pytest.approx(-0.05)
    del rows[2]["at_training_mix"]  # an arm measured only on the natural split: no at-mix spread
    assert "at_training_mix" not in D.replicate_spread(rows, {"rare": ["rare", "rare_s11", "rare_s12"]})[0]


def test_seeds_come_from_the_metrics_or_else_the_params():
    proxy = {"share": 0.01, "feature_r": 0.7, "best_neuron_r": 0.3, "nearest_neuron_r": 0.2,
             "decoder_neurons_ge_0.1": 27, "dedicated_neurons": 0, "context_learned": True}
    m = {"tokens_mult": 1, "sae_points_mult": 1, "proxies": {"arabic": proxy}}
    rows = D.dose_response({"old": m, "new": {**m, "seed": 11}}, {"old": 1, "new": 99})
    assert [(r["arm"], r["seed"]) for r in rows] == [("old", 1), ("new", 11)]


def test_replicate_arms_are_markers_labelled_with_their_seed():
    from monosemantic.figures.analysis import _marker_tag, dose_response_line_arms

    def row(arm, seed, tokens=1):
        return {"arm": arm, "seed": seed, "proxy": "arabic", "share": 0.01, "tokens_mult": tokens, "sae_points_mult": 1}
    rows = [row("rare", 1), row("rare_s11", 11), row("rare_4x", 1, tokens=4), row("mixed", 1), row("mixed_s11", 11)]
    mixes = {"mixed": {"Arabic": 0.003, "DNA": 0.01}, "mixed_s11": {"Arabic": 0.003, "DNA": 0.01}}
    assert dose_response_line_arms(rows, mixes) == {"rare"}
    assert _marker_tag(rows[1], mixes, 1) == "seed 11"
    assert _marker_tag(rows[2], {}, 1) == "4x tokens"
    assert _marker_tag(rows[3], mixes, 1) == "mixed 0.3/1%"
    assert _marker_tag(rows[4], mixes, 1) == "mixed 0.3/1%, seed 11"
    # another mix is another label (so another marker), even at the same seed
    assert _marker_tag(rows[3], {"mixed": {"Arabic": 0.003, "DNA": 0.005}}, 1) == "mixed 0.3/0.5%"


def test_off_line_arms_get_their_own_marker_and_step_right_of_their_share():
    from monosemantic.figures.analysis import _marker_styles
    styles = _marker_styles(["4x tokens", "", "mixed 0.3/1%", "4x tokens", "mixed 0.3/1%, seed 11"])
    assert list(styles) == ["4x tokens", "mixed 0.3/1%", "mixed 0.3/1%, seed 11"]  # first-seen order, no blanks
    assert len({m for m, _ in styles.values()}) == 3
    steps = [x for _, x in styles.values()]
    assert steps == sorted(steps) and steps[0] > 1 and len(set(steps)) == 3


def test_the_budget_view_gives_each_budget_its_gaps_at_the_training_mix_sorted_by_share():
    from monosemantic.figures.analysis import dose_response_gaps

    def row(arm, share, tokens, f, n, at=None, learned=True, proxy="arabic"):
        r = {"arm": arm, "proxy": proxy, "share": share, "tokens_mult": tokens, "feature_r": f, "best_neuron_r": n,
             "context_learned": learned}
        return {**r, "at_training_mix": at} if at else r
    rows = [row("r1", 0.01, 1, 0.7, 0.8, {"feature_r": 0.6, "best_neuron_r": 0.2}),
            row("r03", 0.003, 1, 0.9, 0.5, learned=False),   # measured before the at-mix view: natural split
            row("r16", 0.003, 16, 0.5, 0.5, {"feature_r": 0.70, "best_neuron_r": 0.33}),
            row("r1", 0.01, 1, 0.1, 0.2, proxy="dna")]
    gaps = dose_response_gaps(rows, "arabic")
    assert list(gaps) == [1, 16]
    assert [(p["arm"], p["share"], p["learned"]) for p in gaps[1]] == [("r03", 0.003, False), ("r1", 0.01, True)]
    assert [p["gap"] for p in gaps[1]] == [pytest.approx(0.4), pytest.approx(0.4)]
    assert gaps[16][0]["gap"] == pytest.approx(0.37)
    assert list(dose_response_gaps(rows, "dna")) == [1] and dose_response_gaps(rows, "hebrew") == {}


def test_an_arm_at_the_pipelines_mix_and_seed_trains_model_A_bit_for_bit(smoke_reference, tmp_path):
    """An arm trains its transformer with the pipeline's own training function: at the pipeline's mix, seed and
    budget it gives train_transformer's model A to the byte (so an arm trained under tools/pin_cpu.sh is the default's
    model at that budget, and a 16x arm at the default mix is a 16x default's model A or B)."""
    import hashlib

    from monosemantic.core.utils import resolve_precision, torch_threads

    root = Path(smoke_reference)
    params = load_params(root / "params.yaml")
    arm = SuperpositionArm(mix=dict(params.transformer.mix), tokens_mult=1, sae_points_mult=1,
                           seed=params.transformer_seed("A"))
    # tokens_mult 1 is superposition.base_steps: here the reference's own steps
    sp = dataclasses.replace(params.superposition, arms={"a": arm}, base_steps=params.transformer.steps)
    params = dataclasses.replace(params, superposition=sp)
    cpu = torch.device("cpu")
    # fp32 sums depend on the thread count: train with the one the reference's stage ran with (its provenance record;
    # the test session itself runs torch on 1 thread)
    threads = int(json.loads((root / "metrics/provenance/transformer_A.json").read_text())["threads"])
    with torch_threads(threads):
        D.run_arm(params, "a", tmp_path / "a", cpu, resolve_precision(params.precision, cpu),
                  tokens_dir=root / "artifacts/tokens", progress=False)
    (cached,) = (tmp_path / "models").iterdir()

    def sha(p):
        return hashlib.sha256(Path(p).read_bytes()).hexdigest()

    assert sha(cached / "model.safetensors") == sha(root / "artifacts/models/A/model.safetensors")


def test_a_pair_of_arms_is_measured_like_A_and_B(arm_run):
    """evaluate_pair on two dictionaries of one transformer (the arm and a 2x-points arm sharing its model): the
    neurons' universality is exactly 1 (each neuron matches itself), the clean and zero-ablation losses are the
    model's, and loss recovered follows its definition."""
    params, root, work, _ = arm_run
    arms = {"rare": SuperpositionArm(mix=RARE, tokens_mult=1, sae_points_mult=1, seed=1),
            "rare_more": SuperpositionArm(mix=RARE, tokens_mult=1, sae_points_mult=2, seed=1)}
    params = dataclasses.replace(params, superposition=dataclasses.replace(params.superposition, arms=arms))
    kw = dict(tokens_dir=root / "artifacts/tokens")
    if not (work.parent / "rare_more" / "sae").exists():
        D.run_arm(params, "rare_more", work.parent / "rare_more", torch.device("cpu"), "fp32", progress=False, **kw)
    out = P.evaluate_pair(params, "rare", "rare_more", torch.device("cpu"), "fp32", root=work.parent, **kw)
    a, b = out["evaluation"]["rare"], out["evaluation"]["rare_more"]
    assert a["loss_clean"] == b["loss_clean"] and a["loss_zero"] == b["loss_zero"]  # one transformer
    for e in (a, b):
        assert e["frac_loss_recovered"] == pytest.approx(
            (e["loss_zero"] - e["loss_sae"]) / (e["loss_zero"] - e["loss_clean"]), abs=1e-9)
        assert e["dead"] + e["ultralow"] + e["dense"] <= e["n_features"] == params.sae_runs[params.superposition.run].n_features
    assert (a["seed"], b["seed"]) == (1, 1)
    assert a["never_fired_in_training"] == int((np.load(work / "sae" / "feature_counts.npy") == 0).sum())
    u = out["universality"]
    assert u["neurons"]["median"] == pytest.approx(1.0, abs=1e-5)  # the same model's neurons on the same tokens
    assert 0 < u["features"]["median"] <= 1
    assert not (work.parent / "pair_scratch").exists()
    with pytest.raises(ValueError):
        P.evaluate_pair(params, "rare", "rare", torch.device("cpu"), "fp32", root=work.parent, **kw)
    arms = {**arms, "never_run": SuperpositionArm(mix=RARE, tokens_mult=1, sae_points_mult=1, seed=5)}
    params = dataclasses.replace(params, superposition=dataclasses.replace(params.superposition, arms=arms))
    with pytest.raises(FileNotFoundError, match="never_run"):
        P.evaluate_pair(params, "rare", "never_run", torch.device("cpu"), "fp32", root=work.parent, **kw)


def test_load_pairs_keeps_the_pairs_of_the_params_arms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pairs = tmp_path / "metrics" / "superposition" / "pairs"
    pairs.mkdir(parents=True)
    for a, b in (("x", "y"), ("x", "gone")):
        (pairs / f"{a}__{b}.json").write_text(json.dumps({"arms": [a, b], "universality": {}}))
    assert [p["arms"] for p in P.load_pairs(["x", "y", "z"])] == [["x", "y"]]
    assert P.load_pairs(["x"]) == []
