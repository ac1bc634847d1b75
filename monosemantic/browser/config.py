"""Loading the feature browser's parameters (params.yaml section `browser`, schema: analysis_config.BrowserConfig).

`load_browser(path, run)` loads params.yaml strictly and checks that `run` (the dictionary to browse, when
given on the command line instead of browser.run) is a run of the sweep.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from monosemantic.core.config import BrowserConfig, Params, load_params

__all__ = ["BrowserConfig", "load_browser"]


def load_browser(path: str | Path = "params.yaml", run: str | None = None) -> tuple[Params, BrowserConfig]:
    """(params, browser config); with `run`, the config browses that dictionary instead of browser.run
    (a ConfigError when it is not in sae_runs)."""
    params = load_params(path)
    cfg = params.browser
    if run is not None:
        params.sae_run(run)
        cfg = dataclasses.replace(cfg, run=run)
    return params, cfg
