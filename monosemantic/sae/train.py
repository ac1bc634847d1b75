"""Training one sparse autoencoder of the sweep (Bricken et al. 2023, "Autoencoder training").

    train_sae(cfg, run, store, out_dir)

* Data: the activation store is already shuffled across contexts, so it is read sequentially in batches of
  `cfg.batch_size` rows, wrapping around to the start (next epoch) when steps × batch exceeds its size.
* The SAE: the class registered under the run's architecture (sae/architectures/: `architectures.get(
  run.architecture)(d, n_features, run.settings, generator)`), built from a generator seeded with cfg.seed,
  then `sae.init_from_data` on the first `cfg.geometric_median_points` rows (standard: b_d = their geometric
  median). Deterministic given cfg.seed (CPU).
* Step (`SAETrainer.step`): loss → gradients (autograd on `sae.loss`, or the closed-form `sae.manual_backward`
  of an architecture that has one) → `sae.before_step` (standard: project the parallel component out of the
  decoder gradients) → Adam at lr = cfg.lr · `sae.lr_scale` → `sae.after_step` (standard: renormalise the
  decoder columns).
* Resampling (resample.py) after the steps listed in cfg.resample.steps, for architectures that resample
  (`sae.resamples`: standard); the others ignore cfg.resample.steps.
* Logging every `log_every` steps to dvclive (out_dir/live, never touching dvc.yaml) and tqdm: mse, l1, l0,
  total loss, dead (features that did not fire in the last dead_window steps, every architecture), and the
  architecture's other loss terms (LossTerms.extra) as train/NAME.
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
import inspect
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from monosemantic.core.config import SAEConfig, SAERun
from monosemantic.sae import architectures
from monosemantic.sae.architectures.base import SAE, LossTerms
from monosemantic.sae.resample import dead_features, resample_dead_features
from monosemantic.core.training import NonFiniteLossError  # noqa: F401 - SAETrainer.step raises it; stages import it here
from monosemantic.core.training import (PACKAGE, Checkpointer, LiveLog, check_finite, code_digest, fingerprint,
                                        restore_rng, rng_state, sha256)
from monosemantic.core.utils import PipelineError, atomic_path, write_json

CHECKPOINT_FILE = "checkpoint.pt"
# the code a checkpoint depends on (paths relative to monosemantic/; with the run's architecture file, `_code_files`)
CODE_FILES = ("sae/model.py", "sae/architectures/base.py", "sae/train.py", "sae/resample.py", "lm/store.py",
              "core/training.py")
# Above this fraction of active (input, feature) entries the "auto" path evaluates the closed-form
# gradients densely (early training, when about half of the features fire); below it, with CSR products.
AUTO_MAX_DENSITY = 0.05


class ArtifactError(PipelineError, RuntimeError):
    """A trained SAE directory that is incomplete or corrupted (weights differ from their recorded sha256)."""


class SAETrainer:
    """Holds the SAE, its Adam optimizer and the per-feature firing statistics; `step(x)` is one update.

    fast_path: "dense" = autograd on `sae.loss` (the reference); "sparse" = `sae.manual_backward` with CSR
    products after the encoder; "auto" = the closed-form path on CPU (CSR while the fraction of active entries
    is below AUTO_MAX_DENSITY, dense products above), autograd on CUDA. All agree to float32 rounding. An
    architecture without a closed-form backward (`has_manual_backward` False) always trains by autograd.
    """

    def __init__(self, sae: SAE, cfg: SAEConfig, device: torch.device | str = "cpu"):
        self.sae, self.cfg = sae, cfg
        self.device = torch.device(device)
        # fused=True: the single-kernel implementation of the same Adam update (about 20x faster on CPU
        # than the foreach one at these sizes; deterministic).
        self.optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), fused=True)
        if not sae.has_manual_backward:
            self.path, self.max_density = "dense", 0.0
        elif cfg.fast_path == "auto":
            self.path, self.max_density = ("manual", AUTO_MAX_DENSITY) if self.device.type == "cpu" else ("dense", 0.0)
        elif cfg.fast_path == "sparse":
            self.path, self.max_density = "manual", 1.0
        else:
            self.path, self.max_density = "dense", 0.0
        if sae.has_manual_backward:
            sae.set_encoder_screen(cfg.encoder_screen, self.device)  # bf16 encoder screen: sae.EncoderScreen
        F = sae.n_features
        self.step_count = 0
        self.last_fired = torch.zeros(F, dtype=torch.long)  # last step in which each feature fired (0: never)
        self.feature_counts = torch.zeros(F, dtype=torch.long)  # inputs fired on, since the last resampling
        self.counts_inputs = 0  # inputs seen since the last resampling

    def step(self, x: torch.Tensor) -> LossTerms:
        """One training step on the batch x (B, d); raises NonFiniteLossError before touching the weights."""
        step, steps = self.step_count, self.cfg.steps  # the 0-based index of this step, the run's total
        self.optimizer.zero_grad(set_to_none=True)
        if self.path == "dense":
            terms = self.sae.loss(x, step, steps)
            check_finite(terms.total, step + 1, mse=terms.mse, l1=terms.l1)
            terms.total.backward()
        else:
            terms = self.sae.manual_backward(x, max_density=self.max_density)
            check_finite(terms.total, step + 1, mse=terms.mse, l1=terms.l1)
        self.sync_grads()
        self.sae.before_step(step, steps)
        lr = self.cfg.lr * self.sae.lr_scale(step, steps)  # cfg.lr · 1.0 = cfg.lr exactly without a schedule
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.sae.after_step(step, steps)
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


def _code_files(run: SAERun) -> tuple[str, ...]:
    """CODE_FILES and the file of the run's architecture (paths relative to monosemantic/; a class defined outside
    the package, in a test, adds none)."""
    path = Path(inspect.getfile(architectures.get(run.architecture))).resolve()
    return CODE_FILES + ((path.relative_to(PACKAGE).as_posix(),) if path.is_relative_to(PACKAGE) else ())


def _fingerprint(cfg: SAEConfig, run: SAERun, store) -> str:
    """What a checkpoint must agree on to be resumed: params, run, input data and the training code."""
    manifest = getattr(store, "manifest", None)
    if manifest is not None:  # an ActivationStore: its shards' sha256s identify the data
        data = [s["sha256"] for s in manifest["shards"]]
    else:  # an in-memory store (tests): hash its values
        data = sha256(store.read(0, store.n_points).numpy().tobytes())
    return fingerprint({"cfg": dataclasses.asdict(cfg), "run": dataclasses.asdict(run), "n_points": store.n_points,
                        "d": store.d, "data": data, "code": code_digest(_code_files(run))})


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


@dataclasses.dataclass
class _TrainState:
    """The state of one `train_sae` call besides the trainer's own: what its checkpoint records."""

    trainer: SAETrainer
    checkpoint: Checkpointer
    resample_gen: torch.Generator
    resumed: bool  # started from a checkpoint
    position: int = 0  # next row of the store to read
    epoch: int = 0  # completed passes over the store
    resampling: list = dataclasses.field(default_factory=list)  # the resampling records so far
    elapsed_before: float = 0.0  # training time of the runs this one resumed
    first_step: int = 0  # the step this call started from
    t0: float = 0.0  # time.perf_counter() when this call's steps began
    terms: LossTerms | None = None  # the last step's loss terms

    def save_checkpoint(self) -> None:
        self.checkpoint.save({"trainer": self.trainer.state_dict(), "position": self.position, "epoch": self.epoch,
                              "resampling": self.resampling, "rng": rng_state(resample=self.resample_gen),
                              "elapsed": self.elapsed_before + time.perf_counter() - self.t0})


def train_sae(cfg: SAEConfig, run: SAERun, store, out_dir: str | Path, device: str | torch.device = "cpu",
              resume: bool = True, metadata: dict | None = None, stop_after: int | None = None,
              progress: bool = True, ckpt_dir: str | Path | None = None, trainer_cls: type | None = None) -> dict:
    """Train the SAE `run` on `store` with the hyperparameters `cfg`; write its outputs to out_dir.

    Steps: `_start` (seeds, the SAE and its trainer, resume from the checkpoint or initialise b_d),
    `_step_loop` (training steps, resampling, logging, checkpoints), `_write_outputs` (weights, cfg.json,
    feature counts, resampling records; the train_stats) and `_complete` (curves, train_stats.json, checkpoint
    removal).

    ckpt_dir: where the checkpoint and the curves live while training (default: out_dir itself); a separate
    ckpt_dir is removed once the outputs are written, after its curves are copied to out_dir/live.
    resume: continue from ckpt_dir/checkpoint.pt when present, intact and written for the same fingerprint.
    metadata: extra cfg.json entries (model_name, hook_name, context_size, ...; see `sae_metadata`).
    stop_after: stop after this step without writing outputs, as if killed (tests); returns {}.
    trainer_cls: the SAETrainer class (distributed.DistributedSAETrainer for data-parallel training).
    Returns the train_stats dict (also written to train_stats.json).
    """
    out_dir = Path(out_dir)
    if cfg.batch_size > store.n_points:
        raise ValueError(f"sae.batch_size {cfg.batch_size} exceeds the {store.n_points} points of the activation "
                         "store; lower sae.batch_size or sample more activations (activations.n_points)")
    out_dir.mkdir(parents=True, exist_ok=True)
    separate = ckpt_dir is not None and Path(ckpt_dir).resolve() != out_dir.resolve()
    ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else out_dir
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    st = _start(cfg, run, store, ckpt_dir, device, resume, trainer_cls, out_dir.name)
    if not _step_loop(st, cfg, store, device, ckpt_dir / "live", stop_after, progress, out_dir.name):
        return {}
    train_stats = _write_outputs(st, cfg, store, out_dir, device, metadata)
    _complete(st, out_dir, ckpt_dir, separate, train_stats)
    return train_stats


def _start(cfg: SAEConfig, run: SAERun, store, ckpt_dir: Path, device: torch.device, resume: bool,
           trainer_cls: type | None, name: str) -> _TrainState:
    """Seed, build the SAE of the run's architecture and its trainer; resume from ckpt_dir's checkpoint (when
    `resume` and it matches the fingerprint) or initialise it from the first inputs (`sae.init_from_data`)."""
    torch.manual_seed(cfg.seed)
    init_gen = torch.Generator().manual_seed(cfg.seed)
    resample_gen = torch.Generator().manual_seed(cfg.seed + 1)

    sae = architectures.get(run.architecture)(store.d, run.n_features, run.settings, generator=init_gen)
    trainer = (trainer_cls or SAETrainer)(sae.to(device), cfg, device)
    checkpoint = Checkpointer(ckpt_dir / CHECKPOINT_FILE, _fingerprint(cfg, run, store))
    state = checkpoint.load() if resume else None
    st = _TrainState(trainer, checkpoint, resample_gen, resumed=state is not None)
    if state is not None:
        trainer.load_state_dict(state["trainer"])
        st.position, st.epoch, st.resampling = state["position"], state["epoch"], state["resampling"]
        restore_rng(state["rng"], resample=resample_gen)
        st.elapsed_before = state["elapsed"]
        print(f"resuming {name} at step {trainer.step_count} from {checkpoint.path}")
    else:  # data-dependent initialisation from the first inputs (standard: b_d at their geometric median)
        n_gm = min(cfg.geometric_median_points, store.n_points)
        with torch.no_grad():
            sae.init_from_data(store.read(0, n_gm).to(device))
    return st


def _step_loop(st: _TrainState, cfg: SAEConfig, store, device: torch.device, live_dir: Path,
               stop_after: int | None, progress: bool, name: str) -> bool:
    """Train up to cfg.steps: batches, resampling, logging to dvclive and tqdm, checkpoints.
    False when stopped by `stop_after` (as if killed), True once cfg.steps are done."""
    from tqdm import tqdm

    trainer = st.trainer
    live = LiveLog(live_dir, trainer.step_count if st.resumed else None)
    resample_steps = set(cfg.resample.steps)
    st.first_step = trainer.step_count
    st.t0 = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=st.first_step, desc=f"sae {name}", disable=not progress, mininterval=2.0)
    try:
        while trainer.step_count < cfg.steps:
            if stop_after is not None and trainer.step_count >= stop_after:
                return False
            st.terms = trainer.step(_next_batch(st, cfg, store, device))
            step = trainer.step_count
            bar.update(1)
            if step in resample_steps and trainer.sae.resamples:
                _resample_step(st, cfg, store, device, live)
            if step % cfg.log_every == 0 or step == cfg.steps:
                _log_step(st, live, bar)
            if step % cfg.checkpoint_every == 0 and step < cfg.steps:
                st.save_checkpoint()
    finally:
        bar.close()
        live.end()
    return True


def _next_batch(st: _TrainState, cfg: SAEConfig, store, device: torch.device) -> torch.Tensor:
    """The next cfg.batch_size rows of the store (wrapping around: next epoch)."""
    x = read_rows(store, st.position, cfg.batch_size).to(device)
    st.position += cfg.batch_size
    if st.position >= store.n_points:
        st.position -= store.n_points
        st.epoch += 1
    return x


def _resample_step(st: _TrainState, cfg: SAEConfig, store, device: torch.device, live: LiveLog) -> None:
    """Resample the dead features from cfg.resample.n_inputs rows starting at a random row."""
    n_inputs = min(cfg.resample.n_inputs, store.n_points)
    start = int(torch.randint(store.n_points, (1,), generator=st.resample_gen))
    inputs = read_rows(store, start, n_inputs).to(device)
    record = st.trainer.resample(inputs, st.resample_gen)
    st.resampling.append(record)
    live.log(st.trainer.step_count, {"train/resampled": record["n_resampled"]})


def _log_step(st: _TrainState, live: LiveLog, bar) -> None:
    """Log the last step's mse, l1, l0, loss, dead features and the architecture's other loss terms (extra) to
    dvclive and the progress bar."""
    terms = st.terms
    stats = {"mse": terms.mse.item(), "l1": terms.l1.item(), "l0": terms.l0.item(),
             "loss": terms.total.item(), "dead": st.trainer.n_dead(),
             **{name: float(value) for name, value in terms.extra.items()}}
    live.log(st.trainer.step_count, {f"train/{k}": v for k, v in stats.items()})
    live.summary()
    bar.set_postfix(mse=f"{stats['mse']:.4g}", l0=f"{stats['l0']:.1f}", dead=stats["dead"])


def _write_outputs(st: _TrainState, cfg: SAEConfig, store, out_dir: Path, device: torch.device,
                   metadata: dict | None) -> dict:
    """Write the weights and cfg.json, feature_counts.npy and resampling.json; return the train_stats."""
    wall = time.perf_counter() - st.t0
    trainer, terms, resampling = st.trainer, st.terms, st.resampling
    trained = trainer.step_count - st.first_step
    trainer.sae.save(out_dir, **(metadata or {}))
    with atomic_path(out_dir / "feature_counts.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, trainer.feature_counts.numpy())
    write_json(out_dir / "resampling.json", resampling)
    return {
        "steps": trainer.step_count, "batch_size": cfg.batch_size,
        "epochs": st.epoch + st.position / store.n_points,
        "mse": terms.mse.item() if terms is not None else None,
        "l0": terms.l0.item() if terms is not None else None,
        "l1": terms.l1.item() if terms is not None else None,
        "dead": trainer.n_dead(), "n_resampled": sum(r["n_resampled"] for r in resampling),
        "resampled_per_step": [r["n_resampled"] for r in resampling],
        "weights_sha256": sha256((out_dir / "sae_weights.safetensors").read_bytes()),
        "feature_counts_inputs": trainer.counts_inputs,
        "samples_per_s": trained * cfg.batch_size / wall if trained and wall > 0 else None,
        "wall_time_s": st.elapsed_before + wall, "fast_path": cfg.fast_path, "device": str(device),
    }


def _complete(st: _TrainState, out_dir: Path, ckpt_dir: Path, separate: bool, train_stats: dict) -> None:
    """Copy the curves of a separate ckpt_dir to out_dir/live, write train_stats.json, remove the checkpoint."""
    if separate:  # the complete curves, across any resumes
        if (out_dir / "live").exists():
            shutil.rmtree(out_dir / "live")
        shutil.copytree(ckpt_dir / "live", out_dir / "live")
    write_json(out_dir / "train_stats.json", train_stats)
    # the run is complete; the outputs above replace the checkpoint
    if separate:
        shutil.rmtree(ckpt_dir)
    else:
        st.checkpoint.remove()
