"""Sampling the transformer's MLP activations into a shuffled activation store (paper: 8B points).

Contexts are the windows of n_ctx tokens of the token stream that start at multiples of n_ctx (the tail
shorter than n_ctx is never used). Sampling visits contexts in a seeded random order, without replacement,
runs the model on each and keeps the post-ReLU MLP activations at k = tokens_per_context positions drawn
without replacement from the context.

When a stream holds fewer than ceil(n_points / k) contexts, sampling cycles: pass e visits every context
again (in a fresh random order) and takes the next k positions of that context's own fixed random position
order (positions [e*k, (e+1)*k) of it). So no token is ever sampled twice; the number of passes is capped
at n_ctx // k, and asking for more points than that is an error naming the limit.

Points are shuffled across contexts with bounded memory, by a two-pass bucket shuffle:
  pass 1  every sampled point goes to one of ceil(n_points / shard_points) temporary bucket files, chosen
          uniformly at random (seeded); buckets hold ~shard_points points each (binomial sizes);
  pass 2  one bucket at a time is loaded, permuted (seeded) and written as one final shard.
Peak memory is one forward batch plus one bucket, whatever n_points (the per-point index goes through a
memory-mapped file). The result is a store.py directory: shards, index.npz (per point doc, pos, token,
context_start) and manifest.json. All randomness derives from activations.seed and the split, not from the
model, so the stores of A, B and random hold the same tokens in the same order (point i is the same token
in every model's store); the bytes of a store depend only on the model, the tokens and the params.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from monosemantic.core.config import ActivationsConfig
from monosemantic.data.mix import context_quotas, context_subsets, mix_shares
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import DTYPES, save_shard, to_storage, write_index, write_manifest
from monosemantic.data.tokenizer import TokenStream
from monosemantic.core.utils import PipelineError, autocast

SPLIT_IDS = {"train": 0, "val": 1}
# sub-streams of the configured seed
CONTEXT_ORDER, POSITION_ORDER, BUCKET_ASSIGN, BUCKET_PERM = 1, 2, 3, 4
INDEX_FIELDS = ("doc", "pos", "token", "context_start")
RECORD = np.dtype([(f, np.int64) for f in INDEX_FIELDS])


class SamplingError(PipelineError, RuntimeError):
    pass


def _seed(seed: int, split: str, stream_id: int, *more: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, SPLIT_IDS[split], stream_id, *more])


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def position_order(context_ids: np.ndarray, n_ctx: int, key: int) -> np.ndarray:
    """Each context's own fixed random order of its positions, (len(context_ids), n_ctx) int64."""
    x = (context_ids.astype(np.uint64)[:, None] * np.uint64(n_ctx) + np.arange(n_ctx, dtype=np.uint64)[None])
    keys = _splitmix64(x ^ np.uint64(key))
    return np.argsort(keys, axis=1, kind="stable")


def plan(n_tokens: int, n_ctx: int, n_points: int, k: int) -> tuple[int, int, int]:
    """(available contexts, contexts needed, passes); raises SamplingError when impossible."""
    if k > n_ctx:
        raise SamplingError(f"activations.tokens_per_context {k} exceeds the context length n_ctx {n_ctx}")
    available = n_tokens // n_ctx
    needed = math.ceil(n_points / k)
    if available == 0:
        raise SamplingError(f"the stream has {n_tokens} tokens, fewer than one context of {n_ctx}")
    passes = math.ceil(needed / available)
    if passes > n_ctx // k:
        most = available * (n_ctx // k) * k
        raise SamplingError(
            f"{n_points:,} points need {needed:,} contexts of {n_ctx} tokens at {k} per context, but the "
            f"stream has {available:,} contexts ({n_tokens:,} tokens); even reusing every context "
            f"{n_ctx // k} times with fresh positions gives at most {most:,} points. Lower the point count "
            f"or activations.tokens_per_context, or use a larger corpus")
    return available, needed, passes


def context_schedule(available: int, needed: int, seed: int, split: str):
    """Yield (context ids, pass of each) chunks in sampling order: pass e is a fresh seeded permutation."""
    e = 0
    while needed > 0:
        perm = np.random.default_rng(_seed(seed, split, CONTEXT_ORDER, e)).permutation(available)
        take = perm[:needed]
        yield take, np.full(len(take), e, dtype=np.int64)
        needed -= len(take)
        e += 1


def mixed_context_schedule(subset_of: np.ndarray, quotas: dict[int, int], n_ctx: int, k: int, seed: int,
                           split: str):
    """The mix's schedule (mix.py): quotas[c] contexts of subset code c, each subset visited in its own seeded
    order without replacement (cycling with fresh positions when its quota exceeds its contexts, as above),
    then all of them interleaved by one seeded permutation. Yields one (context ids, passes) chunk."""
    ids, passes = [], []
    for c, need in sorted(quotas.items()):
        pool = np.flatnonzero(subset_of == c)
        if need == 0:
            continue
        n_pass = math.ceil(need / max(len(pool), 1))
        if len(pool) == 0 or n_pass > n_ctx // k:
            raise SamplingError(
                f"the mix asks for {need:,} contexts of subset code {c} but the {split} stream has {len(pool):,}; "
                f"even with {n_ctx // k} passes of fresh positions that is too few: lower its share or n_points")
        e = 0
        while need > 0:
            perm = pool[np.random.default_rng(_seed(seed, split, CONTEXT_ORDER, e, c + 1)).permutation(len(pool))]
            take = perm[:need]
            ids.append(take)
            passes.append(np.full(len(take), e, dtype=np.int64))
            need -= len(take)
            e += 1
    ids, passes = np.concatenate(ids), np.concatenate(passes)
    order = np.random.default_rng(_seed(seed, split, CONTEXT_ORDER, 1 << 20)).permutation(len(ids))
    yield ids[order], passes[order]


class _BucketFiles:
    """Append handles of the temporary bucket files: all kept open while there are few buckets, else
    opened per write (so the number of open files stays bounded)."""

    MAX_OPEN = 512

    def __init__(self, folder: Path, n_buckets: int):
        self.folder, self.keep = folder, 2 * n_buckets <= self.MAX_OPEN
        self.open: dict[tuple[int, str], object] = {}
        self._last = None

    def get(self, b: int, kind: str):
        key = (int(b), kind)
        fh = self.open.get(key)
        if fh is None:
            if not self.keep and self._last is not None:
                self._last.close()
            fh = open(self.folder / f"{b:05d}.{kind}", "ab")
            if self.keep:
                self.open[key] = fh
            else:
                self._last = fh
        return fh

    def close(self) -> None:
        for fh in self.open.values():
            fh.close()
        if self._last is not None:
            self._last.close()
        self.open.clear()
        self._last = None


@dataclass(frozen=True)
class _Job:
    """The fixed settings of one sampling run, shared by its steps."""

    n_points: int
    k: int
    n_ctx: int
    d: int
    dtype: str
    batch_contexts: int
    seed: int
    split: str
    n_buckets: int
    device: torch.device
    precision: str


def sample_activations(model: Transformer, stream: TokenStream, out_dir: str | Path, *, n_points: int, k: int,
                       shard_points: int, dtype: str, batch_contexts: int, seed: int, split: str,
                       device: torch.device | str = "cpu", progress: bool = True,
                       manifest_extra: dict | None = None, mix: dict[str, float] | None = None,
                       precision: str = "fp32") -> dict:
    """Sample `n_points` activations of `model` on `stream` into the store `out_dir`; returns timing info.

    The store is built in a hidden staging folder next to out_dir and moved into place at the end, so an
    interrupted run never leaves a half-written store behind. `mix` (mix.py) re-weights the subsets the contexts
    are drawn from; `precision` is the forward pass's ("fp32" or "bf16", see utils.autocast)."""
    device = torch.device(device)
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {tuple(SPLIT_IDS)}")
    if dtype not in DTYPES:
        raise SamplingError(f"dtype {dtype!r} not one of {tuple(DTYPES)}")
    n_ctx, d = model.cfg.n_ctx, model.cfg.d_mlp
    available, needed, passes = plan(len(stream), n_ctx, n_points, k)
    out_dir = Path(out_dir)
    stage = _fresh_staging(out_dir)
    job = _Job(n_points, k, n_ctx, d, dtype, batch_contexts, seed, split, math.ceil(n_points / shard_points),
               device, precision)
    if passes > 1:
        print(f"{split}: {available:,} contexts for {needed:,} needed: cycling over the contexts "
              f"{passes} times with fresh positions (no token sampled twice)")

    t0 = time.perf_counter()
    counts, ctx_tokens = _scatter_pass(model, stream, job, stage / "buckets", available, needed, mix, progress)
    forward_s = time.perf_counter() - t0

    shards = _shuffle_buckets(stage, job, counts)
    write_manifest(stage, shards, d, dtype, split=split, seed=seed, tokens_per_context=k, n_ctx=n_ctx,
                   contexts=needed, contexts_available=available, passes=passes,
                   stream_tokens=len(stream), **({"mix": dict(mix)} if mix else {}), **(manifest_extra or {}))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    stage.rename(out_dir)
    total_s = time.perf_counter() - t0
    return {"points": n_points, "contexts": needed, "passes": passes, "model_tokens": ctx_tokens,
            "forward_seconds": round(forward_s, 2), "seconds": round(total_s, 2),
            "tokens_per_s": round(ctx_tokens / max(total_s, 1e-9), 1),
            "points_per_s": round(n_points / max(total_s, 1e-9), 1)}


def sample_split(model: Transformer, stream: TokenStream, out_dir: str | Path, cfg: ActivationsConfig, *,
                 split: str, n_points: int | None = None, **kwargs) -> dict:
    """sample_activations with the settings of the `activations` section (params.activations): n_points
    defaults to cfg.n_points for the train split and cfg.val_points for val; kwargs: device, progress,
    manifest_extra, mix, precision."""
    if n_points is None:
        n_points = cfg.n_points if split == "train" else cfg.val_points
    return sample_activations(model, stream, out_dir, n_points=n_points, k=cfg.tokens_per_context,
                              shard_points=cfg.shard_points, dtype=cfg.dtype, batch_contexts=cfg.batch_contexts,
                              seed=cfg.seed, split=split, **kwargs)


def _fresh_staging(out_dir: Path) -> Path:
    """The hidden staging folder next to out_dir, emptied, with its buckets/ subfolder."""
    stage = out_dir.parent / f".{out_dir.name}.staging"
    if stage.exists():
        shutil.rmtree(stage)
    (stage / "buckets").mkdir(parents=True)
    return stage


def _schedule(stream: TokenStream, job: _Job, available: int, needed: int, mix: dict[str, float] | None):
    """The (context ids, passes) chunks in sampling order: uniform, or drawn by the mix."""
    if mix:
        return [mixed_schedule(stream, mix, job.n_ctx, job.k, job.seed, job.split, available, needed)]
    return context_schedule(available, needed, job.seed, job.split)


def mixed_schedule(stream: TokenStream, mix: dict[str, float], n_ctx: int, k: int, seed: int, split: str,
                   available: int, needed: int) -> tuple[np.ndarray, np.ndarray]:
    """The mix's whole schedule, (context ids, passes) in sampling order: each subset's quota of the `needed`
    contexts (mix.py shares) drawn by mixed_context_schedule. The stored mode and the stream (streaming.py) share it."""
    quotas = {stream.subsets.index(s): q for s, q in context_quotas(needed, mix_shares(stream, mix)).items()}
    return next(mixed_context_schedule(context_subsets(stream, n_ctx, available), quotas, n_ctx, k, seed, split))


def _scatter_pass(model: Transformer, stream: TokenStream, job: _Job, bucket_dir: Path, available: int,
                  needed: int, mix: dict[str, float] | None, progress: bool) -> tuple[np.ndarray, int]:
    """Pass 1: forward batches, scatter points into random buckets; returns (points per bucket, model tokens)."""
    pos_key = int(_seed(job.seed, job.split, POSITION_ORDER).generate_state(1, np.uint64)[0])
    bucket_rng = np.random.default_rng(_seed(job.seed, job.split, BUCKET_ASSIGN))
    counts = np.zeros(job.n_buckets, dtype=np.int64)
    files = _BucketFiles(bucket_dir, job.n_buckets)
    model = model.eval().to(job.device)
    bar = tqdm(total=job.n_points, desc=f"sample {job.split}", unit=" pts", unit_scale=True,
               disable=not progress, mininterval=2)
    done, ctx_tokens = 0, 0
    for ctx_ids, ctx_pass in _schedule(stream, job, available, needed, mix):
        for lo in range(0, len(ctx_ids), job.batch_contexts):
            ids = ctx_ids[lo:lo + job.batch_contexts]
            e = ctx_pass[lo:lo + job.batch_contexts]
            take = min(len(ids) * job.k, job.n_points - done)
            data, rec = _forward_batch(model, stream, job, ids, e, pos_key, take)
            _scatter(data, rec, bucket_rng, files, counts)
            done += take
            ctx_tokens += len(ids) * job.n_ctx
            bar.update(take)
            if done >= job.n_points:
                break
    bar.close()
    files.close()
    return counts, ctx_tokens


def _forward_batch(model: Transformer, stream: TokenStream, job: _Job, ids: np.ndarray, e: np.ndarray,
                   pos_key: int, take: int) -> tuple[np.ndarray, np.ndarray]:
    """The activations (as stored) and index records of the first `take` points of contexts `ids` (pass e)."""
    n_ctx, k = job.n_ctx, job.k
    starts = ids.astype(np.int64) * n_ctx
    win = starts[:, None] + np.arange(n_ctx)[None]
    toks = torch.from_numpy(stream.tokens[win].astype(np.int64)).to(job.device)
    cols = e[:, None] * k + np.arange(k)[None]
    pos = np.take_along_axis(position_order(ids, n_ctx, pos_key), cols, axis=1)  # (B, k)
    with torch.no_grad(), autocast(job.device, job.precision):
        acts = model.mlp_acts(toks, torch.from_numpy(pos).to(job.device))  # (B, k, d)
    rows = acts.reshape(-1, job.d)[:take]
    data = to_storage(rows.float().cpu(), job.dtype)
    rec = np.empty(take, dtype=RECORD)
    token = (starts[:, None] + pos).reshape(-1)[:take]
    doc = stream.doc_of(token)
    rec["doc"], rec["token"] = doc, token
    rec["pos"] = token - stream.doc_start[doc]
    rec["context_start"] = np.repeat(starts, k)[:take]
    return data, rec


def _scatter(data: np.ndarray, rec: np.ndarray, bucket_rng: np.random.Generator, files: _BucketFiles,
             counts: np.ndarray) -> None:
    """Append each point (activations and record) to a uniformly random bucket; counts += points per bucket."""
    n_buckets = len(counts)
    bucket = bucket_rng.integers(0, n_buckets, size=len(rec))
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(n_buckets + 1))
    for b in np.flatnonzero(np.diff(bounds)):
        sel = order[bounds[b]:bounds[b + 1]]
        data[sel].tofile(files.get(b, "acts"))
        rec[sel].tofile(files.get(b, "index"))
        counts[b] += len(sel)


def _shuffle_buckets(stage: Path, job: _Job, counts: np.ndarray) -> list:
    """Pass 2: permute one bucket at a time into the final shards, the index through a memmap; writes the
    shards and index.npz into `stage`, removes the buckets and returns the shard records."""
    storage = np.dtype(DTYPES[job.dtype])
    index_mm = np.lib.format.open_memmap(stage / "index.tmp.npy", mode="w+", dtype=RECORD,
                                         shape=(job.n_points,))
    perm_rng = np.random.default_rng(_seed(job.seed, job.split, BUCKET_PERM))
    shards, offset = [], 0
    for b in range(job.n_buckets):
        if counts[b] == 0:
            continue
        data = np.fromfile(stage / "buckets" / f"{b:05d}.acts", dtype=storage).reshape(-1, job.d)
        rec = np.fromfile(stage / "buckets" / f"{b:05d}.index", dtype=RECORD)
        perm = perm_rng.permutation(len(rec))
        shards.append(save_shard(stage / f"shard_{len(shards):05d}.npy", data[perm]))
        del data
        index_mm[offset:offset + len(rec)] = rec[perm]
        offset += len(rec)
        (stage / "buckets" / f"{b:05d}.acts").unlink()
        (stage / "buckets" / f"{b:05d}.index").unlink()
    assert offset == job.n_points
    index_mm.flush()
    write_index(stage, **{f: index_mm[f] for f in INDEX_FIELDS})
    del index_mm
    (stage / "index.tmp.npy").unlink()
    shutil.rmtree(stage / "buckets")
    return shards
