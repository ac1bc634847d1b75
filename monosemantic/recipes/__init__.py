"""The recipes comparison (issue 29): the SAE architectures that replaced the paper's 2023 recipe, side by side on
the paper's questions. config.py: its params (experiments/recipes/params.yaml); compare.py: the runs, the rows,
the matched-L0 comparison; figure.py: L0 against loss recovered. Run by experiments/recipes/dvc.yaml, apart from
the main pipeline (nothing of the main pipeline imports this package)."""
