"""Transformer training, validation metrics and the shuffled baseline (monosemantic/lm/train.py)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from monosemantic.lm import train as lm
from monosemantic.core.config import TransformerConfig
from monosemantic.lm.model import ModelConfig, build_model
from monosemantic.data.tokenizer import TokenStream
from monosemantic.core.training import checkpoint_state

VOCAB = 32
CPU = torch.device("cpu")


def make_stream(n_docs: int, seed: int) -> TokenStream:
    """Two subsets: 'cycle' documents count 1..15 upward (learnable), 'noise' documents are uniform over
    16..31 (nothing to learn beyond the unigram); every document ends with <|endoftext|> = 0."""
    rng = np.random.default_rng(seed)
    parts, starts, subset = [], [0], []
    for _ in range(n_docs):
        n = int(rng.integers(20, 60))
        if rng.random() < 0.5:
            doc = 1 + (int(rng.integers(15)) + np.arange(n)) % 15
            subset.append(0)
        else:
            doc = rng.integers(16, 32, n)
            subset.append(1)
        parts.append(np.append(doc, 0).astype(np.uint16))
        starts.append(starts[-1] + n + 1)
    return TokenStream(np.concatenate(parts), np.array(starts, dtype=np.int64),
                       np.array(subset, dtype=np.int16), ["cycle", "noise"])


TINY = TransformerConfig(d_model=16, d_mlp=32, n_heads=2, n_ctx=16, batch_size=8, steps=12, lr=3e-3,
                         warmup_steps=2, min_lr_frac=0.1, betas=(0.9, 0.95), weight_decay=0.0, grad_clip=1.0,
                         eval_every=5, eval_batches=2, checkpoint_every=4, seeds={"A": 1, "B": 2}, shuffle_seed=3,
                         mix={}, kernels="reference")
MCFG = ModelConfig.from_params(TINY, VOCAB)


@pytest.fixture(scope="module")
def streams():
    return make_stream(400, 0), make_stream(60, 1)


def test_lr_schedule():
    cfg = dataclasses.replace(TINY, steps=100, warmup_steps=10, lr=1.0, min_lr_frac=0.1)
    lrs = [lm.lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[99] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lm.lr_at(55, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 89)))


def test_batches_are_seeded_windows(streams):
    train, _ = streams
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = lm.sample_batch(train, 4, 16, g1), lm.sample_batch(train, 4, 16, g2)
    assert torch.equal(a, b) and a.shape == (4, 17) and a.dtype == torch.int64
    toks = torch.from_numpy(train.tokens.astype(np.int64))
    for row in a:  # each row is a contiguous window of the stream
        starts = [s for s in range(len(toks) - 16) if torch.equal(toks[s:s + 17], row)]
        assert starts


def test_eval_starts():
    s = lm.eval_starts(1000, 17, 10)
    assert len(s) == 10 and np.all(np.diff(s) >= 17) and s[-1] + 17 <= 1000 and np.all(s % 17 == 0)
    assert len(lm.eval_starts(1000, 17, None)) == 1000 // 17
    with pytest.raises(lm.TrainingError, match="fewer than one context"):
        lm.eval_starts(10, 17, None)


def test_unigram_baseline(streams):
    train, val = streams
    logp = lm.unigram_log_probs(train, VOCAB)
    codes = train.subset_codes()
    toks = np.asarray(train.tokens)
    for c, name in enumerate(train.subsets):
        counts = np.bincount(toks[codes == c], minlength=VOCAB) + 1.0
        assert np.allclose(logp[name], np.log(counts / counts.sum()))
    counts = np.bincount(toks, minlength=VOCAB) + 1.0
    assert np.allclose(logp["overall"], np.log(counts / counts.sum()))
    # the noise subset's unigram loss is close to log(16) (+ the <|endoftext|> tokens)
    model = build_model(MCFG, 0)
    m = lm.model_metrics(model, train, val, TINY, CPU)
    assert m["subsets"]["noise"]["unigram_loss"] == pytest.approx(math.log(16), abs=0.15)
    assert m["subsets"]["overall"]["tokens"] == m["val_contexts"] * 16
    assert m["subsets"]["cycle"]["tokens"] + m["subsets"]["noise"]["tokens"] == m["subsets"]["overall"]["tokens"]
    assert m["subsets"]["overall"]["loss"] == pytest.approx(math.log(VOCAB), abs=0.1)  # untrained


def test_training_learns_every_subset(streams, tmp_path):
    train, val = streams
    cfg = dataclasses.replace(TINY, steps=150, warmup_steps=10, eval_every=50, lr=1e-2)
    model, info = lm.train(cfg, MCFG, 1, train, val, CPU, progress=False, live_dir=tmp_path / "live")
    assert info["tokens"] == 150 * 8 * 16 and info["tokens_per_s"] > 0
    m = lm.model_metrics(model, train, val, cfg, CPU)["subsets"]
    assert m["cycle"]["loss"] < m["cycle"]["unigram_loss"] - 1.5  # the counting pattern is learned
    assert m["noise"]["loss"] < m["noise"]["unigram_loss"] + 0.1  # nothing to learn, nothing lost
    loss_tsv = (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    val_tsv = (tmp_path / "live" / "plots" / "metrics" / "val" / "loss.tsv").read_text().splitlines()
    assert len(loss_tsv) == 1 + 150 // lm.LOG_EVERY and len(val_tsv) == 1 + 3


def test_fused_kernels_train_like_the_reference(streams):
    """kernels: fused (model.train_loss) follows the reference run in fp32: same data, nearly the same weights."""
    train, val = streams
    ref, _ = lm.train(TINY, MCFG, 1, train, val, CPU, progress=False)
    fused, _ = lm.train(dataclasses.replace(TINY, kernels="fused"), MCFG, 1, train, val, CPU, progress=False)
    for (name, a), b in zip(ref.state_dict().items(), fused.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5, msg=name)
    assert lm.fingerprint(TINY, MCFG, 1, train) != lm.fingerprint(dataclasses.replace(TINY, kernels="fused"),
                                                                   MCFG, 1, train)


class Killed(Exception):
    pass


def test_killed_run_resumes_to_identical_weights(streams, tmp_path, monkeypatch, capsys):
    train, val = streams
    monkeypatch.setattr(lm, "LOG_EVERY", 3)  # not a divisor of checkpoint_every: a resume lands mid-window
    monkeypatch.chdir(tmp_path)  # dvclive must not write dvc.yaml or anything outside its folder
    ref, _ = lm.train(TINY, MCFG, 7, train, val, CPU, progress=False, live_dir=tmp_path / "live_ref")

    def kill(step):
        if step == 7:
            raise Killed

    ckpt, live = tmp_path / "ckpt" / "A.pt", tmp_path / "live"
    with pytest.raises(Killed):
        lm.train(TINY, MCFG, 7, train, val, CPU, ckpt_path=ckpt, live_dir=live, progress=False, on_step=kill)
    assert ckpt.exists() and checkpoint_state(ckpt)["step"] == 4
    seen = []
    resumed, _ = lm.train(TINY, MCFG, 7, train, val, CPU, ckpt_path=ckpt, live_dir=live, progress=False,
                          on_step=seen.append)
    assert "resuming" in capsys.readouterr().out and seen[0] == 5
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    head, *rows = (live / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    col = head.split("\t").index("step")
    steps = [int(r.split("\t")[col]) for r in rows]
    assert steps == sorted(set(steps)) == list(range(3, 13, 3))  # no repeats from the killed run
    # the same curve as the unbroken run's, including the window the kill cut (steps 4 | 5, 6)
    val_col = head.split("\t").index("loss")
    ref_rows = (tmp_path / "live_ref" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()[1:]
    assert [r.split("\t")[val_col] for r in rows] == [r.split("\t")[val_col] for r in ref_rows]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "live", "live_ref"]


def test_a_checkpoint_moved_to_another_clone_resumes_to_identical_weights(streams, tmp_path, monkeypatch, capsys):
    """Long trainings span sessions (issue 28): a run stopped in one clone resumes from its checkpoint copied into
    another clone (another folder, the first one deleted), to the weights of an unbroken run. The checkpoint names no
    path: weights, optimizer, data generator, step and the run's fingerprint (settings, seed, tokens)."""
    import shutil

    train, val = streams
    ref, _ = lm.train(TINY, MCFG, 7, train, val, CPU, progress=False)

    def kill(step):
        if step == 7:
            raise Killed

    first, second = tmp_path / "clone1", tmp_path / "clone2"
    (second / "checkpoints").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Killed):
        lm.train(TINY, MCFG, 7, train, val, CPU, ckpt_path=first / "checkpoints" / "A.pt", progress=False,
                 on_step=kill)
    shutil.copy2(first / "checkpoints" / "A.pt", second / "checkpoints" / "A.pt")
    shutil.rmtree(first)
    monkeypatch.chdir(second)
    resumed, _ = lm.train(TINY, MCFG, 7, train, val, CPU, ckpt_path=second / "checkpoints" / "A.pt",
                          progress=False)
    assert "resuming" in capsys.readouterr().out
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_stale_checkpoint_is_not_resumed(streams, tmp_path, capsys):
    train, val = streams
    ckpt = tmp_path / "A.pt"

    def stop(step):
        if step == 5:
            raise Killed

    with pytest.raises(Killed):
        lm.train(TINY, MCFG, 7, train, val, CPU, ckpt_path=ckpt, progress=False, on_step=stop)
    other = dataclasses.replace(TINY, lr=1e-3)
    lm.train(other, MCFG, 7, train, val, CPU, ckpt_path=ckpt, progress=False)
    assert "different settings" in capsys.readouterr().out


def test_seed_changes_init_and_data(streams):
    train, val = streams
    cfg = dataclasses.replace(TINY, steps=3)
    a, _ = lm.train(cfg, MCFG, 1, train, val, CPU, progress=False)
    a2, _ = lm.train(cfg, MCFG, 1, train, val, CPU, progress=False)
    b, _ = lm.train(cfg, MCFG, 2, train, val, CPU, progress=False)
    assert torch.equal(a.W_E.weight, a2.W_E.weight) and not torch.equal(a.W_E.weight, b.W_E.weight)


def test_shuffle_weights(streams):
    train, val = streams
    model = build_model(MCFG, 0)
    with torch.no_grad():
        for p in model.parameters():  # give biases and gains distinct values too
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    s1, s2, s3 = lm.shuffle_weights(model, 3), lm.shuffle_weights(model, 3), lm.shuffle_weights(model, 4)
    for name, w in model.state_dict().items():
        x = s1.state_dict()[name]
        assert x.shape == w.shape
        assert torch.equal(x.flatten().sort().values, w.flatten().sort().values), name  # same entries
        assert not torch.equal(x, w), name  # permuted
        assert torch.equal(x, s2.state_dict()[name]) and not torch.equal(x, s3.state_dict()[name])
    m = lm.model_metrics(s1, train, val, TINY, CPU)["subsets"]
    assert m["overall"]["loss"] > 0


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Tiny models: run torch single-threaded (tests/conftest.py)."""
