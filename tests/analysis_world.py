"""A tiny, real input for the analysis library's tests: a byte-level BPE tokenizer trained on a few sentences of six
corpus subsets, train and val token streams of those sentences, two random one-layer transformers (A, B), their
activation stores sampled by lm/activations.py (the same val tokens in both), and random dictionaries that fire
on about a fifth of the points (A_16, A_8 on A; B_16 on B). Built once per test module (a few seconds)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from monosemantic.analysis import proxies as px
from monosemantic.analysis.inputs import Dictionary
from monosemantic.core.config import SAERun, load_params
from monosemantic.data.tokenizer import EOT_ID, TokenStream, train_tokenizer
from monosemantic.lm.activations import sample_activations
from monosemantic.lm.model import ModelConfig, build_model
from monosemantic.lm.store import ActivationStore
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings

ROOT = Path(__file__).resolve().parents[1]
TEXTS = {
    "English": "The cat sat on the mat. The dog ran to the park and the cat followed the dog home. ",
    "Code": "def f(x):\n    return x + 1\n\nfor i in range(10):\n    print(f(i))\n",
    "Arabic": "قال رسول الله صلى الله عليه وسلم في الحديث الشريف ",
    "Hebrew": "בראשית ברא אלהים את השמים ואת הארץ והארץ היתה תהו ובהו ",
    "DNA": "ATGCGTACGTTAGCCGATAGCTAGCTAGGCTAACGTAGCTAGCATCGATCGA",
    "Base64": "QmFzZTY0IGlzIGEgZ3JvdXAgb2YgYmluYXJ5LXRvLXRleHQgZW5jb2Rpbmc=",
}
D_MLP, N_CTX = 32, 16


@dataclass
class World:
    tok: object
    streams: dict[str, TokenStream]
    models: dict[str, torch.nn.Module]
    stores: dict[tuple[str, str], ActivationStore]  # (model, split)
    saes: dict[str, StandardSAE]
    runs: dict[str, SAERun]
    llr: dict[str, np.ndarray]
    params: object  # configs/smoke.yaml with the analysis sizes cut to this world
    dictionaries: dict[str, Dictionary] = field(default_factory=dict)

    def dictionary(self, name: str) -> Dictionary:
        run = self.runs[name]
        return Dictionary(name, run, self.stores[(run.model, "val")], self.saes[name], self.models[run.model])


def stream(tok, repeats: int, rng: np.random.Generator) -> TokenStream:
    """Documents of two copies of a subset's sentence each, `repeats` per subset, in a shuffled order."""
    subsets = sorted(TEXTS)
    order = rng.permutation(np.repeat(np.arange(len(subsets)), repeats))
    ids, doc_subset, doc_start = [], [], [0]
    for s in order:
        ids += tok.encode(TEXTS[subsets[s]] * 2, add_special_tokens=False).ids + [EOT_ID]
        doc_subset.append(s)
        doc_start.append(len(ids))
    return TokenStream(np.asarray(ids, dtype=np.uint16), np.asarray(doc_start, dtype=np.int64),
                       np.asarray(doc_subset, dtype=np.int16), subsets)


@torch.no_grad()
def random_sae(store: ActivationStore, n_features: int, seed: int) -> StandardSAE:
    """A random dictionary whose every feature fires on about a fifth of the store's points."""
    x = store.read(0, store.n_points)
    sae = StandardSAE(D_MLP, n_features, StandardSettings(0.01), generator=torch.Generator().manual_seed(seed))
    sae.b_d.copy_(x.mean(0))
    sae.b_e.copy_(-torch.quantile((x - sae.b_d) @ sae.W_e.T, 0.8, dim=0))
    return sae.eval()


def build(tmp: Path) -> World:
    rng = np.random.default_rng(0)
    tok = train_tokenizer([t * 4 for t in TEXTS.values()], vocab_size=400, min_frequency=2)
    streams = {"train": stream(tok, 12, rng), "val": stream(tok, 8, rng)}
    cfg = ModelConfig(vocab_size=tok.get_vocab_size(), d_model=16, d_mlp=D_MLP, n_heads=2, n_ctx=N_CTX)
    models = {m: build_model(cfg, seed).eval() for m, seed in (("A", 0), ("B", 1))}
    stores = {}
    for (m, split), n in {("A", "train"): 800, ("A", "val"): 400, ("B", "val"): 400}.items():
        sample_activations(models[m], streams[split], tmp / m / split, n_points=n, k=4, shard_points=256,
                           dtype="float32", batch_contexts=8, seed=3, split=split, progress=False)
        stores[(m, split)] = ActivationStore(tmp / m / split)
    runs = {name: SAERun(model, n, "standard", StandardSettings(0.01), 1)
            for name, model, n in (("A_16", "A", 16), ("A_8", "A", 8), ("B_16", "B", 16))}
    saes = {name: random_sae(stores[(r.model, "val")], r.n_features, seed) for seed, (name, r) in enumerate(runs.items())}
    llr = px.llr_tables(px.vocab_bytes(tok), px.token_counts(streams["train"].tokens, tok.get_vocab_size()))
    params = load_params(ROOT / "configs" / "smoke.yaml")
    analysis = dataclasses.replace(params.analysis, run="A_16", model="A", compare_run="B_16", compare_model="B",
                                   splitting_runs=("A_8", "A_16"), max_points=300, batch_size=128, top_k=5,
                                   ablation_window=8, base64_min_active=2, universality_min_active=2)
    params = dataclasses.replace(params, analysis=analysis, sae_runs=runs)
    return World(tok, streams, models, stores, saes, runs, llr, params)
