"""Typed configuration: params.yaml, nested by DVC stage, loaded into frozen dataclasses.

Every section of params.yaml maps to one dataclass: the training pipeline's below (corpus, tokenizer,
transformer, activations, sae, sae_runs, evaluate), the analyses' in
monosemantic/core/analysis_config.py (analysis, interpretability, browser, superposition). No field has a default:
params.yaml holds every value, so DVC sees every one. Loading (monosemantic/core/schema.py) rejects unknown keys,
missing keys, wrong types, values outside their Literal and impossible values with one message listing every
problem, before any compute starts:

    >>> params = load_params("params.yaml")
    >>> params.sae.batch_size

Profiles (configs/smoke.yaml, configs/medium.yaml, configs/paper.yaml) are OVERLAYS: each holds only the keys
whose values differ from params.yaml (the default profile), nested as there. `merge_profile(base, overlay)` merges
them mapping by mapping, key by key, except under the keys of REPLACED_WHOLE (the named entries: runs, arms,
seeds, mix shares), which a profile that names them replaces whole; lists and scalars are replaced. The merged
result is a complete params file, validated by the same schema. `load_params("configs/smoke.yaml")` does this
merge for a file in a `configs/` directory next to a params.yaml; `python -m tools.profile smoke` writes it as
params.yaml (tests/test_config.py merges and validates every profile).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from monosemantic.core.analysis_config import (AnalysisConfig, BrowserConfig, InterpretabilityConfig, SuperpositionArm,
                                          SuperpositionConfig, ToyConfig)
from monosemantic.core.schema import MISSING, ConfigError, build, build_fields, not_positive

__all__ = ["ActivationsConfig", "AnalysisConfig", "BrowserConfig", "ConfigError", "CorpusConfig", "EvaluateConfig",
           "InterpretabilityConfig", "Params", "ResampleConfig", "SAEConfig", "SAERun",
           "SuperpositionArm", "SuperpositionConfig", "TokenizerConfig", "ToyConfig", "TransformerConfig",
           "REPLACED_WHOLE", "is_profile", "load_params", "merge_profile", "not_positive", "params_from_dict",
           "profile_dict", "profile_path"]


@dataclass(frozen=True)
class CorpusConfig:
    data_dir: str  # holds train/*.jsonl.zst and val/*.jsonl.zst in the Pile's format

    def check(self) -> list[str]:
        return [] if self.data_dir else ["corpus.data_dir: must not be empty"]


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int  # byte-level BPE; 256 byte tokens + merges + special tokens
    train_chars: int  # characters of the train split used to learn the merges
    min_frequency: int
    max_documents: int  # per split; 0: all. >0 tokenizes only the first documents (smoke profile)

    def check(self) -> list[str]:
        errs = []
        if self.max_documents < 0:
            errs.append("tokenizer.max_documents: must be >= 0 (0 means all documents)")
        if not 300 <= self.vocab_size <= 65535:
            errs.append(f"tokenizer.vocab_size: {self.vocab_size} must be in [300, 65535] (uint16 token ids)")
        errs += not_positive("tokenizer", self, ("train_chars",))
        if self.min_frequency < 1:
            errs.append("tokenizer.min_frequency: must be >= 1")
        return errs


@dataclass(frozen=True)
class TransformerConfig:
    """The paper's one-layer transformer. Unstated in the paper: heads, context, norm, positions, schedule."""

    d_model: int
    d_mlp: int
    n_heads: int
    n_ctx: int
    batch_size: int
    steps: int
    lr: float
    warmup_steps: int
    min_lr_frac: float  # cosine decay to lr * min_lr_frac
    betas: tuple[float, float]
    weight_decay: float
    grad_clip: float
    eval_every: int
    eval_batches: int
    checkpoint_every: int
    seeds: dict[str, int]
    shuffle_seed: int  # the random-transformer baseline: A's weights, each matrix permuted
    # share of the drawn training contexts per named subset (mix.py); the others share the rest by size; {}: natural
    mix: dict[str, float]
    # the training step's kernels: reference (autograd on the plain forward) | fused (attention in fp32, the
    # unembedding fused with the cross-entropy: model.train_loss, lm/fused.py; ~2x faster on CPUs)
    kernels: Literal["reference", "fused"]

    def check(self) -> list[str]:
        errs = not_positive("transformer", self, ("d_model", "d_mlp", "n_heads", "n_ctx", "batch_size", "steps",
                                                  "eval_every", "eval_batches", "checkpoint_every", "lr"))
        if self.n_heads > 0 and self.d_model % self.n_heads:
            errs.append(f"transformer.n_heads: {self.n_heads} must divide d_model {self.d_model}")
        if not 0 <= self.warmup_steps < max(self.steps, 1):
            errs.append("transformer.warmup_steps: must be in [0, steps)")
        if not 0 <= self.min_lr_frac <= 1:
            errs.append("transformer.min_lr_frac: must be in [0, 1]")
        if not all(0 <= b < 1 for b in self.betas):
            errs.append("transformer.betas: each must be in [0, 1)")
        if not self.seeds:
            errs.append("transformer.seeds: name at least one model, e.g. {A: 1, B: 2}")
        if "random" in self.seeds:
            errs.append("transformer.seeds: 'random' is reserved for the shuffled-weights baseline")
        bad = {k: v for k, v in self.mix.items() if not 0 <= v <= 1}
        if bad:
            errs.append(f"transformer.mix: shares must be in [0, 1], got {bad}")
        elif sum(self.mix.values()) > 1 + 1e-9:
            errs.append(f"transformer.mix: shares sum to {sum(self.mix.values()):.4g} > 1")
        return errs


@dataclass(frozen=True)
class ActivationsConfig:
    """Sampling MLP activations: k tokens per context, shuffled across contexts (paper: 250 of each context)."""

    n_points: int  # training points per model (paper: 8e9)
    tokens_per_context: int  # k, drawn without replacement from each context
    val_points: int  # held-out points from the validation split (for metrics)
    shard_points: int  # points per output shard
    dtype: Literal["float16", "bfloat16", "float32"]  # as stored
    batch_contexts: int  # contexts per forward pass
    seed: int
    # stored: the SAE reads the shuffled store (fastest when the points fit on disk); streamed: the SAE stage
    # runs the transformer on the fly (monosemantic/lm/streaming.py), shuffling blocks of shuffle_buffer points
    mode: Literal["stored", "streamed"]
    shuffle_buffer: int  # points per shuffle block in streamed mode (a multiple of tokens_per_context)

    def check(self) -> list[str]:
        errs = not_positive("activations", self, ("n_points", "tokens_per_context", "val_points", "shard_points",
                                                  "batch_contexts", "shuffle_buffer"))
        if self.tokens_per_context > 0 and self.shuffle_buffer % self.tokens_per_context:
            errs.append(f"activations.shuffle_buffer: {self.shuffle_buffer} must be a multiple of "
                        f"tokens_per_context {self.tokens_per_context} (whole contexts per block)")
        return errs


@dataclass(frozen=True)
class ResampleConfig:
    """Dead-neuron resampling, paper values: at 25k/50k/75k/100k, window 12.5k, 819,200 inputs, 0.2x."""

    steps: tuple[int, ...]
    dead_window: int  # a feature that did not fire in this many previous steps is dead
    n_inputs: int  # inputs on which the loss is computed to choose replacements
    encoder_scale: float  # new encoder row norm = encoder_scale * mean alive encoder row norm

    def check(self) -> list[str]:
        errs = []
        if any(s <= 0 for s in self.steps) or list(self.steps) != sorted(set(self.steps)):
            errs.append(f"sae.resample.steps: must be positive and strictly increasing, got {list(self.steps)}")
        return errs + not_positive("sae.resample", self, ("dead_window", "n_inputs", "encoder_scale"))


@dataclass(frozen=True)
class SAEConfig:
    """Training hyperparameters shared by every SAE of the sweep (paper: batch 8192, 1M steps, Adam)."""

    batch_size: int
    steps: int
    lr: float
    betas: tuple[float, float]
    geometric_median_points: int  # sample used to initialise b_d
    log_every: int
    checkpoint_every: int
    seed: int
    # dense: autograd; sparse: closed-form gradients with CSR products; auto: closed-form on CPU (CSR below 5% active
    # entries, dense products above), autograd on CUDA (sae/train.py SAETrainer)
    fast_path: Literal["auto", "sparse", "dense"]
    # How the CSR path finds its active entries. fp32: the fp32 encoder product; bf16: a bf16 product and an error
    # bound (sae/screen.py EncoderScreen; the same active set, values in another fp32 summation order, so not bitwise
    # the fp32 path); auto: bf16 where the CPU has native bf16 matrix instructions, else fp32
    encoder_screen: Literal["fp32", "bf16", "auto"]
    resample: ResampleConfig

    def check(self) -> list[str]:
        errs = not_positive("sae", self, ("batch_size", "steps", "geometric_median_points", "log_every",
                                          "checkpoint_every", "lr"))
        if not all(0 <= b < 1 for b in self.betas):
            errs.append("sae.betas: each must be in [0, 1)")
        if self.resample.steps and self.resample.steps[-1] >= self.steps:
            errs.append(f"sae.resample.steps: {self.resample.steps[-1]} is beyond training ({self.steps} steps)")
        return errs + self.resample.check()


@dataclass(frozen=True)
class SAERun:
    """One dictionary of the sweep: which transformer, how many features, which architecture and its settings.

    In params.yaml an entry is flat, {model: A, n_features: 4096, architecture: standard, l1: 0.0005}: the keys
    besides model, n_features and architecture are the architecture's own (its Settings, sae/architectures/),
    built by the same strict schema (`from_params`: an unknown architecture, a key that is not the
    architecture's and a missing one are reported with every other problem, naming the keys it takes)."""

    model: str
    n_features: int
    architecture: str  # a key of sae.architectures.ARCHITECTURES
    settings: Any  # an instance of that architecture's Settings (frozen dataclass; flat in params.yaml)
    # m: train on m x activations.n_points points (m > 1: streamed from the model in either activations.mode, the
    # store holding n_points) for m x sae.steps steps, one pass over them as at 1
    points_mult: int

    @staticmethod
    def keys(architecture: str) -> list[str]:
        """The keys a params.yaml entry of `architecture` spells (a ConfigError for an unknown architecture)."""
        return [*RUN_KEYS, *(f.name for f in dataclasses.fields(_settings_class(architecture)))]

    @classmethod
    def from_params(cls, data: Any, where: str, errs: list[str]) -> "SAERun | None":
        """The run of the flat entry `data` at `where` (sae_runs.NAME), or None with every problem in errs."""
        if not isinstance(data, dict):
            errs.append(f"{where}: expected a mapping, got {data!r}")
            return None
        n_errs = len(errs)
        head = build_fields(_RunKeys, list(RUN_KEYS), data, where, errs, MISSING)
        arch = head.get("architecture")
        if arch is None:  # missing or not a string (reported): the keys it takes are unknown
            return None
        try:
            Settings = _settings_class(arch)
        except ConfigError as e:
            errs.append(f"{where}.architecture: {e}")
            return None
        keys = cls.keys(arch)
        takes = f"architecture {arch!r} takes: {', '.join(keys)}"
        errs += [f"{where}.{key}: unknown key ({takes})" for key in data if key not in keys]
        own = build_fields(Settings, keys[len(RUN_KEYS):], data, where, errs, f"missing key ({takes})")
        return None if len(errs) > n_errs else cls(**head, settings=Settings(**own))

    def training(self, sae: "SAEConfig") -> "SAEConfig":
        """This run's hyperparameters: the sae section with points_mult x its steps (one pass over the run's
        points_mult x activations.n_points points, as a run at 1 makes over the store)."""
        return sae if self.points_mult == 1 else dataclasses.replace(sae, steps=sae.steps * self.points_mult)

    def check(self) -> list[str]:
        errs = []
        if self.n_features <= 0:
            errs.append(f"n_features: must be positive, got {self.n_features}")
        if self.points_mult < 1:
            errs.append(f"points_mult: must be >= 1, got {self.points_mult}")
        return errs + self.settings.check()


RUN_KEYS = ("model", "n_features", "architecture", "points_mult")  # an SAERun's own keys; the others: its settings


@dataclass(frozen=True)
class _RunKeys:
    """The types of an SAERun's own keys (RUN_KEYS), for the schema."""

    model: str
    n_features: int
    architecture: str
    points_mult: int


def _settings_class(architecture: str) -> type:
    """The Settings dataclass of a registered architecture; a ConfigError naming the known ones otherwise."""
    from monosemantic.sae import architectures  # torch: imported when a run is built, not with the config

    if architecture not in architectures.ARCHITECTURES:
        raise ConfigError(f"{architecture!r} is not an SAE architecture (known: "
                          f"{', '.join(architectures.ARCHITECTURES)})")
    return architectures.get(architecture).Settings


@dataclass(frozen=True)
class EvaluateConfig:
    """Held-out evaluation of every SAE (issue: metrics)."""

    loss_contexts: int  # validation contexts for the fraction of MLP loss recovered
    ultralow_density: float  # below this (but alive) a feature is 'ultralow' (paper: 1e-6 at 8B points)
    dense_density: float  # above this a feature is 'dense' (paper: > 1% means lambda too low)
    headline_run: str  # the paper's A/1 (4096 features, default lambda)
    train_density_points: int  # also count firings on this many training-split points (0: off; needs mode stored)
    train_density_runs: tuple[str, ...]  # the runs whose firings are counted there (each costs one encoder pass over them)

    def check(self) -> list[str]:
        errs = []
        errs += not_positive("evaluate", self, ("loss_contexts",))
        if self.train_density_points < 0:
            errs.append(f"evaluate.train_density_points: must be >= 0 (0: off), got {self.train_density_points}")
        if not 0 < self.ultralow_density < self.dense_density < 1:
            errs.append("evaluate: need 0 < ultralow_density < dense_density < 1")
        return errs


@dataclass(frozen=True)
class Params:
    device: Literal["auto", "cpu", "cuda"]  # auto: a GPU when present, else CPU
    precision: Literal["fp32", "bf16", "auto"]  # auto: bf16 on a GPU or a CPU with bf16 matrix units; utils.autocast
    corpus: CorpusConfig
    tokenizer: TokenizerConfig
    transformer: TransformerConfig
    activations: ActivationsConfig
    sae: SAEConfig
    sae_runs: dict[str, SAERun]
    evaluate: EvaluateConfig
    analysis: AnalysisConfig
    browser: BrowserConfig
    interpretability: InterpretabilityConfig
    superposition: SuperpositionConfig

    def sae_run(self, name: str) -> SAERun:
        """The sweep's run `name` (a key of sae_runs); a ConfigError naming the known runs otherwise."""
        if name not in self.sae_runs:
            raise ConfigError(f"{name!r} is not in sae_runs ({', '.join(self.sae_runs) or 'none'})")
        return self.sae_runs[name]

    def superposition_arm(self, name: str) -> SuperpositionArm:
        """The dose-response arm `name` (a key of superposition.arms); a ConfigError naming the known arms otherwise."""
        arms = self.superposition.arms
        if name not in arms:
            raise ConfigError(f"arm {name!r} is not in superposition.arms ({', '.join(arms) or 'none'})")
        return arms[name]

    def transformer_seed(self, model: str) -> int:
        """The seed of transformer `model` (a key of transformer.seeds); a ConfigError otherwise."""
        if model not in self.transformer.seeds:
            raise ConfigError(f"model {model!r} is not in transformer.seeds ({', '.join(self.transformer.seeds)})")
        return self.transformer.seeds[model]

    def check(self) -> list[str]:
        errs = []
        models = set(self.transformer.seeds) | {"random"}
        for name, run in self.sae_runs.items():
            errs += [f"sae_runs.{name}.{e}" for e in run.check()]
            if run.model not in models:
                errs.append(f"sae_runs.{name}.model: {run.model!r} is not a trained model ({sorted(models)})")
        if self.sae_runs and self.evaluate.headline_run not in self.sae_runs:
            errs.append(f"evaluate.headline_run: {self.evaluate.headline_run!r} is not in sae_runs")
        for name in self.evaluate.train_density_runs:
            if self.sae_runs and name not in self.sae_runs:
                errs.append(f"evaluate.train_density_runs: {name!r} is not in sae_runs")
        if (self.evaluate.train_density_points > 0 and self.evaluate.train_density_runs
                and self.activations.mode != "stored"):
            errs.append("evaluate.train_density_points: counts firings on the stored training activations; with "
                        "activations.mode streamed there is no train store: set it to 0 (or "
                        "evaluate.train_density_runs to [])")
        if self.sae.batch_size > self.activations.n_points:
            errs.append(f"sae.batch_size: {self.sae.batch_size} exceeds the {self.activations.n_points} points of "
                        "the activation store (activations.n_points)")
        if self.sae_runs:
            a = self.analysis
            for name in (a.run, a.compare_run, a.random_run, *a.splitting_runs):
                if name not in self.sae_runs:
                    errs.append(f"analysis: run {name!r} is not in sae_runs ({', '.join(self.sae_runs)})")
            for run, model in ((a.run, a.model), (a.compare_run, a.compare_model), (a.random_run, a.random_model)):
                if run in self.sae_runs and self.sae_runs[run].model != model:
                    errs.append(f"analysis: {run!r} is an SAE of model {self.sae_runs[run].model!r}, not {model!r}")
            b = self.browser
            for name in [b.run] + ([b.compare_run] if b.compare_run not in ("auto", "") else []) + \
                    [r for r in b.split_runs if r != "auto"]:
                if name not in self.sae_runs:
                    errs.append(f"browser: run {name!r} is not in sae_runs ({', '.join(self.sae_runs)})")
        sp = self.superposition
        for name, arm in sp.arms.items():
            errs += [f"superposition.arms.{name}.{e}" for e in arm.check()]
        if sp.base_steps < 1:
            errs.append(f"superposition.base_steps: must be >= 1, got {sp.base_steps}")
        if sp.arms and sp.run not in self.sae_runs:
            errs.append(f"superposition.run: {sp.run!r} is not in sae_runs")
        for section in (self.corpus, self.tokenizer, self.transformer, self.activations, self.sae, self.evaluate,
                        self.analysis, self.browser, self.interpretability):
            errs += section.check()
        return errs


def params_from_dict(data: dict, source: str = "params") -> Params:
    """Params from a parsed params file; a ConfigError listing every problem otherwise."""
    errs: list[str] = []
    params = build(Params, data, "", errs)
    if params is not None:
        errs += params.check()
    if errs:
        raise ConfigError(f"{source}: invalid parameters:\n  - " + "\n  - ".join(errs))
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """The params file at `path`, loaded strictly (params_from_dict); a profile overlay (is_profile) is first
    merged onto the default params.yaml next to its configs/ directory (profile_dict)."""
    path = Path(path)
    data = profile_dict(path) if is_profile(path) else read_yaml(path)
    return params_from_dict(data, str(path))


def read_yaml(path: str | Path) -> dict:
    """The parsed mapping of a params or profile file; a ConfigError when it is absent or not YAML."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such params file (restore params.yaml with `git checkout params.yaml`; "
                          "a profile: python -m tools.profile NAME)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


# The mappings whose keys are names the profile chooses (runs of the sweep, arms, models, subsets of the mix): a
# profile that spells one of them replaces it whole, so it never inherits the default's runs or arms (smoke,
# medium and paper name their own sae_runs and set transformer.mix and superposition.arms to {}). Every other
# mapping is a section of the schema and merges key by key. tests/test_config.py checks that these are exactly
# the schema's dict[str, ...] fields, so a new one needs a decision here.
REPLACED_WHOLE = ("sae_runs", "transformer.seeds", "transformer.mix", "superposition.arms")
# The first line tools.profile writes: a params.yaml that starts with it is an applied profile, not the default.
GENERATED = re.compile(r"^# profile: (?P<name>\S+) \(written by python -m tools\.profile")


def merge_profile(base: dict, overlay: dict, _where: str = "") -> dict:
    """base with overlay's values: mappings merge key by key (recursively), except the keys of REPLACED_WHOLE and
    any value that is not a mapping on both sides (scalars, lists, a mapping over a scalar), which the overlay
    replaces. Neither argument is modified; keys keep base's order, new ones follow."""
    merged = dict(base)
    for key, value in overlay.items():
        where = f"{_where}.{key}" if _where else str(key)
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and where not in REPLACED_WHOLE:
            merged[key] = merge_profile(old, value, where)
        else:
            merged[key] = value
    return merged


def is_profile(path: str | Path) -> bool:
    """Whether `path` is a profile overlay: a YAML file in a directory named configs beside a params.yaml."""
    path = Path(path).resolve()
    return path.parent.name == "configs" and (path.parent.parent / "params.yaml").is_file()


def profile_path(name: str | Path, root: str | Path | None = None) -> Path:
    """configs/NAME.yaml under root (default: this repository) for a bare name, else the path as given."""
    if Path(str(name)).suffix in (".yaml", ".yml") or "/" in str(name):
        return Path(name)
    return Path(root or Path(__file__).resolve().parents[2]) / "configs" / f"{name}.yaml"


def default_dict(path: str | Path) -> dict:
    """The default params file at `path` as a mapping; a ConfigError when it is an applied profile instead
    (merging onto it would let that profile's values leak into another)."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    applied = GENERATED.match(text)
    if applied:
        raise ConfigError(f"{path} holds the applied profile {applied['name']!r}, not the default: restore the "
                          "default with `git checkout params.yaml` (or merge onto another base)")
    return read_yaml(path)


def profile_dict(profile: str | Path, base: str | Path | None = None) -> dict:
    """The complete params mapping of a profile (a name such as "smoke" or a path): merge_profile(base,
    overlay). base: the default params file (default: the params.yaml beside the profile's configs/ directory)."""
    path = profile_path(profile)
    overlay = read_yaml(path)
    if base is None:
        base = Path(path).resolve().parent.parent / "params.yaml"
    return merge_profile(default_dict(base), overlay)
