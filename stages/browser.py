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

import torch

from monosemantic import paths
from monosemantic.browser import screenshot as shot
from monosemantic.browser.data import gather
from monosemantic.browser.inputs import load_inputs
from monosemantic.browser.site import site_data, write_site
from monosemantic.runner import stage

SCREENSHOT = "--screenshot"
SCREENSHOT_PNG = paths.figure("browser_feature.png")


def build(params, name: str | None, with_screenshot: bool) -> None:
    t0 = time.perf_counter()
    chromium = shot.find_chromium()
    if with_screenshot and chromium is None:  # before any compute
        raise shot.ScreenshotError("--screenshot needs Chromium, which is not installed: "
                                   "apt-get install -y chromium chromium-driver")
    cfg = dataclasses.replace(params.browser, run=name) if name else params.browser
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with torch.no_grad():
            inputs = load_inputs(params, cfg)
            print(f"browser {cfg.run}: splitting {[p.name for p in inputs.split]}, "
                  f"universality {inputs.compare.name if inputs.compare else None}, "
                  f"{len(inputs.automata)} automata")
            data = site_data(inputs, gather(inputs, cfg), cfg)
    finally:
        torch.set_num_threads(threads)  # as it was (the stage also runs in-process in the tests)
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
