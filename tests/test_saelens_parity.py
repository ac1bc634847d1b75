"""SAELens encodes every registered architecture as we do.

For each class in the registry (architectures.ARCHITECTURES: a new architecture is covered without editing this
file) a small seeded SAE (d = 8, F = 16) is made non-trivial (init_from_data on raw-scale data, every parameter
perturbed), saved with `sae.save`, loaded with SAELens's own `SAE.load_from_disk`, and SAELens's encode, decode
and forward must equal ours. SAELens is the optional extra `bench` (pyproject.toml): without it this module is
skipped as a whole, except in CI (CI=true), which installs it; an architecture whose saved `architecture` SAELens
does not know fails.
"""

import dataclasses
import os
import typing

import pytest
import torch

from monosemantic.sae.architectures import ARCHITECTURES, SAE

if os.environ.get("CI") == "true":  # .ci/run installs the extra: there a missing SAELens fails, never skips
    import sae_lens
else:
    sae_lens = pytest.importorskip("sae_lens")
from sae_lens.registry import SAE_CLASS_REGISTRY  # noqa: E402  (after the skip: SAELens is optional)

D, F, B = 8, 16, 32
# Every Settings field by its type: valid for each architecture's check() (k, k_aux, dead_steps = 4 of F = 16;
# λ, fractions, bandwidth, threshold θ₀ = 0.3). A new architecture whose settings these do not satisfy fails
# below with its check() messages: extend the rule then.
BY_TYPE = {int: 4, float: 0.3, bool: False}


def settings_for(cls: type[SAE]):
    hints = typing.get_type_hints(cls.Settings)
    if odd := [f.name for f in dataclasses.fields(cls.Settings) if hints[f.name] not in BY_TYPE]:
        pytest.fail(f"{cls.architecture}: no test value for settings {odd} (extend BY_TYPE)")
    return cls.Settings(**{f.name: BY_TYPE[hints[f.name]] for f in dataclasses.fields(cls.Settings)})


def raw_activations(n: int, g: torch.Generator) -> torch.Tensor:
    """Non-negative, sparse-ish (n, D) inputs on a raw scale far from E‖x‖ = √D (so that s ≠ 1)."""
    return torch.relu(3.0 * torch.randn(n, D, generator=g) + 1.0)


def make_sae(cls: type[SAE]) -> SAE:
    """A seeded SAE with data-dependent init and every parameter perturbed (biases, thresholds, gates ≠ 0)."""
    g = torch.Generator().manual_seed(29)
    settings = settings_for(cls)
    assert settings.check() == [], f"{cls.architecture}: test settings rejected: {settings.check()}"
    sae = cls(D, F, settings, generator=g)
    with torch.no_grad():
        sae.init_from_data(raw_activations(256, g))
        for p in sae.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g) * p.abs().mean().clamp(min=0.5))
    return sae


def check_nontrivial(sae: SAE, cfg: dict, tensors: dict[str, torch.Tensor], x: torch.Tensor) -> None:
    """The comparison exercises every saved tensor: none is zero, the activation (or MSE) scale is not 1, the
    JumpReLU threshold, the gate and TopK each zero some activation that ReLU alone would keep."""
    assert all(t.abs().max() > 0 for t in tensors.values()), [n for n, t in tensors.items() if not t.any()]
    scalars = {n: float(b) for n, b in sae.named_buffers() if b.dim() == 0 and b.is_floating_point()}
    assert all(abs(v - 1) > 0.1 for v in scalars.values()), scalars
    x_bar = x - tensors["b_dec"] * cfg["apply_b_dec_to_input"]  # what SAELens encodes
    if "threshold" in tensors:
        z = x_bar @ tensors["W_enc"] + tensors["b_enc"]
        assert ((z > 0) & (z <= tensors["threshold"])).any()
    if "b_gate" in tensors:
        pi_gate = x_bar @ tensors["W_enc"] + tensors["b_gate"]
        pi_mag = x_bar @ (tensors["W_enc"] * tensors["r_mag"].exp()) + tensors["b_mag"]
        assert ((pi_gate <= 0) & (pi_mag > 0)).any() and ((pi_gate > 0) & (pi_mag > 0)).any()
    if getattr(sae, "k", None) is not None:
        z = x_bar @ tensors["W_enc"] + tensors["b_enc"]
        assert ((z > 0).sum(dim=-1) > sae.k).any()


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_saelens_encodes_each_architecture_identically(name, tmp_path):
    sae = make_sae(ARCHITECTURES[name])
    sae.save(tmp_path)
    cfg, tensors = SAE.read(tmp_path)
    if cfg["architecture"] not in SAE_CLASS_REGISTRY:
        pytest.fail(f"{name} saves as architecture {cfg['architecture']!r}, which SAELens {sae_lens.__version__} "
                    f"does not know (known: {', '.join(SAE_CLASS_REGISTRY)})")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path), device="cpu")
    assert theirs.cfg.architecture() == cfg["architecture"] == sae.saelens_architecture
    x = raw_activations(B, torch.Generator().manual_seed(1))
    check_nontrivial(sae, cfg, tensors, x)
    with torch.no_grad():
        f = sae.encode(x)
        assert 0 < (f > 0).float().mean() < 1 and (f >= 0).all()
        # assert_close, not equality: where an activation scale s is folded into the saved tensors (jumprelu)
        # SAELens computes (x − b_d/s)·(s W_e) where we compute (s x − b_d)·W_e, and W_d f/s + b_d/s where we
        # compute (W_d f + b_d)/s: equal up to float32 rounding (measured: 5e-7 on f, 3e-6 on x̂ of size ~10),
        # within assert_close's float32 tolerances (rtol 1.3e-6, atol 1e-5). The other four are bit-identical
        # here, but a matmul through a transposed view may round differently from SAELens's contiguous copy.
        # The step functions (threshold, gate, TopK) see pre-activations equal up to that rounding; a flip at a
        # tie would show as a difference of the size of the activation, far beyond the tolerance.
        torch.testing.assert_close(theirs.encode(x), f)
        torch.testing.assert_close(theirs.decode(f), sae.decode(f))
        torch.testing.assert_close(theirs(x), sae(x))

