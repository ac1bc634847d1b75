"""Stage neurons_vs_features: the Arabic feature in the neuron basis, and how polysemantic its neurons are.

    python -m stages.neurons_vs_features [RUN] [PROXY]     (defaults: analysis.run, arabic)

The best-matching feature of PROXY (metrics/analysis/proxies_RUN.json): its decoder vector d_i over the 512
neurons (paper Fig. 5); how concentrated it is (how many neurons hold half of ‖d_i‖²); and for the
analysis.top_k neurons with the largest |d_i| entries, where their activation mass goes: its share over the
corpus subsets of the validation points (English, Code, Arabic, ...), the effective number of subsets
exp(entropy), the share on the proxy's tokens and the neuron's Pearson r with the proxy, against the same
numbers for the feature (monosemantic/analysis/neuron_basis.py). Writes metrics/analysis/neurons_vs_features.json and
paper_figures/fig5_neuron_basis.png. Also the paper's feature-vs-neuron comparison for all four proxies and the
decoder spread of every alive feature (monosemantic/analysis/superposition.py): headline "features_vs_neurons".
"""

import json
import time

from monosemantic.core import paths
from monosemantic.analysis import neuron_basis
from monosemantic.analysis.inputs import load_dictionary, load_feature_counts, load_proxy_matches
from monosemantic.analysis.proxies import HYPOTHESES, load_proxy_tables
from monosemantic.data.mix import mix_shares
from monosemantic.data.tokenizer import load_stream
from monosemantic.figures import analysis as figs
from monosemantic.core.runner import stage
from monosemantic.core.utils import PipelineError, write_json


@stage("[RUN]", "[PROXY]")
def main(params, name: str | None = None, proxy: str = "arabic") -> None:
    t0 = time.perf_counter()
    name = name or params.analysis.run
    if proxy not in HYPOTHESES:
        raise PipelineError(f"proxy {proxy!r} is not one of {', '.join(HYPOTHESES)}")
    match = load_proxy_matches(paths.analysis_metrics(f"proxies_{name}"), name)[proxy]
    run = params.sae_run(name)
    dictionary = load_dictionary(name, run, paths.activations_dir(run.model, "val"), paths.sae_dir(name))
    _, val, llr = load_proxy_tables(paths.TOKENS, paths.TOKENIZER)
    shares = mix_shares(load_stream(paths.TOKENS, "train"), params.transformer.mix)  # the training mix
    out, fig = neuron_basis.analyse(dictionary, proxy, match, val, llr, params.analysis,
                                    load_feature_counts(paths.sae_dir(name)), shares)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(paths.analysis_metrics("neurons_vs_features"), out)
    figs.neuron_basis_figure(fig["weights"], fig["top"], fig["mass"], fig["subsets"], fig["title"],
                             paths.figure("fig5_neuron_basis.png"))
    print(json.dumps(out["headline"], indent=1), f"({out['seconds']}s)")


if __name__ == "__main__":
    main.run()
