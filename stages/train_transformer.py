"""Stage train_transformer: train one of the paper's one-layer transformers (A or B).

    python stages/train_transformer.py MODEL [--params params.yaml]

MODEL is a key of transformer.seeds. Resumes from checkpoints/transformer/MODEL.pt when a previous run with
the same settings was interrupted. Writes artifacts/models/MODEL/{model.safetensors,config.json},
metrics/transformer/MODEL.json and the dvclive curves in dvclive/transformer/MODEL/.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic.config import stage_params  # noqa: E402
from monosemantic.lm import TrainingError, model_metrics, train  # noqa: E402
from monosemantic.model import ModelConfig  # noqa: E402
from monosemantic.tokenizer import TokenizerError, load_stream, load_tokenizer  # noqa: E402
from monosemantic.utils import fail, resolve_device, resolve_precision, write_json  # noqa: E402

TOKENIZER = Path("artifacts/tokenizer/tokenizer.json")
TOKENS = Path("artifacts/tokens")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = stage_params(args.params)
    cfg = params.transformer
    if args.model not in cfg.seeds:
        fail(f"model {args.model!r} is not in transformer.seeds ({', '.join(cfg.seeds)})")
    try:
        device = resolve_device(params.device)
        precision = resolve_precision(params.precision, device)
        vocab = load_tokenizer(TOKENIZER).get_vocab_size()
        train_stream, val_stream = load_stream(TOKENS, "train"), load_stream(TOKENS, "val")
        model_cfg = ModelConfig.from_params(cfg, vocab)
        seed = cfg.seeds[args.model]
        ckpt = Path("checkpoints/transformer") / f"{args.model}.pt"
        print(f"training transformer {args.model} (seed {seed}) on {device} in {precision}: {cfg.steps} steps x "
              f"{cfg.batch_size} x {cfg.n_ctx} tokens, vocab {vocab}")
        model, info = train(cfg, model_cfg, seed, train_stream, val_stream, device, ckpt_path=ckpt,
                            live_dir=Path("dvclive/transformer") / args.model, precision=precision)
        model.save(Path("artifacts/models") / args.model)
        print(f"trained in {info['seconds']:.0f}s at {info['tokens_per_s']:,.0f} tokens/s; evaluating")
        metrics = model_metrics(model, train_stream, val_stream, cfg, device)
    except (TokenizerError, TrainingError, RuntimeError) as e:
        fail(str(e))
    write_json(Path("metrics/transformer") / f"{args.model}.json",
               {"model": args.model, "seed": seed, "device": str(device), "precision": precision, **info, **metrics})
    for name, row in metrics["subsets"].items():
        print(f"  {name:>10}: val loss {row['loss']:.3f}  unigram {row.get('unigram_loss', float('nan')):.3f}")
    ckpt.unlink(missing_ok=True)
    for folder in (ckpt.parent, ckpt.parent.parent):  # leave no empty checkpoints/ folders behind
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()


if __name__ == "__main__":
    main()
