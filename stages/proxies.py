"""Stage proxies RUN: the features and neurons that best match the Arabic, Hebrew, DNA and base64 proxies.

    python -m stages.proxies RUN        (RUN: a key of sae_runs, e.g. A_4096, B_4096, random_4096)

Per-token log-likelihood-ratio proxies (monosemantic/analysis/proxies.py for the exact definitions), computed on the
first analysis.max_points validation points of the run's model; for every SAE feature and every MLP neuron
the Pearson r with each proxy; the best feature and best neuron with their specificity and sensitivity.
Writes metrics/analysis/proxies_RUN.json (headline: proxy_pearson, proxy_pearson_best_neuron; suffixed
_RUN for runs other than analysis.run) and paper_figures/fig2_proxy_{name}_RUN.png.
"""

import time

from monosemantic.core import paths
from monosemantic.analysis import proxies as px
from monosemantic.analysis.inputs import load_dictionary
from monosemantic.figures import analysis as figs
from monosemantic.core.runner import stage
from monosemantic.core.utils import write_json


@stage("RUN")
def main(params, name: str) -> None:
    t0 = time.perf_counter()
    run = params.sae_run(name)
    dictionary = load_dictionary(name, run, paths.activations_dir(run.model, "val"), paths.sae_dir(name))
    _, val, llr = px.load_proxy_tables(paths.TOKENS, paths.TOKENIZER)
    out, histograms = px.analyse(dictionary, val, llr, params.analysis)
    for k, (units, llr_points) in histograms.items():
        figs.proxy_histograms(k, units, llr_points, paths.figure(f"fig2_proxy_{k}_{name}.png"))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(paths.analysis_metrics(f"proxies_{name}"), out)
    print(px.format_matches(out))
    print(f"done in {out['seconds']}s")


if __name__ == "__main__":
    main.run()
