"""Stage shuffle_transformer: the paper's random-transformer baseline, A's weights shuffled.

    python -m stages.shuffle_transformer

Loads artifacts/models/A (the first model of transformer.seeds when there is no A), permutes the entries of
every parameter tensor independently with transformer.shuffle_seed (lm.train.shuffle_weights), and writes
artifacts/models/random/ and metrics/transformer/random.json.
"""

from monosemantic.core import paths
from monosemantic.data.tokenizer import load_stream
from monosemantic.lm.model import Transformer
from monosemantic.lm.train import model_metrics, shuffle_weights
from monosemantic.core.runner import stage
from monosemantic.core.utils import resolve_device, write_json


@stage()
def main(params) -> None:
    cfg = params.transformer
    source = "A" if "A" in cfg.seeds else next(iter(cfg.seeds))
    device = resolve_device(params.device)
    shuffled = shuffle_weights(Transformer.load(paths.model_dir(source)), cfg.shuffle_seed)
    shuffled.save(paths.model_dir("random"))
    metrics = model_metrics(shuffled.to(device), load_stream(paths.TOKENS, "train"), load_stream(paths.TOKENS, "val"),
                            cfg, device)
    write_json(paths.transformer_metrics("random"),
               {"model": "random", "source": source, "shuffle_seed": cfg.shuffle_seed, **metrics})
    print(f"random: {source}'s weights shuffled (seed {cfg.shuffle_seed}); val loss "
          f"{metrics['subsets']['overall']['loss']:.3f}")


if __name__ == "__main__":
    main.run()
