"""The training mix: how often each subset's contexts are drawn (the superposition experiment's dose).

The paper's rare contexts are rare: Arabic is ~0.13% of the Pile's tokens, so a 512-neuron MLP has no neuron to
spare for it and stores it in superposition. The mini-Pile's rare subsets are 6-14% of its tokens each, which buys
them dedicated neurons. `transformer.mix` re-weights the subsets without rebuilding data/:

    mix = {Arabic: 0.01, Hebrew: 0.01, DNA: 0.01, Base64: 0.01}

gives each named subset that share of the drawn contexts (hence of the tokens the transformer trains on and of the
SAE's training activations); the subsets not named share the rest in proportion to their token counts in the
stream. An empty mix is the natural mix (every token equally likely), served by the unweighted code paths, so the
outputs of a profile without a mix do not change.

    share_s = mix[s]                                         for s named in mix
    share_s = (1 - Σ_named mix) · N_s / Σ_unnamed N_u        otherwise (N_s: tokens of subset s)

A context belongs to the subset of the document its first token is in (a window may run on into the next
document, as GPT-2-style sampling does). Evaluation never uses the mix: validation losses and held-out activations
come from the natural validation split, so arms with different mixes are compared on the same tokens.
"""

from __future__ import annotations

import numpy as np
import torch

from monosemantic.data.tokenizer import TokenStream
from monosemantic.core.utils import PipelineError


class MixError(PipelineError, ValueError):
    pass


def subset_token_counts(stream: TokenStream) -> dict[str, int]:
    """Tokens of each subset in the stream."""
    lengths = np.diff(stream.doc_start)
    return {name: int(lengths[stream.doc_subset == c].sum()) for c, name in enumerate(stream.subsets)}


def mix_shares(stream: TokenStream, mix: dict[str, float]) -> dict[str, float]:
    """The share of drawn contexts for every subset of the stream (see the module docstring)."""
    counts = subset_token_counts(stream)
    unknown = sorted(set(mix) - set(counts))
    if unknown:
        raise MixError(f"transformer.mix names {unknown}, which are not subsets of this corpus "
                       f"({', '.join(sorted(counts))})")
    empty = sorted(s for s in mix if counts[s] == 0 and mix[s] > 0)
    if empty:
        raise MixError(f"transformer.mix gives a share to {empty}, which have no tokens in this split")
    rest = [s for s in counts if s not in mix]
    named = float(sum(mix.values()))
    rest_tokens = sum(counts[s] for s in rest)
    if rest and rest_tokens == 0 and named < 1:
        raise MixError("transformer.mix leaves a share for subsets that have no tokens")
    if not rest and abs(named - 1.0) > 1e-9:
        raise MixError(f"transformer.mix names every subset; its shares must sum to 1, not {named}")
    shares = {}
    for s in counts:
        shares[s] = float(mix[s]) if s in mix else (1.0 - named) * counts[s] / rest_tokens
    return shares


class MixedStarts:
    """Window starts drawn by the mix: a subset with probability share_s, then a start uniform over the tokens
    of that subset's documents (clipped so the window fits the stream)."""

    def __init__(self, stream: TokenStream, mix: dict[str, float], length: int):
        self.shares = mix_shares(stream, mix)
        self.length = length
        self.names = [s for s in stream.subsets if self.shares[s] > 0]
        self.probs = torch.tensor([self.shares[s] for s in self.names], dtype=torch.float64)
        self.max_start = len(stream) - length
        if self.max_start < 0:
            raise MixError(f"the stream has {len(stream)} tokens, fewer than one window of {length}")
        self.docs, self.cum = [], []
        lengths = np.diff(stream.doc_start)
        for s in self.names:
            docs = np.flatnonzero(stream.doc_subset == stream.subsets.index(s))
            self.docs.append(stream.doc_start[docs])
            self.cum.append(np.concatenate([[0], np.cumsum(lengths[docs])]))

    def sample(self, n: int, gen: torch.Generator) -> np.ndarray:
        """n window starts (int64), from the generator only."""
        which = torch.multinomial(self.probs, n, replacement=True, generator=gen).numpy()
        u = torch.rand(n, generator=gen, dtype=torch.float64).numpy()
        starts = np.empty(n, dtype=np.int64)
        for j in range(len(self.names)):
            rows = np.flatnonzero(which == j)
            if rows.size == 0:
                continue
            cum = self.cum[j]
            offset = np.minimum((u[rows] * cum[-1]).astype(np.int64), cum[-1] - 1)
            d = np.searchsorted(cum, offset, side="right") - 1
            starts[rows] = self.docs[j][d] + (offset - cum[d])
        return np.minimum(starts, self.max_start)


def context_quotas(n_contexts: int, shares: dict[str, float]) -> dict[str, int]:
    """Split n_contexts by the shares, rounding by largest remainder (ties: subset order); sums to n_contexts."""
    names = list(shares)
    raw = np.array([shares[s] * n_contexts for s in names])
    q = np.floor(raw).astype(np.int64)
    left = n_contexts - int(q.sum())
    order = np.argsort(-(raw - q), kind="stable")
    q[order[:left]] += 1
    return {s: int(v) for s, v in zip(names, q)}


def context_subsets(stream: TokenStream, n_ctx: int, available: int) -> np.ndarray:
    """Subset code of every context (window i starts at token i * n_ctx)."""
    return stream.doc_subset[stream.doc_of(np.arange(available, dtype=np.int64) * n_ctx)]
