"""Training one sparse autoencoder of the sweep (Bricken et al. 2023, "Autoencoder training").

    train_sae(cfg, run, store, out_dir)

* Data: the activation store is already shuffled across contexts, so it is read sequentially in batches of
  `cfg.batch_size` rows, wrapping around to the start (next epoch) when steps × batch exceeds its size.
* Initialisation: Kaiming-uniform W_e, W_d (unit-norm columns), b_e = 0, b_d = geometric median of the
  first `cfg.geometric_median_points` rows. Deterministic given cfg.seed (CPU).
* Step: loss → gradients (autograd, or the closed-form sparse path, `SAETrainer.step`) → project the
  parallel component out of the decoder gradients → Adam → renormalise decoder columns.
* Resampling (resample.py) after the steps listed in cfg.resample.steps.
* Logging every `log_every` steps to dvclive (out_dir/live, never touching dvc.yaml) and tqdm: mse, l1, l0,
  total loss, dead (features that did not fire in the last dead_window steps).
* Checkpoints every `checkpoint_every` steps, written atomically (training.Checkpointer): weights, Adam state,
  step, data position, RNG states, last-fired steps, feature counts, resampling records. A killed run restarted
  with the same config resumes from the last checkpoint and ends bit-identical to an uninterrupted run.
  The checkpoint (which records its own sha256) and the dvclive curves live in `ckpt_dir` (the stage uses
  checkpoints/sae/RUN/, outside the DVC outputs, which `dvc repro` deletes before rerunning a stage); they are
  keyed by a fingerprint of the hyperparameters, the run, the input shards' sha256s and the training code, so a
  checkpoint of other settings, data or code is never resumed. Once the outputs are written the curves are
  copied into out_dir/live and ckpt_dir is removed. A corrupted checkpoint is reported and training restarts.
* A non-finite loss stops training with `NonFiniteLossError` (training.check_finite) before the optimizer
  step; the last good checkpoint stays on disk.

Outputs in out_dir: sae_weights.safetensors + cfg.json (SAELens layout), feature_counts.npy, resampling.json,
train_stats.json, live/ (dvclive curves). `feature_counts.npy` (int64, one per feature) counts the training
inputs on which each feature fired since the last resampling step (or the start): the dictionary is final
only from then on. train_stats.json gives that number of inputs (`feature_counts_inputs`), so
density = feature_counts / feature_counts_inputs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from monosemantic.config import SAEConfig, SAERun
from monosemantic.sae.resample import dead_features, resample_dead_features
from monosemantic.sae.model import LossTerms, SparseAutoencoder, geometric_median
from monosemantic.training import NonFiniteLossError  # noqa: F401 - SAETrainer.step raises it; stages import it here
from monosemantic.training import (Checkpointer, LiveLog, check_finite, code_digest, fingerprint, restore_rng,
                                   rng_state, sha256)
from monosemantic.utils import PipelineError, atomic_path, write_json

CHECKPOINT_FILE = "checkpoint.pt"
# the code a checkpoint depends on (paths relative to monosemantic/)
CODE_FILES = ("sae/model.py", "sae/train.py", "sae/resample.py", "lm/store.py", "training.py")
# Above this fraction of active (input, feature) entries the "auto" path evaluates the closed-form
# gradients densely (early training, when about half of the features fire); below it, with CSR products.
AUTO_MAX_DENSITY = 0.05


class ArtifactError(PipelineError, RuntimeError):
    """A trained SAE directory that is incomplete or corrupted (weights differ from their recorded sha256)."""


class SAETrainer:
    """Holds the SAE, its Adam optimizer and the per-feature firing statistics; `step(x)` is one update.

    fast_path: "dense" = autograd on `sae.loss` (the reference); "sparse" = `sae.manual_backward` with CSR
    products after the encoder; "auto" = the closed-form path on CPU (CSR while the fraction of active entries
    is below AUTO_MAX_DENSITY, dense products above), autograd on CUDA. All agree to float32 rounding.
    """

    def __init__(self, sae: SparseAutoencoder, cfg: SAEConfig, device: torch.device | str = "cpu"):
        self.sae, self.cfg = sae, cfg
        self.device = torch.device(device)
        # fused=True: the single-kernel implementation of the same Adam update (about 20x faster on CPU
        # than the foreach one at these sizes; deterministic).
        self.optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), fused=True)
        if cfg.fast_path == "auto":
            self.path, self.max_density = ("manual", AUTO_MAX_DENSITY) if self.device.type == "cpu" else ("dense", 0.0)
        elif cfg.fast_path == "sparse":
            self.path, self.max_density = "manual", 1.0
        else:
            self.path, self.max_density = "dense", 0.0
        sae.set_encoder_screen(cfg.encoder_screen, self.device)  # bf16 encoder screen: sae.EncoderScreen
        F = sae.n_features
        self.step_count = 0
        self.last_fired = torch.zeros(F, dtype=torch.long)  # last step in which each feature fired (0: never)
        self.feature_counts = torch.zeros(F, dtype=torch.long)  # inputs fired on, since the last resampling
        self.counts_inputs = 0  # inputs seen since the last resampling

    def step(self, x: torch.Tensor) -> LossTerms:
        """One training step on the batch x (B, d); raises NonFiniteLossError before touching the weights."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.path == "dense":
            terms = self.sae.loss(x)
            check_finite(terms.total, self.step_count + 1, mse=terms.mse, l1=terms.l1)
            terms.total.backward()
        else:
            terms = self.sae.manual_backward(x, max_density=self.max_density)
            check_finite(terms.total, self.step_count + 1, mse=terms.mse, l1=terms.l1)
        self.sync_grads()
        self.sae.remove_parallel_grad()
        self.optimizer.step()
        self.sae.normalize_decoder()
        self.step_count += 1
        counts = terms.fire_counts.cpu()
        self.last_fired[counts > 0] = self.step_count
        self.feature_counts += counts
        self.counts_inputs += x.shape[0]
        return terms

    def sync_grads(self) -> None:
        """Data-parallel hook (distributed.DistributedSAETrainer averages the gradients across ranks here)."""

    def n_dead(self) -> int:
        return int(dead_features(self.last_fired, self.step_count, self.cfg.resample.dead_window).sum())

    def resample(self, inputs: torch.Tensor, generator: torch.Generator) -> dict:
        """Resample the features dead at the current step from `inputs` (see resample.py)."""
        dead = dead_features(self.last_fired, self.step_count, self.cfg.resample.dead_window)
        record = resample_dead_features(self.sae, self.optimizer, dead.to(self.device), inputs,
                                        self.cfg.resample.encoder_scale, generator)
        # Resampled features get a fresh window before they can count as dead again; densities restart.
        self.last_fired[record["features"]] = self.step_count
        self.feature_counts.zero_()
        self.counts_inputs = 0
        return {"step": self.step_count, "n_dead": record["n_dead"], "n_resampled": record["n_resampled"]}

    # ---------------------------------------------------------------------------------- state

    def state_dict(self) -> dict:
        return {"sae": self.sae.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step_count,
                "last_fired": self.last_fired.clone(), "feature_counts": self.feature_counts.clone(),
                "counts_inputs": self.counts_inputs}

    def load_state_dict(self, state: dict) -> None:
        self.sae.load_state_dict(state["sae"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step_count = state["step"]
        self.last_fired = state["last_fired"].clone()
        self.feature_counts = state["feature_counts"].clone()
        self.counts_inputs = state["counts_inputs"]


# ---------------------------------------------------------------------------------------- data


def read_rows(store, start: int, n: int) -> torch.Tensor:
    """n consecutive rows from `start`, wrapping around the end of the store."""
    parts, N = [], store.n_points
    while n > 0:
        take = min(n, N - start)
        parts.append(store.read(start, start + take))
        n -= take
        start = (start + take) % N
    return parts[0] if len(parts) == 1 else torch.cat(parts)


# ---------------------------------------------------------------------------------------- training


def _fingerprint(cfg: SAEConfig, run: SAERun, store) -> str:
    """What a checkpoint must agree on to be resumed: params, run, input data and the training code."""
    manifest = getattr(store, "manifest", None)
    if manifest is not None:  # an ActivationStore: its shards' sha256s identify the data
        data = [s["sha256"] for s in manifest["shards"]]
    else:  # an in-memory store (tests): hash its values
        data = sha256(store.read(0, store.n_points).numpy().tobytes())
    return fingerprint({"cfg": dataclasses.asdict(cfg), "run": dataclasses.asdict(run), "n_points": store.n_points,
                        "d": store.d, "data": data, "code": code_digest(CODE_FILES)})


def verify_sae_dir(path: str | Path) -> None:
    """Check a trained SAE directory before use: files present, weights equal to the sha256 train_sae recorded."""
    path = Path(path)
    fix = f"rerun its training (`dvc repro -f train_sae@{path.name}`, or `dvc checkout` for a cached copy)"
    for name in ("sae_weights.safetensors", "cfg.json", "train_stats.json"):
        if not (path / name).is_file():
            raise ArtifactError(f"{path / name}: missing; {fix}")
    try:
        recorded = json.loads((path / "train_stats.json").read_text()).get("weights_sha256")
    except ValueError as e:
        raise ArtifactError(f"{path / 'train_stats.json'}: unreadable ({e}); {fix}") from None
    if recorded is None:
        raise ArtifactError(f"{path / 'train_stats.json'}: no weights_sha256 (written by older code); {fix}")
    if sha256((path / "sae_weights.safetensors").read_bytes()) != recorded:
        raise ArtifactError(f"{path / 'sae_weights.safetensors'}: sha256 differs from train_stats.json "
                            f"(corrupted or replaced); {fix}")


def train_sae(cfg: SAEConfig, run: SAERun, store, out_dir: str | Path, device: str | torch.device = "cpu",
              resume: bool = True, metadata: dict | None = None, stop_after: int | None = None,
              progress: bool = True, ckpt_dir: str | Path | None = None, trainer_cls: type | None = None) -> dict:
    """Train the SAE `run` on `store` with the hyperparameters `cfg`; write its outputs to out_dir.

    ckpt_dir: where the checkpoint and the curves live while training (default: out_dir itself); a separate
    ckpt_dir is removed once the outputs are written, after its curves are copied to out_dir/live.
    resume: continue from ckpt_dir/checkpoint.pt when present, intact and written for the same fingerprint.
    metadata: extra cfg.json entries (model_name, hook_name, context_size, ...).
    stop_after: stop after this step without writing outputs, as if killed (tests).
    trainer_cls: the SAETrainer class (distributed.DistributedSAETrainer for data-parallel training).
    Returns the train_stats dict (also written to train_stats.json).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    if cfg.batch_size > store.n_points:
        raise ValueError(f"sae.batch_size {cfg.batch_size} exceeds the {store.n_points} points of the activation "
                         "store; lower sae.batch_size or sample more activations (activations.n_points)")
    out_dir.mkdir(parents=True, exist_ok=True)
    separate = ckpt_dir is not None and Path(ckpt_dir).resolve() != out_dir.resolve()
    ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else out_dir
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    live_dir = ckpt_dir / "live"
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    init_gen = torch.Generator().manual_seed(cfg.seed)
    resample_gen = torch.Generator().manual_seed(cfg.seed + 1)

    sae = SparseAutoencoder(store.d, run.n_features, run.l1, generator=init_gen)
    trainer = (trainer_cls or SAETrainer)(sae.to(device), cfg, device)
    checkpoint = Checkpointer(ckpt_dir / CHECKPOINT_FILE, _fingerprint(cfg, run, store))
    position, epoch, resampling, elapsed_before = 0, 0, [], 0.0

    state = checkpoint.load() if resume else None
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        position, epoch, resampling = state["position"], state["epoch"], state["resampling"]
        restore_rng(state["rng"], resample=resample_gen)
        elapsed_before = state["elapsed"]
        print(f"resuming {out_dir.name} at step {trainer.step_count} from {checkpoint.path}")
    else:  # b_d starts at the geometric median of the first inputs
        n_gm = min(cfg.geometric_median_points, store.n_points)
        with torch.no_grad():
            sae.b_d.copy_(geometric_median(store.read(0, n_gm).to(device)))

    def save_checkpoint() -> None:
        checkpoint.save({"trainer": trainer.state_dict(), "position": position, "epoch": epoch,
                         "resampling": resampling, "rng": rng_state(resample=resample_gen),
                         "elapsed": elapsed_before + time.perf_counter() - t0})

    live = LiveLog(live_dir, trainer.step_count if state is not None else None)
    resample_steps = set(cfg.resample.steps)
    first_step = trainer.step_count
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=first_step, desc=f"sae {out_dir.name}", disable=not progress,
               mininterval=2.0)
    terms = None
    try:
        while trainer.step_count < cfg.steps:
            if stop_after is not None and trainer.step_count >= stop_after:
                return {}
            x = read_rows(store, position, cfg.batch_size).to(device)
            position += cfg.batch_size
            if position >= store.n_points:
                position -= store.n_points
                epoch += 1
            terms = trainer.step(x)
            step = trainer.step_count
            bar.update(1)
            if step in resample_steps:
                n_inputs = min(cfg.resample.n_inputs, store.n_points)
                start = int(torch.randint(store.n_points, (1,), generator=resample_gen))
                inputs = read_rows(store, start, n_inputs).to(device)
                record = trainer.resample(inputs, resample_gen)
                resampling.append(record)
                live.log(step, {"train/resampled": record["n_resampled"]})
            if step % cfg.log_every == 0 or step == cfg.steps:
                stats = {"mse": terms.mse.item(), "l1": terms.l1.item(), "l0": terms.l0.item(),
                         "loss": terms.total.item(), "dead": trainer.n_dead()}
                live.log(step, {f"train/{k}": v for k, v in stats.items()})
                live.summary()
                bar.set_postfix(mse=f"{stats['mse']:.4g}", l0=f"{stats['l0']:.1f}", dead=stats["dead"])
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                save_checkpoint()
    finally:
        bar.close()
        live.end()

    wall = time.perf_counter() - t0
    trained = trainer.step_count - first_step
    sae.save(out_dir, **(metadata or {}))
    with atomic_path(out_dir / "feature_counts.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, trainer.feature_counts.numpy())
    write_json(out_dir / "resampling.json", resampling)
    train_stats = {
        "steps": trainer.step_count, "batch_size": cfg.batch_size, "epochs": epoch + position / store.n_points,
        "mse": terms.mse.item() if terms is not None else None,
        "l0": terms.l0.item() if terms is not None else None,
        "l1": terms.l1.item() if terms is not None else None,
        "dead": trainer.n_dead(), "n_resampled": sum(r["n_resampled"] for r in resampling),
        "resampled_per_step": [r["n_resampled"] for r in resampling],
        "weights_sha256": sha256((out_dir / "sae_weights.safetensors").read_bytes()),
        "feature_counts_inputs": trainer.counts_inputs,
        "samples_per_s": trained * cfg.batch_size / wall if trained and wall > 0 else None,
        "wall_time_s": elapsed_before + wall, "fast_path": cfg.fast_path, "device": str(device),
    }
    if separate:  # the complete curves, across any resumes
        if (out_dir / "live").exists():
            shutil.rmtree(out_dir / "live")
        shutil.copytree(live_dir, out_dir / "live")
    write_json(out_dir / "train_stats.json", train_stats)
    # the run is complete; the outputs above replace the checkpoint
    if separate:
        shutil.rmtree(ckpt_dir)
    else:
        checkpoint.remove()
    return train_stats
