"""A mini-Pile document before mixing, and the text primitives every source uses.

Determinism: every random choice comes from a numpy Generator seeded with (SEED, a CRC of the source name)
(rng_for), and documents are ordered by their `key`, never by the order a set or a dict happens to give.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

SEED = 20231004  # "Towards Monosemanticity" publication date
MAX_DOC_CHARS = 20_000  # longer units are split at paragraph/line boundaries
SUBSETS = ("English", "Code", "Arabic", "Hebrew", "DNA", "Base64")


@dataclass(frozen=True)
class Doc:
    """One corpus document before mixing. `group` is the original unit (a file, a book) a split came from;
    subsampling keeps or drops whole groups. `key` orders documents deterministically."""

    subset: str
    source: str
    group: str
    key: str
    text: str


def rng_for(name: str) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(name.encode("utf-8"))])


def split_text(text: str, max_chars: int = MAX_DOC_CHARS, seps: Sequence[str] = ("\n\n", "\n", " ")) -> list[str]:
    """Split text into consecutive pieces of at most max_chars, preferring blank lines, then lines, then
    spaces, then a hard cut. Joining the pieces with the separator used restores the text."""
    if len(text) <= max_chars:
        return [text]
    if not seps:
        return [text[i:i + max_chars] for i in range(0, len(text), max_chars)]
    sep, rest = seps[0], seps[1:]
    pieces: list[str] = []
    for part in text.split(sep):
        pieces.extend(split_text(part, max_chars, rest) if len(part) > max_chars else [part])
    out: list[str] = []
    cur: list[str] = []
    size = 0
    for p in pieces:
        add = len(p) + (len(sep) if cur else 0)
        if cur and size + add > max_chars:
            out.append(sep.join(cur))
            cur, size = [p], len(p)
        else:
            cur.append(p)
            size += add
    if cur:
        out.append(sep.join(cur))
    return [o for o in (x.strip("\n") for x in out) if o.strip()]


def pack_units(units: Sequence[str], max_chars: int = MAX_DOC_CHARS, sep: str = "\n\n",
               header: str = "") -> list[str]:
    """Greedily pack consecutive units (chapters, scenes) into documents of at most max_chars, each starting
    with `header`; a unit that is itself too long is split with split_text."""
    docs: list[str] = []
    cur: list[str] = []
    size = len(header)
    for unit in units:
        for piece in split_text(unit, max_chars - len(header)):
            add = len(piece) + (len(sep) if cur else 0)
            if cur and size + add > max_chars:
                docs.append(header + sep.join(cur))
                cur, size, add = [], len(header), len(piece)
            cur.append(piece)
            size += add
    if cur:
        docs.append(header + sep.join(cur))
    return docs


def docs_from(subset: str, source: str, group: str, texts: Iterable[str], min_chars: int = 50) -> list[Doc]:
    texts = [t for t in texts if len(t.strip()) >= min_chars]
    return [Doc(subset, source, group, f"{group}#{i:04d}", t) for i, t in enumerate(texts)]

