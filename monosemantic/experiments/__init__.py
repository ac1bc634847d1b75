"""Code of the experiments that run apart from the plain `dvc repro` (experiments/*/dvc.yaml), kept out of the
subpackages the main pipeline's stages depend on, so that a change here never makes a main stage stale."""
