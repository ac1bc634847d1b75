"""Per-token proxies for four feature families (paper: "Detailed investigations") and the features and
neurons that best match them.

The paper measures a feature against a proxy: the log-likelihood ratio of the token under the hypothesis that
it comes from a context type (Arabic script, Hebrew script, DNA, base64) versus the full empirical
distribution of the data,

    proxy(t) = log( P(t | context type) / P(t) ).

What exactly we compute (our choices where the paper gives no detail):

* P(t) is the token's overall frequency: its unigram frequency in the training token stream, add-one smoothed,
  P(t) = (count_t + 1) / (N + V).
* P(t | type) for DNA and base64 (random strings) is the paper's uniform character model: characters drawn
  independently and uniformly from the alphabet, P(t | type) = Π_chars 1/K for a token whose characters all
  lie in it (base64: A–Z a–z 0–9 + /, 1/64 per character; DNA: A T C G, 1/4 each), 0 otherwise (log −inf).
* P(t | type) for Arabic and Hebrew script (natural languages, where a uniform character model would call
  the commonest words unlikely: ' ال' gets 1/257² under it but ~0.5% of all tokens) is the empirical
  distribution of the script's tokens: P(t | script) = count_t / Σ_{t' ∈ S} count_t' for t in S, the tokens
  made only of characters of the script's Unicode blocks (Arabic U+0600–U+06FF plus the Arabic Supplement
  U+0750–U+077F, as in the paper; Hebrew U+0590–U+05FF) and spaces, with at least one block character; 0
  otherwise. The LLR is then the same for every script token,
  log(N / N_S) (smoothed), minus the log-share of the script in the data: the proxy is an indicator of the
  script's tokens, scaled by how rare the script is.
* Byte-level BPE splits rare multi-byte characters across tokens. A token that begins with continuation bytes
  (the end of a character started in the previous token) or ends with an incomplete character is judged on
  its bytes: the fragment belongs to an alphabet when some character of it has UTF-8 bytes that end (resp.
  start) with it; under the uniform model its probability is #{such characters} / K. A fragment of a block
  character counts as a block character.
* The special <|endoftext|> token has P(t | type) = 0.
* The proxy value correlated with activations is max(LLR, 0): tokens the hypothesis cannot produce, or
  produces less often than the data do, are 0; "proxy-positive" tokens are those with LLR > 0.

Against a proxy, over the validation tokens (activation a ≥ 0 of a feature or a neuron, proxy value p):

    pearson      Pearson correlation of a and p
    specificity  Σ a·[LLR > 0] / Σ a        share of the unit's activation mass on proxy-positive tokens
    sensitivity  #{a > 0, LLR > 0} / #{LLR > 0}  share of the proxy-positive tokens on which the unit fires

The best-matching feature (resp. neuron) is the one with the largest Pearson r.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from monosemantic.analysis.token_bytes import split_units, vocab_bytes
from monosemantic.data.tokenizer import load_stream, load_tokenizer

BASE64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@dataclass(frozen=True)
class Hypothesis:
    """A context type: tokens are strings of characters drawn uniformly from `alphabet`; at least one must
    be in `core` (the script's block, not its word separator)."""

    name: str
    alphabet: frozenset
    core: frozenset
    kind: str = "uniform"  # "uniform": Π 1/K per character; "script": empirical distribution of S's tokens

    @property
    def size(self) -> int:
        return len(self.alphabet)


def _block(lo: int, hi: int) -> frozenset:
    return frozenset(chr(c) for c in range(lo, hi + 1))


# The paper's Arabic proxy uses the Arabic block and the Arabic Supplement block (U+0750-U+077F).
ARABIC_BLOCK = _block(0x0600, 0x06FF) | _block(0x0750, 0x077F)
HEBREW_BLOCK = _block(0x0590, 0x05FF)
HYPOTHESES: dict[str, Hypothesis] = {
    "arabic": Hypothesis("arabic", ARABIC_BLOCK | {" "}, ARABIC_BLOCK, "script"),
    "hebrew": Hypothesis("hebrew", HEBREW_BLOCK | {" "}, HEBREW_BLOCK, "script"),
    "dna": Hypothesis("dna", frozenset("ATCG"), frozenset("ATCG")),
    "base64": Hypothesis("base64", frozenset(BASE64_CHARS), frozenset(BASE64_CHARS)),
}
PROXY_NAMES = tuple(HYPOTHESES)


@functools.lru_cache(maxsize=None)
def _encoded(alphabet: frozenset) -> tuple[bytes, ...]:
    return tuple(c.encode("utf-8") for c in alphabet)


def hypothesis_log_prob(b: bytes, hyp: Hypothesis) -> float:
    """log P(token bytes | hyp) under the uniform character model (−inf when the token is not made of the
    alphabet's characters or has no core character). For a "script" hypothesis only finiteness (membership
    in S) is used."""
    units = split_units(b) if b else None
    if not units:
        return -np.inf
    enc = _encoded(hyp.alphabet)
    core_enc = _encoded(hyp.core)
    logp, has_core = 0.0, False
    for kind, u in units:
        if kind == "char":
            c = u.decode("utf-8")
            if c not in hyp.alphabet:
                return -np.inf
            logp -= np.log(hyp.size)
            has_core |= c in hyp.core
            continue
        if kind == "head":  # the last bytes of a character
            match = sum(e.endswith(u) and len(e) > len(u) for e in enc)
            core = any(e.endswith(u) and len(e) > len(u) for e in core_enc)
        else:  # the first bytes of a character
            match = sum(e.startswith(u) and len(e) > len(u) for e in enc)
            core = any(e.startswith(u) and len(e) > len(u) for e in core_enc)
        if match == 0:
            return -np.inf
        logp += np.log(match / hyp.size)
        has_core |= core
    return logp if has_core else -np.inf


def unigram_log_prob(counts: np.ndarray) -> np.ndarray:
    """log P(t), add-one smoothed token frequencies: log((count_t + 1) / (N + V))."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log(counts + 1.0) - np.log(counts.sum() + counts.size)


def token_counts(tokens: np.ndarray, vocab_size: int, chunk: int = 1 << 24) -> np.ndarray:
    """Unigram counts of a (memory-mapped) token stream, in chunks."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for s in range(0, len(tokens), chunk):
        counts += np.bincount(np.asarray(tokens[s:s + chunk]), minlength=vocab_size)[:vocab_size]
    return counts


def token_llr(vocab: list[bytes], counts: np.ndarray, hyp: Hypothesis) -> np.ndarray:
    """log P(t | hyp) − log P(t) for every token id (−inf where the hypothesis cannot produce t).

    counts: unigram counts of the reference stream (P(t) add-one smoothed; for a "script" hypothesis
    P(t | S) = (count_t + 1) / Σ_{t' ∈ S} (count_t' + 1))."""
    log_p_token = unigram_log_prob(counts)
    lp = np.array([hypothesis_log_prob(b, hyp) for b in vocab])
    if hyp.kind == "script":
        member = np.isfinite(lp)
        c = np.asarray(counts, dtype=np.float64) + 1.0
        total = c[member].sum()
        lp = np.where(member, np.log(c) - np.log(total if total > 0 else 1.0), -np.inf)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(lp), lp - log_p_token, -np.inf)


def proxy_value(llr: np.ndarray) -> np.ndarray:
    """The value correlated with activations: max(LLR, 0), 0 where the LLR is −inf."""
    return np.where(np.isfinite(llr), np.maximum(llr, 0.0), 0.0)


def llr_tables(vocab: list[bytes], counts: np.ndarray, names: Iterable[str] = PROXY_NAMES) -> dict[str, np.ndarray]:
    """{proxy name: LLR per token id}."""
    return {n: token_llr(vocab, counts, HYPOTHESES[n]) for n in names}


# ------------------------------------------------------------------------------------------------
# Matching units (features / neurons) to proxies
# ------------------------------------------------------------------------------------------------


class ProxyStats:
    """Streaming sums over (activation chunk (B, F), proxy chunk (B, P)) for Pearson r, specificity,
    sensitivity of every unit against every proxy. float64 accumulators."""

    def __init__(self, n_units: int, n_proxies: int):
        F, P = n_units, n_proxies
        self.n = 0
        self.s_a = torch.zeros(F, dtype=torch.float64)
        self.s_aa = torch.zeros(F, dtype=torch.float64)
        self.s_p = torch.zeros(P, dtype=torch.float64)
        self.s_pp = torch.zeros(P, dtype=torch.float64)
        self.s_ap = torch.zeros(F, P, dtype=torch.float64)
        self.mass_pos = torch.zeros(F, P, dtype=torch.float64)  # Σ a [LLR > 0]
        self.fire_pos = torch.zeros(F, P, dtype=torch.float64)  # Σ [a > 0][LLR > 0]
        self.n_pos = torch.zeros(P, dtype=torch.float64)
        self.n_fire = torch.zeros(F, dtype=torch.float64)

    def update(self, a: torch.Tensor, p: torch.Tensor, w: torch.Tensor | None = None) -> None:
        """Add a chunk; with w (B,), every sum is weighted (weighted Pearson r, specificity, sensitivity;
        n_fire stays a count)."""
        a, p = a.float(), p.float()
        pos = (p > 0).float()
        fire = (a > 0).float()
        if w is None:
            aw, pw, posw, n = a, p, pos, a.shape[0]
        else:
            wc = w.float()[:, None]
            aw, pw, posw, n = a * wc, p * wc, pos * wc, float(w.sum(dtype=torch.float64))
        self.n += n
        self.s_a += aw.sum(0, dtype=torch.float64)
        self.s_aa += (a.pow(2) if w is None else aw * a).sum(0, dtype=torch.float64)
        self.s_p += pw.sum(0, dtype=torch.float64)
        self.s_pp += (p.pow(2) if w is None else pw * p).sum(0, dtype=torch.float64)
        self.s_ap += (a.T @ pw).double()
        self.mass_pos += (a.T @ posw).double()
        self.fire_pos += (fire.T @ posw).double()
        self.n_pos += posw.sum(0, dtype=torch.float64)
        self.n_fire += fire.sum(0, dtype=torch.float64)

    def result(self) -> dict[str, np.ndarray]:
        n = self.n
        cov = self.s_ap / n - (self.s_a / n)[:, None] * (self.s_p / n)[None, :]
        var_a = (self.s_aa / n - (self.s_a / n) ** 2).clamp_min(0)
        var_p = (self.s_pp / n - (self.s_p / n) ** 2).clamp_min(0)
        denom = (var_a[:, None] * var_p[None, :]).sqrt()
        r = torch.where(denom > 0, cov / denom.clamp_min(1e-300), torch.zeros_like(cov))
        spec = torch.where(self.s_a[:, None] > 0, self.mass_pos / self.s_a[:, None].clamp_min(1e-300),
                           torch.zeros_like(cov))
        sens = self.fire_pos / self.n_pos[None, :].clamp_min(1)
        return {"pearson": r.numpy(), "specificity": spec.numpy(), "sensitivity": sens.numpy(),
                "n_fire": self.n_fire.numpy(), "n_pos": self.n_pos.numpy(), "mass": self.s_a.numpy()}


@torch.no_grad()
def match_proxies(store, proxy_points: np.ndarray, encoders: dict[str, Callable[[torch.Tensor], torch.Tensor]],
                  n_points: int, batch_size: int = 8192,
                  weights: np.ndarray | None = None) -> dict[str, dict[str, np.ndarray]]:
    """One pass over the first n_points rows of `store`: ProxyStats for every encoder (e.g. {"features":
    sae.encode, "neurons": identity}) against the (n_points, P) proxy values; weighted by `weights`
    (n_points,) when given (superposition.mix_weights: the points re-weighted to the training mix)."""
    return match_proxies_weighted(store, proxy_points, encoders, n_points, batch_size, [weights])[0]


@torch.no_grad()
def match_proxies_weighted(store, proxy_points: np.ndarray,
                           encoders: dict[str, Callable[[torch.Tensor], torch.Tensor]], n_points: int,
                           batch_size: int, weightings: list[np.ndarray | None]) -> list[dict[str, dict]]:
    """match_proxies under every weighting of `weightings` (None: unweighted) from one pass: each chunk is
    read and encoded once. One result per weighting, in order."""
    stats: list[dict[str, ProxyStats]] = [{} for _ in weightings]
    P = proxy_points.shape[1]
    for start in range(0, n_points, batch_size):
        stop = min(start + batch_size, n_points)
        x = store.read(start, stop)
        p = torch.from_numpy(np.ascontiguousarray(proxy_points[start:stop], dtype=np.float32))
        ws = [None if w is None else torch.from_numpy(np.asarray(w[start:stop], dtype=np.float32))
              for w in weightings]
        for name, enc in encoders.items():
            a = enc(x)
            for st, w in zip(stats, ws):
                if name not in st:
                    st[name] = ProxyStats(a.shape[1], P)
                st[name].update(a, p, w)
    return [{name: s.result() for name, s in st.items()} for st in stats]


def best_match(res: dict[str, np.ndarray], j: int) -> dict:
    """The unit with the largest Pearson r against proxy j, and its numbers."""
    r = res["pearson"][:, j]
    i = int(np.argmax(r))
    return {"index": i, "pearson": float(r[i]), "specificity": float(res["specificity"][i, j]),
            "sensitivity": float(res["sensitivity"][i, j]), "n_fire": int(res["n_fire"][i])}


@torch.no_grad()
def unit_activations(store, n_points: int, fn: Callable[[torch.Tensor], torch.Tensor],
                     batch_size: int = 8192) -> np.ndarray:
    """fn applied to the first n_points rows, chunked, concatenated (for a few selected units)."""
    return torch.cat([fn(store.read(s, min(s + batch_size, n_points)))
                      for s in range(0, n_points, batch_size)]).numpy()


def feature_columns(sae, idx: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Activations of the selected features only: ReLU((x − b_d) W_e[idx]ᵀ + b_e[idx])."""
    W, b = sae.W_e[idx].detach(), sae.b_e[idx].detach()
    b_d = sae.b_d.detach()
    return lambda x: torch.relu((x - b_d) @ W.T + b)


def point_tokens(index: dict[str, np.ndarray], tokens: np.ndarray, n_points: int) -> np.ndarray:
    """Token id of each store point (the current token at the activation's position)."""
    return np.asarray(tokens[index["token"][:n_points]]).astype(np.int64)


def load_proxy_tables(tokens_dir: str | Path, tokenizer_path: str | Path, names: Iterable[str] = PROXY_NAMES):
    """(tokenizer, token stream of the val split, {name: LLR per token id}) from the tokenized corpus in
    tokens_dir (artifacts/tokens) and the tokenizer file; P(t) from the train split."""
    tok = load_tokenizer(tokenizer_path)
    vocab = vocab_bytes(tok)
    counts = token_counts(load_stream(tokens_dir, "train").tokens, len(vocab))
    return tok, load_stream(tokens_dir, "val"), llr_tables(vocab, counts, names)


def headline_key(base: str, run: str, main_run: str) -> str:
    """Headline key for a run: `base` for the main run (A/1), `base_RUN` for the others (B/1, random)."""
    return base if run == main_run else f"{base}_{run}"


# ------------------------------------------------------------------------------------------------
# Stage proxies: the best feature and the best neuron of every proxy (paper Fig. 2)
# ------------------------------------------------------------------------------------------------


@torch.no_grad()
def analyse(dictionary, val, llr: dict[str, np.ndarray], cfg) -> tuple[dict, dict]:
    """Every proxy against every feature of `dictionary` (an inputs.Dictionary) and every neuron of its model,
    on the first cfg.max_points points of its held-out store (val: the token stream the store was sampled from).

    Returns (metrics/analysis/proxies_RUN.json, Fig. 2's data: {proxy: ({"feature"|"neuron": (title, activation
    of the best unit on every point)}, the proxy's LLR on every point)}). Headline keys are suffixed _RUN for runs
    other than cfg.run (headline_key)."""
    n = min(cfg.max_points, dictionary.store.n_points)
    tids = point_tokens(dictionary.store.index(), val.tokens, n)
    names = list(PROXY_NAMES)
    points = np.stack([proxy_value(llr[k])[tids] for k in names], axis=1).astype(np.float32)
    res = match_proxies(dictionary.store, points, {"features": dictionary.sae.encode, "neurons": lambda x: x}, n,
                        cfg.batch_size)
    out = {"run": dictionary.name, "model": dictionary.run.model, "n_points": n, "proxies": {}}
    for j, k in enumerate(names):
        out["proxies"][k] = {
            "proxy_positive_tokens": int(res["features"]["n_pos"][j]),
            "proxy_positive_vocab": int((llr[k] > 0).sum()),
            "feature": best_match(res["features"], j), "neuron": best_match(res["neurons"], j),
            "features_pearson_top5": [round(float(v), 4) for v in np.sort(res["features"]["pearson"][:, j])[::-1][:5]],
        }
    best_f = [out["proxies"][k]["feature"]["index"] for k in names]
    best_n = [out["proxies"][k]["neuron"]["index"] for k in names]
    fa = unit_activations(dictionary.store, n, feature_columns(dictionary.sae, best_f), cfg.batch_size)
    na = unit_activations(dictionary.store, n, lambda x: x[:, best_n], cfg.batch_size)
    histograms = {}
    for j, k in enumerate(names):
        f, u = out["proxies"][k]["feature"], out["proxies"][k]["neuron"]
        histograms[k] = ({"feature": (f"{dictionary.name} feature {best_f[j]} (r = {f['pearson']:.2f})", fa[:, j]),
                          "neuron": (f"best neuron {best_n[j]} (r = {u['pearson']:.2f})", na[:, j])}, llr[k][tids])
    out["headline"] = {
        headline_key(f"proxy_pearson{unit}", dictionary.name, cfg.run): {
            k: round(out["proxies"][k][key]["pearson"], 4) for k in names}
        for unit, key in (("", "feature"), ("_best_neuron", "neuron"))}
    return out, histograms


def format_matches(out: dict) -> str:
    """One line per proxy: the best feature and the best neuron with their r, specificity and sensitivity."""
    return "\n".join(
        f"{out['run']} {k:>7}: feature {p['feature']['index']:>5} r={p['feature']['pearson']:.3f} "
        f"spec={p['feature']['specificity']:.2f} sens={p['feature']['sensitivity']:.2f} | neuron "
        f"{p['neuron']['index']:>3} r={p['neuron']['pearson']:.3f} spec={p['neuron']['specificity']:.2f}"
        for k, p in out["proxies"].items())
