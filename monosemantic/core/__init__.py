"""The pipeline's infrastructure, shared by every stage: the configuration and its schema (config.py, schema.py,
analysis_config.py), where artifacts live (paths.py), how a stage runs (runner.py), checkpoints (training.py),
atomic writes, seeds and devices (utils.py), and the machine that trained an artifact (provenance.py)."""
