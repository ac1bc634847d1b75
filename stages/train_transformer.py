"""Stage train_transformer MODEL: train one of the paper's one-layer transformers (A or B).

    python -m stages.train_transformer MODEL        (MODEL: a key of transformer.seeds)

Resumes from checkpoints/transformer/MODEL.pt when a previous run with the same settings was interrupted.
Writes artifacts/models/MODEL/{model.safetensors,config.json}, metrics/transformer/MODEL.json and the dvclive
curves in dvclive/transformer/MODEL/ (monosemantic/lm/train.py).
"""

from monosemantic import paths
from monosemantic.lm.run import train_named
from monosemantic.runner import stage
from monosemantic.utils import resolve_device


@stage("MODEL")
def main(params, name: str) -> None:
    ckpt = paths.transformer_checkpoint(name)
    record = train_named(params, name, resolve_device(params.device), ckpt_path=ckpt,
                         live_dir=paths.DVCLIVE / "transformer" / name)
    for subset, row in record["subsets"].items():
        print(f"  {subset:>10}: val loss {row['loss']:.3f}  unigram {row.get('unigram_loss', float('nan')):.3f}")
    ckpt.unlink(missing_ok=True)
    paths.remove_empty_checkpoint_dirs()


if __name__ == "__main__":
    main.run()
