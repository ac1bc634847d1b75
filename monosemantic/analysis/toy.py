"""Toy-model verification (paper appendix, after Sharkey et al. 2022): data made of known sparse features in
superposition, dictionaries learned by the same training code as the real SAEs (sae.train.train_sae on an
ArrayStore), scored by how well they recover the ground truth.

Data. n_true ground-truth directions g_j, random unit vectors in R^d (n_true > d: superposition). Each point
is x = Σ_j a_j g_j with a_j = c_j · u_j, u_j ~ U(0, 1) and c_j ∈ {0, 1} sparse:
  * independent (correlated=False): c_j ~ Bernoulli(p_j);
  * correlated (default): features come in groups of 4; a group switches on with probability q_k and each
    of its members then fires with probability 1/2, so members of a group co-occur.
Firing probabilities decay geometrically over features (the most common 10× the rarest), scaled so that the
expected number of active features per point is `mean_active`. The data are then scaled by one constant so
that E‖x‖² = d (MSE per element ≈ 1 for the zero reconstruction, which keeps λ on a known scale).

Score. Mean max cosine similarity between the true directions and the learned decoder vectors,

    MMCS = (1/n_true) Σ_j max_i cos(g_j, d_i),

1 when every true feature has a learned decoder vector pointing exactly along it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from monosemantic.core.config import ResampleConfig, SAEConfig, SAERun
from monosemantic.core.utils import torch_threads
from monosemantic.lm.store import ArrayStore
from monosemantic.sae.architectures.standard import StandardSettings

GROUP = 4


@dataclass
class ToyData:
    x: torch.Tensor  # (n_points, d)
    directions: torch.Tensor  # (n_true, d), unit rows
    probs: np.ndarray  # (n_true,) marginal firing probability


def firing_probabilities(n_true: int, mean_active: float, ratio: float = 10.0) -> np.ndarray:
    """Geometrically decaying probabilities from most to least common (max/min = ratio), sum = mean_active."""
    p = ratio ** (-np.arange(n_true) / max(n_true - 1, 1))
    p = p * mean_active / p.sum()
    if p.max() > 1:
        raise ValueError("mean_active too large for the decay: a probability exceeds 1")
    return p


def make_toy_data(n_true: int, d: int, n_points: int, mean_active: float, correlated: bool = True,
                  seed: int = 0) -> ToyData:
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_true, d, generator=g)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    p = firing_probabilities(n_true, mean_active)
    if correlated:
        n_groups = -(-n_true // GROUP)
        q = np.minimum(2.0 * np.add.reduceat(p, np.arange(0, n_true, GROUP)) / GROUP, 1.0)  # E[c_j] = q/2 = mean p
        on = torch.rand(n_points, n_groups, generator=g) < torch.as_tensor(q, dtype=torch.float32)
        member = torch.rand(n_points, n_true, generator=g) < 0.5
        c = on.repeat_interleave(GROUP, dim=1)[:, :n_true] & member
        marg = np.repeat(q / 2, GROUP)[:n_true]
    else:
        c = torch.rand(n_points, n_true, generator=g) < torch.as_tensor(p, dtype=torch.float32)
        marg = p
    a = c.float() * torch.rand(n_points, n_true, generator=g)
    x = a @ dirs
    x = x * (d / x.pow(2).sum(1).mean()).sqrt()
    return ToyData(x=x, directions=dirs, probs=marg)


def mmcs(true_dirs: torch.Tensor | np.ndarray, learned: torch.Tensor | np.ndarray) -> float:
    """Mean over true directions (n_true, d) of the max cosine similarity with the learned rows (F, d)."""
    t = torch.as_tensor(true_dirs).float()
    l_ = torch.as_tensor(learned).float()
    t = t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)
    l_ = l_ / l_.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return float((t @ l_.T).max(dim=1).values.mean())


def toy_sae_config(steps: int, batch_size: int, lr: float, seed: int, n_points: int) -> SAEConfig:
    """The real SAE training config, scaled to the toy run: resampling at 1/4 and 1/2 of training."""
    resample = ResampleConfig(steps=(max(steps // 4, 1), max(steps // 2, 2)), dead_window=max(steps // 8, 1),
                              n_inputs=min(n_points, 16384), encoder_scale=0.2)
    return SAEConfig(batch_size=batch_size, steps=steps, lr=lr, betas=(0.9, 0.999),
                     geometric_median_points=min(4096, n_points), log_every=max(steps // 10, 1),
                     checkpoint_every=steps + 1, seed=seed, fast_path="auto", encoder_screen="fp32", resample=resample)


def train_toy_sae(data: ToyData, n_features: int, l1: float, cfg: SAEConfig, out_dir: str | Path | None = None):
    """Train a standard SAE (the paper's recipe, λ = l1) on the toy data with sae.train.train_sae; returns (sae
    in eval mode, train_stats)."""
    from monosemantic.analysis.inputs import load_sae
    from monosemantic.sae.train import train_sae

    run = SAERun(model="toy", n_features=n_features, architecture="standard", settings=StandardSettings(l1=l1),
                 points_mult=1)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(out_dir) if out_dir is not None else Path(tmp)
        stats = train_sae(cfg, run, ArrayStore(data.x), out, resume=False, progress=False)
        sae = load_sae(out)
    return sae, stats


def evaluate_toy_sae(sae, data: ToyData, n_eval: int = 16384) -> dict:
    """MMCS of the decoder vectors, plus L0 and fraction of variance unexplained on the first n_eval points."""
    with torch.no_grad():
        x = data.x[:n_eval]
        f = sae.encode(x)
        x_hat = sae.decode(f)
        fvu = ((x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item()
        alive = (f > 0).any(dim=0)
    dec = sae.W_d.detach().T
    return {"mmcs": mmcs(data.directions, dec), "mmcs_alive": mmcs(data.directions, dec[alive]) if alive.any() else 0.0,
            "l0": float((f > 0).float().sum(1).mean()), "fvu": fvu, "alive": int(alive.sum())}


def run_toy(toy_cfg, progress: bool = False) -> dict:
    """The two sweeps of analysis.toy: MMCS vs dictionary size (at λ = l1) and vs λ (at n_features = n_true;
    the size sweep's run is reused when it is one of them). Trains with toy_cfg.threads torch threads."""
    data = make_toy_data(toy_cfg.n_true, toy_cfg.d, toy_cfg.n_points, toy_cfg.mean_active, toy_cfg.correlated,
                         toy_cfg.seed)
    cfg = toy_sae_config(toy_cfg.steps, toy_cfg.batch_size, toy_cfg.lr, toy_cfg.seed, toy_cfg.n_points)
    done: dict[tuple[int, float], dict] = {}

    def get(n: int, lam: float) -> dict:
        if (n, lam) not in done:
            sae, stats = train_toy_sae(data, n, lam, cfg)
            done[(n, lam)] = {"n_features": n, "l1": lam, **evaluate_toy_sae(sae, data),
                              "train_seconds": stats.get("wall_time_s")}
            if progress:
                r = done[(n, lam)]
                print(f"toy SAE {n} features, λ={lam:g}: MMCS {r['mmcs']:.3f}, L0 {r['l0']:.2f}, FVU {r['fvu']:.3f}")
        return done[(n, lam)]

    with torch_threads(toy_cfg.threads):
        by_size = [get(n, toy_cfg.l1) for n in toy_cfg.sizes]
        by_l1 = [get(toy_cfg.n_true, lam) for lam in toy_cfg.l1_sweep]
    return {"by_size": by_size, "by_l1": by_l1, "config": dataclasses.asdict(toy_cfg),
            "true_l0": float(toy_cfg.mean_active)}


def headline(res: dict, n_true: int) -> dict:
    """The toy result's headline: the MMCS of the size sweep's dictionary with n_features = n_true (else the
    best of that sweep), which run that is, and the best MMCS of both sweeps."""
    at_true = [r for r in res["by_size"] if r["n_features"] == n_true]
    head = at_true[0] if at_true else max(res["by_size"], key=lambda r: r["mmcs"])
    return {"headline": {"toy_mmcs": round(head["mmcs"], 4)},
            "headline_run": {"n_features": head["n_features"], "l1": head["l1"]},
            "best_mmcs": max(r["mmcs"] for r in res["by_size"] + res["by_l1"])}


def csv_table(res: dict) -> str:
    """plots/toy_mmcs.csv: one row per trained dictionary of both sweeps."""
    rows = ["sweep,n_features,l1,mmcs,l0,fvu,alive"] + [
        f"{sweep},{r['n_features']},{r['l1']:g},{r['mmcs']:.6f},{r['l0']:.4f},{r['fvu']:.6f},{r['alive']}"
        for sweep in ("by_size", "by_l1") for r in res[sweep]]
    return "\n".join(rows) + "\n"
