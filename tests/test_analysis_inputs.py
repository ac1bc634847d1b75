"""What the analysis stages read (monosemantic/analysis/inputs.py): a dictionary of the sweep from the artifact
layout of monosemantic/paths.py, and the results of stage proxies."""

import json

import numpy as np
import pytest
import torch

from monosemantic import paths
from monosemantic.analysis import inputs
from monosemantic.config import ConfigError


@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread):
    import analysis_world
    return analysis_world.build(tmp_path_factory.mktemp("world"))


def test_load_dictionary_from_the_artifact_layout(world, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    world.saes["A_8"].save(paths.sae_dir("A_8"))
    world.models["A"].save(paths.model_dir("A"))
    shutil.copytree(world.stores[("A", "val")].path, paths.activations_dir("A", "val"))
    d = inputs.load_dictionary(world.params, "A_8", with_model=True)
    assert (d.name, d.run) == ("A_8", world.runs["A_8"]) and d.store.n_points == 400
    assert torch.equal(d.sae.W_d, world.saes["A_8"].W_d) and not d.sae.training
    assert torch.equal(d.model.W_U.weight, world.models["A"].W_U.weight)
    assert inputs.load_dictionary(world.params, "A_8").model is None
    with pytest.raises(ConfigError, match="'A_9' is not in sae_runs"):
        inputs.load_dictionary(world.params, "A_9")
    assert inputs.load_feature_counts(paths.sae_dir("A_8")) is None
    np.save(paths.sae_dir("A_8") / "feature_counts.npy", np.arange(8))
    assert inputs.load_feature_counts(paths.sae_dir("A_8")).tolist() == list(range(8))


def test_load_proxy_matches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"proxies_A_8.json: missing; run `python -m stages.proxies A_8`"):
        inputs.load_proxy_matches("A_8")
    assert inputs.load_proxy_matches("A_8", required=False) is None
    path = paths.analysis_metrics("proxies_A_8")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"proxies": {"dna": {"feature": {"index": 3}}}}))
    assert inputs.load_proxy_matches("A_8") == {"dna": {"feature": {"index": 3}}}
