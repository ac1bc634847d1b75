"""A plan before the run: FLOPs, disk, memory and time of every stage for a params file and a device.

    python -m monosemantic.scale.plan --params configs/paper.yaml --device h100
    python -m monosemantic.scale.plan --params params.yaml --device cpu        # throughputs measured here (~15 s)

Exit status 0 when every stage fits the device's memory and the free disk, 2 otherwise (each stage that
cannot fit is named, with what to change). Counts use the usual matmul accounting (a multiply-add = 2 FLOPs,
backward = 2 x forward), with N the matmul parameters the tokens pass through:

    transformer training   6 (N_attn + N_mlp + N_unembed) tokens + 6 n_ctx d_model tokens   (attention scores)
    sampling (forward)     2 (N_attn + N_W_in k / n_ctx) n_ctx contexts + 2 n_ctx d_model n_ctx contexts
    SAE training           12 B d F per step (encoder + decoder, forward + backward), dense equivalent
    SAE evaluation         4 d F per validation point + a transformer forward over the loss contexts

Time = FLOPs / effective throughput of that kind of stage on the device. The CPU throughputs are measured on
this machine by `measure_cpu` (small real steps of the same code paths, converted with the formulas above, so
they are effective rates, not peak). GPU rows (GPU_TABLE) are ASSUMPTIONS, not measurements: a peak bf16 rate
times an assumed utilisation; they are labelled as estimates wherever printed.

Disk and memory are upper estimates of what each stage keeps at once (fp32 weights, gradients and both Adam
moments = 16 bytes per parameter; the activation store is n_points x d_mlp x dtype bytes + a 32-byte index per
point; streamed mode stores no training points, see streaming.py).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from monosemantic.core.config import ConfigError, Params, load_params
from monosemantic.core.utils import PipelineError

DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
INDEX_BYTES = 32  # doc, pos, token, context_start as int64 (store.py index.npz)
TOKEN_BYTES = 2  # uint16 token ids
KINDS = ("transformer", "sampling", "sae")

# ASSUMED GPU throughputs (not measured in this repository): effective FLOP/s = peak bf16 dense x utilisation.
# H100 SXM: 989 TFLOP/s bf16 dense (vendor sheet). Utilisations are guesses for these shapes: a one-layer
# d_model=128 transformer is launch- and bandwidth-bound (10%); the SAE's 8192 x 512 x F GEMMs are large (40%).
# Plus an assumed 1 ms per optimizer step (kernel launches, Adam, decoder renormalisation, data, all-reduce).
_H100_RATES = {"transformer": 0.10 * 989e12, "sampling": 0.10 * 989e12, "sae": 0.40 * 989e12}
GPU_TABLE = {
    "h100": {"name": "NVIDIA H100 80GB (ASSUMED throughputs, not measured)", "memory_gb": 80.0,
             "step_overhead_s": 1e-3, "flops": _H100_RATES},
    "h200": {"name": "NVIDIA H200 141GB (ASSUMED throughputs, not measured)", "memory_gb": 141.0,
             "step_overhead_s": 1e-3, "flops": _H100_RATES},  # same compute as the H100, more memory
}


class PlanError(PipelineError, RuntimeError):
    pass


@dataclass
class Device:
    name: str
    memory_bytes: float
    flops: dict[str, float]  # effective FLOP/s per kind of stage
    measured: bool
    step_overhead_s: float = 0.0  # fixed cost per optimizer step (kernel launches, optimizer, data)


@dataclass
class StageEstimate:
    stage: str
    kind: str
    count: int  # how many instances (models, runs)
    flops: float  # per instance
    disk_bytes: float  # kept on disk after the stage, all instances
    peak_disk_bytes: float  # extra disk needed while one instance runs (staging, buckets)
    memory_bytes: float  # peak memory of one instance
    seconds: float = 0.0  # all instances, one after the other
    steps: int = 0  # optimizer steps per instance (each pays the device's fixed per-step overhead)
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- counts


def transformer_matmul_params(d_model: int, d_mlp: int, vocab: int) -> dict[str, int]:
    """Matmul weights per component of the one-layer model (model.py): attention 4 d², MLP 2 d d_mlp, W_U."""
    return {"attn": 4 * d_model * d_model, "mlp": 2 * d_model * d_mlp, "unembed": d_model * vocab}


def transformer_params(d_model: int, d_mlp: int, n_ctx: int, vocab: int) -> int:
    """All parameters, biases and LayerNorms included (model.py)."""
    return (vocab * d_model + n_ctx * d_model + 4 * d_model * d_model + 4 * d_model + 2 * d_model * d_mlp
            + d_mlp + d_model + d_model * vocab + vocab + 3 * 2 * d_model)


def transformer_train_flops_per_token(d_model: int, d_mlp: int, n_ctx: int, vocab: int) -> float:
    """6 N + 6 n_ctx d_model (causal attention scores and mixing, forward + backward)."""
    n = sum(transformer_matmul_params(d_model, d_mlp, vocab).values())
    return 6.0 * n + 6.0 * n_ctx * d_model


def sampling_flops_per_context(d_model: int, d_mlp: int, n_ctx: int, k: int) -> float:
    """Forward up to the MLP on n_ctx tokens; W_in only at the k sampled positions (model.mlp_acts)."""
    return 2.0 * 4 * d_model * d_model * n_ctx + 2.0 * n_ctx * n_ctx * d_model + 2.0 * d_model * d_mlp * k


def sae_flops_per_step(batch: int, d: int, n_features: int) -> float:
    """12 B d F: encoder and decoder matmuls (2 B d F each), backward twice the forward."""
    return 12.0 * batch * d * n_features


def sae_params(d: int, n_features: int) -> int:
    return 2 * d * n_features + n_features + d


# --------------------------------------------------------------------------------------------- plan


def _vocab(p: Params) -> int:
    return p.tokenizer.vocab_size


def estimate(p: Params, world_size: int = 1) -> list[StageEstimate]:
    """Per-stage FLOPs, disk and memory for the params (no device: seconds and fit are left to `fit`).

    world_size > 1: data-parallel training on that many devices: the FLOPs and memory of the transformer and
    SAE training stages are per device (global batch / world_size each; ideal scaling). distributed.py
    implements it for the SAE; for the transformer (lm.py) it is an estimate of what DDP would give."""
    t, a, s = p.transformer, p.activations, p.sae
    W = world_size
    V, dm, dmlp, T = _vocab(p), t.d_model, t.d_mlp, t.n_ctx
    models = len(t.seeds)
    tokens_trained = t.steps * t.batch_size * T
    n_lm = transformer_params(dm, dmlp, T, V)
    out = []

    # tokenize: at least one epoch of the trained tokens is on disk (uint16)
    out.append(StageEstimate("tokenize", "none", 1, 0.0, tokens_trained * TOKEN_BYTES, 0.0, 0.0))

    local = math.ceil(t.batch_size / W)
    act_batch = local * T * (16 * dm + 3 * dmlp + 3 * V) * 4  # activations kept for backward (fp32)
    attn_scores = local * t.n_heads * T * T * 4 * 2  # math-path attention (CPU), probs + grads
    out.append(StageEstimate(
        "train_transformer", "transformer", models,
        transformer_train_flops_per_token(dm, dmlp, T, V) * tokens_trained / W,
        models * n_lm * 4 * 3 * 2,  # weights + checkpoint (weights + Adam moments)
        0.0, 16.0 * n_lm + act_batch + attn_scores, steps=t.steps))

    k = a.tokens_per_context
    contexts = math.ceil(a.n_points / k) + math.ceil(a.val_points / k)
    b = DTYPE_BYTES[a.dtype]
    stored = a.mode == "stored"
    train_points = a.n_points if stored else 0
    per_model = (train_points + a.val_points) * (dmlp * b + INDEX_BYTES)
    fwd_mem = a.batch_contexts * T * (8 * dm + dmlp) * 4 + a.batch_contexts * t.n_heads * T * T * 4
    bucket = a.shard_points * (dmlp * b + INDEX_BYTES) * 3  # bucket read + permuted copy + shard write
    out.append(StageEstimate(
        "sample_activations", "sampling", models + 1,  # + the random-weights baseline
        sampling_flops_per_context(dm, dmlp, T, k) * (contexts if stored else math.ceil(a.val_points / k)),
        (models + 1) * per_model,
        (train_points + a.val_points) * INDEX_BYTES,  # the memmapped index next to the final index.npz
        fwd_mem + bucket + 4.0 * n_lm))

    for name, run in p.sae_runs.items():
        F, d = run.n_features, dmlp
        B = math.ceil(s.batch_size / W)
        flops = sae_flops_per_step(B, d, F) * s.steps
        mem = 16.0 * sae_params(d, F) + B * (4 * F + 4 * d) * 4
        mem += min(s.resample.n_inputs, 4096) * F * 4 + s.resample.n_inputs * d * 4  # resampling inputs
        if not stored:
            per_point = sampling_flops_per_context(dm, dmlp, T, k) / k
            flops += per_point * B * s.steps
            mem += 2 * a.shuffle_buffer * d * 4 + 4.0 * n_lm + fwd_mem  # two blocks (current + next)
        disk = sae_params(d, F) * 4 * 4  # outputs + checkpoint (weights + Adam moments)
        out.append(StageEstimate(f"train_sae {name}", "sae", 1, flops, disk, 0.0, mem, steps=s.steps))

    for name, run in p.sae_runs.items():
        F, d = run.n_features, dmlp
        flops = 4.0 * a.val_points * d * F + 2 * p.evaluate.loss_contexts * T * (
            sum(transformer_matmul_params(dm, dmlp, V).values()) + T * dm)
        mem = 4.0 * sae_params(d, F) + min(a.val_points, 8192) * (F + d) * 4 * 2 + 4.0 * n_lm
        out.append(StageEstimate(f"evaluate_sae {name}", "sae", 1, flops, 0.0, 0.0, mem))
    return out


def fit(stages: list[StageEstimate], device: Device, free_disk: float, p: Params) -> list[StageEstimate]:
    """Fill in the seconds and the problems of every stage on `device` with `free_disk` bytes free.

    Disk is cumulative in pipeline order (every stage's outputs stay), so a stage fails when the outputs
    before it, its own and its staging exceed the free disk; only the first such stage is reported (the later
    ones fail through it)."""
    used, disk_failed = 0.0, False
    for st in stages:
        rate = device.flops.get(st.kind)
        st.seconds = st.count * (st.flops / rate + st.steps * device.step_overhead_s) if rate else 0.0
        used += st.disk_bytes
        if used + st.peak_disk_bytes > free_disk and not disk_failed:
            disk_failed = True
            st.problems.append(
                f"needs {_bytes(used + st.peak_disk_bytes)} of disk in all by the end of this stage, "
                f"{_bytes(free_disk)} free: " + _disk_advice(st, p))
        if st.memory_bytes > device.memory_bytes:
            st.problems.append(f"needs {_bytes(st.memory_bytes)} of memory, the device has "
                               f"{_bytes(device.memory_bytes)}: " + _memory_advice(st, p))
    return stages


def _disk_advice(st: StageEstimate, p: Params) -> str:
    if st.stage == "sample_activations" and p.activations.mode == "stored":
        return ("set activations.mode: streamed (the SAE stage then samples on the fly; no training store), "
                "or lower activations.n_points")
    if st.stage == "tokenize":
        return "free disk, or lower transformer.steps x batch_size x n_ctx (tokens trained)"
    return "free disk (earlier stages' outputs count), or lower the sizes of this and earlier stages"


def _memory_advice(st: StageEstimate, p: Params) -> str:
    if st.kind == "sae":
        extra = (" or activations.shuffle_buffer" if p.activations.mode == "streamed" else "")
        return (f"lower sae.batch_size, the run's n_features{extra}, train data-parallel over more devices "
                "(--world-size; distributed.py), or use a device with more memory")
    if st.kind == "transformer":
        return ("lower transformer.batch_size (or n_ctx), or use a device with more memory, or train "
                "data-parallel over more devices (--world-size; distributed.py transformer)")
    return "lower activations.batch_contexts or activations.shard_points"


# --------------------------------------------------------------------------------------------- devices


def measure_cpu(seconds: float = 3.0, small: bool = False) -> dict[str, float]:
    """Effective FLOP/s of this machine for each kind of stage: small real steps of the same code paths.

    transformer: training steps of a d_model=128 one-layer model (n_ctx 128, batch 8, vocab 4096);
    sampling: model.mlp_acts forward at 32 of 128 positions; sae: SAETrainer steps (the configured CPU path)
    of a 512 -> 4096 SAE at batch 1024 on random ReLU-like inputs. Each counted with the formulas above.
    small: shapes cut ~16x (tests; the rates are then lower than at full size)."""
    import torch

    from monosemantic.core.config import ResampleConfig, SAEConfig
    from monosemantic.lm.model import ModelConfig, build_model
    from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings
    from monosemantic.sae.train import SAETrainer

    def timed(fn, flops_per_call):
        fn()  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            n += 1
        return flops_per_call * n / (time.perf_counter() - t0)

    torch.manual_seed(0)
    V, dm, dmlp, T, B = (512, 32, 128, 32, 4) if small else (4096, 128, 512, 128, 8)
    F, SB, warm = (256, 256, 2) if small else (4096, 1024, 20)
    model = build_model(ModelConfig(vocab_size=V, d_model=dm, d_mlp=dmlp, n_heads=4, n_ctx=T), seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    toks = torch.randint(V, (B, T + 1))

    def lm_step():
        opt.zero_grad()
        model.token_losses(toks).mean().backward()
        opt.step()

    out = {"transformer": timed(lm_step, transformer_train_flops_per_token(dm, dmlp, T, V) * B * T)}
    pos = torch.arange(0, T, 4).repeat(32, 1)
    ctx = torch.randint(V, (32, T))

    def fwd():
        with torch.no_grad():
            model.mlp_acts(ctx, pos)

    out["sampling"] = timed(fwd, sampling_flops_per_context(dm, dmlp, T, pos.shape[1]) * 32)
    g = torch.Generator().manual_seed(0)
    sae = StandardSAE(dmlp, F, StandardSettings(l1=0.0005), generator=g)
    cfg = SAEConfig(batch_size=SB, steps=10, lr=1e-3, betas=(0.9, 0.999), geometric_median_points=8192, log_every=50,
                    checkpoint_every=500, seed=5, fast_path="auto", encoder_screen="fp32",
                    resample=ResampleConfig(steps=(), dead_window=125, n_inputs=65_536, encoder_scale=0.2))
    trainer = SAETrainer(sae, cfg, "cpu")
    x = torch.relu(torch.randn(SB, dmlp, generator=g)) * 0.5
    for _ in range(warm):  # let the dictionary sparsify a little, as in training
        trainer.step(x)
    out["sae"] = timed(lambda: trainer.step(x), sae_flops_per_step(SB, dmlp, F))
    return out


def memory_bytes() -> float:
    """Available memory of this machine (MemAvailable), else the physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def get_device(name: str, seconds: float = 3.0) -> Device:
    if name == "cpu":
        return Device(f"this machine's CPU ({os.cpu_count()} cores; measured)", memory_bytes(),
                      measure_cpu(seconds), True)
    if name in GPU_TABLE:
        g = GPU_TABLE[name]
        return Device(g["name"], g["memory_gb"] * 1e9, dict(g["flops"]), False, g["step_overhead_s"])
    raise PlanError(f"unknown device {name!r}: cpu (measured here) or one of {', '.join(GPU_TABLE)} (table)")


# --------------------------------------------------------------------------------------------- report


def _bytes(n: float) -> str:
    for unit, div in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:.0f} B"


def _time(s: float) -> str:
    if s <= 0:
        return "-"
    for unit, div in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= div:
            return f"{s / div:.3g} {unit}"
    return f"{s:.2g} s"


def render(stages: list[StageEstimate], device: Device, free_disk: float, params_name: str) -> str:
    lines = [f"plan for {params_name} on {device.name}",
             "effective throughput (" + ("measured" if device.measured else "ASSUMED, estimate") + "): "
             + ", ".join(f"{k} {v / 1e9:,.0f} GFLOP/s" for k, v in device.flops.items()),
             f"memory {_bytes(device.memory_bytes)}, free disk {_bytes(free_disk)}", "",
             f"{'stage':<28} {'n':>3} {'FLOPs each':>11} {'disk':>10} {'memory':>10} {'time (est.)':>12}  fits"]
    for st in stages:
        lines.append(f"{st.stage:<28} {st.count:>3} {st.flops:>11.3g} {_bytes(st.disk_bytes):>10} "
                     f"{_bytes(st.memory_bytes):>10} {_time(st.seconds):>12}  {'no' if st.problems else 'yes'}")
    total = sum(st.seconds for st in stages)
    lines += ["", f"total (one stage at a time): {_time(total)}; "
              f"disk in all: {_bytes(sum(st.disk_bytes for st in stages))}"]
    for st in stages:
        for prob in st.problems:
            lines.append(f"CANNOT RUN {st.stage}: {prob}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--device", default="cpu", help=f"cpu (measured here) or {' | '.join(GPU_TABLE)} (table)")
    ap.add_argument("--disk", default=".", help="a path on the disk the artifacts go to (its free space counts)")
    ap.add_argument("--free-disk-gb", type=float, default=None, help="override the free disk (e.g. a cluster's)")
    ap.add_argument("--world-size", type=int, default=1, help="devices for data-parallel training (torchrun)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per CPU micro-benchmark")
    args = ap.parse_args(argv)
    try:
        p = load_params(args.params)
        device = get_device(args.device, args.seconds)
    except (ConfigError, PlanError) as e:
        print(e, file=sys.stderr)
        return 1
    free = args.free_disk_gb * 1e9 if args.free_disk_gb is not None else float(shutil.disk_usage(args.disk).free)
    stages = fit(estimate(p, args.world_size), device, free, p)
    name = args.params + (f", data-parallel over {args.world_size} devices" if args.world_size > 1 else "")
    print(render(stages, device, free, name))
    return 2 if any(st.problems for st in stages) else 0


if __name__ == "__main__":
    sys.exit(main())
