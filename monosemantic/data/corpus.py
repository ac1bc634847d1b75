"""The Pile's on-disk format: zstd-compressed JSON lines, one document per line.

    {"text": "...", "meta": {"pile_set_name": "..."}}

`data/train/*.jsonl.zst` and `data/val/*.jsonl.zst` hold the training and held-out documents. The embedded
mini-Pile (scripts/build_corpus.py) and the real Pile's shards are read by the same code, so the real Pile
drops in unchanged. Every problem with a shard is reported as one CorpusError naming the file, what is wrong
and how to fix it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import zstandard

from monosemantic.core.utils import PipelineError, atomic_path

SPLITS = ("train", "val")
FIX = "fix: run `dvc pull` to restore the bundled data, or `python scripts/build_corpus.py` to rebuild it"


class CorpusError(PipelineError, RuntimeError):
    """A missing, corrupted or malformed corpus shard."""


@dataclass(frozen=True)
class Document:
    text: str
    subset: str  # meta.pile_set_name


def shard_paths(data_dir: str | Path, split: str) -> list[Path]:
    """The split's shards in sorted order; raises CorpusError when there are none."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    folder = Path(data_dir) / split
    paths = sorted(folder.glob("*.jsonl.zst"))
    if not paths:
        raise CorpusError(f"{folder}: no *.jsonl.zst shards found; {FIX}")
    return paths


def read_shard(path: str | Path) -> Iterator[Document]:
    """Stream the documents of one Pile-format shard."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: shard is missing; {FIX}")
    try:
        with open(path, "rb") as fh:
            text = io.TextIOWrapper(io.BufferedReader(_ZstdFrames(fh)), encoding="utf-8")
            for lineno, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                yield _parse_line(path, lineno, line)
    except zstandard.ZstdError as e:
        raise CorpusError(f"{path}: not a valid zstd stream ({e}); {FIX}") from None
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 text after decompression ({e.reason}); {FIX}") from None


class _ZstdFrames(io.RawIOBase):
    """Decompress one or more concatenated zstd frames from a binary file, streaming.

    Unlike ZstdDecompressor.stream_reader, a file that ends inside a frame (a truncated download) or holds
    no frame at all raises ZstdError instead of silently yielding a partial or empty shard.
    """

    def __init__(self, fh, chunk_size: int = 1 << 20):
        self._fh = fh
        self._chunk_size = chunk_size
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = None  # the decompressobj of the frame in progress
        self._pending = b""  # compressed bytes read past the end of the last frame
        self._out = memoryview(b"")
        self._frames = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while not len(self._out):
            data = self._pending or self._fh.read(self._chunk_size)
            self._pending = b""
            if not data:
                if self._frame is not None:
                    raise zstandard.ZstdError("input ends inside a zstd frame (truncated file)")
                if not self._frames:
                    raise zstandard.ZstdError("empty file, no zstd frame")
                return 0
            if self._frame is None:
                self._frame = self._dctx.decompressobj()
                self._frames += 1
            self._out = memoryview(self._frame.decompress(data))
            if self._frame.eof:
                self._pending = self._frame.unused_data
                self._frame = None
        n = min(len(buf), len(self._out))
        buf[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


def _parse_line(path: Path, lineno: int, line: str) -> Document:
    where = f"{path}:{lineno}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{where}: not a JSON line ({e.msg}); not in Pile format; {FIX}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        raise CorpusError(f"{where}: Pile format needs a string field 'text'; {FIX}")
    meta = obj.get("meta")
    if not isinstance(meta, dict) or not isinstance(meta.get("pile_set_name"), str):
        raise CorpusError(f"{where}: Pile format needs meta.pile_set_name (a string); {FIX}")
    return Document(obj["text"], meta["pile_set_name"])


def iter_documents(data_dir: str | Path, split: str) -> Iterator[Document]:
    """All documents of a split, shard by shard in sorted order."""
    for path in shard_paths(data_dir, split):
        yield from read_shard(path)


def write_shard(path: str | Path, docs: Iterable[Document], level: int = 19) -> int:
    """Write documents as one Pile-format shard, atomically and deterministically; returns the count.

    The bytes depend only on the documents and `level` (single frame, no content size, no threads).
    """
    lines = [json.dumps({"text": d.text, "meta": {"pile_set_name": d.subset}}, ensure_ascii=False)
             for d in docs]
    raw = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
    blob = zstandard.ZstdCompressor(level=level, threads=0, write_content_size=True).compress(raw)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    return len(lines)


def corpus_statistics(data_dir: str | Path) -> dict:
    """Per split and subset: documents, characters and share of the split's characters (metrics/corpus.json)."""
    stats = {}
    for split in SPLITS:
        docs: dict[str, int] = {}
        chars: dict[str, int] = {}
        for doc in iter_documents(data_dir, split):
            docs[doc.subset] = docs.get(doc.subset, 0) + 1
            chars[doc.subset] = chars.get(doc.subset, 0) + len(doc.text)
        total = sum(chars.values())
        stats[split] = {subset: {"documents": docs[subset], "chars": chars[subset], "char_share": chars[subset] / total}
                        for subset in sorted(docs)}
        stats[split]["total"] = {"documents": sum(docs.values()), "chars": total, "char_share": 1.0}
    return stats
