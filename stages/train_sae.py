"""Stage: train one sparse autoencoder of the sweep.

    python stages/train_sae.py RUN_NAME

Reads params.yaml (sae: hyperparameters, sae_runs.RUN_NAME: model, n_features, l1), trains on
artifacts/activations/{model}/train and writes artifacts/sae/RUN_NAME/ (see monosemantic/sae_train.py).
While training, the checkpoint and the curves live in checkpoints/sae/RUN_NAME/ (not a DVC output, so a killed
`dvc repro` resumes from it); the folder is removed once the run completes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monosemantic.config import ConfigError, load_params  # noqa: E402
from monosemantic.sae import HOOK_NAME  # noqa: E402
from monosemantic.sae_train import NonFiniteLossError, train_sae  # noqa: E402
from monosemantic.store import StoreError  # noqa: E402
from monosemantic.streaming import open_source  # noqa: E402
from monosemantic.utils import fail, resolve_device, seed_everything  # noqa: E402

CHECKPOINTS = Path("checkpoints/sae")


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        fail("usage: python stages/train_sae.py RUN_NAME")
    name = argv[0]
    try:
        params = load_params("params.yaml")
        if name not in params.sae_runs:
            fail(f"sae_runs has no run {name!r} (known: {', '.join(params.sae_runs) or 'none'})")
        run = params.sae_runs[name]
        try:
            device = resolve_device(params.device)
        except RuntimeError as e:
            fail(str(e))
        store = open_source(params, run.model, device)  # the store, or the stream (activations.mode)
        seed_everything(params.sae.seed)
        ckpt_dir = CHECKPOINTS / name
        stats = train_sae(params.sae, run, store, Path("artifacts/sae") / name, device=device,
                          metadata={"model_name": f"monosemantic-1L-{run.model}", "hook_name": HOOK_NAME,
                                    "context_size": params.transformer.n_ctx, "run_name": name},
                          ckpt_dir=ckpt_dir)
    except (ConfigError, StoreError, NonFiniteLossError, ValueError, RuntimeError, FileNotFoundError) as e:
        fail(str(e))
    for folder in (CHECKPOINTS, CHECKPOINTS.parent):  # leave no empty checkpoints/ folders behind
        if folder.exists() and not any(folder.iterdir()):
            folder.rmdir()
    print(f"{name}: mse {stats['mse']:.4g}, L0 {stats['l0']:.1f}, dead {stats['dead']}, "
          f"{stats['samples_per_s']:.0f} samples/s")


if __name__ == "__main__":
    main(sys.argv[1:])
