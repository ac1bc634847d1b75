"""Stage recipes: the table, the matched-L0 comparison and the frontier of the recipes comparison
(monosemantic/recipes/compare.py).

    python -m stages.recipes

Reads metrics/recipes/NAME.json of every run of recipes.main_runs and recipes.runs (stage recipe_run) and their
dictionaries; for each architecture the dictionary nearest the L0 of recipes.reference_run is compared with the
neurons at the training mix, with its partner on model B (universality), at other sizes (base64 features) and on
the interpretability scores. Writes metrics/recipes.json and paper_figures/recipes_frontier.png; prints the
README's two tables.
"""

from monosemantic.core import paths
from monosemantic.core.runner import stage
from monosemantic.core.utils import write_json
from monosemantic.recipes.compare import markdown_table, matched_table, missing_partners, summarize
from monosemantic.recipes.config import SUMMARY, load_recipes
from monosemantic.recipes.figure import recipes_frontier


@stage()
def main(params) -> None:
    rc = load_recipes(params)
    out = summarize(params, rc)
    write_json(SUMMARY, out)
    recipes_frontier(out["recipes"], out["matched"], out["reference"], paths.figure("recipes_frontier.png"))
    print(markdown_table(out), matched_table(out), sep="\n\n")
    for line in missing_partners(params, out):
        print("warning:", line)


if __name__ == "__main__":
    main.run()
