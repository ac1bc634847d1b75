"""Stage train_sae RUN: train one sparse autoencoder of the sweep.

    python -m stages.train_sae RUN                  (RUN: a key of sae_runs)

Reads params.yaml (sae: the training hyperparameters, sae_runs.RUN: model, n_features, architecture and its
settings, e.g. l1), trains on artifacts/activations/MODEL/train (or on activations streamed from the model:
activations.mode; a run of points_mult m > 1 always streams its m x n_points points, for m x sae.steps
steps) and writes artifacts/sae/RUN/ in SAELens's layout (monosemantic/sae/train.py).
While training, the checkpoint and the curves live in checkpoints/sae/RUN/ (not a DVC output, so a killed
`dvc repro` resumes from it); the folder is removed once the run completes. Last, metrics/provenance/sae_RUN.json:
the CPU and precision that trained it.
"""

from monosemantic.core import paths
from monosemantic.lm.streaming import open_source
from monosemantic.core.provenance import write_training_record
from monosemantic.core.runner import stage
from monosemantic.sae.model import sae_metadata
from monosemantic.sae.train import train_sae
from monosemantic.core.utils import resolve_device, resolve_precision, seed_everything


@stage("RUN")
def main(params, name: str) -> None:
    run = params.sae_run(name)
    device = resolve_device(params.device)
    # the store, or the stream (activations.mode; always for a run of points_mult > 1)
    store = open_source(params, run.model, device, points_mult=run.points_mult)
    seed_everything(params.sae.seed)
    stats = train_sae(run.training(params.sae), run, store, paths.sae_dir(name), device=device,
                      metadata=sae_metadata(name, run.model, params.transformer.n_ctx),
                      ckpt_dir=paths.sae_checkpoints(name))
    paths.remove_empty_checkpoint_dirs()
    write_training_record(paths.provenance("sae", name), f"train_sae@{name}", str(device),
                          resolve_precision(params.precision, device), encoder_screen=params.sae.encoder_screen)
    print(f"{name}: mse {stats['mse']:.4g}, L0 {stats['l0']:.1f}, dead {stats['dead']}, "
          f"{stats['samples_per_s']:.0f} samples/s")


if __name__ == "__main__":
    main.run()
