"""Stage shuffle_transformer: the paper's random-transformer baseline, A's weights shuffled.

    python stages/shuffle_transformer.py [--params params.yaml]

Loads artifacts/models/A (the first model of transformer.seeds when there is no A), permutes the entries of
every parameter tensor independently with transformer.shuffle_seed (lm.shuffle_weights), and writes
artifacts/models/random/ and metrics/transformer/random.json.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic.config import stage_params  # noqa: E402
from monosemantic.lm import TrainingError, model_metrics, shuffle_weights  # noqa: E402
from monosemantic.model import Transformer  # noqa: E402
from monosemantic.tokenizer import TokenizerError, load_stream  # noqa: E402
from monosemantic.utils import fail, resolve_device, write_json  # noqa: E402

TOKENS = Path("artifacts/tokens")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = stage_params(args.params)
    cfg = params.transformer
    source = "A" if "A" in cfg.seeds else next(iter(cfg.seeds))
    try:
        device = resolve_device(params.device)
        model = Transformer.load(Path("artifacts/models") / source)
        shuffled = shuffle_weights(model, cfg.shuffle_seed)
        shuffled.save(Path("artifacts/models/random"))
        metrics = model_metrics(shuffled.to(device), load_stream(TOKENS, "train"), load_stream(TOKENS, "val"),
                                cfg, device)
    except (FileNotFoundError, TokenizerError, TrainingError, RuntimeError) as e:
        fail(str(e))
    write_json(Path("metrics/transformer/random.json"),
               {"model": "random", "source": source, "shuffle_seed": cfg.shuffle_seed, **metrics})
    print(f"random: {source}'s weights shuffled (seed {cfg.shuffle_seed}); val loss "
          f"{metrics['subsets']['overall']['loss']:.3f}")


if __name__ == "__main__":
    main()
