"""The feature browser as a static site, like the paper's A/1 interface: an index of every feature of one
dictionary and a page per feature, written as plain files that open from file:// with no network.
What is shown is computed in data.py; this module encodes it for the app in assets/.

Output layout (`write_site`):

    OUT/index.html, browser.js, browser.css       the app (monosemantic/browser/assets, copied verbatim)
    OUT/data/index.js                             window.BROWSER_INDEX = {...}: per-feature columns, vocab,
                                                  the feature automata (automata_entries)
    OUT/data/features_NNNN.js                     window.BROWSER_CHUNK(NNNN, {...}): chunk_features pages

Data files are <script>s, not fetch()ed JSON (Chromium blocks fetch from file://). A context's tokens are
packed as fixed-width base-64 digits of their ids and its activations as one base-64 digit each (0..63 of
the feature's largest shown activation), which keeps a 4096-feature browser to a few megabytes per
thousand features. Numbers are rounded to 4 significant digits (subset shares to 3).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from monosemantic.analysis.token_bytes import vocab_bytes
from monosemantic.browser.data import CLASS_NAMES, FeatureData
from monosemantic.browser.inputs import BrowserInputs
from monosemantic.data.tokenizer import EOT_ID
from monosemantic.sae import metrics

ASSETS = Path(__file__).with_name("assets")
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
EOT_LABEL = "<|endoftext|>"
LOG_DENSITY_LO, LOG_DENSITY_WIDTH = -8, 0.25  # the index's log10-density histogram: bins of 0.25 from 1e-8 to 1


# ------------------------------------------------------------------------------------------------
# Tokens as text
# ------------------------------------------------------------------------------------------------


def vocab_labels(tok) -> tuple[list[str], list[bytes]]:
    """(label of every token id, its bytes): the token's text, bytes of a partial UTF-8 character shown as
    \\xNN (e.g. 'י\\xd7' for a Hebrew letter and the first byte of the next); <|endoftext|> for id 0."""
    vb = vocab_bytes(tok)
    labels = [b.decode("utf-8", "backslashreplace") if i != EOT_ID else EOT_LABEL for i, b in enumerate(vb)]
    return labels, vb


def _complete_prefix(b: bytes) -> int:
    """Length of the longest prefix of b that does not end inside an incomplete UTF-8 character."""
    for back in range(1, min(4, len(b)) + 1):
        c = b[-back]
        if c < 0x80:
            return len(b)
        if c >= 0xC0:  # a lead byte: complete if enough continuation bytes follow
            need = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
            return len(b) if back >= need else len(b) - back
    return len(b)


def window_texts(ids: np.ndarray, vbytes: list[bytes], labels: list[str]) -> list[str]:
    """The text of each token of a window, decoding the window's bytes jointly: a character whose UTF-8 bytes
    are split over several tokens is shown on the token that completes it (the others show what they
    complete, possibly nothing). Bytes that never form valid UTF-8 are shown as U+FFFD."""
    out, pending = [], b""
    for i in ids:
        i = int(i)
        if i < 0:
            out.append("")
            continue
        if i == EOT_ID or not vbytes[i]:
            if pending:
                out[-1] += pending.decode("utf-8", "replace")
                pending = b""
            out.append(labels[i])
            continue
        b = pending + vbytes[i]
        cut = _complete_prefix(b)
        if len(b) - cut > 3:  # not a character in progress after all
            cut = len(b)
        out.append(b[:cut].decode("utf-8", "replace"))
        pending = b[cut:]
    if pending and out:
        out[-1] += pending.decode("utf-8", "replace")
    return out


def b64_int(values: np.ndarray, width: int) -> str:
    """Fixed-width base-64 digits (most significant first) of non-negative integers, concatenated."""
    v = np.asarray(values, dtype=np.int64)
    digits = [(v >> (6 * (width - 1 - k))) & 63 for k in range(width)]
    return "".join("".join(B64[digit[j]] for digit in digits) for j in range(len(v)))


def b64_decode(s: str, width: int) -> list[int]:
    """Inverse of b64_int."""
    out = []
    for j in range(0, len(s), width):
        n = 0
        for ch in s[j:j + width]:
            n = n * 64 + B64.index(ch)
        out.append(n)
    return out


# ------------------------------------------------------------------------------------------------
# The index and the feature pages
# ------------------------------------------------------------------------------------------------


def _round(x, sig: int = 4):
    """x (or each item of a list or array) to `sig` significant digits; 0 stays 0, NaN and ±inf become None."""
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_round(v, sig) for v in x]
    x = float(x)
    if not math.isfinite(x) or x == 0:
        return 0 if x == 0 else None
    return float(f"{x:.{sig}g}")


def _edge_value(a: dict, key: str, m: int, rounded: bool = True):
    """Edge m's value of per-edge list `key` of automaton a (None when not recorded, e.g. in a file from
    before the causal check)."""
    v = a.get(key)
    v = None if v is None or v[m] is None else v[m]
    return v if v is None or not rounded else _round(v)


def automata_entries(automata: list[dict], n_features: int) -> tuple[list[dict], dict[int, list[int]]]:
    """The feature automata (analysis/automata.py, as in metrics/analysis/interpretability.json) as the site
    shows them: per automaton its states, each state's top tokens, its edges (from, to, lift, logit support,
    pinned / ablated / natural rate of the causal check: the expected rates, or the sampled ones in a file from
    before them; causal: true, false or null when not recorded) and an example token path; and {feature: the
    automata it is a state of}. An automaton with a state outside the dictionary is left out."""
    out, of = [], {}
    for a in automata:
        states = [int(s) for s in a["states"]]
        if not all(0 <= s < n_features for s in states):
            continue
        edges = []
        pre = "expected_" if "expected_pinned_rate" in a else ""  # an older file: the sampled rates
        for m, (i, j) in enumerate(a["edges"]):
            causal = _edge_value(a, "causal", m, rounded=False)
            edges.append({"from": int(i), "to": int(j), "lift": _edge_value(a, "lift", m),
                          "support": _edge_value(a, "logit_support", m),
                          "pinned": _edge_value(a, pre + "pinned_rate", m),
                          "ablated": _edge_value(a, pre + "baseline_rate", m),
                          "natural": _edge_value(a, pre + "natural_rate", m),
                          "causal": None if causal is None else bool(causal)})
        tokens = a.get("state_tokens") or {}
        for s in dict.fromkeys(states):
            of.setdefault(s, []).append(len(out))
        out.append({"states": states, "tokens": [list(tokens.get(str(s), [])) for s in states], "edges": edges,
                    "example": a.get("example", "")})
    return out, of


def site_data(inp: BrowserInputs, data: FeatureData, cfg) -> dict:
    """The site's data: {"index": the per-feature columns and the vocabulary, "features": a page per feature}."""
    summ, F = data.summary, len(data.summary["density"])
    labels, vbytes = vocab_labels(inp.tok)
    width = 2 if len(labels) <= 64 ** 2 else 3
    Wl, (lmin, lmax), uni = data.logit_weights, data.logit_range, data.universality
    features, act_tokens = [], []
    automata, automata_of = automata_entries(inp.automata, F)
    p = 0  # the next example's row in data.windows
    for i in range(F):
        ex, fmax, counts, p = _examples(data, i, p, labels, vbytes, width)
        act_tokens.append([t for t, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:5]])
        features.append({
            "id": i,
            "amax": _round(fmax),
            "h": summ["hist"][i].tolist(),
            "lt": [[int(t), _round(Wl[i, t])] for t in data.logit_top[i]],
            "lb": [[int(t), _round(Wl[i, t])] for t in data.logit_bottom[i]],
            "lh": data.logit_hist[i].tolist(), "lr": [_round(lmin[i]), _round(lmax[i])],
            "sim": {name: [[j, _round(c)] for j, c in v[i]] for name, v in data.similar.items()},
            "uni": [[j, _round(r)] for j, r in uni[i]] if uni is not None else [],
            "px": _round(data.proxy_r[i]) if data.proxy_names else [],
            "ss": _round(summ["subset_share"][i], 3),
            "ex": ex,
            **({"au": automata_of[i]} if i in automata_of else {}),
        })

    _, dens_counts, dead = metrics.log10_density_histogram(summ["density"], LOG_DENSITY_LO, 0, LOG_DENSITY_WIDTH)
    best_proxy = data.proxy_r.argmax(1) if data.proxy_names else np.full(F, -1)
    index = {
        "run": inp.run, **inp.run_info, "n_points": data.n_points, "n_ctx": inp.model.cfg.n_ctx,
        "vocab_width": width, "subsets": list(inp.subsets), "proxies": data.proxy_names,
        "classes": list(CLASS_NAMES), "ultralow_density": inp.ultralow_density, "dense_density": inp.dense_density,
        "compare_run": inp.compare.name if inp.compare is not None else None,
        "universality_points": data.universality_points,
        "split_runs": [s.name for s in inp.split], "chunk_features": cfg.chunk_features,
        "log_density_hist": {"lo": LOG_DENSITY_LO, "width": LOG_DENSITY_WIDTH, "counts": dens_counts.tolist(),
                             "dead": dead},
        "vocab": labels,
        "density": _round(summ["density"]), "max": _round(summ["max"]), "cls": summ["class"].tolist(),
        "proxy": best_proxy.tolist(),
        "proxy_r": [_round(data.proxy_r[i, best_proxy[i]]) if data.proxy_names else 0 for i in range(F)],
        "subset": summ["subset_share"].argmax(1).tolist(),
        "subset_share": [_round(summ["subset_share"][i].max(), 3) for i in range(F)],
        "uni_id": [u[0][0] if uni and u else -1 for u in (uni or [[]] * F)],
        "uni_r": [_round(u[0][1]) if uni and u else None for u in (uni or [[]] * F)],
        "act_tokens": act_tokens,
        "logit_tokens": [[int(t) for t in data.logit_top[i][:3]] for i in range(F)],
        "sigma": _round(data.sigma),
        "automata": automata,
    }
    return {"index": index, "features": features}


def _examples(data: FeatureData, i: int, p: int, labels: list[str], vbytes: list[bytes], width: int):
    """Feature i's context groups [label, [[token ids, shading, example position, activation, subset,
    {position: text where it differs from the token's label} or 0], ...]], its largest shown activation (the
    shading's 63), the counts of its top-activation tokens, and the row of data.windows after its examples."""
    ids, wacts, center = data.windows
    groups = data.examples[i]
    fmax = max(float(data.summary["max"][i]), float(wacts[p:p + sum(len(r) for _, r, _ in groups)].max(initial=0)))
    ex, counts = [], {}
    for label, rows, vals in groups:
        ctxs = []
        for r, v in zip(rows, vals):
            keep = ids[p] >= 0
            w_ids, w_act = ids[p][keep], wacts[p][keep]
            q = np.where(w_act > 0, np.maximum(1, np.rint(63 * w_act / fmax)), 0).astype(np.int64)
            texts = window_texts(w_ids, vbytes, labels)
            ov = {str(j): t for j, t in enumerate(texts) if t != labels[w_ids[j]]}
            ctxs.append([b64_int(w_ids, width), "".join(B64[k] for k in q), int(center[p]),
                         _round(v), int(data.point_subset[r]), ov or 0])
            if label == "Top activations":
                t = int(data.point_token_id[r])
                counts[t] = counts.get(t, 0) + 1
            p += 1
        ex.append([label, ctxs])
    return ex, fmax, counts, p


# ------------------------------------------------------------------------------------------------
# Writing the site
# ------------------------------------------------------------------------------------------------


def _js(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def write_site(data: dict, out_dir: str | Path) -> dict:
    """Write the app and its data files into out_dir (replaced atomically as a whole); returns sizes."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for f in ("index.html", "browser.js", "browser.css"):
            shutil.copyfile(ASSETS / f, tmp / f)
        (tmp / "data").mkdir()
        index = dict(data["index"])
        feats = data["features"]
        size = index["chunk_features"]
        n_chunks = (len(feats) + size - 1) // size
        index["chunk_files"] = [f"data/features_{c:04d}.js" for c in range(n_chunks)]
        for c in range(n_chunks):
            part = {str(f["id"]): {k: v for k, v in f.items() if k != "id"} for f in feats[c * size:(c + 1) * size]}
            (tmp / index["chunk_files"][c]).write_text(f"window.BROWSER_CHUNK({c},{_js(part)});\n", encoding="utf-8")
        (tmp / "data" / "index.js").write_text(f"window.BROWSER_INDEX={_js(index)};\n", encoding="utf-8")
        for p in tmp.rglob("*"):
            if p.is_file():
                p.chmod(0o644)
        tmp.chmod(0o755)
        (tmp / "data").chmod(0o755)
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            if old.exists():
                shutil.rmtree(old)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    total = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return {"files": sum(1 for p in out_dir.rglob("*") if p.is_file()), "bytes": total}
