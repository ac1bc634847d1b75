"""Byte-level BPE (HF `tokenizers`) and the token streams the transformer trains on.

The tokenizer is GPT-2 style: ByteLevel pre-tokenizer and decoder, every byte a base token, one special token
`<|endoftext|>` with id 0. Its merges are learned on the first `tokenizer.train_chars` characters of the train
split, taken proportionally from every subset (each subset contributes its documents in corpus order until it
has its share of the characters; see `training_texts`), so the sample is deterministic and covers all subsets.

A split is stored as one flat token stream, one `<|endoftext|>` after each document:

    artifacts/tokens/{split}.bin        uint16 token ids (np.memmap)
    artifacts/tokens/{split}_docs.npz   doc_start  int64 (n_docs + 1): document i is stream[doc_start[i]:doc_start[i+1]]
                                                   (its trailing <|endoftext|> included); doc_start[-1] == len(stream)
                                        doc_subset int16 (n_docs): code into `subsets`
                                        subsets    str (n_subsets): subset names, sorted
"""

from __future__ import annotations

import itertools
import time

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm import tqdm

from monosemantic.data.corpus import Document, iter_documents
from monosemantic.core.utils import PipelineError, atomic_path

# The Rust side parallelises encode_batch across cores; training and encoding are deterministic either way.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

EOT = "<|endoftext|>"
EOT_ID = 0
ENCODE_BATCH_DOCS = 256  # documents per encode_batch call
MAX_ENCODE_CHARS = 1 << 20  # long documents are encoded in pieces split at newlines (bounded memory per call)


class TokenizerError(PipelineError, RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def subset_char_counts(docs: Iterable[Document]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for d in docs:
        counts[d.subset] += len(d.text)
    return dict(counts)


def training_texts(data_dir: str | Path, train_chars: int) -> tuple[list[str], list[str]]:
    """(texts, sorted subset names): `train_chars` characters of the train split, subsets in proportion.

    Pass 1 counts each subset's characters; pass 2 takes each subset's documents in corpus order until the
    subset has its share round(train_chars * chars_s / total) (the last document is truncated). When the split
    is smaller than train_chars the whole split is used.
    """
    counts = subset_char_counts(iter_documents(data_dir, "train"))
    total = sum(counts.values())
    if total == 0:
        raise TokenizerError(f"{data_dir}/train: the split holds no text")
    frac = min(1.0, train_chars / total)
    quota = {s: round(c * frac) for s, c in counts.items()}
    texts = []
    for d in iter_documents(data_dir, "train"):
        left = quota[d.subset]
        if left <= 0:
            continue
        text = d.text[:left]
        quota[d.subset] = left - len(text)
        texts.append(text)
    return texts, sorted(counts)


def new_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Learn byte-level BPE merges; `<|endoftext|>` is id 0, the 256 byte tokens follow, then merges."""
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if tok.token_to_id(EOT) != EOT_ID:
        raise TokenizerError(f"{EOT} got id {tok.token_to_id(EOT)}, expected {EOT_ID}")
    return tok


def save_tokenizer(tok: Tokenizer, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(tok.to_str(pretty=True))


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    if not path.exists():
        raise TokenizerError(f"{path}: no tokenizer; run the tokenize stage (`dvc repro tokenize`)")
    return Tokenizer.from_file(str(path))


# --------------------------------------------------------------------------------------------
# Token streams
# --------------------------------------------------------------------------------------------


def _pieces(text: str) -> list[str]:
    """Split a very long text into pieces of at most ~MAX_ENCODE_CHARS characters that encode to the same
    tokens as the whole text.

    Cuts go right after a newline with non-whitespace on both sides: such a newline is a pre-token of its
    own for the byte-level regex whether or not the text ends there, and BPE never merges across
    pre-tokens. Without such a newline in reach the text is cut anywhere (only the seam's tokens change)."""
    if len(text) <= MAX_ENCODE_CHARS:
        return [text]
    out, start = [], 0
    while len(text) - start > MAX_ENCODE_CHARS:
        cut = text.rfind("\n", start + 1, start + MAX_ENCODE_CHARS)
        while cut > start and (text[cut - 1].isspace() or cut + 1 >= len(text) or text[cut + 1].isspace()):
            cut = text.rfind("\n", start + 1, cut)
        if cut <= start:
            cut = start + MAX_ENCODE_CHARS - 1
        out.append(text[start:cut + 1])
        start = cut + 1
    out.append(text[start:])
    return out


def encode_documents(tok: Tokenizer, docs: Iterable[Document]) -> Iterator[tuple[np.ndarray, str, int]]:
    """Yield (token ids as uint16 with a trailing <|endoftext|>, subset, n_chars) per document, in order."""
    vocab = tok.get_vocab_size()
    if vocab > 65536:
        raise TokenizerError(f"vocab size {vocab} does not fit uint16")
    batch: list[Document] = []

    def flush():
        pieces, owner = [], []
        for i, d in enumerate(batch):
            for p in _pieces(d.text):
                pieces.append(p)
                owner.append(i)
        encs = tok.encode_batch(pieces, add_special_tokens=False) if pieces else []
        ids: list[list[np.ndarray]] = [[] for _ in batch]
        for i, e in zip(owner, encs):
            ids[i].append(np.asarray(e.ids, dtype=np.uint16))
        for i, d in enumerate(batch):
            ids[i].append(np.array([EOT_ID], dtype=np.uint16))
            yield np.concatenate(ids[i]), d.subset, len(d.text)
        batch.clear()

    for d in docs:
        batch.append(d)
        if len(batch) >= ENCODE_BATCH_DOCS:
            yield from flush()
    if batch:
        yield from flush()


def tokenize_split(tok: Tokenizer, data_dir: str | Path, split: str, out_dir: str | Path,
                   subsets: list[str] | None = None, progress: bool = True, max_documents: int = 0) -> dict:
    """Encode a split into out_dir/{split}.bin + {split}_docs.npz; returns per-subset counts.

    max_documents > 0 keeps only the split's first max_documents documents (the shards are shuffled, so
    this is a random subset); the smoke profile uses it to stay fast.

    `subsets` fixes the subset codes (pass the train split's names when encoding val); unseen names are
    appended. Returns {subset: {"documents", "tokens", "chars"}}.
    """
    out_dir = Path(out_dir)
    names = list(subsets or [])
    code = {s: i for i, s in enumerate(names)}
    doc_len: list[int] = []
    doc_code: list[int] = []
    stats: dict[str, dict[str, int]] = {}
    bar = tqdm(desc=f"tokenize {split}", unit=" docs", disable=not progress, mininterval=2)
    with atomic_path(out_dir / f"{split}.bin") as tmp, open(tmp, "wb") as fh:
        docs = iter_documents(data_dir, split)
        if max_documents > 0:
            docs = itertools.islice(docs, max_documents)
        for ids, subset, n_chars in encode_documents(tok, docs):
            if subset not in code:
                code[subset] = len(names)
                names.append(subset)
            ids.tofile(fh)
            doc_len.append(len(ids))
            doc_code.append(code[subset])
            st = stats.setdefault(subset, {"documents": 0, "tokens": 0, "chars": 0})
            st["documents"] += 1
            st["tokens"] += len(ids)
            st["chars"] += n_chars
            bar.update(1)
        fh.flush()
    bar.close()
    if len(names) > np.iinfo(np.int16).max:
        raise TokenizerError("too many subsets for int16 codes")
    doc_start = np.zeros(len(doc_len) + 1, dtype=np.int64)
    np.cumsum(np.asarray(doc_len, dtype=np.int64), out=doc_start[1:])
    with atomic_path(out_dir / f"{split}_docs.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, doc_start=doc_start, doc_subset=np.asarray(doc_code, dtype=np.int16),
                 subsets=np.asarray(names, dtype=str))
    return stats


@dataclass
class TokenStream:
    """A split's token stream (memory-mapped) and its document table."""

    tokens: np.ndarray  # uint16 memmap (n_tokens,)
    doc_start: np.ndarray  # int64 (n_docs + 1,)
    doc_subset: np.ndarray  # int16 (n_docs,)
    subsets: list[str]

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def doc_of(self, index: np.ndarray) -> np.ndarray:
        """Document of each global token index."""
        return np.searchsorted(self.doc_start, index, side="right") - 1

    def subset_codes(self) -> np.ndarray:
        """Subset code of every token (int16, n_tokens); materialises one array of the stream's length."""
        return np.repeat(self.doc_subset, np.diff(self.doc_start))


def load_stream(tokens_dir: str | Path, split: str) -> TokenStream:
    tokens_dir = Path(tokens_dir)
    bin_path, docs_path = tokens_dir / f"{split}.bin", tokens_dir / f"{split}_docs.npz"
    for p in (bin_path, docs_path):
        if not p.exists():
            raise TokenizerError(f"{p}: missing; run the tokenize stage (`dvc repro tokenize`)")
    tokens = np.memmap(bin_path, dtype=np.uint16, mode="r")
    with np.load(docs_path) as z:
        doc_start, doc_subset, subsets = z["doc_start"], z["doc_subset"], [str(s) for s in z["subsets"]]
    if doc_start[-1] != len(tokens):
        raise TokenizerError(f"{docs_path}: documents cover {doc_start[-1]} tokens but {bin_path} has "
                             f"{len(tokens)}; rerun the tokenize stage")
    return TokenStream(tokens, doc_start, doc_subset, subsets)


def token_metrics(train: dict, val: dict) -> dict:
    """metrics/tokens.json: per subset and split, documents, tokens, token share and chars/token."""
    out: dict = {"splits": {}}
    for split, stats in (("train", train), ("val", val)):
        total = sum(s["tokens"] for s in stats.values()) or 1
        rows = {}
        for name in sorted(stats):
            s = stats[name]
            # tokens include one <|endoftext|> per document; chars/token counts text tokens only
            text_tokens = s["tokens"] - s["documents"]
            rows[name] = {"documents": s["documents"], "tokens": s["tokens"],
                          "token_share": round(s["tokens"] / total, 6),
                          "chars_per_token": round(s["chars"] / max(text_tokens, 1), 4)}
        out["splits"][split] = {"documents": sum(s["documents"] for s in stats.values()),
                                "tokens": sum(s["tokens"] for s in stats.values()), "subsets": rows}
    return out


def build_token_streams(cfg, data_dir: str | Path, tokenizer_path: str | Path, tokens_dir: str | Path) -> dict:
    """Stage tokenize: learn the BPE on cfg.train_chars characters (per-subset quotas, training_texts), save it,
    encode both splits into token streams; returns metrics/tokens.json (cfg: config.TokenizerConfig)."""
    t0 = time.perf_counter()
    texts, subsets = training_texts(data_dir, cfg.train_chars)
    n_chars = sum(map(len, texts))
    tok = train_tokenizer(texts, cfg.vocab_size, cfg.min_frequency)
    del texts
    print(f"tokenizer: {tok.get_vocab_size()} tokens learned on {n_chars:,} characters in "
          f"{time.perf_counter() - t0:.1f}s")
    save_tokenizer(tok, tokenizer_path)
    t1 = time.perf_counter()
    train = tokenize_split(tok, data_dir, "train", tokens_dir, subsets=subsets, max_documents=cfg.max_documents)
    val = tokenize_split(tok, data_dir, "val", tokens_dir, subsets=subsets, max_documents=cfg.max_documents)
    t_enc = time.perf_counter() - t1
    metrics = {"vocab_size": tok.get_vocab_size(), "tokenizer_train_chars": n_chars, **token_metrics(train, val)}
    n_tok = metrics["splits"]["train"]["tokens"] + metrics["splits"]["val"]["tokens"]
    metrics["encode_tokens_per_s"] = round(n_tok / max(t_enc, 1e-9), 1)  # a timing: write_json logs it apart
    print(f"encoded {n_tok:,} tokens in {t_enc:.1f}s ({n_tok / max(t_enc, 1e-9):,.0f} tokens/s)")
    return metrics
