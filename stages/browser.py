"""Stage browser [RUN]: the static feature browser of one dictionary (the paper's A/1 interface).

    python -m stages.browser [RUN]                (default: browser.run, e.g. A_4096)
    python -m stages.browser [RUN] --screenshot   (also paper_figures/browser_feature.png; needs Chromium)

Writes browser/RUN/ (index.html + browser.js/css + data/*.js; open browser/RUN/index.html in any browser,
no server or network needed). With --screenshot (not part of the DVC stage, so that `dvc repro` gives the same
outputs on a machine without Chromium) it also writes paper_figures/browser_feature.png, a headless-Chromium
screenshot of one feature page (browser.screenshot_feature; -1: the best match of the strongest proxy), and
stops with one message when Chromium is missing. What is shown and how it is computed:
monosemantic/browser/data.py; the site: monosemantic/browser/site.py. The feature automata (paper Fig. 11)
are read from the interpretability stage's metrics/analysis/interpretability.json and listed on the pages of
their states, when that stage analysed this dictionary (automata.run = RUN); otherwise none are shown.
"""

import dataclasses
import sys
import time
from typing import Callable

import torch

from monosemantic.core import paths
from monosemantic.analysis import proxies as px
from monosemantic.analysis.inputs import load_sae
from monosemantic.browser import screenshot as shot
from monosemantic.browser.data import gather
from monosemantic.browser.inputs import BrowserInputs, Partner, load_automata, related_runs, same_points
from monosemantic.browser.site import site_data, write_site
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import ActivationStore
from monosemantic.core.runner import stage
from monosemantic.core.utils import torch_threads

SCREENSHOT = "--screenshot"
SCREENSHOT_PNG = paths.figure("browser_feature.png")


def load_split_partners(names: list[str], log: Callable[[str], None]) -> list[Partner]:
    """The other sizes of the browsed dictionary (splitting panel); one whose artifacts are missing is left out."""
    split = []
    for name in names:
        sae_dir = paths.sae_dir(name)
        if not (sae_dir / "cfg.json").exists():
            log(f"  warning: {sae_dir} missing; {name} left out of the splitting panel")
            continue
        split.append(Partner(name, load_sae(sae_dir)))
    return split


def load_compare_partner(params, cfg, model: str, store, name: str | None,
                         log: Callable[[str], None]) -> Partner | None:
    """The universality partner `name` with its model's val store (None when there is none, its artifacts are
    missing or its store holds other tokens than `store`, the val store of the browsed run's `model`)."""
    if not name:
        return None
    partner_model = params.sae_run(name).model
    sae_dir = paths.sae_dir(name)
    partner_store_dir = paths.activations_dir(partner_model, "val")
    if not ((sae_dir / "cfg.json").exists() and (partner_store_dir / "manifest.json").exists()):
        log(f"  warning: {sae_dir} or {partner_store_dir} missing; universality left out")
        return None
    partner_store = ActivationStore(partner_store_dir)
    n = min(cfg.universality_points, cfg.max_points, store.n_points, partner_store.n_points)
    if not same_points(store, partner_store, n):
        log(f"  warning: the val stores of {model} and {partner_model} hold different tokens; "
            "universality left out")
        return None
    return Partner(name, load_sae(sae_dir), partner_store)


def load_inputs(params, cfg, log: Callable[[str], None] = print) -> BrowserInputs:
    """Everything `gather` needs for dictionary cfg.run (a ConfigError when it is not in sae_runs), from the
    artifacts (and the automata from metrics/analysis/interpretability.json when they are cfg.run's); a
    partner whose artifacts are missing is left out with a warning."""
    name = cfg.run
    run = params.sae_run(name)
    store = ActivationStore(paths.activations_dir(run.model, "val"))
    tok, val, llr = px.load_proxy_tables(paths.TOKENS, paths.TOKENIZER)
    compare_name, split_names = related_runs(name, params.sae_runs, cfg)
    split = load_split_partners(split_names, log)
    compare = load_compare_partner(params, cfg, run.model, store, compare_name, log)
    return BrowserInputs(
        run=name, run_info={"model": run.model, "n_features": run.n_features, "architecture": run.architecture,
                            "knob": run.settings.knob, **dataclasses.asdict(run.settings)},
        sae=load_sae(paths.sae_dir(name)),
        model=Transformer.load(paths.model_dir(run.model)), store=store, index=store.index(),
        tokens=val.tokens, doc_subset=val.doc_subset, subsets=val.subsets, tok=tok, llr=llr,
        split=split, compare=compare, ultralow_density=params.evaluate.ultralow_density,
        dense_density=params.evaluate.dense_density,
        automata=load_automata(paths.analysis_metrics("interpretability"), name))


def build(params, name: str | None, with_screenshot: bool) -> None:
    t0 = time.perf_counter()
    chromium = shot.find_chromium()
    if with_screenshot and chromium is None:  # before any compute
        raise shot.ScreenshotError("--screenshot needs Chromium, which is not installed: "
                                   "apt-get install -y chromium chromium-driver")
    cfg = dataclasses.replace(params.browser, run=name) if name else params.browser
    with torch_threads(cfg.threads), torch.no_grad():
        inputs = load_inputs(params, cfg)
        print(f"browser {cfg.run}: splitting {[p.name for p in inputs.split]}, "
              f"universality {inputs.compare.name if inputs.compare else None}, {len(inputs.automata)} automata")
        data = site_data(inputs, gather(inputs, cfg), cfg)
    out = paths.browser_dir(cfg.run)
    sizes = write_site(data, out)
    feature = shot.feature_to_show(data["index"], cfg.screenshot_feature)
    if with_screenshot:
        shot.screenshot(out, feature, SCREENSHOT_PNG, chromium=chromium)
    print(f"browser {cfg.run}: {sizes['files']} files, {sizes['bytes'] / 1e6:.1f} MB in {out}/ "
          f"(open {out}/index.html); "
          + (f"screenshot of feature {feature} in {SCREENSHOT_PNG}; " if with_screenshot else
             f"screenshot of feature {feature}: python -m stages.browser {cfg.run} {SCREENSHOT}; ")
          + f"{time.perf_counter() - t0:.1f} s")


@stage("[RUN]")
def main(params, name: str | None = None) -> None:
    build(params, name, with_screenshot=False)


@stage("[RUN]")
def main_with_screenshot(params, name: str | None = None) -> None:
    build(params, name, with_screenshot=True)


if __name__ == "__main__":
    argv = sys.argv[1:]
    (main_with_screenshot if SCREENSHOT in argv else main).run([a for a in argv if a != SCREENSHOT])
