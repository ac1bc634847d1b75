"""Stage tokenize: learn the byte-level BPE tokenizer and encode both splits into token streams.

    python stages/tokenize_corpus.py [--params params.yaml]

Reads corpus.data_dir/{train,val}/*.jsonl.zst; writes artifacts/tokenizer/tokenizer.json,
artifacts/tokens/{train,val}.bin + {train,val}_docs.npz and metrics/tokens.json.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic.config import stage_params  # noqa: E402
from monosemantic.corpus import CorpusError  # noqa: E402
from monosemantic.tokenizer import (TokenizerError, save_tokenizer, tokenize_split, token_metrics,  # noqa: E402
                                    train_tokenizer, training_texts)
from monosemantic.utils import fail, write_json  # noqa: E402

TOKENIZER = Path("artifacts/tokenizer/tokenizer.json")
TOKENS = Path("artifacts/tokens")
METRICS = Path("metrics/tokens.json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = stage_params(args.params)
    cfg, data_dir = params.tokenizer, params.corpus.data_dir
    try:
        t0 = time.perf_counter()
        texts, subsets = training_texts(data_dir, cfg.train_chars)
        n_chars = sum(map(len, texts))
        tok = train_tokenizer(texts, cfg.vocab_size, cfg.min_frequency)
        del texts
        t_train = time.perf_counter() - t0
        print(f"tokenizer: {tok.get_vocab_size()} tokens learned on {n_chars:,} characters in {t_train:.1f}s")
        save_tokenizer(tok, TOKENIZER)
        t1 = time.perf_counter()
        train = tokenize_split(tok, data_dir, "train", TOKENS, subsets=subsets, max_documents=cfg.max_documents)
        val = tokenize_split(tok, data_dir, "val", TOKENS, subsets=subsets, max_documents=cfg.max_documents)
        t_enc = time.perf_counter() - t1
    except (CorpusError, TokenizerError) as e:
        fail(str(e))
    metrics = {"vocab_size": tok.get_vocab_size(), "tokenizer_train_chars": n_chars, **token_metrics(train, val)}
    n_tok = metrics["splits"]["train"]["tokens"] + metrics["splits"]["val"]["tokens"]
    metrics["encode_tokens_per_s"] = round(n_tok / max(t_enc, 1e-9), 1)
    write_json(METRICS, metrics)
    for split in ("train", "val"):
        s = metrics["splits"][split]
        shares = ", ".join(f"{k} {v['token_share']:.1%}" for k, v in s["subsets"].items())
        print(f"{split}: {s['documents']:,} documents, {s['tokens']:,} tokens ({shares})")
    print(f"encoded {n_tok:,} tokens in {t_enc:.1f}s ({n_tok / max(t_enc, 1e-9):,.0f} tokens/s)")


if __name__ == "__main__":
    main()
