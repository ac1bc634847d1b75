"""The training mix (monosemantic/data/mix.py): shares, window starts drawn by the mix, mixed activation sampling."""

import numpy as np
import pytest
import torch

from monosemantic.lm import activations as A
from monosemantic.lm import train as lm
from monosemantic.data.mix import MixedStarts, MixError, context_quotas, mix_shares
from monosemantic.lm.model import ModelConfig, build_model
from monosemantic.lm.store import ActivationStore
from monosemantic.data.tokenizer import TokenStream


def stream_abc() -> TokenStream:
    """Docs: a a b c a b (lengths 20 20 15 10 20 15): a = 60 tokens, b = 30, c = 10."""
    lengths = [20, 20, 15, 10, 20, 15]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    codes = np.array([0, 0, 1, 2, 0, 1], dtype=np.int16)
    tokens = np.repeat(codes + 1, lengths).astype(np.uint16)  # token id = subset code + 1
    return TokenStream(tokens, starts, codes, ["a", "b", "c"])


def test_shares_by_hand():
    s = stream_abc()
    assert mix_shares(s, {}) == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1})
    assert mix_shares(s, {"c": 0.5}) == pytest.approx({"a": 0.5 * 60 / 90, "b": 0.5 * 30 / 90, "c": 0.5})
    assert mix_shares(s, {"a": 0.2, "b": 0.3, "c": 0.5}) == pytest.approx({"a": 0.2, "b": 0.3, "c": 0.5})
    with pytest.raises(MixError, match="not subsets"):
        mix_shares(s, {"Klingon": 0.1})
    with pytest.raises(MixError, match="sum to 1"):
        mix_shares(s, {"a": 0.2, "b": 0.3, "c": 0.4})


def test_quotas_largest_remainder():
    q = context_quotas(10, {"a": 0.55, "b": 0.35, "c": 0.1})
    assert q == {"a": 6, "b": 3, "c": 1} and sum(q.values()) == 10
    assert sum(context_quotas(7, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}).values()) == 7


def test_mixed_starts_follow_the_shares():
    s = stream_abc()
    ms = MixedStarts(s, {"c": 0.5}, length=5)
    starts = ms.sample(20000, torch.Generator().manual_seed(0))
    assert starts.min() >= 0 and starts.max() <= len(s) - 5
    sub = s.doc_subset[s.doc_of(starts)]
    for code, share in enumerate([0.5 * 60 / 90, 0.5 * 30 / 90, 0.5]):
        sd = np.sqrt(share * (1 - share) / len(starts))
        assert abs((sub == code).mean() - share) < 5 * sd
    # same generator state, same starts; the subset c documents are covered uniformly
    again = ms.sample(20000, torch.Generator().manual_seed(0))
    assert np.array_equal(starts, again)
    c_pos = starts[sub == 2]
    assert set(np.unique(c_pos)) == set(range(55, 65))


def test_sample_batch_with_mix_only_draws_the_named_subset():
    s = stream_abc()
    batch = lm.sample_batch(s, 64, 4, torch.Generator().manual_seed(1), MixedStarts(s, {"b": 1.0}, 5))
    # every window starts inside a b document (token 2); windows may run into the next document
    assert torch.all(batch[:, 0] == 2)


def test_mixed_activation_sampling_meets_the_quotas(tmp_path):
    cfg = ModelConfig(vocab_size=8, d_model=8, d_mlp=16, n_heads=2, n_ctx=5)
    model = build_model(cfg, 0).eval()
    s = stream_abc()  # 20 contexts of 5 tokens: a 12, b 6, c 2
    A.sample_activations(model, s, tmp_path / "m", n_points=40, k=2, shard_points=16, dtype="float32",
                         batch_contexts=4, seed=4, split="train", progress=False, mix={"c": 0.2})
    store = ActivationStore(tmp_path / "m")
    idx = store.index()
    ctx_sub = s.doc_subset[s.doc_of(idx["context_start"])]
    # 20 contexts needed: a 11 (10.67), b 5 (5.33), c 4 (its 2 contexts, twice with fresh positions)
    assert np.bincount(ctx_sub, minlength=3).tolist() == [22, 10, 8]
    assert len(np.unique(idx["token"])) == 40  # no token sampled twice, even when cycling
    assert store.manifest["mix"] == {"c": 0.2}
    with pytest.raises(A.SamplingError, match="too few"):
        A.sample_activations(model, s, tmp_path / "x", n_points=60, k=2, shard_points=16, dtype="float32",
                             batch_contexts=4, seed=4, split="train", progress=False, mix={"c": 0.9})


def test_natural_mix_is_the_unweighted_sampler(tmp_path):
    """mix {} keeps the outputs of profiles without a mix: the same points as before the setting existed."""
    cfg = ModelConfig(vocab_size=8, d_model=8, d_mlp=16, n_heads=2, n_ctx=5)
    model = build_model(cfg, 0).eval()
    s = stream_abc()
    for name, mix in (("none", None), ("empty", {})):
        A.sample_activations(model, s, tmp_path / name, n_points=30, k=2, shard_points=16, dtype="float32",
                             batch_contexts=4, seed=4, split="train", progress=False, mix=mix)
    a, b = ActivationStore(tmp_path / "none"), ActivationStore(tmp_path / "empty")
    assert np.array_equal(a.index()["token"], b.index()["token"])
    assert "mix" not in a.manifest
