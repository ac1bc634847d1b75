"""The params.yaml sections of the paper's analyses: `analysis` (with the toy model), `interpretability`,
`browser` and `superposition`. Each is a frozen dataclass without defaults, loaded strictly by
monosemantic/core/schema.py as part of config.Params (import them from monosemantic.core.config)."""

from __future__ import annotations

from dataclasses import dataclass

from monosemantic.core.schema import not_positive


@dataclass(frozen=True)
class ToyConfig:
    """Toy-model verification (paper appendix): known sparse superposed features, SAEs trained by sae/train.py."""

    n_true: int  # ground-truth feature directions (random unit vectors)
    d: int  # ambient dimension (n_true > d: superposition)
    n_points: int  # synthetic points
    mean_active: float  # expected number of active true features per point
    correlated: bool  # features fire in groups of 4 (see toy.py)
    sizes: tuple[int, ...]  # learned dictionary sizes (sweep 1, at λ = l1)
    l1: float  # λ for the size sweep (data scaled to E‖x‖² = d)
    l1_sweep: tuple[float, ...]  # λ sweep at n_features = n_true (sweep 2)
    steps: int
    batch_size: int
    lr: float
    seed: int
    threads: int  # torch threads while training (tiny matrices: more threads only add overhead)

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

    run: str  # the paper's A/1: proxies, logit weights, ablation, neurons vs features
    model: str  # the transformer of `run` (must equal sae_runs[run].model; names dvc.yaml deps)
    compare_run: str  # universality partner (the paper's B/1)
    compare_model: str
    random_run: str  # the same dictionary on the random-transformer baseline
    random_model: str
    splitting_runs: tuple[str, ...]  # A/0 ... A/1
    max_points: int  # validation points used (the first max_points of the val store)
    batch_size: int  # rows per encoder chunk
    top_k: int  # tokens listed per feature (logit weights) / neurons listed (neurons vs features)
    ablation_window: int  # tokens of context shown in the ablation figure
    # Counting base64 features in a dictionary (feature splitting): a feature counts when at least
    # `base64_min_specificity` of its activation mass lies on base64-proxy-positive tokens and it fires on at
    # least `base64_min_active` validation tokens.
    base64_min_specificity: float
    base64_min_active: int
    # Universality headline medians over units firing on at least this many of the max_points tokens (all
    # fired units are reported too): ultralow-density features have too few firings to correlate with anything.
    universality_min_active: int
    umap_n_neighbors: int  # paper: 15, cosine metric
    umap_min_dist: float
    umap_seed: int
    umap_epochs: int  # optimisation epochs (umap-learn's default is 500 below 10,000 points)
    toy: ToyConfig

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
    """LLM-free interpretability scores (paper Figs. 7, 8; monosemantic/analysis/interpretability.py): for a seeded
    sample of units of analysis.run (features), analysis.model (neurons) and analysis.random_run."""

    n_units: int  # units per group, drawn (seeded) among those firing >= min_active times in both splits
    explain_points: int  # first points of the TRAIN store: all the explainer sees
    score_points: int  # first points of the VAL store: the held-out scoring data
    top_examples: int  # top examples (explanation candidates; also the top part of the held-out mix)
    max_keys: int  # (token, subset) pairs kept in an explanation
    n_intervals: int  # equal-width activation intervals of (0, max] in the held-out mix
    per_interval: int  # held-out examples drawn from each interval
    n_random: int  # uniform random held-out examples
    min_active: int  # firings needed in each split for a unit to be sampled
    single_token_share: float  # a unit is single-token when its top token has this share of its mass
    logit_k: int  # promoted tokens (and as many random ones) in the logit-side test
    successor_tokens: int  # train-stream tokens for the bigram statistics of the logit predictor
    spotcheck_units: int  # features and as many neurons in the blinded hand spot-check
    # Feature automata (paper Fig. 11; monosemantic/analysis/automata.py): features of analysis.run on whole
    # validation contexts
    automata_contexts: int  # validation contexts (n_ctx consecutive tokens each) run through the model
    automata_min_count: int  # co-firings needed for an edge i -> j
    automata_min_lift: float  # lift and logit support needed for an edge
    automata_max: int  # strongest self-loops and as many two-state cycles reported
    automata_pinned: int  # sampled continuations per edge with the source feature pinned high
    seed: int
    threads: int  # torch CPU threads

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

    run: str  # the dictionary browsed (a key of sae_runs); the stage may be given another
    compare_run: str  # universality partner; auto: same n_features and l1 on the other of A/B; "" none
    split_runs: tuple[str, ...]  # other dictionary sizes; auto: same model and l1, other n_features
    max_points: int  # validation points used (the first max_points of the val store)
    universality_points: int  # of those, points used for the model-B activation correlations
    batch_size: int  # rows per encoder chunk
    top_examples: int  # top-activating contexts shown per feature
    n_intervals: int  # equal-count quantile intervals of a feature's nonzero activations
    per_interval: int  # contexts sampled (seeded) from each interval
    window_before: int  # tokens shown before the example token (within its n_ctx context)
    window_after: int  # tokens shown after it
    hist_bins: int  # bins of the activation and logit-weight histograms
    top_logits: int  # top / bottom logit-weight tokens listed
    similar_per_run: int  # most similar features (decoder cosine) listed per other dictionary size
    chunk_features: int  # features per data file loaded on demand
    screenshot_feature: int  # feature shown in paper_figures/browser_feature.png; -1: best proxy match
    threads: int  # torch CPU threads
    seed: int  # interval sampling

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
    """One arm of the dose-response experiment (analysis/dose_response.py): a training mix (data/mix.py), multipliers of
    the transformer's steps and of the dictionary's training points, and the transformer's seed (a replicate arm
    repeats a mix with another seed; the activation sample and the dictionary keep the pipeline's seeds)."""

    mix: dict[str, float]
    tokens_mult: int
    sae_points_mult: int
    seed: int

    def check(self) -> list[str]:
        errs = []
        if self.seed < 0:
            errs.append(f"seed: must be >= 0, got {self.seed}")
        if self.tokens_mult < 1 or self.sae_points_mult < 1:
            errs.append("tokens_mult and sae_points_mult must be >= 1")
        if any(not 0 <= v <= 1 for v in self.mix.values()) or sum(self.mix.values()) > 1 + 1e-9:
            errs.append(f"mix: shares must be in [0, 1] and sum to <= 1, got {self.mix}")
        return errs


@dataclass(frozen=True)
class SuperpositionConfig:
    """The dose-response experiment: arms (each with its own transformer seed) trained with the recipe of SAE run
    `run`."""

    run: str
    # the 1x budget: an arm trains its transformer for tokens_mult x base_steps steps (1,500: 6,144,000 tokens, the
    # pipeline's budget when the experiment was run; absolute, so the arms keep their meaning when the default moves)
    base_steps: int
    arms: dict[str, SuperpositionArm]

