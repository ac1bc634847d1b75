"""The recipes comparison's params: the `recipes` section of experiments/recipes/params.yaml, loaded as strictly as
params.yaml (core/schema.py: unknown and missing keys, wrong types, a setting that is not the architecture's, all in
one ConfigError) and checked against the main params (the runs it measures, the models it trains on).

The section lives beside experiments/recipes/dvc.yaml, not in params.yaml, so that the main pipeline's schema and
stages do not change with it (the runs are sae_runs-style entries: SAERun.from_params builds them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from monosemantic.core import paths
from monosemantic.core.config import ConfigError, Params, SAERun, read_yaml
from monosemantic.core.schema import build

PARAMS = Path("experiments/recipes/params.yaml")   # relative to the repository root, as paths.PARAMS
RECIPES = Path("artifacts/recipes")                # the dictionaries it trains: scratch, not DVC outputs
METRICS = paths.METRICS / "recipes"                 # metrics/recipes/RUN.json, one per dictionary
SUMMARY = paths.METRICS / "recipes.json"            # the rows, the matched choice and the matched comparison
CHECKPOINTS = paths.CHECKPOINTS / "recipes"


@dataclass(frozen=True)
class RecipesConfig:
    """Every architecture swept over its sparsity knob, the dictionaries at matched L0 compared the paper's ways.

    `runs` are trained by the experiment, entries exactly like sae_runs' (architecture, then its own settings);
    `main_runs` are dictionaries of the main sweep (sae_runs) measured as they are, not retrained (the standard
    recipe's rows); `reference_run`, one of them, sets the L0 to match."""

    reference_run: str  # a key of sae_runs (the paper's A/1): the L0 the matched dictionaries approach
    main_runs: tuple[str, ...]  # keys of sae_runs measured without retraining (reference_run among them)
    runs: dict[str, SAERun]  # trained by the experiment (artifacts/recipes/NAME/)

    def check(self, sae_runs: dict[str, SAERun], models: set[str]) -> list[str]:
        errs = []
        for name in self.main_runs:
            if name not in sae_runs:
                errs.append(f"recipes.main_runs: {name!r} is not in sae_runs")
        if self.reference_run not in self.main_runs:
            errs.append(f"recipes.reference_run: {self.reference_run!r} is not in recipes.main_runs")
        for name, run in self.runs.items():
            errs += [f"recipes.runs.{name}.{e}" for e in run.check()]
            if name in sae_runs:
                errs.append(f"recipes.runs.{name}: the name of a run of sae_runs (the two share metrics/recipes/)")
            if run.model not in models:
                errs.append(f"recipes.runs.{name}.model: {run.model!r} is not a trained model ({sorted(models)})")
        return errs

    def run(self, params: Params, name: str) -> SAERun:
        """The run `name`: an entry of runs, or of sae_runs listed in main_runs."""
        if name in self.runs:
            return self.runs[name]
        if name in self.main_runs:
            return params.sae_run(name)
        raise ConfigError(f"{name!r} is neither in recipes.runs ({', '.join(self.runs) or 'none'}) nor in "
                          f"recipes.main_runs ({', '.join(self.main_runs)})")

    def names(self) -> list[str]:
        return [*self.main_runs, *self.runs]


def recipes_from_dict(data: dict, params: Params, source: str = str(PARAMS)) -> RecipesConfig:
    """The `recipes` section of the parsed file `data`, checked against `params`; a ConfigError listing every
    problem otherwise."""
    errs: list[str] = []
    unknown = [k for k in data if k != "recipes"]
    errs += [f"{k}: unknown key (known: recipes)" for k in unknown]
    rc = build(RecipesConfig, data.get("recipes"), "recipes", errs) if "recipes" in data else None
    if "recipes" not in data:
        errs.append("recipes: missing key")
    if rc is not None:
        models = set(params.transformer.seeds) | {"random"}
        errs += rc.check(params.sae_runs, models)
    if errs:
        raise ConfigError(f"{source}: invalid parameters:\n  - " + "\n  - ".join(errs))
    return rc


def load_recipes(params: Params, path: str | Path = PARAMS) -> RecipesConfig:
    return recipes_from_dict(read_yaml(path), params, str(path))


def recipe_dir(run: str) -> Path:
    """A dictionary the comparison trains (a key of recipes.runs), SAELens layout (scratch)."""
    return RECIPES / run


def recipe_metrics(run: str) -> Path:
    """metrics/recipes/RUN.json: one dictionary of the comparison (recipes.runs or recipes.main_runs)."""
    return METRICS / f"{run}.json"


def recipe_checkpoints(run: str) -> Path:
    return CHECKPOINTS / run
