"""Stage sample_activations: sample a model's MLP activations into shuffled activation stores.

    python stages/sample_activations.py MODEL [--params params.yaml]

MODEL is a key of transformer.seeds or 'random'. Writes activations.n_points points from the train stream
to artifacts/activations/MODEL/train/ and activations.val_points from the val stream to
artifacts/activations/MODEL/val/ (store.py layout; see monosemantic/activations.py for the sampling).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic.activations import SamplingError, sample_activations  # noqa: E402
from monosemantic.config import stage_params  # noqa: E402
from monosemantic.model import Transformer  # noqa: E402
from monosemantic.store import sha256_file  # noqa: E402
from monosemantic.tokenizer import TokenizerError, load_stream  # noqa: E402
from monosemantic.utils import fail, resolve_device, resolve_precision  # noqa: E402

TOKENS = Path("artifacts/tokens")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = stage_params(args.params)
    models = [*params.transformer.seeds, "random"]
    if args.model not in models:
        fail(f"model {args.model!r} is not one of {', '.join(models)}")
    cfg = params.activations
    model_dir = Path("artifacts/models") / args.model
    try:
        device = resolve_device(params.device)
        precision = resolve_precision(params.precision, device)
        model = Transformer.load(model_dir, device)
        extra = {"model": args.model, "model_sha256": sha256_file(model_dir / "model.safetensors")}
        for split, n in (("train", cfg.n_points), ("val", cfg.val_points)):
            info = sample_activations(
                model, load_stream(TOKENS, split), Path("artifacts/activations") / args.model / split,
                n_points=n, k=cfg.tokens_per_context, shard_points=cfg.shard_points, dtype=cfg.dtype,
                batch_contexts=cfg.batch_contexts, seed=cfg.seed, split=split, device=device,
                manifest_extra=extra, precision=precision,
                mix=params.transformer.mix if split == "train" else None)  # held-out points: natural mix
            print(f"{args.model}/{split}: {info['points']:,} points from {info['contexts']:,} contexts in "
                  f"{info['seconds']:.1f}s ({info['tokens_per_s']:,.0f} tokens/s through the model, "
                  f"{info['points_per_s']:,.0f} points/s)")
    except (FileNotFoundError, TokenizerError, SamplingError, RuntimeError) as e:
        fail(str(e))


if __name__ == "__main__":
    main()
