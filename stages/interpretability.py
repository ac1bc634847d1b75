"""Stage interpretability: LLM-free interpretability scores (paper Figs. 7 and 8), features vs neurons vs the
random-transformer features.

    python -m stages.interpretability

For interpretability.n_units units per group — features of analysis.run, neurons of analysis.model, features
of analysis.random_run — drawn with a seeded RNG among the units firing at least min_active times in both
splits: an explanation from the first explain_points points of the model's TRAIN activation store (the
explainer sees nothing else), a simulation score on the paper's held-out mix from the first score_points points
of the VAL store (plain and importance-weighted), the logit-side two-choice accuracy (promoted vs random
tokens, predicted from the explanation and train-stream bigram statistics), and the automatic rubric; plus a
blinded spot-check sheet for a person (artifacts/analysis/interpretability/spotcheck.md, spotcheck_scores.csv;
scripts/spotcheck_scores.py reads a filled sheet back into fig. 7). Exact definitions and what differs from the
paper's LLM explainer: monosemantic/analysis/interpretability.py; the study: interpretability_study.py.

Feature automata (paper Fig. 11; monosemantic/analysis/automata.py): every feature of analysis.run on automata_contexts
whole validation contexts; edges i -> j with lift and logit support >= automata_min_lift, confirmed by sampling
continuations with feature i pinned at its largest observed activation; the strongest self-loops and two-state
cycles.

Writes metrics/analysis/interpretability.json (headline: "interpretability", "automata"),
artifacts/analysis/interpretability/ (per-unit records and the spot-check), paper_figures/fig7_rubric.png,
fig8_autointerp.png and fig11_automata.png.
"""

import time

from tqdm import tqdm

from monosemantic.core import paths
from monosemantic.analysis import interpretability_study as study
from monosemantic.analysis.inputs import load_sae
from monosemantic.analysis.spotcheck import write_spotcheck
from monosemantic.data.tokenizer import load_stream, load_tokenizer
from monosemantic.figures import interpretability as ifig
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import ActivationStore
from monosemantic.core.runner import stage
from monosemantic.core.utils import torch_threads, write_json


def load_groups(analysis) -> dict[str, study.Group]:
    """The three groups of units (study.group_units) with their model's train and val stores."""
    groups = {}
    for group, run, model_name in study.group_units(analysis):
        stores = {s: ActivationStore(paths.activations_dir(model_name, s)) for s in study.SPLITS}
        groups[group] = study.Group(run, model_name, stores, Transformer.load(paths.model_dir(model_name)),
                                    load_sae(paths.sae_dir(run)) if run else None)
    return groups


@stage()
def main(params) -> None:
    t0 = time.perf_counter()
    tok = load_tokenizer(paths.TOKENIZER)
    streams = {s: load_stream(paths.TOKENS, s) for s in study.SPLITS}
    groups = load_groups(params.analysis)
    with torch_threads(params.interpretability.threads):
        out, records, spot, fig = study.analyse(params.interpretability, params.analysis, tok, streams, groups,
                                                progress=lambda it, group: tqdm(it, desc=group, mininterval=5))
    ifig.automata_figure(fig["automata"], paths.figure("fig11_automata.png"))
    folder = paths.analysis_dir("interpretability")
    folder.mkdir(parents=True, exist_ok=True)
    write_spotcheck(folder, spot, params.interpretability.seed)
    write_json(folder / "units.json", records)
    ifig.autointerp_figure(fig["scores"], fig["logit_acc"], paths.figure("fig8_autointerp.png"))
    ifig.rubric_figure(fig["rubric"], paths.figure("fig7_rubric.png"))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(paths.analysis_metrics("interpretability"), out)
    print(study.format_study(out))
    print(f"done in {out['seconds']}s")


if __name__ == "__main__":
    main.run()
