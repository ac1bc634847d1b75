"""Stage train_transformer MODEL: train one of the paper's one-layer transformers (A or B).

    python -m stages.train_transformer MODEL        (MODEL: a key of transformer.seeds)

Resumes from checkpoints/transformer/MODEL.pt when a previous run with the same settings was interrupted.
Writes artifacts/models/MODEL/{model.safetensors,config.json}, metrics/transformer/MODEL.json and the dvclive
curves in dvclive/transformer/MODEL/ (monosemantic/lm/train.py).
"""

from monosemantic import paths
from monosemantic.data.tokenizer import load_stream, load_tokenizer
from monosemantic.lm.model import ModelConfig
from monosemantic.lm.train import model_metrics, train
from monosemantic.runner import stage
from monosemantic.utils import resolve_device, resolve_precision, write_json


@stage("MODEL")
def main(params, name: str) -> None:
    cfg, seed = params.transformer, params.transformer_seed(name)
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device)
    vocab = load_tokenizer(paths.TOKENIZER).get_vocab_size()
    train_stream, val_stream = load_stream(paths.TOKENS, "train"), load_stream(paths.TOKENS, "val")
    ckpt = paths.transformer_checkpoint(name)
    print(f"training transformer {name} (seed {seed}) on {device} in {precision}: {cfg.steps} steps x "
          f"{cfg.batch_size} x {cfg.n_ctx} tokens, vocab {vocab}")
    model, info = train(cfg, ModelConfig.from_params(cfg, vocab), seed, train_stream, val_stream, device,
                        ckpt_path=ckpt, live_dir=paths.DVCLIVE / "transformer" / name, precision=precision)
    model.save(paths.model_dir(name))
    print(f"trained in {info['seconds']:.0f}s at {info['tokens_per_s']:,.0f} tokens/s; evaluating")
    metrics = model_metrics(model, train_stream, val_stream, cfg, device)
    write_json(paths.transformer_metrics(name),
               {"model": name, "seed": seed, "device": str(device), "precision": precision, **info, **metrics})
    for subset, row in metrics["subsets"].items():
        print(f"  {subset:>10}: val loss {row['loss']:.3f}  unigram {row.get('unigram_loss', float('nan')):.3f}")
    ckpt.unlink(missing_ok=True)
    paths.remove_empty_checkpoint_dirs()


if __name__ == "__main__":
    main.run()
