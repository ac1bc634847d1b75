"""One benchmark command for issue 14: every speed figure, fp32 and bf16, against both GEMM peaks, in one run.

    python benchmarks/speed.py [--threads N] [--device cpu|cuda] [--quick] [--out PATH]

Measured in one process, on one machine (results: benchmarks/results/<cpu-model>-<cores>c.json):

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
   artifacts/sae/A_4096 when present (16,384: it tiled 4× with b_e lowered to the same L0, see sae_speed.py),
   else a stand-in (fresh init, b_e shifted to L0 ≈ 20).

The headline keys (issue 14): gemm_gflops {fp32, bf16}, transformer_tokens_per_s {fp32, bf16} (reference
kernels), transformer_tokens_per_s_fused {fp32, bf16},
activation_sampling_tokens_per_s {fp32, bf16}, sae_samples_per_s {ours_fp32, ours_bf16_screened, sae_lens} at the
A/1 shape, sae_samples_per_s_16384 {…}. Everything else (per-step times, L0, screen candidates per row, fractions
of the peaks, load average) is beside them. --quick: tiny sizes for a smoke test (not a measurement).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sae_speed import (D_DEFAULT, LAMBDA_DEFAULT, fresh_sae, l0_of, lm_flops_per_token, load_batches,  # noqa: E402
                       loadavg, machine_info, machine_slug, make_saelens, sampling_flops_per_token,
                       shift_b_e_to_l0, tile_sae)

from monosemantic.config import ActivationsConfig, TransformerConfig, load_params  # noqa: E402
from monosemantic.lm.train import make_optimizer  # noqa: E402
from monosemantic.lm.model import ModelConfig, build_model  # noqa: E402
from monosemantic.sae.model import SparseAutoencoder  # noqa: E402
from monosemantic.sae.train import SAETrainer  # noqa: E402
from monosemantic.utils import autocast  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DEFAULT = load_params(ROOT / "params.yaml")  # the default profile: the transformer, sampling and SAE settings


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------- GEMM


def gemm_peaks(sizes: list[tuple[int, int, int]], repeats: int, device: torch.device) -> dict:
    """Best GFLOP/s of (m, k) @ (k, n) in fp32 and bf16 over sizes and repeats (2·m·n·k FLOP each)."""
    out = {}
    for name, dtype in DTYPES.items():
        rows, best = [], 0.0
        for m, k, n in sizes:
            a = torch.randn(m, k, device=device).to(dtype)
            b = torch.randn(k, n, device=device).to(dtype)
            c = torch.empty(m, n, device=device, dtype=dtype)
            torch.matmul(a, b, out=c)  # warm-up
            t = min(timed(lambda: torch.matmul(a, b, out=c), device) for _ in range(repeats))
            g = 2 * m * n * k / t / 1e9
            rows.append({"m": m, "k": k, "n": n, "best_gflops": round(g, 1)})
            best = max(best, g)
        out[name] = {"peak_gflops": round(best, 1), "sizes": rows}
    return out


# ------------------------------------------------------------------------------------------- transformer


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


# ------------------------------------------------------------------------------------------- SAE


def bench_sae(name: str, sae: SparseAutoencoder, batches: list[torch.Tensor], steps: int, warmup: int,
              with_saelens: bool, device: torch.device) -> dict:
    """Our step in fp32 and bf16-screened, and SAELens's, alternated step by step from the same weights."""
    B, d, F = batches[0].shape[0], sae.d, sae.n_features
    variants = {}
    for key, screen in (("ours_fp32", "fp32"), ("ours_bf16_screened", "bf16")):
        cfg = dataclasses.replace(DEFAULT.sae, batch_size=B, fast_path="auto", encoder_screen=screen)
        trainer = SAETrainer(copy.deepcopy(sae).to(device), cfg, device)
        variants[key] = trainer.step
    screened = trainer.sae
    if with_saelens:
        _, theirs = make_saelens(sae, dataclasses.replace(DEFAULT.sae, batch_size=B), B)
        variants["sae_lens"] = theirs.step
    times = {k: [] for k in variants}
    l0s, candidates = [], []
    for i in range(warmup + steps):
        x = batches[i % len(batches)].to(device)
        for key, step in variants.items():
            out = {}
            t = timed(lambda: out.setdefault("terms", step(x)), device)
            if i >= warmup:
                times[key].append(t)
                if key == "ours_fp32":
                    l0s.append(float(out["terms"].l0))
        if i >= warmup and screened.screen_candidates is not None:
            candidates.append(screened.screen_candidates / B)
    row = {"name": name, "batch": B, "d": d, "features": F, "steps": steps, "warmup": warmup,
           "l0_mean": round(statistics.mean(l0s), 2), "density": round(statistics.mean(l0s) / F, 5),
           "screen_candidates_per_row": round(statistics.mean(candidates), 2) if candidates else None}
    for key, ts in times.items():
        row[f"{key}_step_s"] = round(statistics.median(ts), 4)
        row[f"{key}_samples_per_s"] = round(B / statistics.median(ts), 1)
        row[f"{key}_step_s_all"] = [round(t, 4) for t in ts]
    if "sae_lens_step_s" in row:
        for key in ("ours_fp32", "ours_bf16_screened"):
            row[f"{key}_over_sae_lens"] = round(row["sae_lens_step_s"] / row[f"{key}_step_s"], 2)
    row["bf16_screened_over_fp32"] = round(row["ours_fp32_step_s"] / row["ours_bf16_screened_step_s"], 2)
    return row


# ------------------------------------------------------------------------------------------- main


def markdown(res: dict) -> str:
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sae-dir", type=Path, default=ROOT / "artifacts/sae/A_4096")
    ap.add_argument("--store", type=Path, default=ROOT / "artifacts/activations/A/train")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per configuration")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test of the command only")
    ap.add_argument("--no-saelens", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    quick = args.quick
    steps = args.steps or (2 if quick else 8)
    warmup = 1 if quick else 2
    torch.manual_seed(0)
    res = {"benchmark": "benchmarks/speed.py", "quick": quick, "device": str(device),
           "threads": torch.get_num_threads(), "loadavg_start": loadavg(), "machine": machine_info(),
           "started": time.strftime("%Y-%m-%d %H:%M:%S")}
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

    sizes = [(256, 256, 256), (512, 512, 512)] if quick else [(2048, 2048, 2048), (4096, 4096, 4096),
                                                                 (8192, 512, 4096)]
    gemm = gemm_peaks(sizes, 2 if quick else 5, device)
    res["gemm_gflops"] = {k: v["peak_gflops"] for k, v in gemm.items()}
    res["gemm"] = gemm
    print(f"GEMM peaks: {res['gemm_gflops']}", flush=True)

    tc, ac, vocab = DEFAULT.transformer, DEFAULT.activations, 4096
    if quick:
        tc = dataclasses.replace(tc, d_model=32, d_mlp=128, n_heads=2, n_ctx=32, batch_size=4)
        ac = dataclasses.replace(ac, batch_contexts=4, tokens_per_context=8)
        vocab = 512
    res["transformer"] = [bench_transformer(p, steps, warmup, device, tc, ac, vocab, k)
                          for k in ("reference", "fused") for p in ("fp32", "bf16")]
    ref = [r for r in res["transformer"] if r["kernels"] == "reference"]
    res["transformer_tokens_per_s"] = {r["precision"]: r["train_tokens_per_s"] for r in ref}
    res["transformer_tokens_per_s_fused"] = {r["precision"]: r["train_tokens_per_s"] for r in res["transformer"]
                                             if r["kernels"] == "fused"}
    res["activation_sampling_tokens_per_s"] = {r["precision"]: r["sampling_tokens_per_s"] for r in ref}
    print(json.dumps(res["transformer"]), flush=True)

    batch, d, F = (256, 64, 512) if quick else (8192, D_DEFAULT, 4096)
    batches, res["data"] = load_batches(None if quick else args.store, max(2, min(steps + warmup, 10)), batch, d)
    d = batches[0].shape[1]
    if not quick and (args.sae_dir / "sae_weights.safetensors").exists():
        trained = SparseAutoencoder.load(args.sae_dir)
        res["weights"] = f"trained {args.sae_dir}"
    else:
        trained = fresh_sae(d, F, LAMBDA_DEFAULT, batches[0][:4096], seed=5)
        shift = shift_b_e_to_l0(trained, batches[0][:2048], 20.0)
        res["weights"] = f"stand-in: fresh init, b_e shifted by {shift:+.3f} to L0 ≈ 20"
    print(f"data: {res['data']}\nweights: {res['weights']}", flush=True)
    res["sae"] = []
    res["sae"].append(bench_sae(f"A/1 shape ({trained.n_features} features)", trained, batches, steps, warmup,
                                with_saelens, device))
    print(json.dumps({k: v for k, v in res["sae"][-1].items() if not k.endswith("_all")}), flush=True)
    big, shift = tile_sae(trained, 4, batches[0][:2048], l0_of(trained, batches[0][:2048]), seed=6)
    res["sae"].append(bench_sae(f"{big.n_features} features (A/1 tiled 4×)", big, batches, steps, warmup,
                                with_saelens, device))
    print(json.dumps({k: v for k, v in res["sae"][-1].items() if not k.endswith("_all")}), flush=True)
    keys = ("ours_fp32", "ours_bf16_screened", "sae_lens")
    for row, name in zip(res["sae"], ("sae_samples_per_s", "sae_samples_per_s_16384")):
        res[name] = {k: row.get(f"{k}_samples_per_s") for k in keys}

    res["loadavg_end"] = loadavg()
    slug = machine_slug(res["machine"]) + (f"-{device.type}" if device.type != "cpu" else "") + \
        (f"-{res['threads']}thread" if args.threads and args.threads != res["machine"]["cores"] else "")
    out = args.out or ROOT / "benchmarks" / "results" / (slug + ("-quick" if quick else "") + ".json")
    res["markdown"] = markdown(res)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print("\n" + res["markdown"] + f"\n\nwritten {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
