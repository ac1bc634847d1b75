"""The feature browser in a real browser: headless Chromium driven by chromedriver (W3C WebDriver over HTTP,
standard library only) opens the index from file://, searches, opens a feature page and checks what is shown.

Needs the Debian packages chromium and chromium-driver (installed by .ci/run); skipped without them.
"""

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from monosemantic.browser import data as bd
from monosemantic.browser import site as bs
from monosemantic.browser.screenshot import CHROMIUM_FLAGS, find_chromium, screenshot
from tests.browser_fixtures import synthetic_inputs, tiny_config

CHROMIUM = find_chromium()
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                                reason="needs chromium and chromedriver: apt-get install -y chromium chromium-driver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # W3C WebDriver element key
CFG = tiny_config()


class WebDriver:
    """Just enough of the W3C WebDriver protocol."""

    def __init__(self, port: int, user_data_dir: str):
        self.base = f"http://127.0.0.1:{port}"
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "--window-size=1280,1000",
                     "--allow-file-access-from-files"]}}}}
        self.sid = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body=None):
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"webdriver {method} {path}: {e.read().decode()[:500]}") from None

    def cmd(self, method: str, path: str, body=None):
        return self._call(method, f"/session/{self.sid}{path}", body)

    def get(self, url: str):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script: str, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css: str, text: str):
        self.cmd("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css: str):
        self.cmd("POST", f"/element/{self.find(css)}/click")

    def text(self, css: str) -> str:
        return self.cmd("GET", f"/element/{self.find(css)}/text")

    def wait(self, script: str, timeout: float = 20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.js(script)
            if v:
                return v
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for: {script}")

    def quit(self):
        try:
            self.cmd("DELETE", "")
        except Exception:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    torch.set_num_threads(1)
    inputs = synthetic_inputs(seed=0)
    data = bs.site_data(inputs, bd.gather(inputs, CFG, log=lambda s: None), CFG)
    out = tmp_path_factory.mktemp("browser") / "T_tiny"
    bs.write_site(data, out)
    return out, data


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    port = free_port()
    proc = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
                    if json.loads(r.read())["value"]["ready"]:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > end or proc.poll() is not None:
                pytest.fail("chromedriver did not start")
            time.sleep(0.1)
        d = WebDriver(port, str(tmp_path_factory.mktemp("chromium-profile")))
        yield d
        d.quit()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def shown(label: str) -> str:
    return label.replace("\n", "\u21b5").replace("\t", "\u21e5").replace("\r", "\u240d")


def visible_rows(driver) -> list[int]:
    return driver.js("return Array.from(document.querySelectorAll('#rows tr')).map(r => +r.dataset.feature);")


def test_search_and_feature_page(site, driver):
    out, data = site
    idx, pages = data["index"], data["features"]
    F = len(idx["density"])
    driver.get((out / "index.html").as_uri())
    driver.wait("return document.querySelectorAll('#rows tr').length > 0")
    assert driver.text("#count") == f"{F} of {F} features"
    assert sorted(visible_rows(driver)) == list(range(F))
    dead = [i for i in range(F) if idx["cls"][i] == 1]
    assert dead and all(driver.js(f"return document.querySelector('tr[data-feature=\"{i}\"] .badge.dead') !== null")
                        for i in dead)

    # search by token text: the top activating token of the densest feature
    target = int(np.argmax(idx["density"]))
    word = idx["vocab"][idx["act_tokens"][target][0]].strip().lower()
    assert word
    driver.type("#search", word)
    expected = [i for i in range(F) if any(word in idx["vocab"][t].lower()
                                           for t in idx["act_tokens"][i] + idx["logit_tokens"][i])
                or word in (idx["proxies"][idx["proxy"][i]] if idx["proxy"][i] >= 0 else "")
                or word in idx["subsets"][idx["subset"][i]].lower() or word in idx["classes"][idx["cls"][i]]]
    driver.wait(f"return document.getElementById('count').textContent.startsWith('{len(expected)} of')")
    rows = visible_rows(driver)
    assert sorted(rows) == sorted(expected) and target in rows and len(rows) < F

    # search by feature id, then open that feature from the list
    driver.js("const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input'));")
    driver.type("#search", str(target))
    driver.wait(f"return document.querySelector('#rows tr') && document.querySelector('#rows tr').dataset.feature === '{target}'")
    driver.click(f"tr[data-feature='{target}'] a.feature-link")
    driver.wait("return document.getElementById('feature-title') !== null")
    assert location_hash(driver) == f"#f={target}"
    assert driver.text("#feature-title").startswith(f"T_tiny / feature {target}")
    page = pages[target]
    n_ctx = sum(len(g[1]) for g in page["ex"])
    assert n_ctx == CFG.top_examples + CFG.n_intervals * CFG.per_interval
    assert driver.js("return document.querySelectorAll('#contexts .context').length") == n_ctx
    headings = driver.js("return Array.from(document.querySelectorAll('#contexts .group h3')).map(h => h.textContent)")
    assert headings[0] == "Top activations" and headings[1].startswith("Interval 1:") and len(headings) == 4
    # the top logit token and the first context's example token
    top_logit = idx["vocab"][page["lt"][0][0]]
    assert driver.js("return document.querySelector('#logits-top li .tokchip').textContent") == shown(top_logit)
    first = page["ex"][0][1][0]
    ids = bs.b64_decode(first[0], idx["vocab_width"])
    ov = first[5] or {}
    center_text = ov.get(str(first[2]), idx["vocab"][ids[first[2]]])
    assert driver.js("return document.querySelector('#contexts .context .tok.center').textContent") == shown(center_text)
    # tokens are shaded by activation: the example token is shaded, and more tokens than zero-activation ones
    assert driver.js("return document.querySelector('#contexts .context .tok.center').style.backgroundColor") != ""
    assert driver.text("#feature-stats").startswith("density")
    assert driver.js("return document.querySelectorAll('#universality li').length") == CFG.similar_per_run

    # a dead feature's page says so; back to the index keeps working
    driver.get((out / "index.html").as_uri() + f"#f={dead[0]}")
    driver.wait("return document.getElementById('feature-title') !== null && "
                f"document.getElementById('feature-title').textContent.includes('feature {dead[0]}')")
    assert "dead" in driver.text("#feature-title")
    assert driver.js("return document.querySelectorAll('#contexts .context').length") == 0
    driver.click("#back")
    driver.wait("return document.getElementById('search') !== null")
    assert driver.js("return document.querySelectorAll('.error').length") == 0


def test_sort_by_density(site, driver):
    out, data = site
    idx = data["index"]
    driver.get((out / "index.html").as_uri() + "#sort=density&dir=desc")
    driver.wait("return document.querySelectorAll('#rows tr').length > 0")
    rows = visible_rows(driver)
    dens = [idx["density"][i] for i in rows]
    assert dens == sorted(dens, reverse=True) and len(rows) == len(idx["density"])
    driver.click("th[data-sort='max']")
    driver.wait("return location.hash.includes('sort=max')")
    rows = visible_rows(driver)
    mx = [idx["max"][i] for i in rows]
    assert mx == sorted(mx, reverse=True)


def test_screenshot(site, tmp_path):
    out, data = site
    png = tmp_path / "shot.png"
    screenshot(out, 0, png, size=(800, 900))
    b = png.read_bytes()
    assert b[:8] == b"\x89PNG\r\n\x1a\n" and len(b) > 10_000


def location_hash(driver) -> str:
    return driver.js("return location.hash")
