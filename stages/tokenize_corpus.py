"""Stage tokenize: learn the byte-level BPE tokenizer and encode both splits into token streams.

    python -m stages.tokenize_corpus

Reads corpus.data_dir/{train,val}/*.jsonl.zst; writes artifacts/tokenizer/tokenizer.json,
artifacts/tokens/{train,val}.bin + {train,val}_docs.npz and metrics/tokens.json (monosemantic/data/tokenizer.py).
"""

from monosemantic.core import paths
from monosemantic.data.tokenizer import build_token_streams
from monosemantic.core.runner import stage
from monosemantic.core.utils import write_json


@stage()
def main(params) -> None:
    metrics = build_token_streams(params.tokenizer, params.corpus.data_dir, paths.TOKENIZER, paths.TOKENS)
    write_json(paths.METRICS / "tokens.json", metrics)
    for split in ("train", "val"):
        s = metrics["splits"][split]
        shares = ", ".join(f"{k} {v['token_share']:.1%}" for k, v in s["subsets"].items())
        print(f"{split}: {s['documents']:,} documents, {s['tokens']:,} tokens ({shares})")


if __name__ == "__main__":
    main.run()
