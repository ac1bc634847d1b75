"""SAE training speed against SAELens, against the fp32 GEMM peak measured in the same process (the transformer's
training and sampling speed, and the bf16 figures: benchmarks/speed.py, which imports the helpers here).

    python benchmarks/sae_speed.py [--sae-dir artifacts/sae/A_4096] [--store artifacts/activations/A/train]
                                   [--quick] [--steps N] [--out benchmarks/results/<machine>.json]

What it does, in one process (see benchmarks/README.md for the method and what SAELens does differently):

1. GEMM peak: best GFLOP/s of torch.matmul on large fp32 square(-ish) matrices, best of several repeats.
2. SAE step, ours (`SAETrainer.step`, fast_path "auto") and SAELens's (`sae_lens.SAETrainer.step` on a
   `StandardTrainingSAE`: forward, loss, firing statistics, backward, grad-norm clipping, Adam), ALTERNATED
   step by step on the SAME activation batches (read from the store once, held in memory), both starting
   from the SAME weights:
     * A/1 trained:  the trained default-sweep SAE (d 512, 4096 features), batch 8192;
     * 16384 tiled:  that SAE tiled 4x with perturbed encoder/decoder copies and b_e lowered until L0 equals the
                     4096 SAE's L0 (no trained 16,384-feature SAE exists in the default sweep);
     * init:         a fresh Kaiming-initialised SAE (b_d = geometric median), where nothing is sparse yet.
   Reports samples/s of both, the ratio ours/SAELens, and the dense-equivalent FLOP/s (10·B·d·F per step)
   as a fraction of the GEMM peak.
3. Transformer training (one lm.train step: forward, loss, backward, grad clipping, AdamW) and activation
   sampling (Transformer.mlp_acts at the default batch_contexts / tokens_per_context) in tokens/s and as a
   fraction of the GEMM peak (FLOPs per token stated in the output).

Results go to benchmarks/results/<machine>.json; a markdown table for the README is printed.
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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monosemantic.config import SAEConfig, load_params  # noqa: E402
from monosemantic.lm.model import ModelConfig  # noqa: E402
from monosemantic.sae.model import SparseAutoencoder, geometric_median  # noqa: E402
from monosemantic.sae.train import AUTO_MAX_DENSITY, SAETrainer  # noqa: E402

D_DEFAULT, LAMBDA_DEFAULT = 512, 0.0005


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


# ------------------------------------------------------------------------------------------- GEMM peak


def gemm_peak(sizes: list[tuple[int, int, int]], repeats: int) -> dict:
    """Best GFLOP/s of fp32 torch.matmul (m, k) @ (k, n) over sizes and repeats (2·m·n·k FLOP each)."""
    rows, best = [], 0.0
    for m, k, n in sizes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        out = torch.empty(m, n)
        torch.matmul(a, b, out=out)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.matmul(a, b, out=out)
            times.append(time.perf_counter() - t0)
        g = 2 * m * n * k / min(times) / 1e9
        rows.append({"m": m, "k": k, "n": n, "best_gflops": round(g, 1),
                     "median_gflops": round(2 * m * n * k / statistics.median(times) / 1e9, 1)})
        best = max(best, g)
    return {"peak_gflops": round(best, 1), "sizes": rows}


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
def l0_of(sae: SparseAutoencoder, x: torch.Tensor) -> float:
    return float((sae.encode(x) > 0).sum(dim=-1, dtype=torch.float32).mean())


@torch.no_grad()
def shift_b_e_to_l0(sae: SparseAutoencoder, x: torch.Tensor, target: float, iters: int = 30) -> float:
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


def fresh_sae(d: int, F: int, l1: float, x: torch.Tensor, seed: int) -> SparseAutoencoder:
    """Kaiming init + unit decoder columns + b_d = geometric median, as train_sae starts."""
    sae = SparseAutoencoder(d, F, l1, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        sae.b_d.copy_(geometric_median(x))
    return sae


@torch.no_grad()
def tile_sae(src: SparseAutoencoder, factor: int, x: torch.Tensor, target_l0: float, seed: int,
             noise: float = 0.1) -> tuple[SparseAutoencoder, float]:
    """A factor×larger SAE from a trained one: each feature copied `factor` times, every copy's encoder row
    and decoder column perturbed by `noise`·(its norm)·N(0, I/d) (decoder renormalised), b_e lowered by one
    scalar until the mean L0 on x equals target_l0 (the source's), so the copies split the firing."""
    g = torch.Generator().manual_seed(seed)
    d, F = src.d, src.n_features
    sae = SparseAutoencoder(d, F * factor, src.l1_coeff)
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


def make_saelens(ours: SparseAutoencoder, cfg: SAEConfig, batch: int):
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


def bench_sae(name: str, sae: SparseAutoencoder, batches: list[torch.Tensor], steps: int, warmup: int,
              peak: float, with_saelens: bool, cfg: SAEConfig) -> dict:
    """Alternate our step and SAELens's on the same batches, from the same weights."""
    B, d, F = batches[0].shape[0], sae.d, sae.n_features
    flops = 10 * B * d * F
    ours = SAETrainer(sae, cfg, "cpu")
    theirs = sl_sae = None
    if with_saelens:
        sl_sae, theirs = make_saelens(sae, cfg, B)
    t_ours, t_sl, l0s, branch, loss_ratio = [], [], [], [], None
    for i in range(warmup + steps):
        x = batches[i % len(batches)]
        t0 = time.perf_counter()
        terms = ours.step(x)
        t1 = time.perf_counter()
        l0 = float(terms.l0)
        if i == 0:
            # which branch "auto" took: CSR below AUTO_MAX_DENSITY of active entries
            branch = "sparse CSR" if l0 / F <= AUTO_MAX_DENSITY else "dense closed-form"
            our_loss = float(terms.total)
        if theirs is not None:
            t2 = time.perf_counter()
            out = theirs.step(x)
            t3 = time.perf_counter()
            if i == 0:
                loss_ratio = float(out.loss.detach()) / (d * our_loss)
            if i >= warmup:
                t_sl.append(t3 - t2)
        if i >= warmup:
            t_ours.append(t1 - t0)
            l0s.append(l0)
    row = {
        "name": name, "batch": B, "d": d, "features": F, "steps": steps, "warmup": warmup,
        "l0_mean": round(statistics.mean(l0s), 1), "density": round(statistics.mean(l0s) / F, 5),
        "our_branch": branch,
        "ours_step_s": round(statistics.median(t_ours), 4),
        "ours_samples_per_s": round(B / statistics.median(t_ours), 1),
        "ours_dense_equiv_gflops": round(flops / statistics.median(t_ours) / 1e9, 1),
        "ours_frac_of_peak": round(flops / statistics.median(t_ours) / 1e9 / peak, 3),
        "ours_step_s_all": [round(t, 4) for t in t_ours],
    }
    if t_sl:
        row.update({
            "saelens_step_s": round(statistics.median(t_sl), 4),
            "saelens_samples_per_s": round(B / statistics.median(t_sl), 1),
            "saelens_gflops": round(flops / statistics.median(t_sl) / 1e9, 1),
            "saelens_frac_of_peak": round(flops / statistics.median(t_sl) / 1e9 / peak, 3),
            "ratio_ours_over_saelens": round(statistics.median(t_sl) / statistics.median(t_ours), 2),
            "saelens_step_s_all": [round(t, 4) for t in t_sl],
            "saelens_loss_over_d_times_ours_step0": round(loss_ratio, 5),
        })
    del ours, theirs, sl_sae
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


# ------------------------------------------------------------------------------------------- report


def markdown(res: dict) -> str:
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sae-dir", type=Path, default=ROOT / "artifacts/sae/A_4096")
    ap.add_argument("--store", type=Path, default=ROOT / "artifacts/activations/A/train")
    ap.add_argument("--quick", action="store_true", help="small sizes, few steps (development)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None, help="SAE batch (default 8192, --quick 1024)")
    ap.add_argument("--no-saelens", action="store_true")
    ap.add_argument("--skip", default="", help="comma-separated SAE configs to skip: trained,tiled,init")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    quick = args.quick
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (3 if quick else 8)
    warmup = args.warmup if args.warmup is not None else 1 if quick else 2
    batch = args.batch or (1024 if quick else 8192)
    skip = set(filter(None, args.skip.split(",")))
    torch.manual_seed(0)

    res = {"quick": quick, "loadavg_start": loadavg(), "machine": machine_info(),
           "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"machine: {json.dumps(res['machine'])}\nload average: {res['loadavg_start']}", flush=True)
    with_saelens = not args.no_saelens
    if with_saelens:
        try:
            import sae_lens  # noqa: F401
        except ImportError:
            print("sae-lens not installed (pip install -e '.[bench]'); timing ours only", flush=True)
            with_saelens = False

    sizes = [(1024, 1024, 1024), (2048, 2048, 2048)] if quick else \
        [(2048, 2048, 2048), (4096, 4096, 4096), (8192, 512, 4096)]
    res["gemm"] = gemm_peak(sizes, 3 if quick else 5)
    peak = res["gemm"]["peak_gflops"]
    print(f"fp32 GEMM peak: {peak} GFLOP/s  {res['gemm']['sizes']}", flush=True)

    n_batches = max(2, min(steps + warmup, 4 if quick else 10))
    d = D_DEFAULT
    batches, res["data"] = load_batches(args.store, n_batches, batch, d)
    d = batches[0].shape[1]
    print(f"data: {res['data']}", flush=True)
    # the default profile's lr 1e-3, betas (0.9, 0.999)
    cfg = dataclasses.replace(load_params(ROOT / "params.yaml").sae, batch_size=batch, fast_path="auto")

    if (args.sae_dir / "sae_weights.safetensors").exists():
        trained = SparseAutoencoder.load(args.sae_dir)
        res["weights"] = f"trained {args.sae_dir.relative_to(ROOT) if args.sae_dir.is_relative_to(ROOT) else args.sae_dir}"
    else:
        lam = LAMBDA_DEFAULT
        trained = fresh_sae(d, 4096, lam, batches[0][:4096], seed=5)
        shift = shift_b_e_to_l0(trained, batches[0][:2048], 30.0)
        res["weights"] = (f"NO TRAINED SAE at {args.sae_dir}: fresh init, b_e shifted by {shift:+.3f} "
                          f"to L0 ≈ 30 (stand-in)")
    print(f"weights: {res['weights']}", flush=True)
    target_l0 = l0_of(trained, batches[0][:2048])

    res["sae"] = []

    def run(name, sae):
        print(f"--- {name}: F={sae.n_features} B={batch}", flush=True)
        row = bench_sae(name, sae, batches, steps, warmup, peak, with_saelens, cfg)
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("_all")}), flush=True)
        res["sae"].append(row)

    if "trained" not in skip:
        run("A/1 trained" if res["weights"].startswith("trained") else "A/1 stand-in (b_e shifted)",
            copy.deepcopy(trained))  # a copy: `trained` seeds the tiled SAE below
    if "tiled" not in skip:
        big, shift = tile_sae(trained, 4, batches[0][:2048], target_l0, seed=6)
        res["tiled_b_e_shift"] = shift
        run("16,384 (A/1 tiled 4×)" if res["weights"].startswith("trained") else "16,384 (stand-in tiled 4×)", big)
        del big
    if "init" not in skip:
        run("A/1 at init", fresh_sae(d, trained.n_features, trained.l1_coeff, batches[0][:4096], seed=5))

    res["loadavg_end"] = loadavg()
    # "sae_speed-" prefix: benchmarks/results/<machine>.json is now speed.py's (earlier runs of this script, e.g.
    # intel-xeon-2c.json, were written without the prefix)
    name = "sae_speed-" + machine_slug(res["machine"]) + ("-quick" if quick else "") + ".json"
    out = args.out or ROOT / "benchmarks" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    res["markdown"] = markdown(res)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print("\n" + res["markdown"] + f"\n\nwritten {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
