"""The corpus: the Pile's jsonl.zst format, the BPE tokenizer, the training mix."""
