"""Sampling MLP activations into shuffled stores (monosemantic/lm/activations.py) and the stage scripts."""

import json
import runpy
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from monosemantic.core.config import profile_dict
from monosemantic.lm import activations as A
from monosemantic.lm.model import ModelConfig, Transformer, build_model
from monosemantic.lm.store import ActivationStore
from monosemantic.data.tokenizer import TokenStream

ROOT = Path(__file__).resolve().parents[1]
CFG = ModelConfig(vocab_size=64, d_model=16, d_mlp=32, n_heads=2, n_ctx=16)


def random_stream(n_tokens: int, seed: int = 0, doc_len: int = 37) -> TokenStream:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 64, n_tokens).astype(np.uint16)
    starts = np.append(np.arange(0, n_tokens, doc_len), n_tokens).astype(np.int64)
    tokens[starts[1:] - 1] = 0
    subset = (np.arange(len(starts) - 1) % 2).astype(np.int16)
    return TokenStream(tokens, starts, subset, ["a", "b"])


def sample(model, stream, out, **kw):
    args = dict(n_points=1000, k=4, shard_points=256, dtype="float32", batch_contexts=8, seed=4, split="train",
                progress=False)
    args.update(kw)
    return A.sample_activations(model, stream, out, **args)


@pytest.fixture(scope="module")
def model():
    return build_model(CFG, 0).eval()


@pytest.fixture(scope="module")
def stream():
    return random_stream(6000)


def test_index_recovers_the_token(model, stream, tmp_path):
    info = sample(model, stream, tmp_path / "s", dtype="float16")
    store = ActivationStore(tmp_path / "s", verify=True)
    assert len(store) == 1000 and store.d == CFG.d_mlp and store.dtype == "float16"
    assert len(store.manifest["shards"]) == 4 and info["contexts"] == 250
    idx = store.index()
    x = store.read(0, 1000)
    assert set(idx) == {"doc", "pos", "token", "context_start"}
    assert np.all(idx["context_start"] % CFG.n_ctx == 0)
    assert np.all((idx["token"] >= idx["context_start"]) & (idx["token"] < idx["context_start"] + CFG.n_ctx))
    assert np.array_equal(stream.doc_start[idx["doc"]] + idx["pos"], idx["token"])
    assert np.all(idx["pos"] < np.diff(stream.doc_start)[idx["doc"]])
    assert len(np.unique(idx["token"])) == 1000  # without replacement
    assert np.all(np.bincount(idx["context_start"] // CFG.n_ctx) <= 4)  # k per context
    for i in np.random.default_rng(0).choice(1000, 50, replace=False):  # re-run the model, one context alone
        s = int(idx["context_start"][i])
        toks = torch.from_numpy(stream.tokens[s:s + CFG.n_ctx].astype(np.int64))[None]
        with torch.no_grad():
            acts = model.mlp_acts(toks)[0, idx["token"][i] - s]
        assert torch.allclose(x[i], acts, atol=2e-3, rtol=2e-3), i


def test_points_are_shuffled_across_contexts(model, stream, tmp_path):
    sample(model, stream, tmp_path / "s")
    store = ActivationStore(tmp_path / "s")
    ctx = store.index()["context_start"]
    assert np.mean(ctx[1:] == ctx[:-1]) < 0.05  # neighbours come from different contexts
    sizes = [s["n"] for s in store.manifest["shards"]]
    assert sum(sizes) == 1000 and all(150 < n < 350 for n in sizes)  # ~shard_points per shard
    # every shard mixes contexts drawn early and late
    first = np.argsort(np.unique(ctx, return_index=True)[1])
    assert first.size > 0 and np.corrcoef(np.arange(1000), ctx)[0, 1] ** 2 < 0.05


def test_rerun_is_byte_identical_and_models_share_the_points(model, stream, tmp_path, monkeypatch):
    sample(model, stream, tmp_path / "a", dtype="bfloat16")
    sample(model, stream, tmp_path / "b", dtype="bfloat16")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == ["index.npz", "manifest.json", "shard_00000.npy", "shard_00001.npy", "shard_00002.npy",
                     "shard_00003.npy"]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    monkeypatch.setattr(A._BucketFiles, "MAX_OPEN", 2)  # many buckets: files reopened per write, same bytes
    sample(model, stream, tmp_path / "d", dtype="bfloat16")
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "d" / f).read_bytes(), f
    other = build_model(CFG, 1)
    sample(other, stream, tmp_path / "c", dtype="bfloat16")
    assert (tmp_path / "c" / "index.npz").read_bytes() == (tmp_path / "a" / "index.npz").read_bytes()
    assert (tmp_path / "c" / "shard_00000.npy").read_bytes() != (tmp_path / "a" / "shard_00000.npy").read_bytes()
    sample(model, stream, tmp_path / "v", split="val", dtype="bfloat16")
    assert (tmp_path / "v" / "index.npz").read_bytes() != (tmp_path / "a" / "index.npz").read_bytes()
    assert not list(tmp_path.glob(".*"))  # no staging folders left behind


def test_cycling_reuses_contexts_with_fresh_positions(model, tmp_path):
    short = random_stream(16 * 100 + 5)  # 100 contexts (+ a tail that is never used)
    info = sample(model, short, tmp_path / "s", n_points=1000, k=4)  # 250 contexts needed -> 3 passes
    assert info["passes"] == 3
    idx = ActivationStore(tmp_path / "s").index()
    assert len(np.unique(idx["token"])) == 1000 and idx["token"].max() < 1600
    assert np.bincount(idx["context_start"] // 16).max() <= 12
    with pytest.raises(A.SamplingError, match="at most 1,600 points"):
        sample(model, short, tmp_path / "t", n_points=1601, k=4)
    with pytest.raises(A.SamplingError, match="exceeds the context length"):
        sample(model, short, tmp_path / "t", k=17)


def _peak_numpy_bytes(model, stream, out, n_points):
    tracemalloc.start()
    tracemalloc.reset_peak()
    sample(model, stream, out, n_points=n_points, k=8, shard_points=2048, batch_contexts=256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_the_point_count(tmp_path):
    """numpy buffers (traced by tracemalloc) stay ~one bucket + one batch: 10x the points, not 10x memory."""
    wide = ModelConfig(vocab_size=64, d_model=16, d_mlp=256, n_heads=2, n_ctx=16)
    model = build_model(wide, 0)
    stream = random_stream(16 * 6250)
    small_peak = _peak_numpy_bytes(model, stream, tmp_path / "small", 5_000)
    large_peak = _peak_numpy_bytes(model, stream, tmp_path / "large", 50_000)
    large_data = 50_000 * 256 * 4  # 51 MB of activations
    assert ActivationStore(tmp_path / "large").n_points == 50_000
    assert large_peak < 0.15 * large_data, (small_peak, large_peak)
    assert large_peak - small_peak < 0.05 * (large_data - large_data // 10), (small_peak, large_peak)


# ------------------------------------------------------------------------------------------------
# The four stages end to end on a tiny corpus, twice: outputs must be byte-identical.
# ------------------------------------------------------------------------------------------------

def tiny_params() -> str:
    """The smoke profile at toy sizes (every key spelled, as the strict loader requires)."""
    import yaml

    p = profile_dict(ROOT / "configs" / "smoke.yaml")
    p["device"], p["precision"] = "cpu", "fp32"
    p["corpus"]["data_dir"] = "data"
    p["tokenizer"].update(vocab_size=320, train_chars=40000, min_frequency=2, max_documents=0)
    p["transformer"].update(d_model=16, d_mlp=32, n_heads=2, n_ctx=16, batch_size=8, steps=20, warmup_steps=2,
                            eval_every=10, eval_batches=2, checkpoint_every=10, seeds={"A": 1, "B": 2},
                            shuffle_seed=3, mix={}, kernels="reference")
    p["activations"].update(n_points=600, tokens_per_context=4, val_points=100, shard_points=256, dtype="float16",
                            batch_contexts=16, seed=4, mode="stored", shuffle_buffer=64)
    p["sae"]["batch_size"] = 64
    return yaml.safe_dump(p)


TINY_PARAMS = tiny_params()


def run_stage(workdir: Path, script: str, *args: str) -> None:
    old_argv, old_cwd = sys.argv, Path.cwd()
    sys.argv = [script, *args]
    try:
        import os
        os.chdir(workdir)
        runpy.run_module(f"stages.{script.removesuffix('.py')}", run_name="__main__", alter_sys=True)
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)


def pipeline(workdir: Path) -> None:
    from test_tokenizer import write_corpus

    write_corpus(workdir / "data", n_train=40, n_val=10)
    (workdir / "params.yaml").write_text(TINY_PARAMS)
    run_stage(workdir, "tokenize_corpus.py")
    run_stage(workdir, "train_transformer.py", "A")
    run_stage(workdir, "shuffle_transformer.py")
    run_stage(workdir, "sample_activations.py", "A")
    run_stage(workdir, "sample_activations.py", "random")


def test_a_run_of_points_mult_m_trains_on_m_times_the_points_for_m_times_the_steps(tmp_path):
    """Stage train_sae: A_128 at points_mult 3 streams 3 x 600 points (the store holds 600) for 3 x 20 steps;
    A_256 at 1 reads the store for 20 steps (stats: steps, and epochs = steps x batch / points)."""
    import yaml

    pipeline(tmp_path)
    p = yaml.safe_load((tmp_path / "params.yaml").read_text())
    p["sae"].update(steps=20, log_every=5, checkpoint_every=10, geometric_median_points=64)
    p["sae"]["resample"].update(steps=[10], dead_window=5, n_inputs=128)
    p["sae_runs"]["A_128"]["points_mult"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    for run in ("A_128", "A_256"):
        run_stage(tmp_path, "train_sae.py", run)
    stats = {r: json.loads((tmp_path / "artifacts/sae" / r / "train_stats.json").read_text())
             for r in ("A_128", "A_256")}
    assert (stats["A_128"]["steps"], stats["A_256"]["steps"]) == (60, 20)
    assert stats["A_128"]["epochs"] == pytest.approx(60 * 64 / 1800) and stats["A_256"]["epochs"] == pytest.approx(
        20 * 64 / 600)


def test_stages_end_to_end_are_deterministic(tmp_path, capsys):
    pipeline(tmp_path / "one")
    pipeline(tmp_path / "two")
    out = capsys.readouterr().out
    assert "tokens/s" in out
    one = tmp_path / "one"
    m = json.loads((one / "metrics/transformer/A.json").read_text())
    assert set(m["subsets"]) == {"English", "Code", "Arabic", "Hebrew", "DNA", "Base64", "overall"}
    assert all("unigram_loss" in r for r in m["subsets"].values()) and "tokens_per_s" not in m
    from monosemantic.core.provenance import cpu_info

    assert {k: m["trained_on"][k] for k in ("cpu", "isa")} == {k: cpu_info()[k] for k in ("cpu", "isa")}
    assert m["trained_on"]["precision"] == "fp32" and m["tokens"] == 20 * 8 * 16  # steps x batch x n_ctx
    from monosemantic.core import utils  # the stages ran in-process: their timings went to utils.TIMINGS_DIR

    timings = json.loads((utils.TIMINGS_DIR / "metrics__transformer__A.json").read_text())
    assert timings["tokens_per_s"] > 0  # wall-clock numbers live outside the tracked outputs
    assert json.loads((one / "metrics/transformer/random.json").read_text())["source"] == "A"
    assert not (one / "checkpoints").exists()
    assert (one / "dvclive/transformer/A/metrics.json").exists() and not (one / "dvc.yaml").exists()
    rand, a = Transformer.load(one / "artifacts/models/random"), Transformer.load(one / "artifacts/models/A")
    assert not torch.equal(rand.mlp.W_in.weight, a.mlp.W_in.weight)
    for model in ("A", "random"):
        for split, n in (("train", 600), ("val", 100)):
            store = ActivationStore(one / "artifacts/activations" / model / split, verify=True)
            assert store.n_points == n and store.manifest["model"] == model
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file() and "logs" not in p.parts)
    assert files == sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*")
                           if p.is_file() and "logs" not in p.parts)
    for f in files:
        assert (one / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f


def test_stage_errors_are_one_message(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text(TINY_PARAMS)
    for script, args, msg in (("train_transformer.py", ["C"], "not in transformer.seeds"),
                              ("train_transformer.py", ["A"], "tokenize stage"),
                              ("sample_activations.py", ["A"], "training stage"),
                              ("shuffle_transformer.py", [], "training stage")):
        with pytest.raises(SystemExit) as e:
            run_stage(tmp_path, script, *args)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and msg in err, err


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Tiny models: run torch single-threaded (tests/conftest.py)."""
