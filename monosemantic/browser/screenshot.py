"""A screenshot of one feature page of the static browser, rendered by headless Chromium (the paper's A/1
interface as a figure: paper_figures/browser_feature.png). Not part of the DVC stage: a committed output must
not depend on whether the machine has Chromium (`python -m stages.browser RUN --screenshot`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from monosemantic.core.config import ConfigError
from monosemantic.core.utils import PipelineError, atomic_path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars")


class ScreenshotError(PipelineError, RuntimeError):
    """Chromium is missing or wrote no screenshot."""


def feature_to_show(index: dict, configured: int = -1) -> int:
    """The feature of the screenshot: `configured` (params.yaml browser.screenshot_feature) when it is >= 0,
    else one worth showing: the best match of the strongest proxy, else the alive feature with most mass on
    one subset (ties: highest density); 0 when every feature is dead."""
    F = len(index["cls"])
    if configured >= 0:
        if configured >= F:
            raise ConfigError(f"browser.screenshot_feature: {configured} is not a feature of {index['run']} "
                              f"({F} features)")
        return configured
    alive = [i for i in range(F) if index["cls"][i] != 1]
    if not alive:
        return 0
    if index["proxies"]:
        return max(alive, key=lambda i: (index["proxy_r"][i] or 0, index["density"][i]))
    return max(alive, key=lambda i: (index["subset_share"][i], index["density"][i]))


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome binary on PATH, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(site_dir: str | Path, feature: int, png: str | Path, size: tuple[int, int] = (1280, 1600),
               chromium: str | None = None, timeout: float = 120) -> None:
    """Render the page of `feature` with headless Chromium into png (atomic write)."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise ScreenshotError("--screenshot needs Chromium, which is not installed: "
                              "apt-get install -y chromium chromium-driver")
    url = (Path(site_dir).resolve() / "index.html").as_uri() + f"#f={feature}"
    with tempfile.TemporaryDirectory() as profile, atomic_path(png) as tmp:
        tmp_png = Path(profile) / "shot.png"
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}/user", f"--window-size={size[0]},{size[1]}",
               "--virtual-time-budget=10000", f"--screenshot={tmp_png}", url]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if not tmp_png.exists():
            raise ScreenshotError(f"chromium wrote no screenshot (exit {res.returncode}): {res.stderr[-2000:]}")
        shutil.copyfile(tmp_png, tmp)

