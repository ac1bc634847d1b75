"""A tiny self-contained feature-browser input for the browser tests: no artifacts needed."""

from __future__ import annotations

import numpy as np
import torch

from monosemantic.analysis import proxies as px
from monosemantic.analysis.token_bytes import vocab_bytes
from monosemantic.browser.inputs import BrowserInputs, Partner
from monosemantic.core.config import BrowserConfig
from monosemantic.data.tokenizer import EOT_ID as EOT, train_tokenizer
from monosemantic.lm.model import ModelConfig, build_model
from monosemantic.lm.store import ArrayStore
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings


def tiny_config(**overrides) -> BrowserConfig:
    """params.yaml's browser section, sized for the tiny input."""
    values = dict(run="T_tiny", compare_run="auto", split_runs=("auto",), max_points=200_000,
                  universality_points=200_000, batch_size=100, top_examples=5, n_intervals=3, per_interval=2,
                  window_before=6, window_after=3, hist_bins=8, top_logits=4, similar_per_run=3, chunk_features=8,
                  screenshot_feature=-1, threads=1, seed=0)
    return BrowserConfig(**{**values, **overrides})


TINY_TEXTS = {
    "English": "The cat sat on the mat. The dog ran to the park and the cat followed the dog home. ",
    "Code": "def f(x):\n    return x + 1\n\nfor i in range(10):\n    print(f(i))\n",
    "Arabic": "قال رسول الله صلى الله عليه وسلم في الحديث الشريف ",
    "DNA": "ATGCGTACGTTAGCCGATAGCTAGCTAGGCTAACGTAGCTAGCATCGATCGA",
}


@torch.no_grad()
def synthetic_inputs(seed: int = 0, n_features: int = 24, n_dead: int = 3, n_ctx: int = 16, k: int = 4,
                     repeats: int = 12) -> BrowserInputs:
    """A tiny browser input built in memory: a BPE tokenizer trained on a few sentences of four subsets, a
    random one-layer transformer, a val stream of those sentences, a store of k sampled points per context,
    a random SAE whose last n_dead features never fire, a half-size dictionary (splitting) and a second SAE
    on the same activations (universality)."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    subsets = sorted(TINY_TEXTS)
    tok = train_tokenizer([t * 4 for t in TINY_TEXTS.values()], vocab_size=320, min_frequency=2)
    stream, doc_subset, doc_start = [], [], [0]
    for r in range(repeats):
        for s in subsets:
            ids = tok.encode(TINY_TEXTS[s] * 2, add_special_tokens=False).ids + [EOT]
            stream += ids
            doc_subset.append(subsets.index(s))
            doc_start.append(len(stream))
    tokens = np.asarray(stream, dtype=np.uint16)
    doc_start = np.asarray(doc_start, dtype=np.int64)
    model = build_model(ModelConfig(vocab_size=tok.get_vocab_size(), d_model=16, d_mlp=32, n_heads=2,
                                    n_ctx=n_ctx), seed).eval()
    starts = np.arange(0, len(tokens) - n_ctx + 1, n_ctx)
    pos = np.stack([np.sort(rng.choice(n_ctx, size=k, replace=False)) for _ in starts])
    ctx = torch.from_numpy(np.stack([tokens[s:s + n_ctx] for s in starts]).astype(np.int64))
    acts = model.mlp_acts(ctx, torch.from_numpy(pos)).reshape(-1, 32)
    token = (starts[:, None] + pos).reshape(-1)
    perm = rng.permutation(len(token))
    doc = np.searchsorted(doc_start, token, side="right") - 1
    index = {"doc": doc[perm], "pos": (token - doc_start[doc])[perm], "token": token[perm],
             "context_start": np.repeat(starts, k)[perm]}
    store = ArrayStore(acts[perm])

    def sae(F):
        s = StandardSAE(32, F, StandardSettings(0.01), generator=g)
        s.b_d.copy_(acts.mean(0))
        pre = (acts - s.b_d) @ s.W_e.T
        s.b_e.copy_(-torch.quantile(pre, 0.8, dim=0))  # each feature fires on about a fifth of the points
        return s.eval()

    main = sae(n_features)
    if n_dead:
        main.b_e[-n_dead:] = -1e4
    llr = px.llr_tables(vocab_bytes(tok), px.token_counts(tokens, tok.get_vocab_size()))
    return BrowserInputs(run="T_tiny", run_info={"model": "T", "n_features": n_features, "l1": 0.01},
                         sae=main, model=model, store=store, index=index, tokens=tokens,
                         doc_subset=np.asarray(doc_subset, dtype=np.int16), subsets=subsets, tok=tok, llr=llr,
                         split=[Partner("T_half", sae(max(n_features // 2, 1)))],
                         compare=Partner("U_tiny", sae(n_features), store),
                         ultralow_density=1e-3, dense_density=0.3, sigma_contexts=4)


def synthetic_automata(run: str = "T_tiny") -> dict:
    """The `automata` section of metrics/analysis/interpretability.json as the interpretability stage writes it
    (analysis/automata.py): a two-state cycle of features 2 and 5 (one edge causal) and a self-loop of 7."""
    cycle = {"states": [2, 5], "edges": [[2, 5], [5, 2]], "lift": [41.25, 12.5], "logit_support": [30.0, 8.123456],
             "count": [9, 6], "pinned_rate": [0.875, 0.25], "baseline_rate": [0.125, 0.2], "natural_rate": [0.5, 0.2],
             "data_rate": [0.6, 0.3], "causal": [True, False], "causal_p": [1e-9, 0.4], "n_prefixes": [64, 64],
             "offcontext_pinned_rate": [0.0, 0.0], "offcontext_baseline_rate": [0.0, 0.0],
             "state_tokens": {"2": ["\xd8", "ab"], "5": ["\xa7"]}, "example": "\xd8|\xa7|\xd8|\xa7"}
    loop = {"states": [7], "edges": [[7, 7]], "lift": [6.0], "logit_support": [5.5], "count": [5],
            "pinned_rate": [0.5], "baseline_rate": [0.5], "natural_rate": [0.5], "causal": [False],
            "state_tokens": {"7": ["AT"]}, "example": "AT|GC"}
    return {"run": run, "tokens": 8192, "found": [cycle, loop]}


# A DOM just large enough for browser.js: elements with attributes, children and text; scripts appended to
# <head> run at once (the chunk files). Prints the app's tree as JSON: {tag, id, class, href, text, children}.
NODE_DOM = r"""
const fs = require("fs"), path = require("path"), vm = require("vm");
const [dir, hash] = process.argv.slice(1);
class El {
  constructor(tag, text) { this.tagName = tag; this.children = []; this.attrs = {}; this.style = {};
                           this.own = text === undefined ? "" : String(text); this.className = ""; }
  appendChild(c) { this.children.push(c); if (this.tagName === "head" && c.tagName === "script") run(c.src); return c; }
  setAttribute(k, v) { this.attrs[k] = String(v); if (k === "id" || k === "value") this[k] = String(v); }
  getAttribute(k) { return this.attrs[k]; }
  addEventListener() {}
  focus() {}
  set textContent(t) { this.children = []; this.own = String(t); }
  get textContent() { return this.own + this.children.map(c => c.textContent).join(""); }
  set innerHTML(h) { this.children = []; this.own = ""; }
  dump() { return {tag: this.tagName, id: this.id || this.attrs.id || null, class: this.className || null,
                   href: this.attrs.href || null, text: this.textContent, children: this.children.map(c => c.dump())}; }
}
const head = new El("head"), app = new El("main"), title = new El("span");
app.id = "app"; title.id = "run-title";
function byId(node, id) {
  if (node.id === id) return node;
  for (const c of node.children) { const r = byId(c, id); if (r) return r; }
  return null;
}
const body = new El("body"); body.children = [title, app];
const document = {head, title: "", createElement: t => new El(t), createElementNS: (ns, t) => new El(t),
                  createTextNode: t => new El("#text", t), createDocumentFragment: () => new El("#fragment"),
                  getElementById: id => byId(body, id)};
const ctx = vm.createContext({document, location: {hash}, history: {replaceState() {}}, console,
                              addEventListener() {}, scrollTo() {}});
ctx.window = ctx;
function run(src) { vm.runInContext(fs.readFileSync(path.join(dir, src), "utf8"), ctx, {filename: src}); }
run("data/index.js");
run("browser.js");
process.stdout.write(JSON.stringify(app.dump()));
"""


def render_page(site_dir, hash_: str) -> dict:
    """The app's DOM after browser.js renders `hash_` (e.g. "#f=3") of a written site, run by Node."""
    import json
    import shutil
    import subprocess

    node = shutil.which("node") or shutil.which("nodejs")
    out = subprocess.run([node, "-e", NODE_DOM, str(site_dir), hash_], capture_output=True, text=True, timeout=60,
                         check=True)
    return json.loads(out.stdout)


def find_all(tree: dict, **match) -> list[dict]:
    """The nodes of a rendered tree whose fields equal `match` (class: one of the node's classes)."""
    ok = all((v in (tree.get("class") or "").split()) if k == "class" else tree.get(k) == v for k, v in match.items())
    return ([tree] if ok else []) + [n for c in tree["children"] for n in find_all(c, **match)]
