"""Typed configuration: params.yaml, nested by DVC stage, loaded into frozen dataclasses.

Every section of params.yaml maps to one dataclass below. Loading rejects unknown keys, missing keys,
wrong types and impossible values with one message listing every problem, before any compute starts:

    >>> params = load_params("params.yaml")
    >>> params.sae.batch_size

Profiles (configs/smoke.yaml, configs/paper.yaml) are complete params files of the same schema.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """Raised for an invalid params file; the message lists every problem found."""


def not_positive(section: str, cfg: Any, names: tuple[str, ...]) -> list[str]:
    """One message per field of cfg named in `names` whose value is not > 0."""
    return [f"{section}.{name}: must be positive, got {getattr(cfg, name)}" for name in names
            if getattr(cfg, name) <= 0]


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusConfig:
    data_dir: str = "data"  # holds train/*.jsonl.zst and val/*.jsonl.zst in the Pile's format

    def check(self) -> list[str]:
        return [] if self.data_dir else ["corpus.data_dir: must not be empty"]


@dataclass(frozen=True)
class TokenizerConfig:
    vocab_size: int = 4096  # byte-level BPE; 256 byte tokens + merges + special tokens
    train_chars: int = 20_000_000  # characters of the train split used to learn the merges
    min_frequency: int = 2
    max_documents: int = 0  # per split; 0: all. >0 tokenizes only the first documents (smoke profile)

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

    d_model: int = 128
    d_mlp: int = 512
    n_heads: int = 4
    n_ctx: int = 128
    batch_size: int = 32
    steps: int = 3000
    lr: float = 3e-3
    warmup_steps: int = 100
    min_lr_frac: float = 0.1  # cosine decay to lr * min_lr_frac
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 500
    eval_batches: int = 20
    checkpoint_every: int = 500
    seeds: dict[str, int] = field(default_factory=lambda: {"A": 1, "B": 2})
    shuffle_seed: int = 3  # the random-transformer baseline: A's weights, each matrix permuted
    # share of the drawn training contexts per named subset (mix.py); the others share the rest by size; {}: natural
    mix: dict[str, float] = field(default_factory=dict)

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

    n_points: int = 2_000_000  # training points per model (paper: 8e9)
    tokens_per_context: int = 32  # k, drawn without replacement from each context
    val_points: int = 200_000  # held-out points from the validation split (for metrics)
    shard_points: int = 131_072  # points per output shard
    dtype: str = "float16"  # float16 | bfloat16 | float32
    batch_contexts: int = 64  # contexts per forward pass
    seed: int = 4
    # stored: the SAE reads the shuffled store (fastest when the points fit on disk); streamed: the SAE stage
    # runs the transformer on the fly (monosemantic/streaming.py), shuffling blocks of shuffle_buffer points
    mode: str = "stored"
    shuffle_buffer: int = 262_144  # points per shuffle block in streamed mode (a multiple of tokens_per_context)

    def check(self) -> list[str]:
        errs = not_positive("activations", self, ("n_points", "tokens_per_context", "val_points", "shard_points",
                                                  "batch_contexts", "shuffle_buffer"))
        if self.dtype not in ("float16", "bfloat16", "float32"):
            errs.append(f"activations.dtype: {self.dtype!r} not one of float16, bfloat16, float32")
        if self.mode not in ("stored", "streamed"):
            errs.append(f"activations.mode: {self.mode!r} not one of stored, streamed")
        if self.tokens_per_context > 0 and self.shuffle_buffer % self.tokens_per_context:
            errs.append(f"activations.shuffle_buffer: {self.shuffle_buffer} must be a multiple of "
                        f"tokens_per_context {self.tokens_per_context} (whole contexts per block)")
        return errs


@dataclass(frozen=True)
class ResampleConfig:
    """Dead-neuron resampling, paper values: at 25k/50k/75k/100k, window 12.5k, 819,200 inputs, 0.2x."""

    steps: tuple[int, ...] = (250, 500, 750, 1000)
    dead_window: int = 125  # a feature that did not fire in this many previous steps is dead
    n_inputs: int = 65_536  # inputs on which the loss is computed to choose replacements
    encoder_scale: float = 0.2  # new encoder row norm = encoder_scale * mean alive encoder row norm

    def check(self) -> list[str]:
        errs = []
        if any(s <= 0 for s in self.steps) or list(self.steps) != sorted(set(self.steps)):
            errs.append(f"sae.resample.steps: must be positive and strictly increasing, got {list(self.steps)}")
        return errs + not_positive("sae.resample", self, ("dead_window", "n_inputs", "encoder_scale"))


@dataclass(frozen=True)
class SAEConfig:
    """Training hyperparameters shared by every SAE of the sweep (paper: batch 8192, 1M steps, Adam)."""

    batch_size: int = 1024
    steps: int = 2000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    geometric_median_points: int = 8192  # sample used to initialise b_d
    log_every: int = 50
    checkpoint_every: int = 500
    seed: int = 5
    fast_path: str = "auto"  # auto | sparse | dense
    # off | bf16 | auto: find the CSR path's active entries with a bf16 product and an error bound (sae.EncoderScreen;
    # same active set, values in another fp32 summation order, so not bitwise the off path); auto: bf16 where the CPU
    # has native bf16 matrix instructions
    encoder_screen: str = "off"
    resample: ResampleConfig = field(default_factory=ResampleConfig)

    def check(self) -> list[str]:
        errs = not_positive("sae", self, ("batch_size", "steps", "geometric_median_points", "log_every",
                                          "checkpoint_every", "lr"))
        if not all(0 <= b < 1 for b in self.betas):
            errs.append("sae.betas: each must be in [0, 1)")
        if self.fast_path not in ("auto", "sparse", "dense"):
            errs.append(f"sae.fast_path: {self.fast_path!r} not one of auto, sparse, dense")
        if self.encoder_screen not in ("off", "bf16", "auto"):
            errs.append(f"sae.encoder_screen: {self.encoder_screen!r} not one of off, bf16, auto")
        if self.resample.steps and self.resample.steps[-1] >= self.steps:
            errs.append(f"sae.resample.steps: {self.resample.steps[-1]} is beyond training ({self.steps} steps)")
        return errs + self.resample.check()


@dataclass(frozen=True)
class SAERun:
    """One dictionary of the sweep: which transformer, how many features, which L1 coefficient."""

    model: str
    n_features: int
    l1: float

    def check(self) -> list[str]:
        errs = []
        if self.n_features <= 0:
            errs.append(f"n_features: must be positive, got {self.n_features}")
        if self.l1 < 0:
            errs.append(f"l1: must be >= 0, got {self.l1}")
        return errs


@dataclass(frozen=True)
class EvaluateConfig:
    """Held-out evaluation of every SAE (issue: metrics)."""

    loss_contexts: int = 256  # validation contexts for the fraction of MLP loss recovered
    ultralow_density: float = 1e-5  # below this (but alive) a feature is 'ultralow' (paper: 1e-6 at 8B points)
    dense_density: float = 0.01  # above this a feature is 'dense' (paper: > 1% means lambda too low)
    headline_run: str = "A_4096"  # the paper's A/1 (4096 features, default lambda)

    def check(self) -> list[str]:
        errs = []
        errs += not_positive("evaluate", self, ("loss_contexts",))
        if not 0 < self.ultralow_density < self.dense_density < 1:
            errs.append("evaluate: need 0 < ultralow_density < dense_density < 1")
        return errs


@dataclass(frozen=True)
class ToyConfig:
    """Toy-model verification (paper appendix): known sparse superposed features, SAEs trained by sae_train."""

    n_true: int = 128  # ground-truth feature directions (random unit vectors)
    d: int = 64  # ambient dimension (n_true > d: superposition)
    n_points: int = 65_536  # synthetic points
    mean_active: float = 3.0  # expected number of active true features per point
    correlated: bool = True  # features fire in groups of 4 (see toy.py)
    sizes: tuple[int, ...] = (32, 64, 128, 256, 512)  # learned dictionary sizes (sweep 1, at λ = l1)
    l1: float = 0.03  # λ for the size sweep (data scaled to E‖x‖² = d)
    l1_sweep: tuple[float, ...] = (0.01, 0.03, 0.1)  # λ sweep at n_features = n_true (sweep 2)
    steps: int = 1500
    batch_size: int = 1024
    lr: float = 0.003
    seed: int = 7
    threads: int = 1  # torch threads while training (tiny matrices: more threads only add overhead)

    def check(self) -> list[str]:
        errs = not_positive("analysis.toy", self, ("n_true", "d", "n_points", "steps", "batch_size", "threads"))
        if not 0 < self.mean_active < self.n_true:
            errs.append("analysis.toy.mean_active: must be in (0, n_true)")
        if not self.sizes or any(s <= 0 for s in self.sizes):
            errs.append("analysis.toy.sizes: need positive dictionary sizes")
        if self.l1 < 0 or any(v < 0 for v in self.l1_sweep):
            errs.append("analysis.toy.l1/l1_sweep: must be >= 0")
        if self.batch_size > self.n_points:
            errs.append("analysis.toy.batch_size: exceeds n_points")
        return errs


@dataclass(frozen=True)
class AnalysisConfig:
    """Which dictionaries are analysed and how (issue 6)."""

    run: str = "A_4096"  # the paper's A/1: proxies, logit weights, ablation, neurons vs features
    model: str = "A"  # the transformer of `run` (must equal sae_runs[run].model; names dvc.yaml deps)
    compare_run: str = "B_4096"  # universality partner (the paper's B/1)
    compare_model: str = "B"
    random_run: str = "random_4096"  # the same dictionary on the random-transformer baseline
    random_model: str = "random"
    splitting_runs: tuple[str, ...] = ("A_512", "A_1024", "A_2048", "A_4096")  # A/0 ... A/1
    max_points: int = 200_000  # validation points used (the first max_points of the val store)
    batch_size: int = 8192  # rows per encoder chunk
    top_k: int = 10  # tokens listed per feature (logit weights) / neurons listed (neurons vs features)
    ablation_window: int = 64  # tokens of context shown in the ablation figure
    # Counting base64 features in a dictionary (feature splitting): a feature counts when at least
    # `base64_min_specificity` of its activation mass lies on base64-proxy-positive tokens and it fires on at
    # least `base64_min_active` validation tokens.
    base64_min_specificity: float = 0.5
    base64_min_active: int = 20
    # Universality headline medians over units firing on at least this many of the max_points tokens (all
    # fired units are reported too): ultralow-density features have too few firings to correlate with anything.
    universality_min_active: int = 20
    umap_n_neighbors: int = 15  # paper: 15, cosine metric
    umap_min_dist: float = 0.1
    umap_seed: int = 0
    umap_epochs: int = 200  # optimisation epochs (umap-learn's default is 500 below 10,000 points)
    toy: ToyConfig = field(default_factory=ToyConfig)

    def check(self) -> list[str]:
        errs = not_positive("analysis", self, ("max_points", "batch_size", "top_k", "ablation_window",
                                               "base64_min_active", "umap_n_neighbors", "umap_epochs",
                                               "universality_min_active"))
        if not 0 < self.base64_min_specificity <= 1:
            errs.append("analysis.base64_min_specificity: must be in (0, 1]")
        if len(self.splitting_runs) < 2:
            errs.append("analysis.splitting_runs: need at least two dictionaries")
        return errs + self.toy.check()


@dataclass(frozen=True)
class InterpretabilityConfig:
    """LLM-free interpretability scores (paper Figs. 7, 8; monosemantic/interpretability.py): for a seeded
    sample of units of analysis.run (features), analysis.model (neurons) and analysis.random_run."""

    n_units: int = 200  # units per group, drawn (seeded) among those firing >= min_active times in both splits
    explain_points: int = 100_000  # first points of the TRAIN store: all the explainer sees
    score_points: int = 100_000  # first points of the VAL store: the held-out scoring data
    top_examples: int = 20  # top examples (explanation candidates; also the top part of the held-out mix)
    max_keys: int = 10  # (token, subset) pairs kept in an explanation
    n_intervals: int = 4  # equal-width activation intervals of (0, max] in the held-out mix
    per_interval: int = 5  # held-out examples drawn from each interval
    n_random: int = 50  # uniform random held-out examples
    min_active: int = 10  # firings needed in each split for a unit to be sampled
    single_token_share: float = 0.9  # a unit is single-token when its top token has this share of its mass
    logit_k: int = 10  # promoted tokens (and as many random ones) in the logit-side test
    successor_tokens: int = 5_000_000  # train-stream tokens for the bigram statistics of the logit predictor
    spotcheck_units: int = 10  # features and as many neurons in the blinded hand spot-check
    # Feature automata (paper Fig. 11; monosemantic/automata.py), features of analysis.run on whole val contexts
    automata_contexts: int = 64  # validation contexts (n_ctx consecutive tokens each) run through the model
    automata_min_count: int = 5  # co-firings needed for an edge i -> j
    automata_min_lift: float = 5.0  # lift and logit support needed for an edge
    automata_max: int = 4  # strongest self-loops and as many two-state cycles reported
    automata_pinned: int = 64  # sampled continuations per edge with the source feature pinned high
    seed: int = 0
    threads: int = 2  # torch CPU threads

    def check(self) -> list[str]:
        errs = not_positive("interpretability", self, ("n_units", "explain_points", "score_points", "top_examples",
                                                       "max_keys", "n_intervals", "min_active", "logit_k",
                                                       "successor_tokens", "threads", "automata_contexts",
                                                       "automata_min_count", "automata_min_lift", "automata_max",
                                                       "automata_pinned"))
        for name in ("per_interval", "n_random", "spotcheck_units"):
            if getattr(self, name) < 0:
                errs.append(f"interpretability.{name}: must be >= 0, got {getattr(self, name)}")
        if not 0 < self.single_token_share <= 1:
            errs.append(f"interpretability.single_token_share: must be in (0, 1], got {self.single_token_share}")
        return errs


@dataclass(frozen=True)
class BrowserConfig:
    """What the static feature browser (the paper's A/1 interface) shows, and how much of it."""

    run: str = "A_4096"  # the dictionary browsed (a key of sae_runs); the stage may be given another
    compare_run: str = "auto"  # universality partner; auto: same n_features and l1 on the other of A/B; "" none
    split_runs: tuple[str, ...] = ("auto",)  # other dictionary sizes; auto: same model and l1, other n_features
    max_points: int = 200_000  # validation points used (the first max_points of the val store)
    universality_points: int = 200_000  # of those, points used for the model-B activation correlations
    batch_size: int = 8192  # rows per encoder chunk
    top_examples: int = 10  # top-activating contexts shown per feature
    n_intervals: int = 4  # equal-count quantile intervals of a feature's nonzero activations
    per_interval: int = 3  # contexts sampled (seeded) from each interval
    window_before: int = 24  # tokens shown before the example token (within its n_ctx context)
    window_after: int = 8  # tokens shown after it
    hist_bins: int = 32  # bins of the activation and logit-weight histograms
    top_logits: int = 10  # top / bottom logit-weight tokens listed
    similar_per_run: int = 3  # most similar features (decoder cosine) listed per other dictionary size
    chunk_features: int = 64  # features per data file loaded on demand
    screenshot_feature: int = -1  # feature shown in paper_figures/browser_feature.png; -1: best proxy match
    threads: int = 2  # torch CPU threads
    seed: int = 0  # interval sampling

    def check(self) -> list[str]:
        errs = not_positive("browser", self, ("max_points", "universality_points", "batch_size", "top_examples",
                                              "hist_bins", "top_logits", "chunk_features", "threads"))
        for name in ("n_intervals", "per_interval", "window_before", "window_after", "similar_per_run"):
            if getattr(self, name) < 0:
                errs.append(f"browser.{name}: must be >= 0, got {getattr(self, name)}")
        if self.screenshot_feature < -1:
            errs.append("browser.screenshot_feature: a feature index, or -1 for automatic")
        return errs


@dataclass(frozen=True)
class SuperpositionArm:
    """One arm of the dose-response experiment (superposition.py): a training mix (mix.py) and multipliers of
    the transformer's steps and of the dictionary's training points."""

    mix: dict[str, float]
    tokens_mult: int = 1
    sae_points_mult: int = 1

    def check(self) -> list[str]:
        errs = []
        if self.tokens_mult < 1 or self.sae_points_mult < 1:
            errs.append("tokens_mult and sae_points_mult must be >= 1")
        if any(not 0 <= v <= 1 for v in self.mix.values()) or sum(self.mix.values()) > 1 + 1e-9:
            errs.append(f"mix: shares must be in [0, 1] and sum to <= 1, got {self.mix}")
        return errs


@dataclass(frozen=True)
class SuperpositionConfig:
    """The dose-response experiment: arms trained like `model` (its seed) with the recipe of SAE run `run`."""

    model: str = "A"
    run: str = "A_4096"
    arms: dict[str, SuperpositionArm] = field(default_factory=dict)


@dataclass(frozen=True)
class Params:
    device: str = "auto"  # auto: a GPU when present, else CPU
    precision: str = "fp32"  # fp32 | bf16 | auto (bf16 on a GPU or a CPU with bf16 matrix units); utils.autocast
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    activations: ActivationsConfig = field(default_factory=ActivationsConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    sae_runs: dict[str, SAERun] = field(default_factory=dict)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    browser: BrowserConfig = field(default_factory=BrowserConfig)
    interpretability: InterpretabilityConfig = field(default_factory=InterpretabilityConfig)
    superposition: SuperpositionConfig = field(default_factory=SuperpositionConfig)

    def check(self) -> list[str]:
        errs = []
        if self.device not in ("auto", "cpu", "cuda"):
            errs.append(f"device: {self.device!r} not one of auto, cpu, cuda")
        if self.precision not in ("auto", "fp32", "bf16"):
            errs.append(f"precision: {self.precision!r} not one of auto, fp32, bf16")
        models = set(self.transformer.seeds) | {"random"}
        for name, run in self.sae_runs.items():
            errs += [f"sae_runs.{name}.{e}" for e in run.check()]
            if run.model not in models:
                errs.append(f"sae_runs.{name}.model: {run.model!r} is not a trained model ({sorted(models)})")
        if self.sae_runs and self.evaluate.headline_run not in self.sae_runs:
            errs.append(f"evaluate.headline_run: {self.evaluate.headline_run!r} is not in sae_runs")
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
        if sp.arms and sp.run not in self.sae_runs:
            errs.append(f"superposition.run: {sp.run!r} is not in sae_runs")
        if sp.arms and sp.model not in self.transformer.seeds:
            errs.append(f"superposition.model: {sp.model!r} is not in transformer.seeds")
        for section in (self.corpus, self.tokenizer, self.transformer, self.activations, self.sae, self.evaluate,
                        self.analysis, self.browser, self.interpretability):
            errs += section.check()
        return errs


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------


def _convert(tp: Any, value: Any, where: str, errs: list[str]) -> Any:
    """Convert a YAML value to the annotated type, appending a message to errs on mismatch."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, errs)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errs.append(f"{where}: expected a number, got {value!r}")
            return None
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errs.append(f"{where}: expected an integer, got {value!r}")
            return None
        return value
    if tp is str:
        if not isinstance(value, str):
            errs.append(f"{where}: expected a string, got {value!r}")
            return None
        return value
    if tp is bool:
        if not isinstance(value, bool):
            errs.append(f"{where}: expected true/false, got {value!r}")
            return None
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            errs.append(f"{where}: expected a list, got {value!r}")
            return None
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]", errs) for i, v in enumerate(value))
        if len(value) != len(args):
            errs.append(f"{where}: expected {len(args)} values, got {len(value)}")
            return None
        return tuple(_convert(a, v, f"{where}[{i}]", errs) for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        ktp, vtp = typing.get_args(tp)
        if not isinstance(value, dict):
            errs.append(f"{where}: expected a mapping, got {value!r}")
            return None
        return {_convert(ktp, k, f"{where} key", errs): _convert(vtp, v, f"{where}.{k}", errs)
                for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unions are not supported in config ({where})")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _build(cls: type, data: Any, where: str, errs: list[str]) -> Any:
    prefix = f"{where}." if where else ""
    if not isinstance(data, dict):
        errs.append(f"{where or 'params'}: expected a mapping, got {data!r}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            errs.append(f"{prefix}{key}: unknown key (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], prefix + name, errs)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            errs.append(f"{prefix}{name}: missing")
    if errs:
        return None
    return cls(**kwargs)


def params_from_dict(data: dict, source: str = "params") -> Params:
    errs: list[str] = []
    params = _build(Params, data, "", errs)
    if params is not None:
        errs += params.check()
    if errs:
        raise ConfigError(f"{source}: invalid parameters:\n  - " + "\n  - ".join(errs))
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such params file (copy one from configs/ or restore params.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return params_from_dict(data, str(path))


def stage_params(path: str | Path = "params.yaml") -> Params:
    """load_params for a stage script: an invalid params file ends the process with its one message."""
    from .utils import fail

    try:
        return load_params(path)
    except ConfigError as e:
        fail(str(e))
