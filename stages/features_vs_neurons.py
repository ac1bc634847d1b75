"""Stage features_vs_neurons [RUN]: the paper's feature-vs-neuron comparison for the second training's dictionary.

    python -m stages.features_vs_neurons [RUN]     (default: analysis.compare_run, the paper's B/1)

Stage neurons_vs_features makes it for analysis.run (A/1) beside Fig. 5. This makes the same comparison
(monosemantic/analysis/superposition.py, features_vs_neurons: the four proxies, on the held-out points as they
come and weighted to the training mix) for RUN, so that the summary gives the verdict over both trainings of the
default profile, A/1 and B/1 (headline.features_vs_neurons_across_trainings.pipeline, monosemantic/sae/sweep.py
pipeline_verdicts). Writes metrics/analysis/features_vs_neurons_RUN.json (no headline block of its own).
"""

import json
import time

from monosemantic.core import paths
from monosemantic.analysis.inputs import load_dictionary, load_feature_counts
from monosemantic.analysis.proxies import load_proxy_tables
from monosemantic.analysis.superposition import features_vs_neurons, headline
from monosemantic.data.mix import mix_shares
from monosemantic.data.tokenizer import load_stream
from monosemantic.core.runner import stage
from monosemantic.core.utils import write_json


@stage("[RUN]")
def main(params, name: str | None = None) -> None:
    t0 = time.perf_counter()
    name = name or params.analysis.compare_run
    run, cfg = params.sae_run(name), params.analysis
    dictionary = load_dictionary(name, run, paths.activations_dir(run.model, "val"), paths.sae_dir(name))
    _, val, llr = load_proxy_tables(paths.TOKENS, paths.TOKENIZER)
    shares = mix_shares(load_stream(paths.TOKENS, "train"), params.transformer.mix)  # the training mix
    fvn = features_vs_neurons(dictionary.store, dictionary.sae, val, llr,
                              min(cfg.max_points, dictionary.store.n_points), cfg.batch_size,
                              load_feature_counts(paths.sae_dir(name)), shares)
    out = {"run": name, "model": run.model, "features_vs_neurons": fvn,
           "seconds": round(time.perf_counter() - t0, 1)}
    write_json(paths.analysis_metrics(f"features_vs_neurons_{name}"), out)
    print(json.dumps({"features_vs_neurons_at_training_mix": headline(fvn["at_training_mix"])}, indent=1),
          f"({out['seconds']}s)")


if __name__ == "__main__":
    main.run()
