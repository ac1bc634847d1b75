"""The pipeline's stages, one thin script each: `python -m stages.NAME [ARGS]` from the repository root (dvc.yaml)."""
