"""Loading the feature browser's parameters (params.yaml section `browser`, schema: config.BrowserConfig).

`load_browser(path, run)` loads params.yaml strictly and checks that `run` (the dictionary to browse, when
given on the command line instead of browser.run) is a run of the sweep.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .config import BrowserConfig, ConfigError, load_params

__all__ = ["BrowserConfig", "load_browser"]


def load_browser(path: str | Path = "params.yaml", run: str | None = None):
    """(params, browser config); with `run`, the config browses that dictionary instead of browser.run."""
    params = load_params(path)
    cfg = params.browser
    if run is not None:
        if run not in params.sae_runs:
            raise ConfigError(f"{path}: invalid parameters:\n  - browser: run {run!r} is not in sae_runs "
                              f"({', '.join(params.sae_runs)})")
        cfg = dataclasses.replace(cfg, run=run)
    return params, cfg
