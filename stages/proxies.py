"""Stage proxies RUN: the features and neurons that best match the Arabic, Hebrew, DNA and base64 proxies.

    python stages/proxies.py RUN        (RUN: a key of sae_runs, e.g. A_4096, B_4096, random_4096)

Per-token log-likelihood-ratio proxies (monosemantic/proxies.py for the exact definitions), computed on the
first analysis.max_points validation points of the run's model; for every SAE feature and every MLP neuron
the Pearson r with each proxy; the best feature and best neuron with their specificity and sensitivity.
Writes metrics/analysis/proxies_RUN.json (headline: proxy_pearson, proxy_pearson_best_neuron; suffixed
_RUN for runs other than analysis.run) and paper_figures/fig2_proxy_{name}_RUN.png.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from monosemantic import analysis_figures as figs  # noqa: E402
from monosemantic import proxies as px  # noqa: E402
from monosemantic.config import load_params  # noqa: E402
from monosemantic.config import ConfigError  # noqa: E402
from monosemantic.sae import SparseAutoencoder  # noqa: E402
from monosemantic.store import ActivationStore, StoreError  # noqa: E402
from monosemantic.tokenizer import TokenizerError  # noqa: E402
from monosemantic.utils import fail, write_json  # noqa: E402


def main(name: str) -> None:
    t0 = time.perf_counter()
    try:
        params = load_params()
        cfg = params.analysis
        if name not in params.sae_runs:
            fail(f"{name!r} is not in params.yaml sae_runs ({', '.join(params.sae_runs)})")
        run = params.sae_runs[name]
        store = ActivationStore(f"artifacts/activations/{run.model}/val")
        sae = SparseAutoencoder.load(f"artifacts/sae/{name}").eval()
        tok, val, llr = px.load_proxy_tables()
    except (ConfigError, StoreError, TokenizerError, FileNotFoundError) as e:
        fail(str(e))
    torch.set_grad_enabled(False)
    n = min(cfg.max_points, store.n_points)
    tids = px.point_tokens(store.index(), val.tokens, n)
    names = list(px.PROXY_NAMES)
    points = np.stack([px.proxy_value(llr[k])[tids] for k in names], axis=1).astype(np.float32)
    res = px.match_proxies(store, points, {"features": sae.encode, "neurons": lambda x: x}, n, cfg.batch_size)

    out = {"run": name, "model": run.model, "n_points": n, "proxies": {}}
    best_f, best_n = [], []
    for j, k in enumerate(names):
        f, u = px.best_match(res["features"], j), px.best_match(res["neurons"], j)
        best_f.append(f["index"])
        best_n.append(u["index"])
        out["proxies"][k] = {
            "proxy_positive_tokens": int(res["features"]["n_pos"][j]),
            "proxy_positive_vocab": int((llr[k] > 0).sum()),
            "feature": f, "neuron": u,
            "features_pearson_top5": [round(float(v), 4) for v in np.sort(res["features"]["pearson"][:, j])[::-1][:5]],
        }
    # Activations of the chosen units on every point, for the figures.
    fa = px.unit_activations(store, n, px.feature_columns(sae, best_f), cfg.batch_size)
    na = px.unit_activations(store, n, lambda x: x[:, best_n], cfg.batch_size)
    for j, k in enumerate(names):
        units = {"feature": (f"{name} feature {best_f[j]} (r = {out['proxies'][k]['feature']['pearson']:.2f})", fa[:, j]),
                 "neuron": (f"best neuron {best_n[j]} (r = {out['proxies'][k]['neuron']['pearson']:.2f})", na[:, j])}
        figs.proxy_histograms(k, units, llr[k][tids], f"paper_figures/fig2_proxy_{k}_{name}.png")
    out["headline"] = {
        px.headline_key("proxy_pearson", name, cfg.run): {k: round(out["proxies"][k]["feature"]["pearson"], 4) for k in names},
        px.headline_key("proxy_pearson_best_neuron", name, cfg.run): {
            k: round(out["proxies"][k]["neuron"]["pearson"], 4) for k in names},
    }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(f"metrics/analysis/proxies_{name}.json", out)
    for k in names:
        p = out["proxies"][k]
        print(f"{name} {k:>7}: feature {p['feature']['index']:>5} r={p['feature']['pearson']:.3f} "
              f"spec={p['feature']['specificity']:.2f} sens={p['feature']['sensitivity']:.2f} | neuron "
              f"{p['neuron']['index']:>3} r={p['neuron']['pearson']:.3f} spec={p['neuron']['specificity']:.2f}")
    print(f"done in {out['seconds']}s")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: python stages/proxies.py RUN_NAME")
    main(sys.argv[1])
