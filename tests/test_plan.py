"""The plan command (monosemantic/scale/plan.py): hand-computable counts, the fit check and its exit status."""

import dataclasses

import pytest

from monosemantic.scale import plan
from monosemantic.core.config import load_params
from monosemantic.lm.model import ModelConfig, build_model


def test_sae_flops_and_params_by_hand():
    assert plan.sae_flops_per_step(2, 3, 5) == 12 * 2 * 3 * 5
    assert plan.sae_params(3, 5) == 2 * 3 * 5 + 5 + 3


def test_transformer_param_count_matches_the_model():
    cfg = ModelConfig(vocab_size=300, d_model=16, d_mlp=64, n_heads=2, n_ctx=8)
    model = build_model(cfg, seed=0)
    assert plan.transformer_params(16, 64, 8, 300) == sum(p.numel() for p in model.parameters())


def test_store_disk_by_hand_and_streamed_mode_drops_the_training_store():
    p = load_params("configs/smoke.yaml")
    a = p.activations
    per_point = p.transformer.d_mlp * 2 + 32  # float16 row + index
    stages = {s.stage: s for s in plan.estimate(p)}
    n_models = len(p.transformer.seeds) + 1
    assert stages["sample_activations"].disk_bytes == n_models * (a.n_points + a.val_points) * per_point
    streamed = dataclasses.replace(p, activations=dataclasses.replace(a, mode="streamed"))
    s2 = {s.stage: s for s in plan.estimate(streamed)}
    assert s2["sample_activations"].disk_bytes == n_models * a.val_points * per_point
    # streaming moves the transformer forward into the SAE stage: more FLOPs and memory there
    assert s2["train_sae A_256"].flops > stages["train_sae A_256"].flops
    assert s2["train_sae A_256"].memory_bytes > stages["train_sae A_256"].memory_bytes


def test_world_size_divides_the_per_device_training_work():
    p = load_params("configs/smoke.yaml")
    one = {s.stage: s for s in plan.estimate(p, 1)}
    two = {s.stage: s for s in plan.estimate(p, 2)}
    assert two["train_transformer"].flops == pytest.approx(one["train_transformer"].flops / 2)
    assert two["train_sae A_256"].flops == pytest.approx(one["train_sae A_256"].flops / 2)


def test_time_is_flops_over_throughput_plus_step_overhead():
    st = plan.StageEstimate("train_sae x", "sae", 2, 1e12, 0.0, 0.0, 1.0, steps=100)
    dev = plan.Device("d", 1e9, {"sae": 1e11}, True, step_overhead_s=0.01)
    plan.fit([st], dev, free_disk=1e9, p=load_params("configs/smoke.yaml"))
    assert st.seconds == pytest.approx(2 * (10.0 + 1.0))
    assert not st.problems


def test_refuses_a_stage_that_does_not_fit_and_says_what_to_change():
    p = load_params("configs/smoke.yaml")
    tiny = plan.Device("tiny", memory_bytes=1e6, flops={k: 1e9 for k in plan.KINDS}, measured=True)
    stages = plan.fit(plan.estimate(p), tiny, free_disk=1e12, p=p)
    sae = next(s for s in stages if s.stage == "train_sae A_256")
    assert sae.problems and "lower sae.batch_size" in sae.problems[0]
    # disk: only the first stage that overflows is reported, with the advice for it
    stages = plan.fit(plan.estimate(p), dataclasses.replace(tiny, memory_bytes=1e12), free_disk=1e7, p=p)
    failing = [s for s in stages if s.problems]
    assert [s.stage for s in failing] == ["sample_activations"]
    assert "activations.mode: streamed" in failing[0].problems[0]


def test_main_exit_status(capsys):
    # the paper transformer (batch 256 x 1024, vocab 50k) does not fit one 80 GB GPU; over 8 it does
    assert plan.main(["--params", "configs/paper.yaml", "--device", "h100", "--free-disk-gb", "1000"]) == 2
    out = capsys.readouterr().out
    assert "CANNOT RUN train_transformer" in out and "ASSUMED" in out
    assert plan.main(["--params", "configs/paper.yaml", "--device", "h100", "--world-size", "8",
                      "--free-disk-gb", "1000"]) == 0
    assert plan.main(["--params", "configs/smoke.yaml", "--device", "nope"]) == 1


def test_cpu_throughputs_are_measured(one_thread):
    rates = plan.measure_cpu(seconds=0.05, small=True)
    assert set(rates) == set(plan.KINDS) and all(v > 1e6 for v in rates.values())


def test_medium_profile_sits_between_default_and_paper():
    default, medium, paper = (load_params(f) for f in ("params.yaml", "configs/medium.yaml", "configs/paper.yaml"))
    tokens = [p.transformer.steps * p.transformer.batch_size * p.transformer.n_ctx for p in (default, medium, paper)]
    points = [p.sae.steps * p.sae.batch_size for p in (default, medium, paper)]
    assert tokens[0] < tokens[1] < tokens[2] and abs(tokens[1] / 1e9 - 1) < 0.01
    assert points[0] < points[1] < points[2] and abs(points[1] / 1e8 - 1) < 0.01
    assert medium.sae.batch_size == paper.sae.batch_size == 8192
    assert (default.activations.mode, medium.activations.mode, paper.activations.mode) == \
        ("stored", "streamed", "streamed")
    assert plan.main(["--params", "configs/medium.yaml", "--device", "h100", "--free-disk-gb", "100"]) == 0
