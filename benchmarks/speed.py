"""Every speed figure in one benchmark module (issue 14), and the SAE step against SAELens.

    python benchmarks/speed.py [--threads N] [--device cpu|cuda] [--quick] [--steps N] [--out PATH]
    python benchmarks/speed.py sae [--quick] [--steps N] [--warmup N] [--batch N] [--skip trained,tiled,init]
                                   [--threads N] [--out PATH]
    #   both: --sae-dir artifacts/sae/A_4096  --store artifacts/activations/A/train  --no-saelens

`all` (the default mode), in one process, on one machine (results: benchmarks/results/<cpu-model>-<cores>c.json):

1. GEMM peaks: best GFLOP/s of torch.matmul in fp32 and in bf16 (bf16 inputs, bf16 output; fp32 accumulation),
   square(-ish) sizes including the SAE encoder's 8192×512×4096, best of several repeats.
2. Transformer (params.yaml's: d_model 128, 4 heads, n_ctx 128, vocab 4096, batch 32): tokens/s of the body of
   `lm.train`'s step (forward under `utils.autocast(device, precision)`, cross-entropy, backward, gradient
   clipping, AdamW) with precision fp32 and bf16, and of activation sampling (`Transformer.mlp_acts`, 64 contexts
   × 32 sampled positions) in both precisions. Deterministic algorithms on, as in `lm.train`. The step is timed
   with both `transformer.kernels` (reference: autograd on the logits; fused: model.train_loss's fp32 attention
   and fused unembedding + cross-entropy, lm/fused.py).
3. SAE step (d 512, batch 8192) at the A/1 shape (4096 features) and at 16,384 features: samples/s of ours in
   fp32 (`SAETrainer`, fast_path auto, encoder_screen fp32), ours bf16-screened (encoder_screen bf16:
   `sae.EncoderScreen`) and SAELens (`sae_lens.SAETrainer.step`, when installed: `pip install -e '.[bench]'`),
   the three ALTERNATED step by step on the same batches from the same weights. Weights: the trained
   artifacts/sae/A_4096 when present (16,384: it tiled 4× with b_e lowered to the same L0, `tile_sae`),
   else a stand-in (fresh init, b_e shifted to L0 ≈ 20).

The headline keys (issue 14): gemm_gflops {fp32, bf16}, transformer_tokens_per_s {fp32, bf16} (reference
kernels), transformer_tokens_per_s_fused {fp32, bf16},
activation_sampling_tokens_per_s {fp32, bf16}, sae_samples_per_s {ours_fp32, ours_bf16_screened, sae_lens} at the
A/1 shape, sae_samples_per_s_16384 {…}. Everything else (per-step times, L0, screen candidates per row, fractions
of the peaks, load average) is beside them. --quick: tiny sizes for a smoke test (not a measurement).

`sae` (CPU; results: benchmarks/results/sae_speed-<machine>.json; see benchmarks/README.md for the method and
what SAELens does differently): the fp32 GEMM peak, then our SAE step (`SAETrainer.step`, fast_path "auto") and
SAELens's (`sae_lens.SAETrainer.step` on a `StandardTrainingSAE`: forward, loss, firing statistics, backward,
grad-norm clipping, Adam), ALTERNATED step by step on the SAME activation batches (read from the store once,
held in memory), both from the SAME weights:
  * A/1 trained:  the trained default-sweep SAE (d 512, 4096 features), batch 8192;
  * 16384 tiled:  that SAE tiled 4x with perturbed encoder/decoder copies and b_e lowered until L0 equals the
                  4096 SAE's L0 (no trained 16,384-feature SAE exists in the default sweep);
  * init:         a fresh Kaiming-initialised SAE (b_d = geometric median), where nothing is sparse yet.
It reports samples/s of both, the ratio ours/SAELens, and the dense-equivalent FLOP/s (10·B·d·F per step) as a
fraction of the GEMM peak. (This mode was benchmarks/sae_speed.py; its results keep their names.)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monosemantic.core.config import ActivationsConfig, SAEConfig, TransformerConfig, load_params  # noqa: E402
from monosemantic.lm.model import ModelConfig, build_model  # noqa: E402
from monosemantic.lm.train import make_optimizer  # noqa: E402
from monosemantic.sae import architectures  # noqa: E402
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings  # noqa: E402
from monosemantic.sae.model import geometric_median  # noqa: E402
from monosemantic.sae.train import AUTO_MAX_DENSITY, SAETrainer  # noqa: E402
from monosemantic.core.utils import autocast  # noqa: E402

D_DEFAULT, LAMBDA_DEFAULT = 512, 0.0005
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DEFAULT = load_params(ROOT / "params.yaml")  # the default profile: the transformer, sampling and SAE settings


# ------------------------------------------------------------------------------------------- machine


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = m.group(1).strip() if m else cpu
        m = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        flags = m.group(1) if m else ""
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags.split()]
    try:
        import sae_lens

        sl_version = sae_lens.__version__
    except ImportError:
        sl_version = None
    mem_gb = None
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        mem_gb = round(int(m.group(1)) / 2**20, 1) if m else None
    except OSError:
        pass
    return {
        "cpu": cpu,
        "isa": isa,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": mem_gb,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "sae_lens": sl_version,
        "python": platform.python_version(),
    }


def machine_slug(info: dict) -> str:
    name = re.sub(r"\(r\)|\(tm\)|processor|cpu|@.*", "", info["cpu"].lower())
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "cpu"
    return f"{name}-{info['cores']}c"



def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------- GEMM peak


def gemm_peaks(sizes: list[tuple[int, int, int]], repeats: int, device: torch.device,
               dtypes: tuple[str, ...] = ("fp32", "bf16")) -> dict:
    """{dtype: {"peak_gflops", "sizes"}}: best (and median) GFLOP/s of (m, k) @ (k, n) over sizes and repeats
    (2·m·n·k FLOP each), for each of `dtypes` (keys of DTYPES)."""
    out = {}
    for name in dtypes:
        rows, best = [], 0.0
        for m, k, n in sizes:
            a = torch.randn(m, k, device=device).to(DTYPES[name])
            b = torch.randn(k, n, device=device).to(DTYPES[name])
            c = torch.empty(m, n, device=device, dtype=DTYPES[name])
            torch.matmul(a, b, out=c)  # warm-up
            times = [timed(lambda: torch.matmul(a, b, out=c), device) for _ in range(repeats)]
            g = 2 * m * n * k / min(times) / 1e9
            rows.append({"m": m, "k": k, "n": n, "best_gflops": round(g, 1),
                         "median_gflops": round(2 * m * n * k / statistics.median(times) / 1e9, 1)})
            best = max(best, g)
        out[name] = {"peak_gflops": round(best, 1), "sizes": rows}
    return out


# ------------------------------------------------------------------------------------------- SAE


def load_batches(store_path: Path | None, n: int, batch: int, d: int, seed: int = 0):
    """n batches of real activations (consecutive rows of the shuffled store), or synthetic ones."""
    if store_path is not None and (store_path / "manifest.json").exists():
        from monosemantic.lm.store import ActivationStore

        store = ActivationStore(store_path)
        need = n * batch
        if need > store.n_points:
            raise SystemExit(f"{store_path}: {store.n_points} points, fewer than {need} needed")
        x = store.read(0, need)
        return list(x.split(batch)), f"store {store_path} (rows 0..{need}, {store.dtype} -> float32)"
    # Synthetic stand-in: non-negative, sparse-ish like post-ReLU MLP activations.
    g = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(n * batch, d, generator=g) * 1.0 - 0.5)
    return list(x.split(batch)), "SYNTHETIC relu(N(-0.5, 1)) (no activation store found)"


@torch.no_grad()
def l0_of(sae: StandardSAE, x: torch.Tensor) -> float:
    return float((sae.encode(x) > 0).sum(dim=-1, dtype=torch.float32).mean())


@torch.no_grad()
def shift_b_e_to_l0(sae: StandardSAE, x: torch.Tensor, target: float, iters: int = 30) -> float:
    """Add one scalar to b_e (bisection) so that the mean L0 on x is about `target`; returns the shift."""
    base = sae.b_e.clone()
    lo, hi = -50.0, 50.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        sae.b_e.copy_(base + mid)
        if l0_of(sae, x) > target:
            hi = mid
        else:
            lo = mid
    sae.b_e.copy_(base + (lo + hi) / 2)
    return (lo + hi) / 2


def fresh_sae(d: int, F: int, l1: float, x: torch.Tensor, seed: int) -> StandardSAE:
    """Kaiming init + unit decoder columns + b_d = geometric median, as train_sae starts."""
    sae = StandardSAE(d, F, StandardSettings(l1=l1), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        sae.b_d.copy_(geometric_median(x))
    return sae


@torch.no_grad()
def tile_sae(src: StandardSAE, factor: int, x: torch.Tensor, target_l0: float, seed: int,
             noise: float = 0.1) -> tuple[StandardSAE, float]:
    """A factor×larger SAE from a trained one: each feature copied `factor` times, every copy's encoder row
    and decoder column perturbed by `noise`·(its norm)·N(0, I/d) (decoder renormalised), b_e lowered by one
    scalar until the mean L0 on x equals target_l0 (the source's), so the copies split the firing."""
    g = torch.Generator().manual_seed(seed)
    d, F = src.d, src.n_features
    sae = StandardSAE(d, F * factor, src.settings)
    W_e = src.W_e.repeat(factor, 1)
    W_e += noise * W_e.norm(dim=1, keepdim=True) * torch.randn(W_e.shape, generator=g) / math.sqrt(d)
    W_dT = src.W_d.T.repeat(factor, 1)
    W_dT += noise * torch.randn(W_dT.shape, generator=g) / math.sqrt(d)
    sae.W_e.copy_(W_e)
    sae.W_d.copy_(W_dT.T)
    sae.normalize_decoder()
    sae.b_e.copy_(src.b_e.repeat(factor))
    sae.b_d.copy_(src.b_d)
    shift = shift_b_e_to_l0(sae, x, target_l0)
    return sae, shift


def make_saelens(ours: StandardSAE, cfg: SAEConfig, batch: int):
    """A sae_lens StandardTrainingSAE with our weights, and SAELens's own SAETrainer around it."""
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer as SLTrainer

    scfg = StandardTrainingSAEConfig(
        d_in=ours.d, d_sae=ours.n_features, dtype="float32", device="cpu",
        apply_b_dec_to_input=True, normalize_activations="none",
        # SAELens's MSE is summed over the d input dimensions (ours: averaged), so λ·d gives the same objective
        # up to the constant factor d (Adam is invariant to it), i.e. the same sparsity pressure.
        l1_coefficient=ours.l1_coeff * ours.d, lp_norm=1.0, l1_warm_up_steps=0,
        decoder_init_norm=None,
    )
    sl = StandardTrainingSAE(scfg)
    with torch.no_grad():
        sl.W_enc.copy_(ours.W_e.T)
        sl.W_dec.copy_(ours.W_d.T)
        sl.b_enc.copy_(ours.b_e)
        sl.b_dec.copy_(ours.b_d)
    tcfg = SAETrainerConfig(
        total_training_samples=10**12, train_batch_size_samples=batch, lr=cfg.lr, lr_end=cfg.lr,
        lr_scheduler_name="constant", adam_beta1=cfg.betas[0], adam_beta2=cfg.betas[1], device="cpu",
        autocast=False, n_checkpoints=0, save_final_checkpoint=False,
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SLTrainer(cfg=tcfg, sae=sl, data_provider=iter(()))
    return sl, trainer


def bench_sae(name: str, sae: StandardSAE, batches: list[torch.Tensor], steps: int, warmup: int,
              variants: dict[str, Callable], device: torch.device,
              candidates: Callable[[], int | None] | None = None) -> tuple[dict, dict]:
    """The step functions of `variants` ({key: step(x)}) ALTERNATED step by step on the same batches (each built
    from its own copy of the same weights); L0 from the first variant's output (ours). Returns the row (per
    variant: {key}_step_s, {key}_samples_per_s, {key}_step_s_all) and each variant's output at step 0.
    candidates: the screen's candidate count of the last step (per row in the row), when there is a screen."""
    B, F = batches[0].shape[0], sae.n_features
    times: dict[str, list[float]] = {k: [] for k in variants}
    first, l0s, per_row = {}, [], []
    lead = next(iter(variants))
    for i in range(warmup + steps):
        x = batches[i % len(batches)].to(device)
        for key, step in variants.items():
            out = {}
            t = timed(lambda: out.setdefault("o", step(x)), device)
            first.setdefault(key, out["o"])
            if i >= warmup:
                times[key].append(t)
                if key == lead:
                    l0s.append(float(out["o"].l0))
        if i >= warmup and candidates is not None and candidates() is not None:
            per_row.append(candidates() / B)
    row = {"name": name, "batch": B, "d": sae.d, "features": F, "steps": steps, "warmup": warmup,
           "l0_mean": round(statistics.mean(l0s), 2), "density": round(statistics.mean(l0s) / F, 5)}
    if candidates is not None:
        row["screen_candidates_per_row"] = round(statistics.mean(per_row), 2) if per_row else None
    for key, ts in times.items():
        row[f"{key}_step_s"] = round(statistics.median(ts), 4)
        row[f"{key}_samples_per_s"] = round(B / statistics.median(ts), 1)
        row[f"{key}_step_s_all"] = [round(t, 4) for t in ts]
    return row, first


def bench_screens(name: str, sae: StandardSAE, batches: list[torch.Tensor], steps: int, warmup: int,
                  with_saelens: bool, device: torch.device) -> dict:
    """`all` mode: our step in fp32 and bf16-screened, and SAELens's, alternated step by step."""
    B = batches[0].shape[0]
    variants = {}
    for key, screen in (("ours_fp32", "fp32"), ("ours_bf16_screened", "bf16")):
        cfg = dataclasses.replace(DEFAULT.sae, batch_size=B, fast_path="auto", encoder_screen=screen)
        trainer = SAETrainer(copy.deepcopy(sae).to(device), cfg, device)
        variants[key] = trainer.step
    screened = trainer.sae
    if with_saelens:
        _, theirs = make_saelens(sae, dataclasses.replace(DEFAULT.sae, batch_size=B), B)
        variants["sae_lens"] = theirs.step
    row, _ = bench_sae(name, sae, batches, steps, warmup, variants, device, lambda: screened.screen_candidates)
    if "sae_lens_step_s" in row:
        for key in ("ours_fp32", "ours_bf16_screened"):
            row[f"{key}_over_sae_lens"] = round(row["sae_lens_step_s"] / row[f"{key}_step_s"], 2)
    row["bf16_screened_over_fp32"] = round(row["ours_fp32_step_s"] / row["ours_bf16_screened_step_s"], 2)
    return row


def bench_against_saelens(name: str, sae: StandardSAE, batches: list[torch.Tensor], steps: int,
                          warmup: int, peak: float, with_saelens: bool, cfg: SAEConfig) -> dict:
    """`sae` mode: our step (fast_path auto) and SAELens's alternated on the same batches from the same weights,
    with the dense-equivalent FLOP/s (10·B·d·F per step) as a fraction of the fp32 GEMM peak."""
    B, d, F = batches[0].shape[0], sae.d, sae.n_features
    flops, cpu = 10 * B * d * F, torch.device("cpu")
    variants = {"ours": SAETrainer(sae, cfg, "cpu").step}
    if with_saelens:
        variants["saelens"] = make_saelens(sae, cfg, B)[1].step
    row, first = bench_sae(name, sae, batches, steps, warmup, variants, cpu)
    l0_first, step_s = float(first["ours"].l0), row["ours_step_s"]
    row["l0_mean"] = round(row["l0_mean"], 1)
    # which branch "auto" took at step 0: CSR below AUTO_MAX_DENSITY of active entries
    row["our_branch"] = "sparse CSR" if l0_first / F <= AUTO_MAX_DENSITY else "dense closed-form"
    row["ours_dense_equiv_gflops"] = round(flops / step_s / 1e9, 1)
    row["ours_frac_of_peak"] = round(flops / step_s / 1e9 / peak, 3)
    if with_saelens:
        theirs_s = row["saelens_step_s"]
        row["saelens_gflops"] = round(flops / theirs_s / 1e9, 1)
        row["saelens_frac_of_peak"] = round(flops / theirs_s / 1e9 / peak, 3)
        row["ratio_ours_over_saelens"] = round(theirs_s / step_s, 2)
        row["saelens_loss_over_d_times_ours_step0"] = round(
            float(first["saelens"].loss.detach()) / (d * float(first["ours"].total)), 5)
    return row


# ------------------------------------------------------------------------------------------- transformer


def lm_flops_per_token(mc: ModelConfig, training: bool) -> float:
    """Kaplan et al. (2020) count: forward 2·N + 2·n_layer·n_ctx·d_model per token, N = the weights of every
    matmul (attention qkv/out, MLP in/out, unembedding; embeddings are lookups); training = 3 × forward."""
    n = 4 * mc.d_model**2 + 2 * mc.d_model * mc.d_mlp + mc.d_model * mc.vocab_size
    fwd = 2 * n + 2 * mc.n_ctx * mc.d_model
    return 3 * fwd if training else fwd


def sampling_flops_per_token(mc: ModelConfig, k: int) -> float:
    """mlp_acts: attention block on every token, W_in only on the k sampled positions of each context."""
    return 2 * 4 * mc.d_model**2 + 2 * mc.n_ctx * mc.d_model + (k / mc.n_ctx) * 2 * mc.d_model * mc.d_mlp



def bench_transformer(precision: str, steps: int, warmup: int, device: torch.device, tc: TransformerConfig,
                      ac: ActivationsConfig, vocab: int, kernels: str = "reference") -> dict:
    """tokens/s of one lm.train step (its loss by model.train_loss with `kernels`) and, for the reference
    kernels, of activation sampling, under utils.autocast(device, precision)."""
    mc = ModelConfig(vocab_size=vocab, d_model=tc.d_model, d_mlp=tc.d_mlp, n_heads=tc.n_heads, n_ctx=tc.n_ctx)
    model = build_model(mc, 1).to(device)
    opt = make_optimizer(model, tc)
    g = torch.Generator().manual_seed(0)
    was_det = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)  # as lm.train does
    times = []
    try:
        model.train()
        for i in range(warmup + steps):
            batch = torch.randint(0, vocab, (tc.batch_size, mc.n_ctx + 1), generator=g).to(device)

            def step():
                with autocast(device, precision):
                    loss = model.train_loss(batch, kernels, precision)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                opt.step()
                loss.item()

            t = timed(step, device)
            if i >= warmup:
                times.append(t)
        train_tps = tc.batch_size * mc.n_ctx / statistics.median(times)
        row = {"precision": precision, "kernels": kernels, "train_tokens_per_s": round(train_tps, 1),
               "train_gflops": round(train_tps * lm_flops_per_token(mc, True) / 1e9, 2)}
        if kernels != "reference":  # sampling has no backward and no loss: the same code for both kernels
            return row
        model.eval()
        times = []
        for i in range(warmup + steps):
            toks = torch.randint(0, vocab, (ac.batch_contexts, mc.n_ctx), generator=g).to(device)
            pos = torch.stack([torch.randperm(mc.n_ctx, generator=g)[:ac.tokens_per_context]
                               for _ in range(ac.batch_contexts)]).to(device)

            def sample():
                with torch.no_grad(), autocast(device, precision):
                    acts = model.mlp_acts(toks, pos)
                acts.float().sum().item()

            t = timed(sample, device)
            if i >= warmup:
                times.append(t)
        sample_tps = ac.batch_contexts * mc.n_ctx / statistics.median(times)
    finally:
        torch.use_deterministic_algorithms(was_det)
    return {**row, "sampling_tokens_per_s": round(sample_tps, 1),
            "sampling_gflops": round(sample_tps * sampling_flops_per_token(mc, ac.tokens_per_context) / 1e9, 2)}


# ------------------------------------------------------------------------------------------- report


def markdown(res: dict) -> str:
    """The README table of a result: the `sae` mode's (SAELens and the GEMM peak) or the `all` mode's."""
    return markdown_sae(res) if res.get("mode") == "sae" else markdown_all(res)


def markdown_all(res: dict) -> str:
    m, g = res["machine"], res["gemm_gflops"]
    t, a = res["transformer_tokens_per_s"], res["activation_sampling_tokens_per_s"]
    tf = res["transformer_tokens_per_s_fused"]
    lines = [f"Machine: {m['cpu']} ({', '.join(m['isa'])}), {m['cores']} cores; torch {m['torch']}, "
             f"{res['threads']} threads, device {res['device']}; load average {res['loadavg_start']:.2f} → "
             f"{res['loadavg_end']:.2f}. GEMM peak fp32 {g['fp32']:.0f}, bf16 {g['bf16']:.0f} GFLOP/s "
             f"({g['bf16'] / g['fp32']:.1f}×).", "",
             "| | fp32 | bf16 | bf16 / fp32 |", "|---|---:|---:|---:|",
             f"| transformer training, tokens/s | {t['fp32']:,.0f} | {t['bf16']:,.0f} | "
             f"{t['bf16'] / t['fp32']:.2f}× |",
             f"| transformer training, fused kernels, tokens/s | {tf['fp32']:,.0f} | {tf['bf16']:,.0f} | "
             f"{tf['bf16'] / t['fp32']:.2f}× over reference fp32 |",
             f"| activation sampling, tokens/s | {a['fp32']:,.0f} | {a['bf16']:,.0f} | {a['bf16'] / a['fp32']:.2f}× |",
             "", f"| SAE step (d {res['sae'][0]['d']}, batch {res['sae'][0]['batch']}) | features | L0 | "
             "screen candidates / row | ours fp32 | ours bf16-screened | SAELens | fp32 / SAELens | "
             "bf16-screened / SAELens |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["sae"]:
        sl = f"{r['sae_lens_samples_per_s']:,.0f}" if "sae_lens_samples_per_s" in r else "–"
        lines.append(f"| {r['name']} | {r['features']:,} | {r['l0_mean']:.1f} | {r['screen_candidates_per_row']} | "
                     f"{r['ours_fp32_samples_per_s']:,.0f} | {r['ours_bf16_screened_samples_per_s']:,.0f} | {sl} | "
                     f"{r.get('ours_fp32_over_sae_lens', '–')}× | {r.get('ours_bf16_screened_over_sae_lens', '–')}× |")
    return "\n".join(lines)


def markdown_sae(res: dict) -> str:
    m, peak = res["machine"], res["gemm"]["peak_gflops"]
    lines = [
        f"Machine: {m['cpu']} ({', '.join(m['isa'])}), {m['cores']} cores, {m['memory_gb']} GB; torch "
        f"{m['torch']} ({m['blas']}, {m['cpu_capability']}), {m['torch_threads']} threads; sae-lens "
        f"{m['sae_lens']}. fp32 GEMM peak {peak:.0f} GFLOP/s. Load average {res['loadavg_start']:.2f} at start, "
        f"{res['loadavg_end']:.2f} at end. Data: {res['data']}. Weights: {res['weights']}.",
        "",
        "| SAE step (d 512) | features | batch | L0 | ours (samples/s) | SAELens (samples/s) | ours / SAELens "
        "| ours dense-equiv. GFLOP/s (of peak) | SAELens GFLOP/s (of peak) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["sae"]:
        sl = f"{r['saelens_samples_per_s']:,.0f}" if "saelens_samples_per_s" in r else "–"
        ratio = f"**{r['ratio_ours_over_saelens']:.2f}×**" if "ratio_ours_over_saelens" in r else "–"
        slg = (f"{r['saelens_gflops']:.0f} ({100 * r['saelens_frac_of_peak']:.0f}%)"
               if "saelens_gflops" in r else "–")
        lines.append(f"| {r['name']} | {r['features']:,} | {r['batch']:,} | {r['l0_mean']:.1f} | "
                     f"{r['ours_samples_per_s']:,.0f} | {sl} | {ratio} | {r['ours_dense_equiv_gflops']:.0f} "
                     f"({100 * r['ours_frac_of_peak']:.0f}%) | {slg} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", nargs="?", default="all", choices=("all", "sae"),
                    help="all: every speed figure (default); sae: our SAE step against SAELens and the GEMM peak")
    ap.add_argument("--sae-dir", type=Path, default=ROOT / "artifacts/sae/A_4096")
    ap.add_argument("--store", type=Path, default=ROOT / "artifacts/activations/A/train")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="all mode only (sae: CPU)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=None, help="sae mode: untimed steps first")
    ap.add_argument("--batch", type=int, default=None, help="sae mode: SAE batch (default 8192, --quick 1024)")
    ap.add_argument("--skip", default="", help="sae mode: comma-separated SAE configs to skip: trained,tiled,init")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test of the command only")
    ap.add_argument("--no-saelens", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    return ap.parse_args(argv)


def start(args: argparse.Namespace, device: torch.device) -> tuple[dict, bool]:
    """The result's header (machine, load average) and whether SAELens is timed (installed, wanted, CPU)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    res = {"benchmark": "benchmarks/speed.py" + (" sae" if args.mode == "sae" else ""), "mode": args.mode,
           "quick": args.quick, "device": str(device), "threads": torch.get_num_threads(),
           "loadavg_start": loadavg(), "machine": machine_info(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if device.type == "cuda":
        res["machine"]["gpu"] = torch.cuda.get_device_name(0)
    print(f"machine: {json.dumps(res['machine'])}\nload average: {res['loadavg_start']}", flush=True)
    with_saelens = not args.no_saelens and device.type == "cpu"
    if with_saelens:
        try:
            import sae_lens  # noqa: F401
        except ImportError:
            print("sae-lens not installed (pip install -e '.[bench]'); timing ours only", flush=True)
            with_saelens = False
    return res, with_saelens


def finish(res: dict, out: Path) -> int:
    res["loadavg_end"] = loadavg()
    res["markdown"] = markdown(res)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print("\n" + res["markdown"] + f"\n\nwritten {out}", flush=True)
    return 0


def run_all(args: argparse.Namespace) -> int:
    """GEMM peaks, transformer training and sampling, the SAE step: fp32 and bf16 (the module docstring)."""
    device, quick = torch.device(args.device), args.quick
    res, with_saelens = start(args, device)
    steps, warmup = args.steps or (2 if quick else 8), 1 if quick else 2
    sizes = [(256, 256, 256), (512, 512, 512)] if quick else [(2048, 2048, 2048), (4096, 4096, 4096),
                                                                 (8192, 512, 4096)]
    gemm = gemm_peaks(sizes, 2 if quick else 5, device)
    res["gemm_gflops"], res["gemm"] = {k: v["peak_gflops"] for k, v in gemm.items()}, gemm
    print(f"GEMM peaks: {res['gemm_gflops']}", flush=True)

    tc, ac, vocab = DEFAULT.transformer, DEFAULT.activations, 4096
    if quick:
        tc = dataclasses.replace(tc, d_model=32, d_mlp=128, n_heads=2, n_ctx=32, batch_size=4)
        ac = dataclasses.replace(ac, batch_contexts=4, tokens_per_context=8)
        vocab = 512
    res["transformer"] = [bench_transformer(p, steps, warmup, device, tc, ac, vocab, k)
                          for k in ("reference", "fused") for p in ("fp32", "bf16")]
    for key, kernels, field in (("transformer_tokens_per_s", "reference", "train_tokens_per_s"),
                                ("transformer_tokens_per_s_fused", "fused", "train_tokens_per_s"),
                                ("activation_sampling_tokens_per_s", "reference", "sampling_tokens_per_s")):
        res[key] = {r["precision"]: r[field] for r in res["transformer"] if r["kernels"] == kernels}
    print(json.dumps(res["transformer"]), flush=True)

    batch, d, F = (256, 64, 512) if quick else (8192, D_DEFAULT, 4096)
    batches, res["data"] = load_batches(None if quick else args.store, max(2, min(steps + warmup, 10)), batch, d)
    d = batches[0].shape[1]
    if not quick and (args.sae_dir / "sae_weights.safetensors").exists():
        trained = architectures.load(args.sae_dir)
        res["weights"] = f"trained {args.sae_dir}"
    else:
        trained = fresh_sae(d, F, LAMBDA_DEFAULT, batches[0][:4096], seed=5)
        shift = shift_b_e_to_l0(trained, batches[0][:2048], 20.0)
        res["weights"] = f"stand-in: fresh init, b_e shifted by {shift:+.3f} to L0 ≈ 20"
    print(f"data: {res['data']}\nweights: {res['weights']}", flush=True)
    big, _ = tile_sae(trained, 4, batches[0][:2048], l0_of(trained, batches[0][:2048]), seed=6)
    res["sae"] = []
    for name, sae in ((f"A/1 shape ({trained.n_features} features)", trained),
                      (f"{big.n_features} features (A/1 tiled 4×)", big)):
        res["sae"].append(bench_screens(name, sae, batches, steps, warmup, with_saelens, device))
        print(json.dumps({k: v for k, v in res["sae"][-1].items() if not k.endswith("_all")}), flush=True)
    for row, name in zip(res["sae"], ("sae_samples_per_s", "sae_samples_per_s_16384")):
        res[name] = {k: row.get(f"{k}_samples_per_s") for k in ("ours_fp32", "ours_bf16_screened", "sae_lens")}

    slug = machine_slug(res["machine"]) + (f"-{device.type}" if device.type != "cpu" else "") + \
        (f"-{res['threads']}thread" if args.threads and args.threads != res["machine"]["cores"] else "")
    return finish(res, args.out or ROOT / "benchmarks" / "results" / (slug + ("-quick" if quick else "") + ".json"))


def run_sae(args: argparse.Namespace) -> int:
    """Our SAE step against SAELens on the trained, tiled and fresh SAEs, against the fp32 GEMM peak."""
    quick = args.quick
    res, with_saelens = start(args, torch.device("cpu"))
    steps = args.steps or (3 if quick else 8)
    warmup = args.warmup if args.warmup is not None else 1 if quick else 2
    batch = args.batch or (1024 if quick else 8192)
    skip = set(filter(None, args.skip.split(",")))
    sizes = [(1024, 1024, 1024), (2048, 2048, 2048)] if quick else \
        [(2048, 2048, 2048), (4096, 4096, 4096), (8192, 512, 4096)]
    res["gemm"] = gemm_peaks(sizes, 3 if quick else 5, torch.device("cpu"), ("fp32",))["fp32"]
    peak = res["gemm"]["peak_gflops"]
    print(f"fp32 GEMM peak: {peak} GFLOP/s  {res['gemm']['sizes']}", flush=True)

    batches, res["data"] = load_batches(args.store, max(2, min(steps + warmup, 4 if quick else 10)), batch,
                                        D_DEFAULT)
    d = batches[0].shape[1]
    print(f"data: {res['data']}", flush=True)
    cfg = dataclasses.replace(DEFAULT.sae, batch_size=batch, fast_path="auto")  # the default lr, betas
    if (args.sae_dir / "sae_weights.safetensors").exists():
        trained = architectures.load(args.sae_dir)
        res["weights"] = f"trained {args.sae_dir.relative_to(ROOT) if args.sae_dir.is_relative_to(ROOT) else args.sae_dir}"
    else:
        trained = fresh_sae(d, 4096, LAMBDA_DEFAULT, batches[0][:4096], seed=5)
        shift = shift_b_e_to_l0(trained, batches[0][:2048], 30.0)
        res["weights"] = (f"NO TRAINED SAE at {args.sae_dir}: fresh init, b_e shifted by {shift:+.3f} "
                          f"to L0 ≈ 30 (stand-in)")
    print(f"weights: {res['weights']}", flush=True)
    real = res["weights"].startswith("trained")
    res["sae"] = []

    def run(name, sae):
        print(f"--- {name}: F={sae.n_features} B={batch}", flush=True)
        res["sae"].append(bench_against_saelens(name, sae, batches, steps, warmup, peak, with_saelens, cfg))
        print(json.dumps({k: v for k, v in res["sae"][-1].items() if not k.endswith("_all")}), flush=True)

    if "trained" not in skip:  # a copy: `trained` seeds the tiled SAE below
        run("A/1 trained" if real else "A/1 stand-in (b_e shifted)", copy.deepcopy(trained))
    if "tiled" not in skip:
        big, res["tiled_b_e_shift"] = tile_sae(trained, 4, batches[0][:2048], l0_of(trained, batches[0][:2048]),
                                               seed=6)
        run("16,384 (A/1 tiled 4×)" if real else "16,384 (stand-in tiled 4×)", big)
    if "init" not in skip:
        run("A/1 at init", fresh_sae(d, trained.n_features, trained.l1_coeff, batches[0][:4096], seed=5))
    # "sae_speed-" prefix: benchmarks/results/<machine>.json is the `all` mode's (earlier runs of this mode, e.g.
    # intel-xeon-2c.json, were written without the prefix)
    name = "sae_speed-" + machine_slug(res["machine"]) + ("-quick" if quick else "") + ".json"
    return finish(res, args.out or ROOT / "benchmarks" / "results" / name)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_sae(args) if args.mode == "sae" else run_all(args)


if __name__ == "__main__":
    sys.exit(main())
