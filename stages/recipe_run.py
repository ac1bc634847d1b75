"""Stage recipe_run: one dictionary of the recipes comparison (monosemantic/recipes/compare.py).

    python -m stages.recipe_run NAME

NAME is a key of recipes.runs in experiments/recipes/params.yaml (trained here with the sae section's
hyperparameters into artifacts/recipes/NAME/, a scratch folder; a dictionary already trained from the same params,
data and training code is reused) or of recipes.main_runs (a dictionary of the main sweep, artifacts/sae/NAME/,
measured as it is). Writes metrics/recipes/NAME.json: the main pipeline's evaluation (sae/evaluate.py) with the
shrinkage. Run them all with `dvc repro experiments/recipes/dvc.yaml`.
"""

from monosemantic.core.runner import stage
from monosemantic.core.utils import resolve_device, seed_everything, write_json
from monosemantic.recipes.compare import format_run, run_recipe
from monosemantic.recipes.config import load_recipes, recipe_metrics


@stage("NAME")
def main(params, name: str) -> None:
    rc = load_recipes(params)
    seed_everything(params.sae.seed)
    out = run_recipe(params, rc, name, resolve_device(params.device))
    write_json(recipe_metrics(name), out)
    print(f"{format_run(out)} ({out['seconds']:.0f}s)")


if __name__ == "__main__":
    main.run()
