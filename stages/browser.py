"""Stage browser [RUN]: the static feature browser of one dictionary (the paper's A/1 interface).

    python stages/browser.py [RUN]                (default: browser.run, e.g. A_4096)
    python stages/browser.py [RUN] --screenshot   (also paper_figures/browser_feature.png; needs Chromium)

Writes browser/RUN/ (index.html + browser.js/css + data/*.js; open browser/RUN/index.html in any browser,
no server or network needed). With --screenshot (not part of the DVC stage, so that `dvc repro` gives the same
outputs on a machine without Chromium) it also writes paper_figures/browser_feature.png, a headless-Chromium
screenshot of one feature page (browser.screenshot_feature; -1: the best match of the strongest proxy), and
stops with one message when Chromium is missing. What is shown and how it is computed: monosemantic/browser.py.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from monosemantic import browser  # noqa: E402
from monosemantic.browser_config import load_browser  # noqa: E402
from monosemantic.config import ConfigError  # noqa: E402
from monosemantic.store import StoreError  # noqa: E402
from monosemantic.tokenizer import TokenizerError  # noqa: E402
from monosemantic.utils import fail  # noqa: E402

SCREENSHOT = Path("paper_figures/browser_feature.png")


def main(name: str | None, shoot: bool = False) -> None:
    t0 = time.perf_counter()
    chromium = browser.find_chromium()
    if shoot and chromium is None:  # before any compute
        fail("--screenshot needs Chromium, which is not installed: apt-get install -y chromium chromium-driver")
    try:
        params, cfg = load_browser("params.yaml", name)
        name = name or cfg.run
        torch.set_num_threads(cfg.threads)
        torch.set_grad_enabled(False)
        inputs = browser.load_inputs(".", name, params, cfg)
    except (ConfigError, StoreError, TokenizerError, FileNotFoundError) as e:
        fail(str(e))
    print(f"browser {name}: splitting {[p.name for p in inputs.split]}, "
          f"universality {inputs.compare.name if inputs.compare else None}")
    data = browser.gather(inputs, cfg)
    out = Path("browser") / name
    sizes = browser.write_site(data, out)
    feature = cfg.screenshot_feature if cfg.screenshot_feature >= 0 else browser.screenshot_feature(data["index"], data["features"])
    if feature >= len(data["features"]):
        fail(f"browser.screenshot_feature: {feature} is not a feature of {name} ({len(data['features'])} features)")
    if shoot:
        browser.screenshot(out, feature, SCREENSHOT, chromium=chromium)
    print(f"browser {name}: {sizes['files']} files, {sizes['bytes'] / 1e6:.1f} MB in {out}/ "
          f"(open {out}/index.html); "
          + (f"screenshot of feature {feature} in {SCREENSHOT}; " if shoot else
             f"screenshot of feature {feature}: python stages/browser.py {name} --screenshot; ")
          + f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--screenshot"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        fail("usage: python stages/browser.py [RUN] [--screenshot]")
    main(args[0] if args else None, shoot="--screenshot" in sys.argv[1:])
