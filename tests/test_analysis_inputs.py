"""The loaders of the stages' inputs (monosemantic/analysis/inputs.py): a dictionary of the sweep from the
artifact layout of monosemantic/core/paths.py, and the results of stage proxies."""

import json

import numpy as np
import pytest
import torch

from monosemantic.core import paths
from monosemantic.analysis import inputs


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
    run = world.params.sae_run("A_8")
    folders = (paths.activations_dir("A", "val"), paths.sae_dir("A_8"))
    dictionary = inputs.load_dictionary("A_8", run, *folders, paths.model_dir("A"))
    assert (dictionary.name, dictionary.run) == ("A_8", world.runs["A_8"]) and dictionary.store.n_points == 400
    assert torch.equal(dictionary.sae.W_d, world.saes["A_8"].W_d) and not dictionary.sae.training
    assert torch.equal(dictionary.model.W_U.weight, world.models["A"].W_U.weight)
    assert inputs.load_dictionary("A_8", run, *folders).model is None
    sae = inputs.load_sae(paths.sae_dir("A_8"))
    assert torch.equal(sae.W_d, world.saes["A_8"].W_d) and not sae.training
    assert inputs.load_feature_counts(paths.sae_dir("A_8")) is None
    np.save(paths.sae_dir("A_8") / "feature_counts.npy", np.arange(8))
    assert inputs.load_feature_counts(paths.sae_dir("A_8")).tolist() == list(range(8))


def test_load_proxy_matches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = paths.analysis_metrics("proxies_A_8")
    with pytest.raises(FileNotFoundError, match=r"proxies_A_8.json: missing; run `python -m stages.proxies A_8`"):
        inputs.load_proxy_matches(path, "A_8")
    assert inputs.load_proxy_matches(path, "A_8", required=False) is None
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"proxies": {"dna": {"feature": {"index": 3}}}}))
    assert inputs.load_proxy_matches(path, "A_8") == {"dna": {"feature": {"index": 3}}}
