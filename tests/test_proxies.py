"""Proxies: log-likelihood ratios computed by hand on tiny vocabularies, UTF-8 fragments, and the streaming
Pearson / specificity / sensitivity against direct computations."""

import math

import numpy as np
import pytest
import torch

from monosemantic.analysis import proxies as px
from monosemantic.analysis import token_bytes as tb
from monosemantic.lm.store import ArrayStore

DNA, B64, AR = px.HYPOTHESES["dna"], px.HYPOTHESES["base64"], px.HYPOTHESES["arabic"]


def test_dna_llr_by_hand():
    # vocab: <eot>, "A", "AT", "x"; counts 0, 5, 3, 1 -> N = 9, V = 4, P(t) = (c + 1) / 13
    vocab, counts = [b"", b"A", b"AT", b"x"], np.array([0, 5, 3, 1])
    llr = px.token_llr(vocab, counts, DNA)
    assert llr[1] == pytest.approx(math.log((1 / 4) / (6 / 13)))
    assert llr[2] == pytest.approx(math.log((1 / 16) / (4 / 13)))
    assert llr[0] == -np.inf and llr[3] == -np.inf
    # proxy value: clipped at 0, -inf -> 0; both DNA tokens here are less likely under DNA than overall
    assert np.array_equal(px.proxy_value(llr), [0.0, 0.0, 0.0, 0.0])
    # make "AT" rare overall: now positive
    llr2 = px.token_llr(vocab, np.array([0, 5, 0, 100]), DNA)
    assert llr2[2] == pytest.approx(math.log((1 / 16) / (1 / 109)))
    assert px.proxy_value(llr2)[2] == pytest.approx(llr2[2])


def test_base64_uniform_characters():
    assert px.hypothesis_log_prob(b"Ab", B64) == pytest.approx(2 * math.log(1 / 64))
    assert px.hypothesis_log_prob(b"+/9", B64) == pytest.approx(3 * math.log(1 / 64))
    assert px.hypothesis_log_prob(b"A=", B64) == -np.inf  # padding is not one of the 64 characters
    assert px.hypothesis_log_prob(b" A", B64) == -np.inf


def test_arabic_characters_spaces_and_utf8_fragments():
    K = 305  # the Arabic block's 256 code points, the Arabic Supplement's 48 (U+0750-U+077F), the space
    ba = "ب".encode()  # U+0628 = d8 a8
    assert px.hypothesis_log_prob(b" " + ba, AR) == pytest.approx(2 * math.log(1 / K))
    assert px.hypothesis_log_prob(b" ", AR) == -np.inf  # no character of the block
    assert px.hypothesis_log_prob(b"a" + ba, AR) == -np.inf
    # incomplete character at the end: 64 code points U+0600..U+063F start with d8
    assert px.hypothesis_log_prob(b"\xd8", AR) == pytest.approx(math.log(64 / K))
    # the end of a character: d8 a8, d9 a8, da a8, db a8 and dd a8 (U+0768, Supplement) end with a8
    assert px.hypothesis_log_prob(b"\xa8", AR) == pytest.approx(math.log(5 / K))
    assert px.hypothesis_log_prob(b"\xa8" + ba + b"\xd9", AR) == pytest.approx(
        math.log(5 / K) + math.log(1 / K) + math.log(64 / K))
    assert px.hypothesis_log_prob("ݐ".encode(), AR) == pytest.approx(math.log(1 / K))  # U+0750, Supplement
    assert px.hypothesis_log_prob("ש".encode(), AR) == -np.inf  # Hebrew is not Arabic
    assert tb.split_units(b"\xd8\xa8\xa8\xa8\xa8") is None  # not a slice of valid UTF-8


def test_script_llr_is_minus_log_share_of_script_tokens():
    vocab = [b"", " ب".encode(), "ب".encode(), b"a", b"b"]
    counts = np.array([4, 9, 4, 50, 30])  # smoothed: 5, 10, 5, 51, 31 -> total 102; script 15
    llr = px.token_llr(vocab, counts, AR)
    assert llr[1] == pytest.approx(math.log(102 / 15)) and llr[2] == pytest.approx(math.log(102 / 15))
    assert np.all(llr[[0, 3, 4]] == -np.inf)


def test_vocab_bytes_of_byte_level_tokens():
    dec = tb.byte_decoder()
    assert len(dec) == 256 and sorted(dec.values()) == list(range(256))
    assert dec["Ġ"] == 32 and dec["A"] == 65  # GPT-2's printable stand-in for the space

    class Tok:
        toks = ["<|endoftext|>", "ĠA", "Ø¨"]

        def get_vocab_size(self):
            return 3

        def id_to_token(self, i):
            return self.toks[i]

    assert tb.vocab_bytes(Tok()) == [b"", b" A", "ب".encode()]


def test_proxy_stats_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    s = px.ProxyStats(2, 1)
    s.update(a, p)
    r = s.result()
    assert r["specificity"][:, 0] == pytest.approx([1.0, 0.0])
    assert r["sensitivity"][:, 0] == pytest.approx([1.0, 0.0])
    assert r["pearson"][0, 0] == pytest.approx(np.corrcoef(a[:, 0], p[:, 0])[0, 1])
    assert r["pearson"][1, 0] == pytest.approx(np.corrcoef(a[:, 1], p[:, 0])[0, 1])
    best = px.best_match(r, 0)
    assert best["index"] == 0 and best["n_fire"] == 2


def test_match_proxies_chunked_equals_direct():
    g = np.random.default_rng(0)
    x = torch.from_numpy(g.normal(size=(1000, 6)).astype(np.float32))
    proxy = np.stack([np.maximum(g.normal(size=1000), 0), (x[:, 2].numpy() > 1) * 2.0], 1).astype(np.float32)
    enc = {"relu": torch.relu}
    res = px.match_proxies(ArrayStore(x), proxy, enc, 1000, batch_size=128)["relu"]
    a = torch.relu(x).numpy()
    for j in range(2):
        direct = [np.corrcoef(a[:, i], proxy[:, j])[0, 1] for i in range(6)]
        assert res["pearson"][:, j] == pytest.approx(direct, abs=1e-5)
    assert px.best_match(res, 1)["index"] == 2  # unit 2 drives the second proxy



@pytest.fixture(scope="module")
def world(tmp_path_factory, one_thread):
    import analysis_world
    return analysis_world.build(tmp_path_factory.mktemp("world"))


@pytest.mark.parametrize("name", ["A_16", "B_16"])
def test_analyse_finds_the_best_units_by_their_definitions(world, name):
    d, cfg, val = world.dictionary(name), world.params.analysis, world.streams["val"]
    out, histograms = px.analyse(d, val, world.llr, cfg)
    n = cfg.max_points
    assert (out["run"], out["model"], out["n_points"]) == (name, name[0], n)
    x = d.store.read(0, n)
    tids = val.tokens[d.store.index()["token"][:n]].astype(np.int64)
    with torch.no_grad():
        units = {"feature": d.sae.encode(x).numpy().astype(np.float64), "neuron": x.numpy().astype(np.float64)}
    for k in px.PROXY_NAMES:
        p, pos = px.proxy_value(world.llr[k])[tids], world.llr[k][tids] > 0
        r = out["proxies"][k]
        assert r["proxy_positive_tokens"] == pos.sum() and r["proxy_positive_vocab"] == (world.llr[k] > 0).sum()
        for unit, a in units.items():
            with np.errstate(invalid="ignore", divide="ignore"):
                pearson = np.nan_to_num([np.corrcoef(a[:, i], p)[0, 1] for i in range(a.shape[1])])
            best = r[unit]
            assert best["index"] == int(np.argmax(pearson)) and best["pearson"] == pytest.approx(pearson.max(), abs=1e-5)
            col = a[:, best["index"]]
            assert best["specificity"] == pytest.approx(col[pos].sum() / col.sum(), abs=1e-6)
            assert best["sensitivity"] == pytest.approx((col[pos] > 0).sum() / pos.sum())
            title, acts = histograms[k][0][unit]
            assert str(best["index"]) in title and acts == pytest.approx(col, abs=1e-6)
        assert r["features_pearson_top5"][0] == round(r["feature"]["pearson"], 4)
        assert np.array_equal(histograms[k][1], world.llr[k][tids])
    suffix = "" if name == cfg.run else f"_{name}"  # only the main run's headline is unsuffixed
    assert set(out["headline"]) == {f"proxy_pearson{suffix}", f"proxy_pearson_best_neuron{suffix}"}
    assert out["headline"][f"proxy_pearson{suffix}"]["dna"] == round(out["proxies"]["dna"]["feature"]["pearson"], 4)
    assert px.format_matches(out).count(name) == 4
