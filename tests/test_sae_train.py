"""The SAE training loop: outputs, determinism, bit-identical resume after a kill, NaN stop, the sparse fast
path against the dense reference, and the stage script's error handling."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from monosemantic.core.config import ResampleConfig, SAEConfig, SAERun
from monosemantic.sae import architectures
from monosemantic.sae.architectures.base import LossTerms
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings
from monosemantic.sae.train import CHECKPOINT_FILE, NonFiniteLossError, SAETrainer, read_rows, train_sae
from monosemantic.core.training import checkpoint_state
from monosemantic.lm.store import ArrayStore

ROOT = Path(__file__).resolve().parents[1]
RUN = SAERun(model="A", n_features=32, architecture="standard", settings=StandardSettings(l1=0.01),
             points_mult=1)


def make_store(n=1000, d=8, seed=0) -> ArrayStore:
    """Sparse nonnegative data (like post-ReLU activations) built from 24 random directions."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.relu(torch.randn(24, d, generator=g))
    codes = torch.relu(torch.randn(n, 24, generator=g) - 1.0)
    return ArrayStore(codes @ dirs)


def make_cfg(**kw) -> SAEConfig:
    base = dict(batch_size=64, steps=40, lr=3e-3, betas=(0.9, 0.999), geometric_median_points=256, log_every=5,
                checkpoint_every=10, seed=11, fast_path="auto", encoder_screen="fp32",
                resample=ResampleConfig(steps=(15, 30), dead_window=10, n_inputs=300, encoder_scale=0.2))
    base.update(kw)
    return SAEConfig(**base)


def outputs(out_dir: Path) -> dict:
    return {name: (out_dir / name).read_bytes()
            for name in ("sae_weights.safetensors", "feature_counts.npy", "resampling.json")}


def test_train_writes_outputs(tmp_path):
    stats = train_sae(make_cfg(), RUN, make_store(), tmp_path, progress=False)
    for name in ("sae_weights.safetensors", "cfg.json", "feature_counts.npy", "resampling.json",
                 "train_stats.json"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / CHECKPOINT_FILE).exists()  # removed once the outputs are written
    written = json.loads((tmp_path / "train_stats.json").read_text())
    assert written == {k: v for k, v in stats.items() if k not in ("samples_per_s", "wall_time_s")}
    assert stats["steps"] == 40 and np.isfinite(stats["mse"]) and stats["samples_per_s"] > 0
    assert stats["epochs"] == pytest.approx(40 * 64 / 1000)  # wrapped around the 1000-point store
    resampling = json.loads((tmp_path / "resampling.json").read_text())
    assert [r["step"] for r in resampling] == [15, 30]
    counts = np.load(tmp_path / "feature_counts.npy")
    assert counts.shape == (32,) and counts.dtype == np.int64
    assert counts.max() <= stats["feature_counts_inputs"] == (40 - 30) * 64  # counted since the last resampling
    sae = architectures.load(tmp_path)
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(32))
    metrics = (tmp_path / "live" / "plots" / "metrics" / "train")
    assert {p.stem for p in metrics.glob("*.tsv")} >= {"mse", "l1", "l0", "loss", "dead", "resampled"}
    assert len((metrics / "mse.tsv").read_text().splitlines()) == 1 + 40 // 5


class _Scheduled(StandardSAE):
    """The standard SAE as an architecture without the paper's extras: autograd only, no resampling, a
    learning-rate schedule and an auxiliary loss term; every hook call recorded."""

    architecture = "scheduled"
    resamples = False
    has_manual_backward = False
    calls: list = []

    def loss(self, x, step=0, steps=1):
        terms = super().loss(x, step, steps)
        aux = 0.5 * terms.mse
        self.calls.append(("loss", step, steps))
        return LossTerms(terms.total + aux, terms.mse, terms.l1, terms.l0, terms.fire_counts, {"aux": aux})

    def init_from_data(self, x):
        self.calls.append(("init", len(x)))

    def before_step(self, step, steps):
        self.calls.append(("before", step))

    def after_step(self, step, steps):
        self.calls.append(("after", step))

    def lr_scale(self, step, steps):
        return 1.0 - step / steps


def test_trainer_drives_any_architecture_through_the_interface(tmp_path, monkeypatch):
    """Built from the registry, initialised from the first geometric_median_points rows, autograd on loss(x, step,
    steps) (no manual_backward, whatever fast_path says), hooks around each Adam step at lr = cfg.lr · lr_scale,
    no resampling (resamples False), the extra terms logged as train/NAME, dead features counted."""
    monkeypatch.setitem(architectures.ARCHITECTURES, "scheduled", _Scheduled)
    monkeypatch.setattr(_Scheduled, "calls", [])
    run = SAERun(model="A", n_features=32, architecture="scheduled", settings=StandardSettings(l1=0.01),
                 points_mult=1)
    cfg = make_cfg(steps=10, fast_path="sparse", resample=ResampleConfig(steps=(4,), dead_window=2, n_inputs=300,
                                                                         encoder_scale=0.2))
    trainer = SAETrainer(_Scheduled(8, 32, run.settings), cfg)
    assert trainer.path == "dense"  # no closed form: autograd
    stats = train_sae(cfg, run, make_store(), tmp_path, progress=False)
    calls = _Scheduled.calls
    assert calls[0] == ("init", 256)
    assert calls[1:] == [c for s in range(10) for c in (("loss", s, 10), ("before", s), ("after", s))]
    assert json.loads((tmp_path / "resampling.json").read_text()) == [] and stats["n_resampled"] == 0
    assert stats["feature_counts_inputs"] == 10 * 64 and "dead" in stats
    metrics = tmp_path / "live" / "plots" / "metrics" / "train"
    assert {p.stem for p in metrics.glob("*.tsv")} == {"mse", "l1", "l0", "loss", "dead", "aux"}
    trainer.step(make_store().read(0, 64))  # step 0 of 10: lr = cfg.lr; then step 1: 0.9 cfg.lr
    trainer.step(make_store().read(64, 128))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.lr * 0.9, rel=1e-12)


def test_b_d_initialised_to_geometric_median_and_deterministic(tmp_path):
    from monosemantic.sae.model import geometric_median

    store = make_store()
    cfg = make_cfg(steps=20, resample=ResampleConfig(steps=(), dead_window=10, n_inputs=100, encoder_scale=0.2))
    train_sae(cfg, RUN, store, tmp_path / "b", progress=False)
    train_sae(cfg, RUN, store, tmp_path / "c", progress=False)
    assert outputs(tmp_path / "b") == outputs(tmp_path / "c")  # same seed, same bytes
    # Zero learning rate: b_d stays at its initial value, the geometric median of the first 256 rows.
    no_resampling = ResampleConfig(steps=(), dead_window=10, n_inputs=10, encoder_scale=0.2)
    train_sae(make_cfg(steps=2, lr=1e-30, resample=no_resampling), RUN, store, tmp_path / "d", progress=False)
    sae = architectures.load(tmp_path / "d")
    torch.testing.assert_close(sae.b_d, geometric_median(store.read(0, 256)))


def test_resume_after_kill_is_bit_identical(tmp_path):
    store, cfg = make_store(), make_cfg()
    train_sae(cfg, RUN, store, tmp_path / "full", progress=False)
    # 'Killed' after step 27: the last checkpoint is from step 20 (after the resampling at 15); the restart
    # redoes steps 21-27 and goes through the resampling at 30 and an epoch wrap.
    assert train_sae(cfg, RUN, store, tmp_path / "resumed", progress=False, stop_after=27) == {}
    ckpt = checkpoint_state(tmp_path / "resumed" / CHECKPOINT_FILE)
    assert ckpt["trainer"]["step"] == 20
    train_sae(cfg, RUN, store, tmp_path / "resumed", progress=False)
    assert outputs(tmp_path / "resumed") == outputs(tmp_path / "full")
    # the dvclive curves of the killed run's steps 21-27 were dropped, not duplicated
    curves = [(tmp_path / run / "live" / "plots" / "metrics" / "train" / "mse.tsv").read_text()
              for run in ("resumed", "full")]
    assert curves[0] == curves[1] and len(curves[0].splitlines()) == 1 + 40 // 5


def test_checkpoint_for_other_params_is_ignored(tmp_path):
    store = make_store()
    train_sae(make_cfg(), RUN, store, tmp_path / "x", progress=False, stop_after=12)
    other = make_cfg(lr=1e-3)
    train_sae(other, RUN, store, tmp_path / "x", progress=False)
    train_sae(other, RUN, store, tmp_path / "y", progress=False)
    assert outputs(tmp_path / "x") == outputs(tmp_path / "y")


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    x = make_store(n=2000).x.clone()
    x[1500, 3] = float("nan")  # rows 1472-1535 are the batch of step 24
    cfg = make_cfg(resample=ResampleConfig(steps=(30,), dead_window=10, n_inputs=300, encoder_scale=0.2))
    with pytest.raises(NonFiniteLossError, match="step 24"):
        train_sae(cfg, RUN, ArrayStore(x), tmp_path, progress=False)
    ckpt = checkpoint_state(tmp_path / CHECKPOINT_FILE)
    assert ckpt["trainer"]["step"] == 20
    assert all(torch.isfinite(v).all() for v in ckpt["trainer"]["sae"].values())
    assert not (tmp_path / "sae_weights.safetensors").exists()


@pytest.mark.parametrize("fast_path", ["sparse", "auto"])
def test_fast_path_matches_dense_reference(fast_path):
    """Same init and batches: after 30 Adam steps (with a resampling) weights agree to float32 rounding."""
    store = make_store(n=2000, d=16)
    cfg = make_cfg(steps=30, resample=ResampleConfig(steps=(15,), dead_window=10, n_inputs=300, encoder_scale=0.2))
    weights = {}
    for path in ("dense", fast_path):
        torch.manual_seed(0)
        sae = StandardSAE(16, 48, StandardSettings(0.01), generator=torch.Generator().manual_seed(1))
        trainer = SAETrainer(sae, make_cfg(fast_path=path, resample=cfg.resample), "cpu")
        gen = torch.Generator().manual_seed(2)
        for step in range(cfg.steps):
            terms = trainer.step(read_rows(store, (step * 64) % 2000, 64))
            if trainer.step_count in cfg.resample.steps:
                trainer.resample(read_rows(store, 0, 300), gen)
        weights[path] = ({n: p.detach().clone() for n, p in sae.named_parameters()}, terms.total.item(),
                         trainer.last_fired.clone())
    (dense, loss_dense, fired_dense), (fast, loss_fast, fired_fast) = weights["dense"], weights[fast_path]
    assert loss_fast == pytest.approx(loss_dense, rel=1e-4)
    for name in dense:
        torch.testing.assert_close(fast[name], dense[name], rtol=1e-4, atol=1e-5)


def test_stage_reports_unknown_run_and_missing_store(tmp_path):
    params = (ROOT / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(params)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = ["-m", "stages.train_sae"]
    r = subprocess.run([sys.executable, *script, "NO_SUCH_RUN"], cwd=tmp_path, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 2 and "NO_SUCH_RUN" in r.stderr and "Traceback" not in r.stderr
    run_name = next(iter(__import__("yaml").safe_load(params)["sae_runs"]))
    r = subprocess.run([sys.executable, *script, run_name], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "manifest.json" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------ issue 15: resume outside DVC outputs, integrity


def test_resume_from_checkpoint_dir_after_outputs_were_deleted(tmp_path):
    """As under `dvc repro`: the killed stage's outputs are deleted before the rerun; the checkpoint and the
    curves survive in ckpt_dir, the resumed run is bit-identical with complete curves, and ckpt_dir goes away."""
    import shutil

    store, cfg = make_store(), make_cfg()
    full = train_sae(cfg, RUN, store, tmp_path / "full", progress=False)
    out, ckpt = tmp_path / "out", tmp_path / "checkpoints" / "run"
    assert train_sae(cfg, RUN, store, out, progress=False, stop_after=27, ckpt_dir=ckpt) == {}
    assert (ckpt / CHECKPOINT_FILE).exists() and not (out / CHECKPOINT_FILE).exists()
    shutil.rmtree(out)  # what DVC does to a stage's outputs before running it again
    resumed = train_sae(cfg, RUN, store, out, progress=False, ckpt_dir=ckpt)
    assert outputs(out) == outputs(tmp_path / "full")
    live = {f.relative_to(tmp_path / "full"): f.read_bytes() for f in (tmp_path / "full" / "live").rglob("*")
            if f.is_file()}
    assert live and live == {f.relative_to(out): f.read_bytes() for f in (out / "live").rglob("*") if f.is_file()}
    assert not ckpt.exists()
    assert resumed["weights_sha256"] == full["weights_sha256"]
    assert resumed["resampled_per_step"] == [r["n_resampled"] for r in
                                             json.loads((out / "resampling.json").read_text())]
    assert len(resumed["resampled_per_step"]) == 2


def test_corrupted_checkpoint_is_reported_and_never_resumed(tmp_path, capsys):
    store, cfg = make_store(), make_cfg()
    train_sae(cfg, RUN, store, tmp_path / "full", progress=False)
    ckpt = tmp_path / "ckpt"
    train_sae(cfg, RUN, store, tmp_path / "out", progress=False, stop_after=27, ckpt_dir=ckpt)
    data = bytearray((ckpt / CHECKPOINT_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tensors
    (ckpt / CHECKPOINT_FILE).write_bytes(bytes(data))
    train_sae(cfg, RUN, store, tmp_path / "out", progress=False, ckpt_dir=ckpt)
    assert "corrupted checkpoint" in capsys.readouterr().out
    assert outputs(tmp_path / "out") == outputs(tmp_path / "full")  # restarted from step 0, same result


def test_checkpoint_of_other_code_or_data_is_not_resumed(tmp_path, monkeypatch, capsys):
    from monosemantic.sae import train as sae_train
    store, cfg = make_store(), make_cfg()
    train_sae(cfg, RUN, store, tmp_path / "out", progress=False, stop_after=12)
    other = make_store(seed=1)  # same shape, other values
    assert sae_train._fingerprint(cfg, RUN, store) != sae_train._fingerprint(cfg, RUN, other)
    monkeypatch.setattr(sae_train, "CODE_FILES", ("sae/model.py",))  # as if the code changed
    train_sae(cfg, RUN, store, tmp_path / "out", progress=False)
    assert "starting afresh" in capsys.readouterr().out


def test_corrupted_or_missing_sae_weights_are_refused(tmp_path):
    from monosemantic.sae.train import ArtifactError, verify_sae_dir

    train_sae(make_cfg(steps=10), RUN, make_store(), tmp_path, progress=False)
    verify_sae_dir(tmp_path)  # intact
    weights = tmp_path / "sae_weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 differs"):
        verify_sae_dir(tmp_path)
    weights.unlink()
    with pytest.raises(ArtifactError, match="missing"):
        verify_sae_dir(tmp_path)


def test_batch_larger_than_store_fails_before_compute(tmp_path):
    with pytest.raises(ValueError, match="exceeds the 100 points"):
        train_sae(make_cfg(batch_size=128), RUN, make_store(n=100), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing written


def test_decoder_gradient_has_no_component_along_its_column():
    """Paper: the gradient component parallel to each (unit-norm) decoder column is removed before Adam.
    After one step from fresh moments Adam's first moment is (1 - β1)·g, so it must be orthogonal to the
    columns as they were before the step; without the projection it is not (the loss pulls on their norm)."""
    store = make_store(n=512, d=8)
    for path in ("dense", "sparse"):
        sae = StandardSAE(8, 32, StandardSettings(0.01), generator=torch.Generator().manual_seed(3))
        trainer = SAETrainer(sae, make_cfg(fast_path=path), "cpu")
        before = sae.W_d.detach().clone()
        trainer.step(read_rows(store, 0, 256))
        m = trainer.optimizer.state[sae.W_d]["exp_avg"]
        assert m.abs().max() > 1e-6
        parallel = (m * before).sum(0) / m.norm(dim=0).clamp_min(1e-12)
        assert parallel.abs().max() < 1e-5, path
        torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(32))


def test_trainer_resamples_with_the_configured_encoder_scale():
    """SAETrainer.resample passes cfg.resample.encoder_scale: new encoder rows have norm
    scale × (mean norm of the alive rows), for the paper's 0.2 and for another value."""
    store = make_store(n=600, d=8)
    for scale in (0.2, 0.5):
        cfg = make_cfg(resample=ResampleConfig(steps=(5,), dead_window=2, n_inputs=300, encoder_scale=scale))
        sae = StandardSAE(8, 32, StandardSettings(0.01), generator=torch.Generator().manual_seed(3))
        trainer = SAETrainer(sae, cfg, "cpu")
        for step in range(5):
            trainer.step(read_rows(store, step * 64, 64))
        trainer.last_fired[:4] = 0  # four features dead
        alive_mean = sae.W_e.detach()[4:].norm(dim=1).mean()
        record = trainer.resample(read_rows(store, 0, 300), torch.Generator().manual_seed(0))
        assert record["n_resampled"] == 4
        torch.testing.assert_close(sae.W_e.detach()[:4].norm(dim=1), torch.full((4,), scale * alive_mean.item()))
