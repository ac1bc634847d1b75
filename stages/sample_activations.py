"""Stage sample_activations MODEL: sample a model's MLP activations into shuffled activation stores.

    python -m stages.sample_activations MODEL       (MODEL: a key of transformer.seeds, or random)

Writes activations.n_points points from the train stream to artifacts/activations/MODEL/train/ and
activations.val_points from the val stream to artifacts/activations/MODEL/val/ (monosemantic/lm/store.py layout;
monosemantic/lm/activations.py for the sampling). The train points follow transformer.mix, the held-out points
the natural mix. In streamed mode (activations.mode) the train folder holds only stream.json, which describes
the stream that the SAE stage samples on the fly (monosemantic/lm/streaming.py). Last, identity.json: what the
points are made from (monosemantic/lm/identity.py), the dep of the dictionaries instead of the store's bytes, which
differ between CPUs in their last bits.
"""

from monosemantic.core import paths
from monosemantic.data.tokenizer import load_stream
from monosemantic.lm.activations import sample_activations
from monosemantic.lm.identity import activation_identity, write_identity
from monosemantic.lm.model import Transformer
from monosemantic.lm.store import sha256_file
from monosemantic.lm.streaming import STREAM_FILE, open_source, write_stream_manifest
from monosemantic.core.runner import stage
from monosemantic.core.utils import resolve_device, resolve_precision


@stage("MODEL")
def main(params, name: str) -> None:
    if name != "random":
        params.transformer_seed(name)  # a ConfigError for an unknown model
    cfg = params.activations
    device = resolve_device(params.device)
    precision = resolve_precision(params.precision, device)
    model = Transformer.load(paths.model_dir(name), device)
    extra = {"model": name, "model_sha256": sha256_file(paths.model_dir(name) / "model.safetensors")}
    for split, n in (("train", cfg.n_points), ("val", cfg.val_points)):
        if split == "train" and cfg.mode == "streamed":  # the SAE samples the model on the fly: describe the stream
            stream = open_source(params, name, device, check=False)
            write_stream_manifest(paths.activations_dir(name, split), stream, extra)
            print(f"{name}/{split}: streamed ({stream.n_points:,} points, sampled by the SAE stage); wrote "
                  f"{paths.activations_dir(name, split) / STREAM_FILE}")
            continue
        info = sample_activations(
            model, load_stream(paths.TOKENS, split), paths.activations_dir(name, split),
            n_points=n, k=cfg.tokens_per_context, shard_points=cfg.shard_points, dtype=cfg.dtype,
            batch_contexts=cfg.batch_contexts, seed=cfg.seed, split=split, device=device,
            manifest_extra=extra, precision=precision,
            mix=params.transformer.mix if split == "train" else None)  # held-out points: natural mix
        print(f"{name}/{split}: {info['points']:,} points from {info['contexts']:,} contexts in "
              f"{info['seconds']:.1f}s ({info['tokens_per_s']:,.0f} tokens/s through the model, "
              f"{info['points_per_s']:,.0f} points/s)")
    identity = activation_identity(paths.model_dir(name) / "model.safetensors", paths.TOKENS, cfg,
                                   params.transformer.mix, precision)
    print(f"wrote {write_identity(paths.ACTIVATIONS / name, identity)}")


if __name__ == "__main__":
    main.run()
