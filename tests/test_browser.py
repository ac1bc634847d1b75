"""The feature browser's data gathering (monosemantic/browser.py) on a tiny in-memory input."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from monosemantic import browser
from monosemantic.browser_config import BrowserConfig, load_browser
from monosemantic.config import ConfigError, SAERun

torch.set_num_threads(1)
CFG = BrowserConfig(run="T_tiny", batch_size=100, top_examples=5, n_intervals=3, per_interval=2,
                    window_before=6, window_after=3, chunk_features=8, hist_bins=8, top_logits=4)


@pytest.fixture(scope="module")
def inputs():
    return browser.synthetic_inputs(seed=0)


@pytest.fixture(scope="module")
def gathered(inputs):
    return browser.gather(inputs, CFG, log=lambda s: None)


def dense(inputs):
    with torch.no_grad():
        return inputs.sae.encode(inputs.store.read(0, inputs.store.n_points)).numpy()


def test_sparse_activations_match_dense(inputs):
    f = dense(inputs)
    acts = browser.sparse_activations(inputs.sae.encode, inputs.store, inputs.store.n_points, 37)
    assert acts.n_features == f.shape[1]
    for i in range(f.shape[1]):
        rows, vals = acts.feature(i)
        np.testing.assert_array_equal(rows, np.flatnonzero(f[:, i] > 0))
        np.testing.assert_allclose(vals, f[rows, i])


def test_top_examples_are_the_highest_activations(inputs):
    f = dense(inputs)
    acts = browser.sparse_activations(inputs.sae.encode, inputs.store, inputs.store.n_points, 100)
    groups = browser.select_examples(acts, 5, 3, 2, seed=1)
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
    acts = browser.sparse_activations(inputs.sae.encode, inputs.store, inputs.store.n_points, 100)
    g1 = browser.select_examples(acts, 5, 3, 2, seed=1)
    g2 = browser.select_examples(acts, 5, 3, 2, seed=1)
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
    acts = browser.sparse_activations(inputs.sae.encode, inputs.store, inputs.store.n_points, 100)
    groups = browser.select_examples(acts, CFG.top_examples, CFG.n_intervals, CFG.per_interval, CFG.seed)
    checked = 0
    for i, page in enumerate(gathered["features"]):
        for (label, ctxs), (label2, rows, vals) in zip(page["ex"], groups[i]):
            assert label == label2 and len(ctxs) == len(rows)
            for ctx, r, v in zip(ctxs, rows, vals):
                ids = browser.b64_decode(ctx[0], width)
                c = ctx[2]
                t = int(inputs.index["token"][r])
                assert ids[c] == int(inputs.tokens[t])
                assert ids == [int(x) for x in inputs.tokens[t - c:t - c + len(ids)]]
                assert len(ids) <= CFG.window_before + 1 + CFG.window_after and len(ctx[1]) == len(ids)
                assert ctx[3] == pytest.approx(f[r, i], rel=1e-3)
                q = browser.B64.index(ctx[1][c])
                assert q == max(1, round(63 * v / page["amax"])) or abs(q - 63 * v / page["amax"]) <= 1.01
                checked += 1
    assert checked > 50


def test_context_windows_direct(inputs):
    n_ctx = inputs.model.cfg.n_ctx
    rows = np.arange(20)
    pairs = np.stack([np.zeros(20, dtype=np.int64), rows], 1)
    ids, a, center = browser.context_windows(inputs.model, inputs.sae, inputs.tokens, pairs,
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
        b = browser.px.vocab_bytes(tok)[i]
        if i and b and all(c < 0x80 for c in b):
            assert idx["vocab"][i] == tok.decode([i]) == b.decode()
    assert idx["vocab"][0] == browser.EOT_LABEL
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
    assert browser.window_texts(np.array([1, 2, 3, 4]), vb, labels) == ["a", "", "ا", "b"]
    assert browser.window_texts(np.array([2, 0, 1]), vb, labels) == ["\ufffd", "<eot>", "a"]
    assert browser.window_texts(np.array([3, 1]), vb, labels) == ["\ufffd", "a"]


def test_b64_round_trip():
    v = np.array([0, 1, 63, 64, 4095, 1234])
    assert browser.b64_decode(browser.b64_int(v, 2), 2) == v.tolist()
    v = np.array([65535, 4096, 7])
    assert browser.b64_decode(browser.b64_int(v, 3), 3) == v.tolist()


def test_universality_and_splitting(inputs, gathered):
    # the partner SAE differs, but for a feature identical to a partner feature the match is exact
    idx = gathered["index"]
    assert idx["compare_run"] == "U_tiny" and idx["split_runs"] == ["T_half"]
    page = gathered["features"][0]
    assert len(page["sim"]["T_half"]) == CFG.similar_per_run
    cos = page["sim"]["T_half"]
    assert all(-1.0001 <= c <= 1.0001 for _, c in cos) and cos[0][1] >= cos[-1][1]
    same = browser.Partner("same", inputs.sae, inputs.store)
    inp2 = browser.BrowserInputs(**{**inputs.__dict__, "compare": same, "split": [browser.Partner("same", inputs.sae)]})
    d2 = browser.gather(inp2, CFG, log=lambda s: None)
    for i in range(21):  # alive features match themselves
        assert d2["index"]["uni_id"][i] == i and d2["index"]["uni_r"][i] == pytest.approx(1, abs=1e-3)
        assert d2["features"][i]["sim"]["same"][0] == [i, pytest.approx(1, abs=1e-4)]


def test_write_site(gathered, tmp_path):
    out = tmp_path / "site"
    sizes = browser.write_site(gathered, out)
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
    browser.write_site(gathered, out)  # rewriting replaces the folder
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == files
    assert "http://" not in (out / "index.html").read_text() and "https://" not in (out / "browser.js").read_text()


def test_related_runs_and_config(tmp_path):
    runs = {k: SAERun(m, n, l1) for k, (m, n, l1) in {
        "A_512": ("A", 512, 0.004), "A_1024": ("A", 1024, 0.004), "A_4096": ("A", 4096, 0.004),
        "A_4096_l1high": ("A", 4096, 0.008), "B_4096": ("B", 4096, 0.004), "random_4096": ("random", 4096, 0.004)}.items()}
    cfg = BrowserConfig()
    assert browser.related_runs("A_4096", runs, cfg) == ("B_4096", ["A_512", "A_1024"])
    assert browser.related_runs("B_4096", runs, cfg) == ("A_4096", [])
    assert browser.related_runs("random_4096", runs, cfg) == ("A_4096", [])
    assert browser.related_runs("A_4096_l1high", runs, cfg) == (None, [])
    # a complete params file (the smoke profile, whatever its other sections) plus a browser section
    smoke = (Path(__file__).resolve().parents[1] / "configs/smoke.yaml").read_text()
    smoke = re.sub(r"(?ms)^browser:.*?(?=^\S|\Z)", "", smoke)  # the profile's own section, if any
    p = tmp_path / "params.yaml"
    p.write_text(smoke + "\nbrowser: {run: A_256, top_examples: 3}\n")
    params, c = load_browser(p)
    assert c.run == "A_256" and c.top_examples == 3
    assert browser.related_runs("A_256", params.sae_runs, c) == ("B_256", ["A_128"])
    p.write_text(smoke + "\nbrowser: {run: A_256, top_example: 3}\n")
    with pytest.raises(ConfigError, match="top_example: unknown key"):
        load_browser(p)
    p.write_text(smoke + "\nbrowser: {run: A_256, max_points: 0}\n")
    with pytest.raises(ConfigError, match="max_points: must be positive"):
        load_browser(p)
    p.write_text(smoke + "\nbrowser: {run: A_9}\n")
    with pytest.raises(ConfigError, match="'A_9' is not in sae_runs"):
        load_browser(p)
    p.write_text(smoke + "\nbrowser: {run: A_256}\n")
    with pytest.raises(ConfigError, match="'A_7' is not in sae_runs"):
        load_browser(p, run="A_7")


def test_sparse_proxy_stats_match_proxies_module(inputs):
    n = inputs.store.n_points
    acts = browser.sparse_activations(inputs.sae.encode, inputs.store, n, 100)
    table = np.stack([browser.px.proxy_value(inputs.llr[p]) for p in inputs.llr], 1)
    points = table[inputs.tokens[inputs.index["token"]].astype(int)]
    ours = browser.proxy_stats(acts, points)
    ref = browser.px.match_proxies(inputs.store, points, {"f": inputs.sae.encode}, n, 100)["f"]
    for key in ("pearson", "specificity", "sensitivity", "n_fire"):
        np.testing.assert_allclose(ours[key], ref[key], rtol=1e-4, atol=1e-6)


def test_sparse_cross_moments_match_universality_module(inputs):
    n = inputs.store.n_points - 50
    other = inputs.compare.sae
    a = browser.sparse_activations(inputs.sae.encode, inputs.store, n, 64)
    b = browser.sparse_activations(other.encode, inputs.store, n, 64)
    m = browser.cross_moments(a, b, n)
    best, arg = m.max_corr()
    ref = browser.uv.max_correlations(inputs.store, inputs.store, inputs.sae.encode, other.encode, n, 64)
    np.testing.assert_allclose(best, ref["max_corr"], rtol=1e-4, atol=1e-5)
    alive = ~np.isnan(best)
    np.testing.assert_array_equal(arg[alive], ref["argmax"][alive])
    top = browser.top_correlations(m, 3)
    assert [t[0][0] if t else -1 for t in top] == [int(x) if ok else -1 for x, ok in zip(arg, alive)]


def test_fused_encoder_matches_encode(inputs):
    x = inputs.store.read(0, 50)
    with torch.no_grad():
        np.testing.assert_allclose(browser.fused_encoder(inputs.sae)(x).numpy(), inputs.sae.encode(x).numpy(),
                                   rtol=1e-5, atol=1e-6)
