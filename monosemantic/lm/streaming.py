"""Streamed activations: the SAE draws its training points from the transformer on the fly (no store on disk).

At the paper's scale a store is 8B points x 512 x 2 bytes ≈ 8 TB plus a 32-byte index per point; a stream
keeps only a shuffle buffer. `StreamedActivations` has the read interface of an activation store
(`n_points`, `d`, `read(start, stop)` -> float32 rows), so sae_train.train_sae trains on either unchanged.

Which points: exactly those the stored mode samples (activations.py): contexts in the seeded order without
replacement (pass e is a fresh permutation when the stream is reused), k = tokens_per_context positions of
each context from its own fixed random position order (positions [e k, (e+1) k) in pass e). Only the
shuffle differs:

  stored    one global shuffle of all n_points (two-pass bucket shuffle on disk);
  streamed  block shuffle: the sampling order is cut into blocks of S = shuffle_buffer points (S / k whole
            contexts each); block b is sampled (one forward pass over its contexts) and permuted with a
            seed of its own (activations.seed, split, b). Point i of the stream is row i mod S of block i // S.

So `read(start, stop)` is a pure function of (seed, start, stop): deterministic whatever the world size
or the order of reads (data-parallel ranks read disjoint slices of the same global batch), and a resumed
run reads the same rows. Memory is bounded by the cache of two blocks (2 S d float32) plus one forward batch.
Rows are rounded through activations.dtype, as the store would hold them.

With transformer.mix (mix.py) the contexts are those of the stored mode's mixed schedule
(activations.mixed_schedule: each subset's quota of contexts, interleaved by one seeded permutation), in
its order; blocks cut that order as above. The mix is part of the stream's identity.

Mixing. In a batch of B points drawn uniformly from S points of S / k contexts, the share of the pairs of
points that come from the same context is (k − 1) / (S − 1) (global shuffle of N points: (k − 1) / (N − 1);
no shuffle: about (k − 1) / (B − 1)). `same_context_share` measures it on real batches.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from monosemantic.lm.activations import (CONTEXT_ORDER, POSITION_ORDER, SPLIT_IDS, _seed, mixed_schedule, plan,
                                          position_order)
from monosemantic.lm.store import StoreError, from_storage, to_storage
from monosemantic.core.utils import autocast, write_json

BLOCK_PERM = 5  # sub-stream of activations.seed for the block permutations (activations.py uses 1-4)
# In streamed mode the sample_activations stage writes this file instead of the train store: what the stream is
# (its identity hash and settings), so the SAE stage's DVC dep changes exactly when the stream's data would.
STREAM_FILE = "stream.json"


class StreamedActivations:
    """Read-only, store-like view of the first n_points streamed activations of `model` on `stream`."""

    def __init__(self, model, stream, *, n_points: int, k: int, shuffle_buffer: int, seed: int,
                 batch_contexts: int, dtype: str = "float32", split: str = "train",
                 device: torch.device | str = "cpu", cache_blocks: int = 2, precision: str = "fp32",
                 mix: dict[str, float] | None = None):
        if shuffle_buffer % k:
            raise ValueError(f"shuffle_buffer {shuffle_buffer} must be a multiple of tokens_per_context {k}")
        self.model = model.eval().to(device)
        self.stream, self.k, self.seed, self.split = stream, k, seed, split
        self.n_ctx, self.d = model.cfg.n_ctx, model.cfg.d_mlp
        self.n_points, self.block_points = int(n_points), int(shuffle_buffer)
        self.batch_contexts, self.dtype, self.device = batch_contexts, dtype, torch.device(device)
        self.precision = precision  # of the forward pass (utils.autocast), as the sampling stage's
        self.available, self.needed, self.passes = plan(len(stream), self.n_ctx, n_points, k)
        self.mix = dict(mix or {})
        self._mixed = None  # the mixed schedule's (context ids, passes), in sampling order
        if self.mix:  # the stored mode's schedule, whole: needed is small (n_points / k)
            self._mixed = mixed_schedule(stream, self.mix, self.n_ctx, k, seed, split, self.available, self.needed)
            self.passes = int(self._mixed[1].max()) + 1
        self.pos_key = int(_seed(seed, split, POSITION_ORDER).generate_state(1, np.uint64)[0])
        self._perms: dict[int, np.ndarray] = {}
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.cache_blocks = cache_blocks
        self.blocks_computed = 0  # forward work done (tests, progress)
        # what identifies the data (sae_train's checkpoint fingerprint reads manifest["shards"][*]["sha256"])
        self.manifest = {"mode": "streamed", "shards": [{"sha256": self.identity()}]}

    def identity(self) -> str:
        """sha256 of what the rows depend on: the model's weights, the stream (length and its first and last
        2^20 tokens; hashing 100B tokens would take minutes) and the sampling parameters."""
        h = hashlib.sha256()
        for name, t in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().float().cpu().numpy().tobytes())
        toks = self.stream.tokens
        h.update(np.asarray(toks[:1 << 20]).tobytes())
        h.update(np.asarray(toks[-(1 << 20):]).tobytes())
        h.update(repr((len(toks), self.n_points, self.k, self.block_points, self.seed, self.dtype, self.split,
                       self.n_ctx, self.precision)).encode())
        if self.mix:  # (unmixed streams keep the identities they had before the mix was supported)
            h.update(repr(sorted(self.mix.items())).encode())
        return h.hexdigest()

    def __len__(self) -> int:
        return self.n_points

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.n_points / self.block_points)

    # ------------------------------------------------------------------ which points

    def _pass_perm(self, e: int) -> np.ndarray:
        """The context order of pass e (the same permutation activations.context_schedule draws)."""
        if e not in self._perms:
            if len(self._perms) >= 2:
                self._perms.pop(next(iter(self._perms)))
            self._perms[e] = np.random.default_rng(_seed(self.seed, self.split, CONTEXT_ORDER, e)).permutation(
                self.available)
        return self._perms[e]

    def block_contexts(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(context ids, pass of each) of block b, in sampling order."""
        per_block = self.block_points // self.k
        j = np.arange(b * per_block, min((b + 1) * per_block, self.needed))
        if self._mixed is not None:
            return self._mixed[0][j], self._mixed[1][j]
        passes = j // self.available
        ids = np.empty(len(j), dtype=np.int64)
        for e in np.unique(passes):
            sel = passes == e
            ids[sel] = self._pass_perm(int(e))[j[sel] % self.available]
        return ids, passes

    def block_order(self, b: int) -> np.ndarray:
        """The permutation of block b's rows (index into the block's sampling order)."""
        n = min(self.block_points, self.n_points - b * self.block_points)
        return np.random.default_rng(np.random.SeedSequence(
            [self.seed, SPLIT_IDS[self.split], BLOCK_PERM, b])).permutation(n)

    def block_tokens(self, b: int) -> np.ndarray:
        """Global token index of every point of block b, in the order read() returns them."""
        ids, passes = self.block_contexts(b)
        order = position_order(ids, self.n_ctx, self.pos_key)
        pos = np.stack([order[i, e * self.k:(e + 1) * self.k] for i, e in enumerate(passes)]) if len(ids) else \
            np.empty((0, self.k), dtype=np.int64)
        tokens = (ids[:, None] * self.n_ctx + pos).reshape(-1)
        n = min(self.block_points, self.n_points - b * self.block_points)
        return tokens[:n][self.block_order(b)]

    # ------------------------------------------------------------------ activations

    @torch.no_grad()
    def _compute_block(self, b: int) -> torch.Tensor:
        ids, passes = self.block_contexts(b)
        order = position_order(ids, self.n_ctx, self.pos_key)
        rows = []
        for lo in range(0, len(ids), self.batch_contexts):
            sl = slice(lo, lo + self.batch_contexts)
            win = ids[sl, None] * self.n_ctx + np.arange(self.n_ctx)[None]
            toks = torch.from_numpy(self.stream.tokens[win].astype(np.int64)).to(self.device)
            pos = np.stack([order[lo + i, e * self.k:(e + 1) * self.k] for i, e in enumerate(passes[sl])])
            with autocast(self.device, self.precision):
                acts = self.model.mlp_acts(toks, torch.from_numpy(pos).to(self.device))
            rows.append(acts.reshape(-1, self.d).float().cpu())
        n = min(self.block_points, self.n_points - b * self.block_points)
        x = torch.cat(rows)[:n]
        x = from_storage(to_storage(x, self.dtype), self.dtype)  # as the store would hold it
        self.blocks_computed += 1
        return x[torch.from_numpy(self.block_order(b))]

    def _block(self, b: int) -> torch.Tensor:
        if b in self._cache:
            self._cache.move_to_end(b)
            return self._cache[b]
        x = self._compute_block(b)
        self._cache[b] = x
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return x

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Rows [start, stop) of the stream as float32 (the store interface)."""
        if not 0 <= start <= stop <= self.n_points:
            raise IndexError(f"rows [{start}, {stop}) outside stream of {self.n_points}")
        parts, S = [], self.block_points
        while start < stop:
            b = start // S
            take = min(stop, (b + 1) * S) - start
            parts.append(self._block(b)[start - b * S:start - b * S + take])
            start += take
        if not parts:
            return torch.empty(0, self.d)
        return parts[0].clone() if len(parts) == 1 else torch.cat(parts)


def same_context_share(context_of_point: np.ndarray) -> float:
    """Share of the pairs of points of a batch that come from the same context (0: perfectly mixed).

    Σ_c n_c (n_c − 1) / (B (B − 1)) over the contexts c with n_c points in the batch of B."""
    _, n = np.unique(np.asarray(context_of_point), return_counts=True)
    B = int(n.sum())
    return float((n * (n - 1)).sum() / (B * (B - 1))) if B > 1 else 0.0


def write_stream_manifest(out_dir: str | Path, stream: "StreamedActivations", extra: dict | None = None) -> dict:
    """out_dir/stream.json (out_dir emptied first): the stream's identity and settings, in place of a store."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        for f in out_dir.iterdir():
            f.unlink()
    manifest = {"mode": "streamed", "identity": stream.identity(), "n_points": stream.n_points, "k": stream.k,
                "shuffle_buffer": stream.block_points, "seed": stream.seed, "dtype": stream.dtype,
                "split": stream.split, "precision": stream.precision, **(extra or {})}
    write_json(out_dir / STREAM_FILE, manifest)
    return manifest


def open_source(params, model_name: str, device: torch.device | str = "cpu",
                root: str | Path = "artifacts", check: bool = True, points_mult: int = 1):
    """The SAE's training data for `model_name`: the activation store (activations.mode: stored) or the
    stream (streamed: the transformer artifacts/models/MODEL on the train tokens, by transformer.mix). With
    `check`, a streamed source must match the stream.json that the sample_activations stage wrote (a StoreError
    otherwise). points_mult > 1 (a run's sae_runs.RUN.points_mult): the first points_mult x activations.n_points
    points of the stream, in either mode (the store holds n_points); the stage's stream.json does not describe
    it, so it is not checked against one (the SAE stage's DVC deps are the model and the tokens it is made from)."""
    root = Path(root)
    a = params.activations
    if a.mode == "stored" and points_mult == 1:
        from monosemantic.lm.store import ActivationStore

        return ActivationStore(root / "activations" / model_name / "train")
    from monosemantic.data.tokenizer import load_stream
    from monosemantic.lm.model import Transformer
    from monosemantic.core.utils import resolve_precision

    device = torch.device(device)
    model = Transformer.load(root / "models" / model_name, device)
    stream = StreamedActivations(model, load_stream(root / "tokens", "train"), n_points=a.n_points * points_mult,
                                 k=a.tokens_per_context, shuffle_buffer=a.shuffle_buffer, seed=a.seed,
                                 batch_contexts=a.batch_contexts, dtype=a.dtype, device=device,
                                 precision=resolve_precision(getattr(params, "precision", "fp32"), device),
                                 mix=getattr(params.transformer, "mix", None))
    if check and points_mult == 1:
        path = root / "activations" / model_name / "train" / STREAM_FILE
        if not path.exists():
            raise StoreError(f"{path}: missing; run `dvc repro sample_activations@{model_name}` (streamed mode)")
        if json.loads(path.read_text())["identity"] != stream.identity():
            raise StoreError(f"{path}: written for another model, token stream or sampling settings; rerun "
                             f"`dvc repro sample_activations@{model_name}`")
    return stream
