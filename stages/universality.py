"""Stage universality RUN_A RUN_B: max activation correlation of each unit of A with any unit of B.

    python stages/universality.py A_4096 B_4096          (the paper's A/1 vs B/1)
    python stages/universality.py A_4096 random_4096     (random-transformer baseline)

Over the first analysis.max_points validation tokens (the same tokens in every model's store): for each SAE
feature of RUN_A the maximum Pearson correlation with any feature of RUN_B, and the same for the MLP neurons
of the two models (monosemantic/universality.py). For the features, also the correlation of the logit
weights of each A feature with those of its best-matching B feature (scatter, paper Fig. 6), and the max
correlation of A's proxy features (metrics/analysis/proxies_RUN_A.json). Medians (the headline) are over
the units of A that fire on at least analysis.universality_min_active of those tokens; *_all_fired gives
them over every unit that fired at least once. Writes
metrics/analysis/universality_RUN_A_RUN_B.json (headline universality_median_max_corr{,_RUN_B}),
paper_figures/fig10_universality_RUN_A_RUN_B.png and fig6_universality_scatter_RUN_A_RUN_B.png.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monosemantic import analysis_figures as figs  # noqa: E402
from monosemantic import logit_weights as lw  # noqa: E402
from monosemantic import universality as uv  # noqa: E402
from monosemantic.config import load_params  # noqa: E402
from monosemantic.config import ConfigError  # noqa: E402
from monosemantic.model import Transformer  # noqa: E402
from monosemantic.proxies import headline_key  # noqa: E402
from monosemantic.sae import SparseAutoencoder  # noqa: E402
from monosemantic.store import ActivationStore, StoreError  # noqa: E402
from monosemantic.tokenizer import TokenizerError, load_stream  # noqa: E402
from monosemantic.utils import fail, write_json  # noqa: E402


def sigma(model, val, n_ctx: int, n_contexts: int = 32) -> float:
    starts = np.arange(n_contexts) * (len(val) // n_contexts // n_ctx) * n_ctx
    toks = torch.from_numpy(np.stack([np.asarray(val.tokens[s:s + n_ctx]) for s in starts]).astype(np.int64))
    return lw.residual_std(model, toks)


def main(name_a: str, name_b: str) -> None:
    t0 = time.perf_counter()
    try:
        params = load_params()
        cfg = params.analysis
        for nm in (name_a, name_b):
            if nm not in params.sae_runs:
                fail(f"{nm!r} is not in params.yaml sae_runs ({', '.join(params.sae_runs)})")
        ra, rb = params.sae_runs[name_a], params.sae_runs[name_b]
        store_a = ActivationStore(f"artifacts/activations/{ra.model}/val")
        store_b = ActivationStore(f"artifacts/activations/{rb.model}/val")
        sae_a = SparseAutoencoder.load(f"artifacts/sae/{name_a}").eval()
        sae_b = SparseAutoencoder.load(f"artifacts/sae/{name_b}").eval()
        model_a = Transformer.load(f"artifacts/models/{ra.model}")
        model_b = Transformer.load(f"artifacts/models/{rb.model}")
        val = load_stream("artifacts/tokens", "val")
    except (ConfigError, StoreError, TokenizerError, FileNotFoundError) as e:
        fail(str(e))
    torch.set_grad_enabled(False)
    ia, ib = store_a.index(), store_b.index()
    n = min(cfg.max_points, store_a.n_points, store_b.n_points)
    if not np.array_equal(ia["token"][:n], ib["token"][:n]):
        fail(f"the val stores of {ra.model} and {rb.model} do not hold the same tokens in the same order")

    feats = uv.max_correlations(store_a, store_b, sae_a.encode, sae_b.encode, n, cfg.batch_size)
    t_feat = time.perf_counter() - t0
    neurons = uv.max_correlations(store_a, store_b, lambda x: x, lambda x: x, n, cfg.batch_size, sparse=False)

    # Logit-weight similarity of each A feature and its best B match (paper Fig. 6).
    sa, sb = sigma(model_a, val, model_a.cfg.n_ctx), sigma(model_b, val, model_b.cfg.n_ctx)
    la = lw.feature_logit_weights(model_a, sae_a, sa).numpy()
    lb = lw.feature_logit_weights(model_b, sae_b, sb).numpy()
    ok = feats["argmax"] >= 0
    logit_corr = np.full(len(ok), np.nan)
    logit_corr[ok] = uv.rowwise_corr(la[ok], lb[feats["argmax"][ok]])

    m = cfg.universality_min_active
    out = {"run_a": name_a, "run_b": name_b, "n_points": n, "min_active": m,
           "features": uv.summarize(feats["max_corr"], feats["n_fire"], m),
           "neurons": uv.summarize(neurons["max_corr"], neurons["n_fire"], m),
           "features_all_fired": uv.summarize(feats["max_corr"]),
           "neurons_all_fired": uv.summarize(neurons["max_corr"]),
           "features_logit_corr_median": float(np.nanmedian(logit_corr)) if ok.any() else None,
           "features_never_fired_a": int(np.isnan(feats["max_corr"]).sum())}
    proxies_path = Path(f"metrics/analysis/proxies_{name_a}.json")
    highlight = {}
    if proxies_path.exists():
        prox = json.loads(proxies_path.read_text())["proxies"]
        out["proxy_features"] = {}
        for k, p in prox.items():
            i = p["feature"]["index"]
            highlight[k] = i
            out["proxy_features"][k] = {"feature": i, "max_corr": float(feats["max_corr"][i]),
                                        "best_match": int(feats["argmax"][i]),
                                        "logit_corr": float(logit_corr[i])}
    key = headline_key("universality_median_max_corr", name_b, cfg.compare_run)
    if name_a != cfg.run:
        key = f"universality_median_max_corr_{name_a}_vs_{name_b}"
    out["headline"] = {key: {"features": round(out["features"]["median"], 4),
                             "neurons": round(out["neurons"]["median"], 4)}}
    suffix = f"_{name_a}_{name_b}"
    labels = (name_a, name_b)
    keep_f = np.where(feats["n_fire"] >= m, feats["max_corr"], np.nan)
    keep_n = np.where(neurons["n_fire"] >= m, neurons["max_corr"], np.nan)
    figs.universality_histogram(keep_f, keep_n, f"paper_figures/fig10_universality{suffix}.png",
                                labels)
    figs.universality_scatter(keep_f, logit_corr, f"paper_figures/fig6_universality_scatter{suffix}.png",
                              labels, highlight)
    out["seconds"] = {"features": round(t_feat, 1), "total": round(time.perf_counter() - t0, 1)}
    write_json(f"metrics/analysis/universality_{name_a}_{name_b}.json", out)
    print(f"{name_a} vs {name_b}: median max corr features {out['features']['median']:.3f}, "
          f"neurons {out['neurons']['median']:.3f} ({out['seconds']['total']}s)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: python stages/universality.py RUN_A RUN_B")
    main(sys.argv[1], sys.argv[2])
