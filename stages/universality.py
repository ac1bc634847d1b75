"""Stage universality RUN_A RUN_B: max activation correlation of each unit of A with any unit of B.

    python -m stages.universality A_4096 B_4096          (the paper's A/1 vs B/1)
    python -m stages.universality A_4096 random_4096     (random-transformer baseline)

Over the first analysis.max_points validation tokens (the same tokens in every model's store): for each SAE
feature of RUN_A the maximum Pearson correlation with any feature of RUN_B, and the same for the MLP neurons
of the two models (monosemantic/analysis/universality.py). For the features, also the correlation of the logit
weights of each A feature with those of its best-matching B feature (scatter, paper Fig. 6), and the max
correlation of A's proxy features (metrics/analysis/proxies_RUN_A.json). Medians (the headline) are over
the units of A that fire on at least analysis.universality_min_active of those tokens; *_all_fired gives
them over every unit that fired at least once. Writes
metrics/analysis/universality_RUN_A_RUN_B.json (headline universality_median_max_corr{,_RUN_B}),
paper_figures/fig10_universality_RUN_A_RUN_B.png and fig6_universality_scatter_RUN_A_RUN_B.png.
"""

from monosemantic.core import paths
from monosemantic.analysis import universality as uv
from monosemantic.analysis.inputs import Dictionary, load_dictionary, load_proxy_matches
from monosemantic.data.tokenizer import load_stream
from monosemantic.figures import analysis as figs
from monosemantic.core.runner import stage
from monosemantic.core.utils import write_json


def load_dictionary_with_model(params, name: str) -> Dictionary:
    run = params.sae_run(name)
    return load_dictionary(name, run, paths.activations_dir(run.model, "val"), paths.sae_dir(name),
                           paths.model_dir(run.model))


@stage("RUN_A", "RUN_B")
def main(params, name_a: str, name_b: str) -> None:
    a, b = (load_dictionary_with_model(params, name) for name in (name_a, name_b))
    val = load_stream(paths.TOKENS, "val")
    proxies = load_proxy_matches(paths.analysis_metrics(f"proxies_{name_a}"), name_a, required=False)
    out, fig = uv.analyse(a, b, val, params.analysis, proxies)
    labels, suffix = (name_a, name_b), f"_{name_a}_{name_b}"
    figs.universality_histogram(fig["features"], fig["neurons"], paths.figure(f"fig10_universality{suffix}.png"),
                                labels)
    figs.universality_scatter(fig["features"], fig["logit_corr"],
                              paths.figure(f"fig6_universality_scatter{suffix}.png"), labels, fig["highlight"])
    write_json(paths.analysis_metrics(f"universality{suffix}"), out)
    print(f"{name_a} vs {name_b}: median max corr features {out['features']['median']:.3f}, "
          f"neurons {out['neurons']['median']:.3f} ({out['seconds']['total']}s)")


if __name__ == "__main__":
    main.run()
