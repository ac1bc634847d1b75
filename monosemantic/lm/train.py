"""Training the one-layer transformer, its per-subset validation loss, and the shuffled-weights baseline.

Training: every step draws `batch_size` random windows of n_ctx + 1 tokens from the train stream (a seeded
torch.Generator; window starts uniform over the stream, across document boundaries like GPT-2), AdamW with
the configured betas / weight decay (decay on weight matrices and embeddings only), linear warmup then cosine
decay to lr * min_lr_frac, gradient clipping. The model's seed fixes both its initialisation and its data
order, so A and B differ only in their seed. `precision` (params: precision) picks exact fp32 or bf16 autocast
(matmuls in bf16, losses and optimizer state in fp32); `transformer.kernels: fused` computes the same loss with
fused kernels (model.train_loss, fused.py). With `transformer.mix` the windows are drawn by the mix
(mix.py) instead of uniformly.

Checkpoints (model, optimizer, step, RNG and data-generator state) are written atomically every
checkpoint_every steps (training.Checkpointer); a killed run restarts from the last one and ends with exactly
the weights of an uninterrupted run. A checkpoint from different settings (params, tokens) is ignored, never
resumed. A non-finite loss stops training before the optimizer step (training.check_finite).

Validation: a fixed, deterministic set of contexts (non-overlapping windows of n_ctx + 1 tokens, evenly
spaced over the val stream); the loss of predicting token t is attributed to the subset of t's document.
The unigram baseline of a subset is the cross-entropy of the same val tokens under that subset's unigram
distribution estimated on the TRAIN tokens with add-one smoothing ("overall": all train tokens).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from monosemantic.core.config import TransformerConfig
from monosemantic.data.mix import MixedStarts
from monosemantic.lm.model import ModelConfig, Transformer, build_model
from monosemantic.data.tokenizer import TokenStream
from monosemantic.core.training import Checkpointer, LiveLog, check_finite, restore_rng, rng_state
from monosemantic.core.training import fingerprint as run_fingerprint
from monosemantic.core.utils import PipelineError, autocast

LOG_EVERY = 25  # training loss is logged every LOG_EVERY steps


class TrainingError(PipelineError, RuntimeError):
    pass


def derived_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (independent streams from one configured seed)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


DATA_STREAM = 1  # derived_seed(seed, DATA_STREAM) drives the training windows


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def sample_batch(stream: TokenStream, batch_size: int, n_ctx: int, gen: torch.Generator,
                 mixed: MixedStarts | None = None) -> torch.Tensor:
    """(batch_size, n_ctx + 1) int64 windows at uniform random starts, or drawn by the mix (mix.MixedStarts)."""
    n = len(stream) - (n_ctx + 1)
    if n < 0:
        raise TrainingError(f"the train stream has {len(stream)} tokens, fewer than one context of {n_ctx + 1}")
    if mixed is not None:
        starts = mixed.sample(batch_size, gen)
    else:
        starts = torch.randint(0, n + 1, (batch_size,), generator=gen).numpy()
    idx = starts[:, None] + np.arange(n_ctx + 1)[None, :]
    return torch.from_numpy(stream.tokens[idx].astype(np.int64))


def eval_starts(n_tokens: int, length: int, n_contexts: int | None) -> np.ndarray:
    """Starts of up to n_contexts non-overlapping windows of `length`, evenly spaced (all when None)."""
    available = n_tokens // length
    if available == 0:
        raise TrainingError(f"the validation stream has {n_tokens} tokens, fewer than one context of {length}")
    if n_contexts is None or n_contexts >= available:
        slots = np.arange(available)
    else:
        slots = np.floor(np.arange(n_contexts) * (available / n_contexts)).astype(np.int64)
    return slots * length


@torch.no_grad()
def eval_losses(model: Transformer, stream: TokenStream, starts: np.ndarray, batch_size: int,
                device: torch.device, mlp_replacement=None, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """Per-token losses of the windows (flattened, float64) and the subset code of each target token."""
    n_ctx = model.cfg.n_ctx
    losses, codes = [], []
    model.eval()
    for i in range(0, len(starts), batch_size):
        s = starts[i:i + batch_size]
        idx = s[:, None] + np.arange(n_ctx + 1)[None, :]
        toks = torch.from_numpy(stream.tokens[idx].astype(np.int64)).to(device)
        with autocast(device, precision):
            loss = model.token_losses(toks, mlp_replacement)
        losses.append(loss.double().cpu().numpy().ravel())
        targets = idx[:, 1:].ravel()
        codes.append(stream.doc_subset[stream.doc_of(targets)])
    return np.concatenate(losses), np.concatenate(codes)


def unigram_log_probs(stream: TokenStream, vocab_size: int) -> dict[str, np.ndarray]:
    """log p(token) per subset (and 'overall') from the stream's token counts, add-one smoothed."""
    counts = {name: np.ones(vocab_size, dtype=np.float64) for name in stream.subsets}
    chunk = 1 << 24
    overall = np.ones(vocab_size, dtype=np.float64)
    for lo in range(0, len(stream), chunk):
        hi = min(lo + chunk, len(stream))
        toks = np.asarray(stream.tokens[lo:hi], dtype=np.int64)
        d_lo, d_hi = stream.doc_of(np.array([lo, hi - 1]))
        starts = np.clip(stream.doc_start[d_lo:d_hi + 2], lo, hi) - lo
        for j, doc in enumerate(range(d_lo, d_hi + 1)):
            seg = toks[starts[j]:starts[j + 1]]
            counts[stream.subsets[stream.doc_subset[doc]]] += np.bincount(seg, minlength=vocab_size)
        overall += np.bincount(toks, minlength=vocab_size)
    counts["overall"] = overall
    return {k: np.log(v) - np.log(v.sum()) for k, v in counts.items()}


def subset_report(losses: np.ndarray, codes: np.ndarray, val: TokenStream, targets_tokens: np.ndarray,
                  unigram: dict[str, np.ndarray] | None) -> dict:
    """{subset: {tokens, loss, unigram_loss}} plus 'overall', over the evaluated val tokens."""
    out = {}
    groups = [(name, codes == c) for c, name in enumerate(val.subsets)] + [("overall", slice(None))]
    for name, mask in groups:
        sel = losses[mask]
        if sel.size == 0:
            continue
        row = {"tokens": int(sel.size), "loss": round(float(sel.mean()), 5)}
        if unigram is not None and name in unigram:
            row["unigram_loss"] = round(float(-unigram[name][targets_tokens[mask]].mean()), 5)
        out[name] = row
    return out


def evaluate(model: Transformer, val: TokenStream, starts: np.ndarray, batch_size: int, device: torch.device,
             unigram: dict[str, np.ndarray] | None = None, precision: str = "fp32") -> dict:
    losses, codes = eval_losses(model, val, starts, batch_size, device, precision=precision)
    idx = starts[:, None] + np.arange(1, model.cfg.n_ctx + 1)[None, :]
    targets = np.asarray(val.tokens[idx.ravel()], dtype=np.int64)
    return subset_report(losses, codes, val, targets, unigram)


# --------------------------------------------------------------------------------------------
# Schedule, checkpoints
# --------------------------------------------------------------------------------------------


def lr_at(step: int, cfg: TransformerConfig) -> float:
    """Linear warmup over warmup_steps, then cosine decay from lr to lr * min_lr_frac at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(cfg.steps - cfg.warmup_steps - 1, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: Transformer, cfg: TransformerConfig) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, foreach=False)


def fingerprint(cfg: TransformerConfig, model_cfg: ModelConfig, seed: int, stream: TokenStream,
                precision: str = "fp32") -> str:
    """Identifies a training run: settings, seed, precision and the train tokens (size + sampled content)."""
    probe = np.asarray(stream.tokens[:: max(len(stream) // 4096, 1)], dtype=np.uint16).tobytes()
    settings = asdict(cfg)
    if settings["kernels"] == "reference":  # runs made before the setting existed keep their fingerprints
        del settings["kernels"]
    run = {"cfg": settings, "model": asdict(model_cfg), "seed": seed, "n": len(stream)}
    if precision != "fp32":  # fp32 fingerprints stay those of the runs made before the setting existed
        run["precision"] = precision
    return run_fingerprint(run, probe)


# --------------------------------------------------------------------------------------------
# Training loop
# --------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """A training run's model, optimizer, data generator and counters: what a checkpoint holds."""

    model: Transformer
    opt: torch.optim.Optimizer
    gen: torch.Generator
    resumed: bool = False
    step: int = 0
    elapsed: float = 0.0  # seconds trained before this process (restored on resume)
    tokens: int = 0
    # the running mean of the train loss since the last log (restored on resume: curves equal an unbroken run's)
    loss_acc: float = 0.0
    n_acc: int = 0


def train(cfg: TransformerConfig, model_cfg: ModelConfig, seed: int, train_stream: TokenStream,
          val_stream: TokenStream, device: torch.device, ckpt_path: Path | None = None,
          live_dir: Path | None = None, progress: bool = True,
          on_step: Callable[[int], None] | None = None, precision: str = "fp32",
          parallel=None) -> tuple[Transformer, dict]:
    """Train one transformer; returns (model, info) with tokens/s and the last validation loss.

    on_step(step) is called after each completed optimizer step (after any checkpoint of that step);
    tests raise from it to simulate a killed run. `parallel` (scale.distributed.DataParallel, under torchrun):
    this process trains on its slice of every global batch (parallel.shard) and the gradients and the loss are
    averaged over the processes before clipping and AdamW (parallel.average), so every process applies the same
    update; None: one process, the code path of the pipeline.
    """
    torch.use_deterministic_algorithms(True, warn_only=True)
    checkpoint = Checkpointer(ckpt_path, fingerprint(cfg, model_cfg, seed, train_stream, precision))
    mixed = MixedStarts(train_stream, cfg.mix, model_cfg.n_ctx + 1) if cfg.mix else None
    run = _start_run(cfg, model_cfg, seed, device, checkpoint, ckpt_path)
    val_starts = eval_starts(len(val_stream), model_cfg.n_ctx + 1, cfg.eval_batches * cfg.batch_size)
    log = LiveLog(live_dir, run.step if run.resumed else None)
    tok_per_step = cfg.batch_size * model_cfg.n_ctx
    bar = tqdm(total=cfg.steps, initial=run.step, desc="train transformer", disable=not progress, mininterval=2)
    t0, run_tokens, val_loss = time.perf_counter(), 0, float("nan")
    while run.step < cfg.steps:
        loss, lr = _train_step(run, cfg, model_cfg.n_ctx, train_stream, mixed, device, precision, parallel)
        step = run.step
        run_tokens += tok_per_step
        run.tokens += tok_per_step
        run.loss_acc += loss.item()
        run.n_acc += 1
        bar.update(1)
        if step % LOG_EVERY == 0 or step == cfg.steps:
            tps = run_tokens / max(time.perf_counter() - t0, 1e-9)
            log.log(step, {"train/loss": run.loss_acc / run.n_acc, "train/lr": lr})  # tokens/s: bar, logs/
            bar.set_postfix(loss=f"{run.loss_acc / run.n_acc:.3f}", tok_s=f"{tps:,.0f}")
            run.loss_acc, run.n_acc = 0.0, 0
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val_loss = _validate(run.model, val_stream, val_starts, cfg, device, precision, step, log, bar)
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            checkpoint.save(_checkpoint_state(run, t0))
        if on_step is not None:
            on_step(step)
    bar.close()
    log.end()
    run_time = time.perf_counter() - t0
    info = {"steps": cfg.steps, "tokens": run.tokens, "seconds": round(run.elapsed + run_time, 2),
            "tokens_per_s": round(run_tokens / max(run_time, 1e-9), 1), "final_val_loss": val_loss}
    return run.model.eval(), info


def _start_run(cfg: TransformerConfig, model_cfg: ModelConfig, seed: int, device: torch.device,
               checkpoint: Checkpointer, ckpt_path: Path | None) -> _Run:
    """A fresh model (seeded), its optimizer and data generator, resumed from the checkpoint when there is one."""
    model = build_model(model_cfg, seed).to(device)
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(derived_seed(seed, DATA_STREAM))
    run = _Run(model, opt, gen)
    state = checkpoint.load()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        restore_rng(state["rng"], data=gen)
        run.resumed = True
        run.step, run.elapsed, run.tokens = state["step"], state["elapsed"], state["tokens"]
        print(f"resuming from {ckpt_path} at step {run.step}")
        run.loss_acc, run.n_acc = state["loss_acc"], state["n_acc"]
    return run


def _train_step(run: _Run, cfg: TransformerConfig, n_ctx: int, train_stream: TokenStream,
                mixed: MixedStarts | None, device: torch.device, precision: str,
                parallel) -> tuple[torch.Tensor, float]:
    """One optimizer step on a freshly drawn batch (run.step += 1); returns (the loss, the learning rate)."""
    model, opt = run.model, run.opt
    model.train()
    batch = sample_batch(train_stream, cfg.batch_size, n_ctx, run.gen, mixed)
    if parallel is not None:
        batch = parallel.shard(batch)
    batch = batch.to(device)
    lr = lr_at(run.step, cfg)
    for g in opt.param_groups:
        g["lr"] = lr
    with autocast(device, precision):
        loss = model.train_loss(batch, cfg.kernels, precision)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if parallel is not None:
        loss = parallel.average(model, loss)
    check_finite(loss, run.step + 1, advice="lower transformer.lr or check the token streams")
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    run.step += 1
    return loss, lr


def _validate(model: Transformer, val_stream: TokenStream, val_starts: np.ndarray, cfg: TransformerConfig,
              device: torch.device, precision: str, step: int, log: LiveLog, bar) -> float:
    """One evaluation on the fixed validation contexts, logged at `step`; returns the overall val loss."""
    report = evaluate(model, val_stream, val_starts, cfg.batch_size, device, precision=precision)
    val_loss = report["overall"]["loss"]
    log.log(step, {"val/loss": val_loss})
    bar.write(f"step {step}: val loss {val_loss:.4f}")
    return val_loss


def _checkpoint_state(run: _Run, t0: float) -> dict:
    """What Checkpointer.save writes after run.step (elapsed: all seconds trained, this process since t0)."""
    return {"model": run.model.state_dict(), "opt": run.opt.state_dict(), "step": run.step,
            "rng": rng_state(data=run.gen), "elapsed": run.elapsed + time.perf_counter() - t0,
            "tokens": run.tokens, "loss_acc": run.loss_acc, "n_acc": run.n_acc}


def model_metrics(model: Transformer, train_stream: TokenStream, val_stream: TokenStream, cfg: TransformerConfig,
                  device: torch.device, max_contexts: int | None = None, precision: str = "fp32") -> dict:
    """metrics/transformer/MODEL.json body: per-subset validation loss beside its unigram baseline.

    Evaluated on non-overlapping windows of n_ctx + 1 tokens spread evenly over the val stream (all of them
    unless max_contexts)."""
    starts = eval_starts(len(val_stream), model.cfg.n_ctx + 1, max_contexts)
    unigram = unigram_log_probs(train_stream, model.cfg.vocab_size)
    report = evaluate(model, val_stream, starts, cfg.batch_size, device, unigram, precision)
    return {"val_contexts": int(len(starts)), "subsets": report}


# --------------------------------------------------------------------------------------------
# The random-transformer baseline
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def shuffle_weights(model: Transformer, seed: int) -> Transformer:
    """A copy of `model` with the entries of every parameter tensor permuted independently (seeded).

    Every tensor is shuffled: embeddings, positional embeddings, attention and MLP matrices, the unembedding,
    their biases and the LayerNorm gains and biases. Each tensor keeps its own multiset of values (so its
    scale statistics) while all learned structure is destroyed ("randomly shuffled the weights of each
    weight matrix"). Tensors are visited in state_dict order with one generator, so the result depends only
    on the weights and the seed.
    """
    out = Transformer(model.cfg)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in model.state_dict().items():
        flat = t.detach().cpu().reshape(-1)
        perm = torch.randperm(flat.numel(), generator=g)
        state[name] = flat[perm].reshape(t.shape).clone()
    out.load_state_dict(state)
    return out.eval()
