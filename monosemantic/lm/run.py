"""Training a transformer of the pipeline from its data to its artifacts: the body of stage train_transformer,
shared with its data-parallel launch (scale/distributed.py, `transformer MODEL`).

`train_transformer` trains one transformer (the `transformer` section, a seed, the token streams and the
vocabulary size) with lm.train.train and, when given a model_dir, saves the model there, evaluates it and writes
its metrics record to metrics_path; it returns that record (None when not saving: a rank r > 0). Where the
streams come from and where the artifacts go (monosemantic.core.paths) is the stage's business:
stages/train_transformer.py:train_named.
"""

from __future__ import annotations

from pathlib import Path

from monosemantic.core.config import TransformerConfig
from monosemantic.data.tokenizer import TokenStream
from monosemantic.lm.model import ModelConfig
from monosemantic.lm.train import model_metrics, train
from monosemantic.core.utils import write_json


def train_transformer(cfg: TransformerConfig, name: str, seed: int, vocab: int, train_stream: TokenStream,
                      val_stream: TokenStream, device, *, precision: str, ckpt_path: Path | None,
                      live_dir: Path | None, parallel=None, progress: bool = True, model_dir: Path | None = None,
                      metrics_path: Path | None = None, extra: dict | None = None) -> dict | None:
    """Train transformer `name`; with model_dir, save it there and write its metrics record to metrics_path."""
    if progress:
        print(f"training transformer {name} (seed {seed}) on {device} in {precision}: {cfg.steps} steps x "
              f"{cfg.batch_size} x {cfg.n_ctx} tokens, vocab {vocab}")
    model, info = train(cfg, ModelConfig.from_params(cfg, vocab), seed, train_stream, val_stream, device,
                        ckpt_path=ckpt_path, live_dir=live_dir, precision=precision, parallel=parallel,
                        progress=progress)
    if model_dir is None:
        return None
    model.save(model_dir)
    print(f"trained in {info['seconds']:.0f}s at {info['tokens_per_s']:,.0f} tokens/s; evaluating")
    record = {"model": name, "seed": seed, "device": str(device), "precision": precision, **(extra or {}), **info,
              **model_metrics(model, train_stream, val_stream, cfg, device)}
    if metrics_path is not None:
        write_json(metrics_path, record)
    return record

