"""One arm of the dose-response experiment end to end (monosemantic/dose_response.py), on the smoke profile's
tokens (the session's smoke reproduction, tests/conftest.py)."""

import dataclasses
from pathlib import Path

import pytest
import torch

from monosemantic import dose_response as D
from monosemantic.config import SuperpositionArm, load_params

RARE = {"Arabic": 0.02, "Hebrew": 0.02, "DNA": 0.02, "Base64": 0.02}


@pytest.fixture(scope="module")
def arm_run(smoke_reference, tmp_path_factory):
    root = Path(smoke_reference)
    params = load_params(root / "params.yaml")
    sp = dataclasses.replace(params.superposition, arms={"rare": SuperpositionArm(mix=RARE)})
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
        assert isinstance(p["context_learned"], bool)
    assert out["transformer_tokens"] == params.transformer.steps * params.transformer.batch_size * params.transformer.n_ctx
    assert not (work / "activations").exists()  # the arm's activations are scratch
    assert (work / "sae" / "sae_weights.safetensors").exists()


def test_arms_with_the_same_transformer_share_it(arm_run, monkeypatch):
    params, root, work, out = arm_run
    sp = dataclasses.replace(params.superposition, arms={"rare_more": SuperpositionArm(mix=RARE, sae_points_mult=2)})
    params = dataclasses.replace(params, superposition=sp)

    def no_training(*a, **k):
        raise AssertionError("the cached transformer should have been reused")

    monkeypatch.setattr(D, "train", no_training)
    more = D.run_arm(params, "rare_more", work.parent / "rare_more", torch.device("cpu"), "fp32",
                     tokens_dir=root / "artifacts/tokens", progress=False)
    assert more["val_loss"] == out["val_loss"]  # the same model
    assert more["sae_points"] == 2 * out["sae_points"]
