"""Training a transformer of the pipeline by name, from the artifacts to the artifacts: the body of stage
train_transformer, shared with its data-parallel launch (scale/distributed.py, `transformer MODEL`).

`train_named` loads the tokenizer's vocabulary and both token streams, trains transformer NAME (seed:
transformer.seeds[NAME]) with lm.train.train and, when `save`, writes artifacts/models/NAME and
metrics/transformer/NAME.json; it returns that metrics record (None when not saving: a rank r > 0).
"""

from __future__ import annotations

from pathlib import Path

from monosemantic import paths
from monosemantic.data.tokenizer import load_stream, load_tokenizer
from monosemantic.lm.model import ModelConfig
from monosemantic.lm.train import model_metrics, train
from monosemantic.utils import resolve_precision, write_json


def train_named(params, name: str, device, *, ckpt_path: Path | None, live_dir: Path | None, parallel=None,
                progress: bool = True, save: bool = True, extra: dict | None = None) -> dict | None:
    cfg, seed = params.transformer, params.transformer_seed(name)
    precision = resolve_precision(params.precision, device)
    vocab = load_tokenizer(paths.TOKENIZER).get_vocab_size()
    train_stream, val_stream = load_stream(paths.TOKENS, "train"), load_stream(paths.TOKENS, "val")
    if progress:
        print(f"training transformer {name} (seed {seed}) on {device} in {precision}: {cfg.steps} steps x "
              f"{cfg.batch_size} x {cfg.n_ctx} tokens, vocab {vocab}")
    model, info = train(cfg, ModelConfig.from_params(cfg, vocab), seed, train_stream, val_stream, device,
                        ckpt_path=ckpt_path, live_dir=live_dir, precision=precision, parallel=parallel,
                        progress=progress)
    if not save:
        return None
    model.save(paths.model_dir(name))
    print(f"trained in {info['seconds']:.0f}s at {info['tokens_per_s']:,.0f} tokens/s; evaluating")
    record = {"model": name, "seed": seed, "device": str(device), "precision": precision, **(extra or {}), **info,
              **model_metrics(model, train_stream, val_stream, cfg, device)}
    write_json(paths.transformer_metrics(name), record)
    return record
