"""Byte-level BPE tokenizer and token streams (monosemantic/data/tokenizer.py, stages/tokenize_corpus.py)."""

import base64
import random
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monosemantic.core.config import profile_dict
from monosemantic.data import tokenizer as T
from monosemantic.data.corpus import Document, write_shard

ROOT = Path(__file__).resolve().parents[1]
SUBSETS = ("English", "Code", "Arabic", "Hebrew", "DNA", "Base64")


def synthetic_docs(seed: int, n_per_subset: int) -> list[Document]:
    """A tiny six-subset corpus with learnable structure (shared by the transformer/sampling tests)."""
    rng = random.Random(seed)
    words = "the cat sat on a mat and then it ran to the big red house by the old tree".split()
    ar = [chr(c) for c in range(0x0627, 0x0630)]
    he = [chr(c) for c in range(0x05D0, 0x05DA)]
    gens = {
        "English": lambda: " ".join(rng.choice(words) for _ in range(rng.randint(20, 80))) + ".",
        "Code": lambda: "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(rng.randint(2, 8))),
        "Arabic": lambda: " ".join("".join(rng.choice(ar) for _ in range(4)) for _ in range(rng.randint(10, 40))),
        "Hebrew": lambda: " ".join("".join(rng.choice(he) for _ in range(3)) for _ in range(rng.randint(10, 40))),
        "DNA": lambda: "".join(rng.choice("ACGT") for _ in range(rng.randint(100, 400))),
        "Base64": lambda: base64.b64encode(bytes(rng.getrandbits(8) for _ in range(rng.randint(30, 150)))).decode(),
    }
    docs = [Document(gens[s](), s) for s in SUBSETS for _ in range(n_per_subset)]
    rng.shuffle(docs)
    return docs


def write_corpus(data_dir: Path, seed: int = 0, n_train: int = 30, n_val: int = 6) -> Path:
    for split, n, s in (("train", n_train, seed), ("val", n_val, seed + 1)):
        docs = synthetic_docs(s, n)
        write_shard(data_dir / split / "00.jsonl.zst", docs[: len(docs) // 2], level=1)
        write_shard(data_dir / split / "01.jsonl.zst", docs[len(docs) // 2:], level=1)
    return data_dir


def build(data_dir: Path, out: Path, vocab: int = 400, train_chars: int = 30_000) -> dict:
    texts, subsets = T.training_texts(data_dir, train_chars)
    tok = T.train_tokenizer(texts, vocab, 2)
    T.save_tokenizer(tok, out / "tokenizer.json")
    train = T.tokenize_split(tok, data_dir, "train", out, subsets=subsets, progress=False)
    val = T.tokenize_split(tok, data_dir, "val", out, subsets=subsets, progress=False)
    return T.token_metrics(train, val)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    return out, build(corpus, out)


def test_special_token_and_vocab(built):
    out, _ = built
    tok = T.load_tokenizer(out / "tokenizer.json")
    assert tok.token_to_id(T.EOT) == T.EOT_ID == 0
    assert tok.get_vocab_size() == 400
    # every byte is a base token: arbitrary unicode round-trips
    text = "héllo wörld \u05d0\u0627 🙂 \x00\t\n"
    assert tok.decode(tok.encode(text).ids) == text


def test_streams_match_documents(corpus, built):
    out, _ = built
    tok = T.load_tokenizer(out / "tokenizer.json")
    for split in ("train", "val"):
        stream = T.load_stream(out, split)
        docs = list(T.iter_documents(corpus, split))
        assert len(stream.doc_start) == len(docs) + 1 and stream.doc_start[0] == 0
        assert stream.doc_start[-1] == len(stream) and stream.tokens.dtype == np.uint16
        assert stream.subsets == sorted(SUBSETS)
        for i in (0, 1, len(docs) - 1):
            ids = stream.tokens[stream.doc_start[i]:stream.doc_start[i + 1]]
            assert ids[-1] == T.EOT_ID and T.EOT_ID not in ids[:-1]
            assert tok.decode(ids[:-1].tolist()) == docs[i].text
            assert stream.subsets[stream.doc_subset[i]] == docs[i].subset
        assert (stream.tokens == T.EOT_ID).sum() == len(docs)


def test_metrics(built):
    _, m = built
    for split in ("train", "val"):
        s = m["splits"][split]
        assert set(s["subsets"]) == set(SUBSETS)
        assert sum(r["tokens"] for r in s["subsets"].values()) == s["tokens"]
        assert sum(r["token_share"] for r in s["subsets"].values()) == pytest.approx(1, abs=1e-4)
        assert all(r["chars_per_token"] > 0.5 for r in s["subsets"].values())


def test_training_sample_is_proportional_and_deterministic(corpus):
    counts = T.subset_char_counts(T.iter_documents(corpus, "train"))
    total = sum(counts.values())
    texts, subsets = T.training_texts(corpus, 10_000)
    assert subsets == sorted(SUBSETS)
    assert abs(sum(map(len, texts)) - 10_000) <= len(SUBSETS)
    assert T.training_texts(corpus, 10_000)[0] == texts
    # each subset contributes its share: recover it from the texts' order of appearance
    got = {s: 0 for s in counts}
    docs = [d for d in T.iter_documents(corpus, "train")]
    quota = {s: round(c * 10_000 / total) for s, c in counts.items()}
    it = iter(texts)
    for d in docs:
        if got[d.subset] < quota[d.subset]:
            t = next(it)
            assert d.text.startswith(t)
            got[d.subset] += len(t)
    assert got == quota
    # larger than the split: everything
    assert sum(map(len, T.training_texts(corpus, 10 ** 9)[0])) == total


def test_rerun_gives_identical_bytes(corpus, built, tmp_path):
    out, _ = built
    build(corpus, tmp_path)
    for name in ("tokenizer.json", "train.bin", "val.bin", "train_docs.npz", "val_docs.npz"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_long_documents_are_encoded_in_pieces_identically(built, monkeypatch):
    out, _ = built
    tok = T.load_tokenizer(out / "tokenizer.json")
    text = "".join(f"line {i} of the text\n  indented {i}\n\n{i}.\nnext" for i in range(300))
    whole = np.asarray(tok.encode(text).ids, dtype=np.uint16)
    monkeypatch.setattr(T, "MAX_ENCODE_CHARS", 100)
    assert len(T._pieces(text)) > 10 and "".join(T._pieces(text)) == text
    ids, subset, n = next(T.encode_documents(tok, [Document(text, "English")]))
    assert np.array_equal(ids[:-1], whole) and ids[-1] == T.EOT_ID and n == len(text)


def test_missing_stream_is_a_clear_error(tmp_path):
    with pytest.raises(T.TokenizerError, match="tokenize stage"):
        T.load_stream(tmp_path, "train")


def test_stage_rejects_bad_params(tmp_path):
    import yaml

    params = profile_dict(ROOT / "configs" / "smoke.yaml")
    params["tokenizer"]["vocab_size"] = 10
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    r = subprocess.run([sys.executable, "-m", "stages.tokenize_corpus"], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2 and r.stderr.startswith("error:") and "vocab_size" in r.stderr
    assert "Traceback" not in r.stderr
