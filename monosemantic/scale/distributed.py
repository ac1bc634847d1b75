"""Data-parallel training with torch.distributed (gloo on CPU, NCCL on GPUs), launched by torchrun.

    torchrun --nproc_per_node 2 -m monosemantic.scale.distributed sae RUN_NAME [--params params.yaml]
    torchrun --nproc_per_node 2 -m monosemantic.scale.distributed transformer MODEL [--params params.yaml]

The transformer (`DataParallel` + lm.train.train): every rank draws the same global batch of
transformer.batch_size windows (the same seeded generator) and trains on its slice; the mean loss of a slice
is averaged over the ranks, ∇L = (1/W) Σ_r ∇L_r by all_reduce, before gradient clipping and AdamW, which then
run identically on every rank (the weights stay equal without a broadcast). Rank 0 writes
artifacts/models/MODEL, metrics/transformer/MODEL.json, the dvclive curves and checkpoints/transformer/MODEL.pt,
as the one-process stage does; rank r > 0 checkpoints to checkpoints/transformer/MODEL.rank{r}.pt so that it
resumes with rank 0. Equivalence with one process (tests/test_distributed.py): the same weights to float
rounding (the all-reduce sums in another order).

The SAE: every rank runs the same `sae.train.train_sae` loop (same checkpoints, same resume) with a
`DistributedSAETrainer`:

* Data: every rank reads the same global batch of sae.batch_size rows and trains on its slice
  rows [r B/W, (r+1) B/W) (B must divide by the world size W). The global batch, and so the result, does not
  depend on W. (Each rank reads the whole batch: simple and identical across ranks; with a streamed source it
  also repeats the forward passes, a cost the plan does not count.)
* Gradients: each rank's loss is the mean over its B/W rows, so the mean of the W local gradients is the
  gradient of the global batch's loss:  ∇L = (1/W) Σ_r ∇L_r  (all_reduce SUM, then / W), applied before the
  decoder-parallel projection and Adam, which then run identically on every rank.
* Statistics: the per-feature fire counts of the step are summed over ranks (all_reduce), so last-fired steps,
  dead features, feature densities and therefore resampling are global, not per rank. Resampling reads the same
  inputs with the same generator on every rank, so every rank makes the same choice.
* Logged mse / l1 / l0 / loss and the architecture's other loss terms (LossTerms.extra) are averaged over ranks
  (equal shards: the global batch's values). State an architecture keeps in buffers from its own batches (e.g.
  AuxK's steps since each latent fired) is per rank.
* Outputs and checkpoints: rank 0 writes artifacts/sae/RUN and checkpoints/sae/RUN as the one-process stage
  does; rank r > 0 keeps its own (identical) checkpoint in checkpoints/sae/RUN.rank{r} so that it resumes
  from the same step, and its outputs there are deleted at the end.

Equivalence with one process (tests/test_distributed.py): same weights to float tolerance; the sums of the
gradient all-reduce are in another order, so they agree to ~1e-6, not bitwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from monosemantic.sae.train import SAETrainer


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_slice(batch: int, rank: int, world_size: int) -> slice:
    """The rows of a global batch that `rank` trains on."""
    if batch % world_size:
        raise ValueError(f"sae.batch_size {batch} must be divisible by the number of processes {world_size}")
    n = batch // world_size
    return slice(rank * n, (rank + 1) * n)


class DistributedSAETrainer(SAETrainer):
    """SAETrainer whose step trains on this rank's slice and keeps gradients and statistics global."""

    def __init__(self, sae, cfg, device="cpu"):
        super().__init__(sae, cfg, device)
        self.rank, self.world_size = world()

    def sync_grads(self) -> None:
        """∇L = (1/W) Σ_r ∇L_r over the ranks."""
        if self.world_size == 1:
            return
        for p in self.sae.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            if p.grad.is_sparse:
                p.grad = p.grad.to_dense()
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(self.world_size)

    def step(self, x: torch.Tensor):
        """x is the global batch (B, d); this rank trains on its slice, statistics are summed over ranks."""
        B = x.shape[0]
        local = x[local_slice(B, self.rank, self.world_size)]
        terms = super().step(local)
        if self.world_size == 1:
            return terms
        counts = terms.fire_counts.to(torch.long).clone()
        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
        counts = counts.cpu()
        local_counts = terms.fire_counts.cpu()
        # super().step applied this rank's counts; replace them by the global ones
        self.last_fired[counts > 0] = self.step_count
        self.feature_counts += counts - local_counts
        self.counts_inputs += B - local.shape[0]
        names = list(terms.extra)
        scalars = torch.stack([terms.total.detach(), terms.mse.detach(), terms.l1.detach(),
                               terms.l0.detach().to(terms.mse.dtype),
                               *(terms.extra[k].detach().to(terms.mse.dtype) for k in names)])
        dist.all_reduce(scalars, op=dist.ReduceOp.SUM)
        scalars /= self.world_size
        return dataclasses.replace(terms, total=scalars[0], mse=scalars[1], l1=scalars[2], l0=scalars[3],
                                   fire_counts=counts, extra=dict(zip(names, scalars[4:])))


class DataParallel:
    """The transformer's data parallelism for lm.train.train: each rank's slice of the global batch, and the
    average over the ranks of the gradients and of the loss."""

    def __init__(self):
        self.rank, self.world_size = world()

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[local_slice(batch.shape[0], self.rank, self.world_size)]

    def average(self, model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
        """∇L = (1/W) Σ_r ∇L_r on every parameter; returns the loss of the global batch (mean of the slices')."""
        if self.world_size == 1:
            return loss
        for p in model.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(self.world_size)
        total = loss.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world_size


def init(device_kind: str = "cpu") -> torch.device:
    """Join the torchrun process group (gloo on CPU, NCCL on CUDA); the device of this rank."""
    if not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    if device_kind == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def train_sae_distributed(cfg, run, store, out_dir: str | Path, ckpt_dir: str | Path, **kw) -> dict:
    """sae_train.train_sae on every rank: rank 0 writes out_dir / ckpt_dir, rank r > 0 works in
    ckpt_dir.rank{r} (its own checkpoint, so it resumes with rank 0; its outputs are discarded)."""
    from monosemantic.sae.train import train_sae

    rank, W = world()
    local_slice(cfg.batch_size, rank, W)  # fail early, with the message, when B % W != 0
    if rank == 0:
        stats = train_sae(cfg, run, store, out_dir, ckpt_dir=ckpt_dir, trainer_cls=DistributedSAETrainer, **kw)
    else:
        own = Path(f"{ckpt_dir}.rank{rank}")
        kw["progress"] = False
        stats = train_sae(cfg, run, store, own / "out", ckpt_dir=own / "ckpt", trainer_cls=DistributedSAETrainer,
                          **kw)
        if stats:  # finished (not stopped early): nothing of this rank is kept
            shutil.rmtree(own, ignore_errors=True)
    if W > 1:
        dist.barrier()
    return stats


def rank_checkpoint(ckpt_path: Path, rank: int) -> Path:
    """Rank 0 keeps the one-process checkpoint path; rank r > 0 its own NAME.rank{r}.pt beside it."""
    return ckpt_path if rank == 0 else ckpt_path.with_name(f"{ckpt_path.stem}.rank{rank}{ckpt_path.suffix}")


def train_transformer_distributed(cfg, model_cfg, seed: int, train_stream, val_stream, device,
                                  ckpt_path: Path, live_dir: Path | None, **kw):
    """lm.train.train on every rank with DataParallel; rank 0 keeps ckpt_path and live_dir, rank r > 0
    checkpoints to ckpt_path.rank{r}.pt (deleted at the end) and logs nothing. Returns (model, info)."""
    from monosemantic.lm.train import train

    rank, W = world()
    local_slice(cfg.batch_size, rank, W)  # fail early, with the message, when B % W != 0
    if rank > 0:
        live_dir, kw["progress"] = None, False
    ckpt_path = rank_checkpoint(ckpt_path, rank)
    model, info = train(cfg, model_cfg, seed, train_stream, val_stream, device, ckpt_path=ckpt_path,
                        live_dir=live_dir, parallel=DataParallel(), **kw)
    if rank > 0:  # finished: nothing of this rank is kept
        ckpt_path.unlink(missing_ok=True)
    if W > 1:
        dist.barrier()
    return model, info


def _sae(params, name: str, device) -> None:
    from monosemantic.core import paths
    from monosemantic.lm.streaming import open_source
    from monosemantic.sae.model import sae_metadata

    run = params.sae_run(name)
    stats = train_sae_distributed(
        run.training(params.sae), run, open_source(params, run.model, device, points_mult=run.points_mult),
        paths.sae_dir(name), paths.sae_checkpoints(name),
        device=device, metadata=sae_metadata(name, run.model, params.transformer.n_ctx))
    if world()[0] == 0 and stats:
        from monosemantic.core.provenance import write_training_record
        from monosemantic.core.utils import resolve_precision

        write_training_record(paths.provenance("sae", name), f"train_sae@{name}", str(device),
                              resolve_precision(params.precision, device), encoder_screen=params.sae.encoder_screen,
                              world_size=world()[1])
        print(f"{name}: mse {stats['mse']:.4g}, L0 {stats['l0']:.1f}, dead {stats['dead']}")


def _transformer(params, name: str, device) -> None:
    """What stage train_transformer does (lm/run.py), on every rank: rank 0 saves and evaluates."""
    from monosemantic.core import paths
    from stages.train_transformer import train_named  # the stage's path handling (this is its torchrun launch)

    rank, W = world()
    local_slice(params.transformer.batch_size, rank, W)  # fail early, with the message, when B % W != 0
    ckpt = rank_checkpoint(paths.transformer_checkpoint(name), rank)
    record = train_named(params, name, device, ckpt_path=ckpt,
                         live_dir=paths.DVCLIVE / "transformer" / name if rank == 0 else None,
                         parallel=DataParallel(), progress=rank == 0, save=rank == 0, extra={"world_size": W})
    ckpt.unlink(missing_ok=True)
    if W > 1:
        dist.barrier()
    if record is not None:
        from monosemantic.core.provenance import write_training_record

        write_training_record(paths.provenance("transformer", name), f"train_transformer@{name}", str(device),
                              record["precision"], kernels=params.transformer.kernels, world_size=W)
        paths.remove_empty_checkpoint_dirs()
        print(f"{name}: val loss {record['subsets']['overall']['loss']:.4f} ({W} processes)")


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(Path.cwd()))  # a scratch copy's own package first
    from monosemantic.core.config import load_params
    from monosemantic.core.utils import PipelineError, fail, resolve_device

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["sae", "transformer"])
    ap.add_argument("name", help="a run of sae_runs (sae) or a model of transformer.seeds (transformer)")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    rank = 0
    try:
        params = load_params(args.params)
        device = init(resolve_device(params.device).type)
        rank = world()[0]
        (_sae if args.what == "sae" else _transformer)(params, args.name, device)
    except (PipelineError, ValueError, FileNotFoundError) as e:
        fail(f"rank {rank}: {e}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
