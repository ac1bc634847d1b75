"""Stage logit_weights: each feature's effect on the logits, and feature ablation for the proxy features.

    python -m stages.logit_weights [RUN]      (default: analysis.run, the paper's A/1)

Logit weights W_U · diag(γ/σ̄) · C · W_out · d_i for every feature (monosemantic/analysis/logit_weights.py; σ̄ the
mean LayerNorm scale of the final residual stream on 32 validation contexts), the top and bottom analysis.top_k
tokens of every feature (artifacts/analysis/logit_weights_RUN/top_tokens.json), and for the four proxy
features (metrics/analysis/proxies_RUN.json) the share of their top tokens that are proxy tokens, against
the same share for the best neurons. Ablation: for each proxy feature, the validation context where it is
most active among the sampled points; the feature's activation and the change in each next-token
log-likelihood when x − f_i·d_i replaces the MLP activations. Writes metrics/analysis/logit_weights_RUN.json,
paper_figures/fig3_logit_weights.png and fig4_ablation.png.
"""

import time

from monosemantic.core import paths
from monosemantic.analysis import logit_weights as lw
from monosemantic.analysis.inputs import load_dictionary, load_proxy_matches
from monosemantic.analysis.proxies import load_proxy_tables
from monosemantic.figures import analysis as figs
from monosemantic.core.runner import stage
from monosemantic.core.utils import write_json


@stage("[RUN]")
def main(params, name: str | None = None) -> None:
    t0 = time.perf_counter()
    name = name or params.analysis.run
    proxies = load_proxy_matches(paths.analysis_metrics(f"proxies_{name}"), name)
    run = params.sae_run(name)
    dictionary = load_dictionary(name, run, paths.activations_dir(run.model, "val"), paths.sae_dir(name),
                                 paths.model_dir(run.model))
    tok, val, llr = load_proxy_tables(paths.TOKENS, paths.TOKENIZER)
    out, top_tokens, panels, ablation_panels = lw.analyse(dictionary, proxies, tok, val, llr, params.analysis)
    figs.logit_weight_histograms(panels, paths.figure("fig3_logit_weights.png"))
    figs.ablation_figure(ablation_panels, paths.figure("fig4_ablation.png"))
    write_json(paths.analysis_dir(f"logit_weights_{name}") / "top_tokens.json", top_tokens)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(paths.analysis_metrics(f"logit_weights_{name}"), out)
    print(lw.format_analysis(out))
    print(f"done in {out['seconds']}s")


if __name__ == "__main__":
    main.run()
