"""Stage splitting: feature splitting across dictionary sizes (A/0 ... A/1).

    python -m stages.splitting

For the dictionaries analysis.splitting_runs (same model, growing size): decoder cosine similarity of each
feature with its nearest feature in the next smaller dictionary; a UMAP co-embedding of all their decoder
vectors (cosine metric, n_neighbors analysis.umap_n_neighbors, random_state analysis.umap_seed); and the
base64 feature family per size, counted by the rule of monosemantic/analysis/splitting.py: at least
analysis.base64_min_specificity of the feature's activation mass on base64-proxy-positive tokens and at least
analysis.base64_min_active firing tokens among the first analysis.max_points validation points. Writes
metrics/analysis/splitting.json (headline base64_features_by_size), artifacts/analysis/umap.npz,
paper_figures/fig1_umap.png and fig9_feature_splitting.png.
"""

import numpy as np

from monosemantic.core import paths
from monosemantic.analysis import splitting
from monosemantic.analysis.inputs import load_sae
from monosemantic.analysis.proxies import load_proxy_tables
from monosemantic.figures import analysis as figs
from monosemantic.lm.store import ActivationStore
from monosemantic.core.runner import stage
from monosemantic.core.utils import atomic_path, write_json


@stage()
def main(params) -> None:
    runs, model = splitting.splitting_model({r: params.sae_run(r) for r in params.analysis.splitting_runs})
    store = ActivationStore(paths.activations_dir(model, "val"))
    saes = {r: load_sae(paths.sae_dir(r)) for r in runs}
    _, val, llr = load_proxy_tables(paths.TOKENS, paths.TOKENIZER, names=["base64"])
    out, fig = splitting.analyse(saes, {r: params.sae_runs[r].n_features for r in runs}, store, val, llr["base64"],
                          params.analysis)
    with atomic_path(paths.analysis_dir("umap.npz")) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, embedding=fig["embedding"], group=fig["groups"], runs=np.array(runs))
    figs.umap_figure(fig["embedding"], fig["groups"], runs, paths.figure("fig1_umap.png"),
                     title=f"UMAP co-embedding of the decoder vectors of {', '.join(runs)} (paper Fig. 1)")
    figs.splitting_figure(fig["embedding"], fig["groups"], runs, fig["family"], fig["parents"], fig["offsets"],
                          fig["counts"], paths.figure("fig9_feature_splitting.png"))
    write_json(paths.analysis_metrics("splitting"), out)
    print(f"base64 features by size: {out['headline']['base64_features_by_size']}; parent cosine medians: "
          f"{ {k: round(v['median_max_cosine'], 3) for k, v in out['pairs'].items()} } ({out['seconds']})")


if __name__ == "__main__":
    main.run()
