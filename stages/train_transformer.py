"""Stage train_transformer MODEL: train one of the paper's one-layer transformers (A or B).

    python -m stages.train_transformer MODEL        (MODEL: a key of transformer.seeds)

Resumes from checkpoints/transformer/MODEL.pt when a previous run with the same settings was interrupted.
Writes artifacts/models/MODEL/{model.safetensors,config.json}, metrics/transformer/MODEL.json (with the machine
that trained it under "trained_on"), the dvclive curves in dvclive/transformer/MODEL/ (monosemantic/lm/train.py)
and metrics/provenance/transformer_MODEL.json (the CPU and precision that trained it: core/provenance.py).
"""

from pathlib import Path

from monosemantic.core import paths
from monosemantic.data.tokenizer import load_stream, load_tokenizer
from monosemantic.lm.run import train_transformer
from monosemantic.core.provenance import training_record, write_training_record
from monosemantic.core.runner import stage
from monosemantic.core.utils import resolve_device, resolve_precision


def trained_on(device: str, precision: str) -> dict:
    """The machine in the model's metrics record (strings: never compared as numbers): CPU, its ISA and id,
    kernel pins, threads, torch; the full record is metrics/provenance/transformer_MODEL.json."""
    rec = training_record("train_transformer", device, precision)
    return {k: rec[k] for k in ("cpu", "cpu_id", "isa", "kernel_pins", "torch_cpu_capability", "threads", "torch",
                                "device", "precision") if k in rec}


def train_named(params, name: str, device, *, ckpt_path: Path | None, live_dir: Path | None, parallel=None,
                progress: bool = True, save: bool = True, extra: dict | None = None) -> dict | None:
    """Train transformer NAME (seed: transformer.seeds[NAME]) on the pipeline's tokens; when `save`, write
    artifacts/models/NAME and metrics/transformer/NAME.json and return that record (None otherwise).
    Also the body of scale/distributed.py's `transformer MODEL`."""
    cfg, seed = params.transformer, params.transformer_seed(name)
    precision = resolve_precision(params.precision, device)
    vocab = load_tokenizer(paths.TOKENIZER).get_vocab_size()
    train_stream, val_stream = load_stream(paths.TOKENS, "train"), load_stream(paths.TOKENS, "val")
    return train_transformer(cfg, name, seed, vocab, train_stream, val_stream, device, precision=precision,
                             ckpt_path=ckpt_path, live_dir=live_dir, parallel=parallel, progress=progress,
                             model_dir=paths.model_dir(name) if save else None,
                             metrics_path=paths.transformer_metrics(name) if save else None, extra=extra)


@stage("MODEL")
def main(params, name: str) -> None:
    ckpt, device = paths.transformer_checkpoint(name), resolve_device(params.device)
    record = train_named(params, name, device, ckpt_path=ckpt, live_dir=paths.DVCLIVE / "transformer" / name,
                         extra={"trained_on": trained_on(str(device), resolve_precision(params.precision, device))})
    write_training_record(paths.provenance("transformer", name), f"train_transformer@{name}", str(device),
                          record["precision"], kernels=params.transformer.kernels)
    for subset, row in record["subsets"].items():
        print(f"  {subset:>10}: val loss {row['loss']:.3f}  unigram {row.get('unigram_loss', float('nan')):.3f}")
    ckpt.unlink(missing_ok=True)
    paths.remove_empty_checkpoint_dirs()


if __name__ == "__main__":
    main.run()
