"""Streamed activations (monosemantic/lm/streaming.py): the stored mode's points, block-shuffled, deterministic."""

import numpy as np
import pytest
import torch

from monosemantic.core.config import ResampleConfig, SAEConfig, SAERun
from monosemantic.lm.model import build_model
from monosemantic.sae import architectures
from monosemantic.sae.architectures.standard import StandardSettings
from monosemantic.sae.train import train_sae
from monosemantic.lm.store import ActivationStore
from monosemantic.lm.streaming import StreamedActivations, same_context_share
from test_activations import CFG, model, sample, stream  # noqa: F401 - the model and stream fixtures

N, K, S = 1000, 4, 200


def streamed(model, stream, **kw):
    args = dict(n_points=N, k=K, shuffle_buffer=S, seed=4, batch_contexts=8, dtype="float32")
    args.update(kw)
    return StreamedActivations(model, stream, **args)


def test_same_context_share_by_hand():
    assert same_context_share([0, 0, 1, 2]) == pytest.approx(2 / 12)
    assert same_context_share([5, 6, 7]) == 0.0
    assert same_context_share([1, 1, 1]) == 1.0


def test_streams_the_points_of_the_stored_mode(model, stream, tmp_path):
    sample(model, stream, tmp_path / "s")
    store = ActivationStore(tmp_path / "s")
    src = streamed(model, stream)
    tokens = np.concatenate([src.block_tokens(b) for b in range(src.n_blocks)])
    stored_tokens = store.index()["token"]
    assert np.array_equal(np.sort(tokens), np.sort(stored_tokens))  # same tokens, other order
    assert not np.array_equal(tokens, stored_tokens)
    x_stream, x_store = src.read(0, N), store.read(0, N)
    row_of = {t: i for i, t in enumerate(stored_tokens)}
    perm = np.array([row_of[t] for t in tokens])
    torch.testing.assert_close(x_stream, x_store[perm], rtol=1e-5, atol=1e-6)  # same activations per token


def test_streams_the_points_of_the_mixed_stored_mode(model, stream, tmp_path):
    """With a training mix the stream holds the mixed store's points (same contexts and positions): the same
    token multiset, activations equal per token, and subset b's share of the points is the mix's 0.8 (natural: 1/2)."""
    mix = {"b": 0.8}
    sample(model, stream, tmp_path / "s", mix=mix)
    stored_tokens = ActivationStore(tmp_path / "s").index()["token"]
    src = streamed(model, stream, mix=mix)
    tokens = np.concatenate([src.block_tokens(b) for b in range(src.n_blocks)])
    assert np.array_equal(np.sort(tokens), np.sort(stored_tokens))
    unmixed = np.concatenate([streamed(model, stream).block_tokens(b) for b in range(src.n_blocks)])
    assert not np.array_equal(np.sort(unmixed), np.sort(tokens))  # the mix did change which points
    # 250 contexts of K = 4 points: 200 of them (0.8) drawn from b, some twice (b's pool is smaller: fresh positions)
    assert np.mean(stream.doc_subset[stream.doc_of(tokens // CFG.n_ctx * CFG.n_ctx)] == 1) == 0.8
    row_of = {t: i for i, t in enumerate(stored_tokens)}
    torch.testing.assert_close(src.read(0, N), ActivationStore(tmp_path / "s").read(0, N)[
        np.array([row_of[t] for t in tokens])], rtol=1e-5, atol=1e-6)
    assert src.identity() != streamed(model, stream).identity()  # the mix names the data
    assert src.identity() != streamed(model, stream, mix={"b": 0.7}).identity()


def test_reads_are_a_pure_function_of_the_rows(model, stream):
    a, b = streamed(model, stream), streamed(model, stream)
    whole = a.read(0, N)
    parts = torch.cat([b.read(lo, min(lo + 96, N)) for lo in reversed(range(0, N, 96))][::-1])
    assert torch.equal(whole, parts)
    assert len(a._cache) <= 2 and len(b._cache) <= 2  # memory bounded by two blocks
    assert not torch.equal(streamed(model, stream, seed=5).read(0, 50), whole[:50])


def test_block_shuffle_mixes_contexts_as_expected(model, stream):
    src = streamed(model, stream)
    ctx = np.concatenate([src.block_tokens(b) for b in range(src.n_blocks)]) // CFG.n_ctx
    B = 50
    shares = [same_context_share(ctx[lo:lo + B]) for lo in range(0, N, B)]
    # uniform draws from S points of S/K contexts: (K-1)/(S-1) = 0.0151; unshuffled batches: (K-1)/(B-1) = 0.061
    assert np.mean(shares) == pytest.approx((K - 1) / (S - 1), abs=0.006)
    unshuffled = np.repeat(np.arange(N // K), K)
    assert same_context_share(unshuffled[:B]) == pytest.approx((K - 1) / (B - 1), abs=0.002)


def test_sae_metrics_streamed_equal_stored_within_tolerance(model, stream, tmp_path, one_thread):
    """The same SAE trained on the store and on the stream (same points, other shuffle), both evaluated on all
    4000 points: MSE within 15% and L0 within 10% (relative). Measured here for SAE seeds 5/6/7: MSE +3.8%,
    +8.1%, +2.5%, L0 -0.5%, -3.5%, -2.9%; the stored runs alone spread by 8% in MSE across those seeds."""
    sample(model, stream, tmp_path / "s", n_points=4000, k=4)
    cfg = SAEConfig(batch_size=64, steps=300, lr=3e-3, betas=(0.9, 0.999), geometric_median_points=256,
                    log_every=100, checkpoint_every=1000, seed=5, fast_path="auto", encoder_screen="fp32",
                    resample=ResampleConfig(steps=(100,), dead_window=50, n_inputs=512, encoder_scale=0.2))
    run = SAERun(model="A", n_features=64, architecture="standard", settings=StandardSettings(l1=1e-3), points_mult=1)
    train_sae(cfg, run, ActivationStore(tmp_path / "s"), tmp_path / "a", progress=False)
    src = streamed(model, stream, n_points=4000, shuffle_buffer=800)
    train_sae(cfg, run, src, tmp_path / "b", progress=False)
    assert src.blocks_computed >= 5  # it did stream (4000 points in blocks of 800)
    x = ActivationStore(tmp_path / "s").read(0, 4000)
    with torch.no_grad():
        ref, got = (architectures.load(tmp_path / d).loss(x) for d in ("a", "b"))
    assert got.mse.item() == pytest.approx(ref.mse.item(), rel=0.15)
    assert got.l0.item() == pytest.approx(ref.l0.item(), rel=0.10)


def test_identity_names_the_data(model, stream):
    a = streamed(model, stream)
    assert a.manifest["shards"][0]["sha256"] == streamed(model, stream).identity()
    assert streamed(model, stream, seed=5).identity() != a.identity()
    assert streamed(build_model(CFG, 1), stream).identity() != a.identity()
    assert a.blocks_computed == 0  # identifying the stream runs no forward pass


def test_open_source_follows_activations_mode(model, stream, tmp_path):
    import dataclasses

    from monosemantic.core.config import load_params
    from monosemantic.lm.store import StoreError
    from monosemantic.lm.streaming import STREAM_FILE, open_source, write_stream_manifest

    model.save(tmp_path / "models" / "A")
    (tmp_path / "tokens").mkdir()
    stream.tokens.tofile(tmp_path / "tokens" / "train.bin")
    np.savez(tmp_path / "tokens" / "train_docs.npz", doc_start=stream.doc_start, doc_subset=stream.doc_subset,
             subsets=np.array(stream.subsets))
    p = dataclasses.replace(load_params("configs/smoke.yaml"), precision="fp32")
    with pytest.raises(StoreError):  # stored: the store, which is not there
        open_source(p, "A", root=tmp_path)
    a = dataclasses.replace(p.activations, mode="streamed", n_points=N, tokens_per_context=K, shuffle_buffer=S)
    ps = dataclasses.replace(p, activations=a)
    with pytest.raises(StoreError, match="stream.json: missing"):  # the sampling stage has not described it
        open_source(ps, "A", root=tmp_path)
    src = open_source(ps, "A", root=tmp_path, check=False)
    assert isinstance(src, StreamedActivations) and src.n_points == N and src.d == CFG.d_mlp
    torch.testing.assert_close(src.read(0, 10), streamed(model, stream, dtype="float16").read(0, 10))
    # what the sample_activations stage writes in streamed mode: no train store, a description of the stream
    train_dir = tmp_path / "activations" / "A" / "train"
    train_dir.mkdir(parents=True)
    (train_dir / "shard_00000.npy").write_bytes(b"stale")
    m = write_stream_manifest(train_dir, src, {"model": "A"})
    assert sorted(f.name for f in train_dir.iterdir()) == [STREAM_FILE]
    assert m["identity"] == src.identity() and m["n_points"] == N and m["model"] == "A"
    assert open_source(ps, "A", root=tmp_path).identity() == src.identity()
    other = dataclasses.replace(ps, activations=dataclasses.replace(a, seed=a.seed + 1))
    with pytest.raises(StoreError, match="another model, token stream or sampling settings"):
        open_source(other, "A", root=tmp_path)
    mixed = dataclasses.replace(ps, transformer=dataclasses.replace(p.transformer, mix={"b": 0.8}))
    with pytest.raises(StoreError, match="another model"):  # the mix is part of what the stream is
        open_source(mixed, "A", root=tmp_path)
    assert open_source(mixed, "A", root=tmp_path, check=False).mix == {"b": 0.8}
    # a run with points_mult streams points_mult x n_points points in either mode, with no stage-written stream.json
    for mode in ("stored", "streamed"):
        q = dataclasses.replace(ps, activations=dataclasses.replace(a, mode=mode))
        src2 = open_source(q, "A", root=tmp_path, points_mult=2)
        assert isinstance(src2, StreamedActivations) and src2.n_points == 2 * N
        want = streamed(model, stream, n_points=2 * N, dtype="float16").read(0, 10)
        torch.testing.assert_close(src2.read(0, 10), want)
