"""The feature browser (monosemantic/browser/: data.py gathers, site.py encodes and writes) on a tiny in-memory
input (tests/browser_fixtures.py)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml


from monosemantic.analysis import proxies as px
from monosemantic.analysis import universality as uv
from monosemantic.analysis.token_bytes import vocab_bytes
from monosemantic.browser import data as bd
from monosemantic.browser import site
from monosemantic.browser.config import load_browser
from monosemantic.browser.inputs import BrowserInputs, Partner, related_runs
from monosemantic.browser.screenshot import feature_to_show
from monosemantic.core.config import ConfigError, SAERun, profile_dict
from monosemantic.sae import metrics
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings
from tests.browser_fixtures import find_all, render_page, synthetic_automata, synthetic_inputs, tiny_config
from tools.profile import render

torch.set_num_threads(1)
CFG = tiny_config()


@pytest.fixture(scope="module")
def inputs():
    return synthetic_inputs(seed=0)


def build_site_data(inputs, cfg=CFG) -> dict:
    return site.site_data(inputs, bd.gather(inputs, cfg, log=lambda s: None), cfg)


@pytest.fixture(scope="module")
def feature_data(inputs):
    return bd.gather(inputs, CFG, log=lambda s: None)


@pytest.fixture(scope="module")
def gathered(inputs, feature_data):
    return site.site_data(inputs, feature_data, CFG)


def dense(inputs):
    with torch.no_grad():
        return inputs.sae.encode(inputs.store.read(0, inputs.store.n_points)).numpy()


def test_sparse_activations_match_dense(inputs):
    f = dense(inputs)
    acts = bd.sparse_activations(inputs.sae.encode, inputs.store, inputs.store.n_points, 37)
    assert acts.n_features == f.shape[1]
    for i in range(f.shape[1]):
        rows, vals = acts.feature(i)
        np.testing.assert_array_equal(rows, np.flatnonzero(f[:, i] > 0))
        np.testing.assert_allclose(vals, f[rows, i])


def test_top_examples_are_the_highest_activations(inputs):
    f = dense(inputs)
    acts = bd.sparse_activations(inputs.sae.encode, inputs.store, inputs.store.n_points, 100)
    groups = bd.select_examples(acts, 5, 3, 2, seed=1)
    for i, g in enumerate(groups):
        col = f[:, i]
        if not (col > 0).any():
            assert g == []
            continue
        label, rows, vals = g[0]
        assert label == "Top activations"
        expected = np.lexsort((np.arange(len(col)), -col))[:min(5, int((col > 0).sum()))]
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_allclose(vals, col[expected])
        assert np.all(np.diff(vals) <= 0)


def test_interval_sampling_covers_quantile_bins(inputs):
    acts = bd.sparse_activations(inputs.sae.encode, inputs.store, inputs.store.n_points, 100)
    g1 = bd.select_examples(acts, 5, 3, 2, seed=1)
    g2 = bd.select_examples(acts, 5, 3, 2, seed=1)
    for i, groups in enumerate(g1):
        _, vals = acts.feature(i)
        if vals.size == 0:
            continue
        v = np.sort(vals)[::-1]
        edges = np.linspace(0, v.size, 4).round().astype(int)
        intervals = groups[1:]
        assert len(intervals) == 3
        for j, (label, rows, iv) in enumerate(intervals):
            assert label.startswith(f"Interval {j + 1}:")
            assert len(rows) == min(2, edges[j + 1] - edges[j]) and len(set(rows.tolist())) == len(rows)
            assert np.all(iv <= v[edges[j]]) and np.all(iv >= v[edges[j + 1] - 1])
            assert np.all(np.diff(iv) <= 0)
        # seeded: the same draw twice
        for (_, r1, _), (_, r2, _) in zip(groups, g2[i]):
            np.testing.assert_array_equal(r1, r2)


def test_summary_marks_dead_and_classes(inputs, gathered):
    idx = gathered["index"]
    f = dense(inputs)
    density = (f > 0).mean(0)
    np.testing.assert_allclose(idx["density"], density, rtol=1e-3)
    np.testing.assert_allclose(idx["max"], f.max(0), rtol=1e-3)
    dead = np.flatnonzero(density == 0)
    assert len(dead) == 3 and [idx["cls"][i] for i in dead] == [1, 1, 1]
    assert all(idx["cls"][i] != 1 for i in range(len(density)) if density[i] > 0)
    for i in dead:
        page = gathered["features"][i]
        assert page["ex"] == [] and idx["act_tokens"][i] == [] and idx["uni_id"][i] == -1
    assert idx["log_density_hist"]["dead"] == 3
    # histogram counts every firing point; subset shares sum to one
    for i in np.flatnonzero(density > 0):
        assert sum(gathered["features"][i]["h"]) == int((f[:, i] > 0).sum())
        assert abs(sum(gathered["features"][i]["ss"]) - 1) < 1e-2


def test_contexts_rerun_reproduces_the_store(inputs, gathered):
    """The re-run window's activation at the example token is the activation the store gives that point,
    and the window's tokens are the stream's tokens around it."""
    f = dense(inputs)
    width = gathered["index"]["vocab_width"]
    acts = bd.sparse_activations(inputs.sae.encode, inputs.store, inputs.store.n_points, 100)
    groups = bd.select_examples(acts, CFG.top_examples, CFG.n_intervals, CFG.per_interval, CFG.seed)
    checked = 0
    for i, page in enumerate(gathered["features"]):
        for (label, ctxs), (label2, rows, vals) in zip(page["ex"], groups[i]):
            assert label == label2 and len(ctxs) == len(rows)
            for ctx, r, v in zip(ctxs, rows, vals):
                ids = site.b64_decode(ctx[0], width)
                c = ctx[2]
                t = int(inputs.index["token"][r])
                assert ids[c] == int(inputs.tokens[t])
                assert ids == [int(x) for x in inputs.tokens[t - c:t - c + len(ids)]]
                assert len(ids) <= CFG.window_before + 1 + CFG.window_after and len(ctx[1]) == len(ids)
                assert ctx[3] == pytest.approx(f[r, i], rel=1e-3)
                q = site.B64.index(ctx[1][c])
                assert q == max(1, round(63 * v / page["amax"])) or abs(q - 63 * v / page["amax"]) <= 1.01
                checked += 1
    assert checked > 50


def test_context_windows_direct(inputs):
    n_ctx = inputs.model.cfg.n_ctx
    rows = np.arange(20)
    pairs = np.stack([np.zeros(20, dtype=np.int64), rows], 1)
    ids, a, center = bd.context_windows(inputs.model, inputs.sae, inputs.tokens, pairs,
                                             inputs.index["context_start"], inputs.index["token"], 4, 2, n_ctx,
                                             batch_contexts=3)
    x = inputs.store.read(0, 20)
    with torch.no_grad():
        expected = inputs.sae.encode(x)[:, 0].numpy()
    np.testing.assert_allclose(a[np.arange(20), center], expected, rtol=1e-4, atol=1e-5)
    assert ids.shape == (20, 7)


def test_search_data_has_decoded_token_text(inputs, gathered):
    idx = gathered["index"]
    tok = inputs.tok
    for i in range(len(idx["vocab"])):
        b = vocab_bytes(tok)[i]
        if i and b and all(c < 0x80 for c in b):
            assert idx["vocab"][i] == tok.decode([i]) == b.decode()
    assert idx["vocab"][0] == site.EOT_LABEL
    f = dense(inputs)
    point_tok = inputs.tokens[inputs.index["token"]].astype(int)
    for i, toks in enumerate(idx["act_tokens"]):
        if toks:
            top = np.lexsort((np.arange(len(f)), -f[:, i]))[:CFG.top_examples]
            assert set(toks) <= set(point_tok[top].tolist())
            assert all(isinstance(idx["vocab"][t], str) for t in toks)
    assert " cat" in idx["vocab"] or "cat" in idx["vocab"]
    assert idx["proxies"] == ["arabic", "hebrew", "dna", "base64"] and len(idx["proxy_r"]) == 24


def test_window_texts_joins_split_characters():
    labels = ["<eot>", "a", "\\xd8", "\\xa7", "b"]
    vb = [b"", b"a", "ا".encode()[:1], "ا".encode()[1:], b"b"]
    assert site.window_texts(np.array([1, 2, 3, 4]), vb, labels) == ["a", "", "ا", "b"]
    assert site.window_texts(np.array([2, 0, 1]), vb, labels) == ["\ufffd", "<eot>", "a"]
    assert site.window_texts(np.array([3, 1]), vb, labels) == ["\ufffd", "a"]


def test_b64_round_trip():
    v = np.array([0, 1, 63, 64, 4095, 1234])
    assert site.b64_decode(site.b64_int(v, 2), 2) == v.tolist()
    v = np.array([65535, 4096, 7])
    assert site.b64_decode(site.b64_int(v, 3), 3) == v.tolist()


def test_universality_and_splitting(inputs, gathered):
    # the partner SAE differs, but for a feature identical to a partner feature the match is exact
    idx = gathered["index"]
    assert idx["compare_run"] == "U_tiny" and idx["split_runs"] == ["T_half"]
    page = gathered["features"][0]
    assert len(page["sim"]["T_half"]) == CFG.similar_per_run
    cos = page["sim"]["T_half"]
    assert all(-1.0001 <= c <= 1.0001 for _, c in cos) and cos[0][1] >= cos[-1][1]
    same = Partner("same", inputs.sae, inputs.store)
    inp2 = BrowserInputs(**{**inputs.__dict__, "compare": same, "split": [Partner("same", inputs.sae)]})
    d2 = build_site_data(inp2)
    for i in range(21):  # alive features match themselves
        assert d2["index"]["uni_id"][i] == i and d2["index"]["uni_r"][i] == pytest.approx(1, abs=1e-3)
        assert d2["features"][i]["sim"]["same"][0] == [i, pytest.approx(1, abs=1e-4)]


def test_write_site(gathered, tmp_path):
    out = tmp_path / "site"
    sizes = site.write_site(gathered, out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["browser.css", "browser.js", "data/features_0000.js", "data/features_0001.js",
                     "data/features_0002.js", "data/index.js", "index.html"]
    text = (out / "data/index.js").read_text()
    assert text.startswith("window.BROWSER_INDEX=")
    idx = json.loads(text[len("window.BROWSER_INDEX="):].rstrip().rstrip(";"))
    assert idx["chunk_files"][2] == "data/features_0002.js" and len(idx["density"]) == 24
    chunk = (out / "data/features_0001.js").read_text()
    part = json.loads(chunk[len("window.BROWSER_CHUNK(1,"):].rstrip().rstrip(");"))
    assert sorted(part, key=int) == [str(i) for i in range(8, 16)]
    assert sizes["bytes"] == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    site.write_site(gathered, out)  # rewriting replaces the folder
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == files
    assert "http://" not in (out / "index.html").read_text() and "https://" not in (out / "browser.js").read_text()


def test_related_runs_and_config(tmp_path):
    runs = {k: SAERun(m, n, "standard", StandardSettings(l1), 1) for k, (m, n, l1) in {
        "A_512": ("A", 512, 0.004), "A_1024": ("A", 1024, 0.004), "A_4096": ("A", 4096, 0.004),
        "A_4096_l1high": ("A", 4096, 0.008), "B_4096": ("B", 4096, 0.004), "random_4096": ("random", 4096, 0.004)}.items()}
    cfg = CFG  # compare_run and split_runs: auto
    assert related_runs("A_4096", runs, cfg) == ("B_4096", ["A_512", "A_1024"])
    assert related_runs("B_4096", runs, cfg) == ("A_4096", [])
    assert related_runs("random_4096", runs, cfg) == ("A_4096", [])
    assert related_runs("A_4096_l1high", runs, cfg) == (None, [])
    # another architecture is another recipe, even at equal settings: neither a partner nor another size
    runs["A_2048_other"] = SAERun("A", 2048, "gated", StandardSettings(0.004), 1)
    runs["B_2048_other"] = SAERun("B", 2048, "gated", StandardSettings(0.004), 1)
    assert related_runs("A_4096", runs, cfg) == ("B_4096", ["A_512", "A_1024"])
    assert related_runs("A_2048_other", runs, cfg) == ("B_2048_other", [])
    # a complete params file: the smoke profile with its browser section changed
    smoke = profile_dict(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")
    p = tmp_path / "params.yaml"

    def write(**browser_keys):
        p.write_text(yaml.safe_dump({**smoke, "browser": {**smoke["browser"], **browser_keys}}))

    write(run="A_256", top_examples=3)
    params, c = load_browser(p)
    assert c.run == "A_256" and c.top_examples == 3
    assert related_runs("A_256", params.sae_runs, c) == ("B_256", ["A_128"])
    write(top_example=3)
    with pytest.raises(ConfigError, match="top_example: unknown key"):
        load_browser(p)
    write(max_points=0)
    with pytest.raises(ConfigError, match="max_points: must be positive"):
        load_browser(p)
    write(run="A_9")
    with pytest.raises(ConfigError, match="'A_9' is not in sae_runs"):
        load_browser(p)
    write(run="A_256")
    assert load_browser(p, run="B_256")[1].run == "B_256"
    with pytest.raises(ConfigError, match="'A_7' is not in sae_runs"):
        load_browser(p, run="A_7")


def test_sparse_proxy_stats_match_proxies_module(inputs):
    n = inputs.store.n_points
    acts = bd.sparse_activations(inputs.sae.encode, inputs.store, n, 100)
    table = np.stack([px.proxy_value(inputs.llr[p]) for p in inputs.llr], 1)
    points = table[inputs.tokens[inputs.index["token"]].astype(int)]
    ours = bd.proxy_stats(acts, points)
    ref = px.match_proxies(inputs.store, points, {"f": inputs.sae.encode}, n, 100)["f"]
    for key in ("pearson", "specificity", "sensitivity", "n_fire"):
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-4, atol=1e-6)


def test_sparse_cross_moments_match_universality_module(inputs):
    n = inputs.store.n_points - 50
    other = inputs.compare.sae
    a = bd.sparse_activations(inputs.sae.encode, inputs.store, n, 64)
    b = bd.sparse_activations(other.encode, inputs.store, n, 64)
    m = bd.cross_moments(a, b, n)
    best, arg = m.max_corr()
    ref = uv.max_correlations(inputs.store, inputs.store, inputs.sae.encode, other.encode, n, 64)
    np.testing.assert_allclose(best, ref["max_corr"], rtol=1e-4, atol=1e-5)
    alive = ~np.isnan(best)
    np.testing.assert_array_equal(arg[alive], ref["argmax"][alive])
    top = bd.top_correlations(m, 3)
    assert [t[0][0] if t else -1 for t in top] == [int(x) if ok else -1 for x, ok in zip(arg, alive)]


def test_fused_encoder_matches_encode(inputs):
    x = inputs.store.read(0, 50)
    with torch.no_grad():
        np.testing.assert_allclose(bd.fused_encoder(inputs.sae)(x).numpy(), inputs.sae.encode(x).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_density_class_uses_the_metrics_definitions():
    density = np.array([0.0, 1e-6, 1e-3, 0.5, 0.02, 0.0])
    cls = metrics.density_class(density, ultralow=1e-5, dense=0.01)
    assert cls.tolist() == [1, 2, 0, 3, 3, 1]
    assert [bd.CLASS_NAMES[c] for c in cls[:4]] == ["dead", "ultralow", "alive", "dense"]
    counts = metrics.density_classes(density, ultralow=1e-5, dense=0.01)
    assert counts == {name: int((cls == bd.CLASS_NAMES.index(name)).sum()) for name in ("dead", "ultralow", "dense")}


def test_log_density_histogram_of_the_index_is_the_metrics_one(inputs, gathered):
    idx = gathered["index"]
    f = dense(inputs)
    _, counts, dead = metrics.log10_density_histogram((f > 0).mean(0))
    assert idx["log_density_hist"] == {"lo": -8, "width": 0.25, "counts": counts.tolist(), "dead": dead}
    assert sum(counts) + dead == f.shape[1] and dead == 3


def test_nearest_decoders_by_hand():
    # decoder vectors are columns: e1, e2, (e1 + e2)/√2 against e1, -e2 and e1 + e2 (norms do not matter)
    W_d = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    other = torch.tensor([[2.0, 0.0, 1.0], [0.0, -1.0, 1.0]])
    near = bd.nearest_decoders(W_d, other, k=2, chunk=2)  # two chunks of rows
    h = 2 ** -0.5
    assert [[j for j, _ in row] for row in near] == [[0, 2], [2, 0], [2, 0]]
    np.testing.assert_allclose([[c for _, c in row] for row in near], [[1, h], [h, 0], [1, h]], atol=1e-6)


def test_feature_to_show():
    index = {"run": "X", "cls": [1, 0, 0, 0], "proxies": ["dna"], "proxy_r": [None, 0.2, 0.9, 0.9],
             "density": [0.0, 0.1, 0.01, 0.02], "subset_share": [0, 1.0, 0.5, 0.5]}
    assert feature_to_show(index) == 3  # r ties: the denser one
    assert feature_to_show({**index, "proxies": []}) == 1  # no proxies: the purest subset
    assert feature_to_show({**index, "cls": [1, 1, 1, 1]}) == 0
    assert feature_to_show(index, configured=2) == 2
    with pytest.raises(ConfigError, match="screenshot_feature: 4 is not a feature of X"):
        feature_to_show(index, configured=4)


def test_stage_checks_chromium_before_any_compute(tmp_path, monkeypatch, capsys):
    from monosemantic.browser import screenshot
    from stages import browser as stage

    (tmp_path / "params.yaml").write_text(render("smoke"))
    monkeypatch.chdir(tmp_path)  # no artifacts here: any compute would fail on a missing file
    monkeypatch.setattr(screenshot, "find_chromium", lambda: None)
    with pytest.raises(SystemExit) as e:
        stage.main_with_screenshot.run(["A_256"])
    assert e.value.code == 2 and "--screenshot needs Chromium" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        stage.main.run(["A_7"])
    assert e.value.code == 2 and "'A_7' is not in sae_runs" in capsys.readouterr().err


def test_load_automata_only_for_the_browsed_run(tmp_path):
    from monosemantic.browser.inputs import load_automata

    path = tmp_path / "interpretability.json"
    assert load_automata(path, "T_tiny") == []  # no file: no automata
    path.write_text(json.dumps({"headline": {}, "automata": synthetic_automata("T_tiny")}))
    assert load_automata(path, "T_tiny") == synthetic_automata()["found"]
    assert load_automata(path, "A_4096") == []  # another dictionary's automata
    path.write_text(json.dumps({"headline": {}}))
    assert load_automata(path, "T_tiny") == []


def test_automata_are_listed_on_their_states_pages(inputs, feature_data, gathered, tmp_path):
    found = synthetic_automata()["found"]
    outside = {**found[1], "states": [99], "edges": [[99, 99]]}
    with_au = BrowserInputs(**{**inputs.__dict__, "automata": found + [outside]})
    d = site.site_data(with_au, feature_data, CFG)
    au = d["index"]["automata"]
    assert len(au) == 2  # the automaton of a feature outside the dictionary is left out
    assert au[0] == {"states": [2, 5], "tokens": [["\xd8", "ab"], ["\xa7"]], "edges": [
        {"from": 2, "to": 5, "lift": 41.25, "support": 30.0, "pinned": 0.875, "ablated": 0.125, "natural": 0.5,
         "causal": True},
        {"from": 5, "to": 2, "lift": 12.5, "support": 8.123, "pinned": 0.25, "ablated": 0.2, "natural": 0.2,
         "causal": False}], "example": "\xd8|\xa7|\xd8|\xa7"}
    assert au[1]["states"] == [7] and au[1]["edges"][0]["causal"] is False
    pages = d["features"]
    assert {i: p["au"] for i, p in enumerate(pages) if "au" in p} == {2: [0], 5: [0], 7: [1]}
    # everything else is as without automata; none shown when there are none
    assert [{k: v for k, v in p.items() if k != "au"} for p in pages] == gathered["features"]
    assert {k: v for k, v in d["index"].items() if k != "automata"} == {k: v for k, v in gathered["index"].items()
                                                                         if k != "automata"}
    assert gathered["index"]["automata"] == [] and not any("au" in p for p in gathered["features"])
    # an older file without the causal fields
    old = [{k: v for k, v in found[0].items() if k not in ("natural_rate", "causal")}]
    e = site.automata_entries(old, 24)[0][0]["edges"][0]
    assert e["natural"] is None and e["causal"] is None and e["pinned"] == 0.875
    # a newer file: the expected rates of the causal check, not the sampled ones
    new = [{**found[0], "expected_pinned_rate": [0.8123456, 0.3], "expected_baseline_rate": [0.05, 0.2],
            "expected_natural_rate": [0.4, 0.2]}]
    e = site.automata_entries(new, 24)[0][0]["edges"][0]
    assert (e["pinned"], e["ablated"], e["natural"], e["causal"]) == (0.8123, 0.05, 0.4, True)
    # deterministic: the same data files twice
    site.write_site(d, tmp_path / "a")
    site.write_site(site.site_data(with_au, feature_data, CFG), tmp_path / "b")
    for f in ("data/index.js", "data/features_0000.js"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


@pytest.mark.skipif(__import__("shutil").which("node") is None, reason="needs Node.js to run browser.js")
def test_feature_page_shows_its_automata(inputs, feature_data, gathered, tmp_path):
    d = site.site_data(BrowserInputs(**{**inputs.__dict__, "automata": synthetic_automata()["found"]}), feature_data,
                       CFG)
    site.write_site(d, tmp_path / "site")
    page = render_page(tmp_path / "site", "#f=5")
    assert find_all(page, id="feature-title")[0]["text"].startswith("T_tiny / feature 5")
    (sec,) = find_all(page, id="automata")
    assert sec["children"][0]["text"] == "Automata"
    (box,) = find_all(sec, **{"class": "automaton"})
    assert box["children"][0]["text"].startswith("2-state cycle: #2") and "#5" in box["children"][0]["text"]
    links = [n["href"] for n in find_all(box, tag="a")]
    assert links[:2] == ["#f=2", "#f=5"] and set(links) == {"#f=2", "#f=5"}
    rows = find_all(box, tag="tbody")[0]["children"]
    cells = [[c["text"] for c in r["children"]] for r in rows]
    assert cells == [["#2 → #5", "41.3", "30", "87.5%", "12.5%", "50%", "yes"],  # 3 significant digits
                     ["#5 → #2", "12.5", "8.12", "25%", "20%", "20%", "no"]]
    assert find_all(box, **{"class": "automaton-example"})[0]["text"] == "Example path: \xd8|\xa7|\xd8|\xa7"
    # a feature that is no automaton's state, and a site without automata: no section
    assert find_all(render_page(tmp_path / "site", "#f=3"), id="automata") == []
    site.write_site(gathered, tmp_path / "plain")
    plain = render_page(tmp_path / "plain", "#f=5")
    assert find_all(plain, id="automata") == [] and find_all(plain, id="contexts")


class _OtherArchitecture(torch.nn.Module):
    """A standard SAE seen through the interface only (encode, decode, W_d, n_features) under another architecture's
    name, without the W_e / b_e that the standard fast paths read."""

    architecture = "other"

    def __init__(self, sae: StandardSAE):
        super().__init__()
        self.inner, self.d, self.n_features = sae, sae.d, sae.n_features

    def encode(self, x):
        return self.inner.encode(x)

    def decode(self, f):
        return self.inner.decode(f)

    @property
    def W_d(self):
        return self.inner.W_d


def test_browser_shows_a_dictionary_of_another_architecture(inputs, gathered):
    """The same dictionary relabelled as another architecture: the browser pages come out the same (to float
    rounding), through its encode (the fused encoder and the windows' per-feature encoder rows are standard's)."""
    other = _OtherArchitecture(inputs.sae)
    relabelled = dataclasses.replace(inputs, sae=other, run_info={**inputs.run_info, "architecture": "other",
                                                                  "knob": "l1"})
    x = inputs.store.read(0, 50)
    with torch.no_grad():
        np.testing.assert_array_equal(bd.fused_encoder(other)(x).numpy(), other.encode(x).numpy())
        xw = inputs.store.read(0, 24).reshape(4, 6, -1)
        feats = np.array([0, 3, 1, 2])
        np.testing.assert_allclose(bd.window_activations(other, xw, feats, chunk=3).numpy(),
                                   bd.window_activations(inputs.sae, xw, feats).numpy(), rtol=1e-5, atol=1e-6)
    data = build_site_data(relabelled)
    assert data["index"]["architecture"] == "other"
    assert data["index"]["cls"] == gathered["index"]["cls"]  # dead / ultralow / dense: the same densities
    np.testing.assert_allclose([f["amax"] for f in data["features"]], [f["amax"] for f in gathered["features"]],
                               rtol=1e-4)
    assert [len(f["ex"]) for f in data["features"]] == [len(f["ex"]) for f in gathered["features"]]


@pytest.mark.skipif(__import__("shutil").which("node") is None, reason="needs Node.js to run browser.js")
def test_index_page_names_the_recipe(inputs, feature_data, tmp_path):
    """The paper's dictionary: its L1 coefficient; another architecture: its name and sparsity knob."""
    for name, run_info, expected in (
            ("standard", {**inputs.run_info, "architecture": "standard", "knob": "l1"}, "(L1 coefficient 0.01)"),
            ("topk", {"model": "T", "n_features": 24, "architecture": "topk", "knob": "k", "k": 4}, "(topk SAE, k 4)")):
        d = site.site_data(dataclasses.replace(inputs, run_info=run_info), feature_data, CFG)
        site.write_site(d, tmp_path / name)
        (stat,) = find_all(render_page(tmp_path / name, ""), **{"class": "stat"})[:1]
        assert expected in stat["text"], stat["text"]

