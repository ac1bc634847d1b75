"""The SAE equations, its gradients (autograd and closed form), the unit-norm decoder, the geometric median,
and the SAELens-layout save/load, on tiny examples computed by hand."""

import json
import math

import pytest
import torch

from monosemantic.sae import architectures
from monosemantic.sae.architectures.standard import StandardSAE, StandardSettings
from monosemantic.sae.model import geometric_median, remove_parallel_grad

# d = 2, F = 3, B = 2, λ = 0.1. By hand:
#   x̄_1 = (2,1) − (1,0) = (1,1):   pre = (1, 0, 1.5)  f = (1, 0, 1.5)   x̂ = (2.9, 1.2)  r = (0.9, 0.2)
#   x̄_2 = (0,3) − (1,0) = (−1,3):  pre = (−1, 2, 1.5) f = (0, 2, 1.5)   x̂ = (1.9, 3.2)  r = (1.9, 0.2)
#   MSE = (0.81 + 0.04 + 3.61 + 0.04) / 4 = 1.125;  L1 = (2.5 + 3.5) / 2 = 3;  loss = 1.125 + 0.1·3 = 1.425
# Gradients (g = 2r/(Bd) = r/2, δ = (W_dᵀ g + λ/B) ⊙ [pre > 0]):
#   g_1 = (0.45, 0.1), g_2 = (0.95, 0.1);  δ_1 = (0.5, 0, 0.4), δ_2 = (0, 0.15, 0.7)
X = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
L1_COEFF = 0.1
EXPECTED = {
    "loss": 1.425, "mse": 1.125, "l1": 3.0, "l0": 2.0,
    "W_d": [[0.45, 1.9, 2.1], [0.1, 0.2, 0.3]],  # Σ_b g_b f_bᵀ
    "W_e": [[0.5, 0.5], [-0.15, 0.45], [-0.3, 2.5]],  # Σ_b δ_b x̄_bᵀ
    "b_e": [0.5, 0.15, 1.1],  # Σ_b δ_b
    "b_d": [-0.2, -1.05],  # Σ_b g_b − W_eᵀ Σ_b δ_b
}


def tiny_sae() -> StandardSAE:
    sae = StandardSAE(2, 3, StandardSettings(L1_COEFF))
    with torch.no_grad():
        sae.W_e.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        sae.b_e.copy_(torch.tensor([0.0, -1.0, -0.5]))
        sae.W_d.copy_(torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]]))
        sae.b_d.copy_(torch.tensor([1.0, 0.0]))
    return sae


def check_grads(sae: StandardSAE) -> None:
    for name in ("W_d", "W_e", "b_e", "b_d"):
        torch.testing.assert_close(getattr(sae, name).grad, torch.tensor(EXPECTED[name]), rtol=0, atol=1e-6)


def test_forward_by_hand():
    sae = tiny_sae()
    torch.testing.assert_close(sae.encode(X), torch.tensor([[1.0, 0.0, 1.5], [0.0, 2.0, 1.5]]))
    torch.testing.assert_close(sae(X), torch.tensor([[2.9, 1.2], [1.9, 3.2]]))


def test_loss_and_autograd_gradients_by_hand():
    sae = tiny_sae()
    terms = sae.loss(X)
    assert terms.total.item() == pytest.approx(EXPECTED["loss"], abs=1e-6)
    assert terms.mse.item() == pytest.approx(EXPECTED["mse"], abs=1e-6)
    assert terms.l1.item() == pytest.approx(EXPECTED["l1"], abs=1e-6)
    assert terms.l0.item() == EXPECTED["l0"]
    assert terms.fire_counts.tolist() == [1, 1, 2]
    terms.total.backward()
    check_grads(sae)


@pytest.mark.parametrize("max_density", [1.0, 0.0], ids=["sparse-csr", "dense-closed-form"])
def test_manual_backward_by_hand(max_density):
    sae = tiny_sae()
    terms = sae.manual_backward(X, max_density=max_density)
    assert terms.total.item() == pytest.approx(EXPECTED["loss"], abs=1e-6)
    assert terms.mse.item() == pytest.approx(EXPECTED["mse"], abs=1e-6)
    assert terms.l0.item() == EXPECTED["l0"]
    assert terms.fire_counts.tolist() == [1, 1, 2]
    check_grads(sae)


@pytest.mark.parametrize("block", [1024, 48])
@pytest.mark.parametrize("shift", [0.0, -1.5])
def test_manual_backward_matches_autograd(shift, block, monkeypatch):
    """Closed-form gradients (CSR and dense) equal autograd's to float32 rounding on a random problem
    (also with the batch split into several encoder blocks, the last one partial)."""
    monkeypatch.setattr("monosemantic.sae.architectures.standard.ENCODER_BLOCK", block)
    g = torch.Generator().manual_seed(0)
    sae = StandardSAE(32, 96, StandardSettings(0.01), generator=g)
    with torch.no_grad():
        sae.b_e.add_(shift)
        sae.b_d.copy_(torch.randn(32, generator=g))
    x = torch.relu(torch.randn(128, 32, generator=g)) * 3
    ref_terms = sae.loss(x)
    ref_terms.total.backward()
    ref = {n: p.grad.clone() for n, p in sae.named_parameters()}
    for max_density in (1.0, 0.0):
        sae.zero_grad(set_to_none=True)
        terms = sae.manual_backward(x, max_density=max_density)
        assert terms.total.item() == pytest.approx(ref_terms.total.item(), rel=1e-6)
        assert torch.equal(terms.fire_counts, ref_terms.fire_counts)
        for n, p in sae.named_parameters():
            torch.testing.assert_close(p.grad, ref[n], rtol=1e-5, atol=1e-6 * ref[n].abs().max().item())


def test_init_kaiming_uniform_and_unit_decoder():
    d, F = 16, 64
    sae = StandardSAE(d, F, StandardSettings(0.1), generator=torch.Generator().manual_seed(1))
    assert sae.W_e.shape == (F, d) and sae.W_d.shape == (d, F)
    assert sae.W_e.abs().max() <= 1 / math.sqrt(d)  # nn.Linear(d, F): U(−1/√d, 1/√d)
    assert sae.W_e.abs().max() > 0.9 / math.sqrt(d)
    torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(F))
    assert torch.count_nonzero(sae.b_e) == 0
    again = StandardSAE(d, F, StandardSettings(0.1), generator=torch.Generator().manual_seed(1))
    assert torch.equal(sae.W_e, again.W_e) and torch.equal(sae.W_d, again.W_d)


def test_remove_parallel_grad_is_orthogonal():
    W = torch.nn.Parameter(torch.tensor([[3.0, 0.0], [4.0, 1.0]]))  # columns (3,4) (norm 5) and (0,1)
    W.grad = torch.tensor([[1.0, 2.0], [2.0, 5.0]])
    remove_parallel_grad(W)
    # column 0: g − (g·w/‖w‖²) w = (1,2) − (11/25)(3,4) = (−0.32, 0.24);  column 1: (2,5) − 5·(0,1) = (2,0)
    torch.testing.assert_close(W.grad, torch.tensor([[-0.32, 2.0], [0.24, 0.0]]))
    assert (W.grad * W).sum(dim=0).abs().max() < 1e-6


def test_decoder_columns_stay_unit_norm_through_adam_steps():
    g = torch.Generator().manual_seed(2)
    sae = StandardSAE(8, 24, StandardSettings(0.05), generator=g)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    x = torch.relu(torch.randn(64, 8, generator=g))
    for _ in range(5):
        opt.zero_grad()
        sae.loss(x).total.backward()
        sae.remove_parallel_grad()
        assert (sae.W_d.grad * sae.W_d).sum(dim=0).abs().max() < 1e-6  # projected grad ⟂ column
        opt.step()
        sae.normalize_decoder()
        torch.testing.assert_close(sae.W_d.norm(dim=0), torch.ones(24))


def test_geometric_median_symmetric_points():
    # Corners of a square: by symmetry the median is the centre.
    pts = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    torch.testing.assert_close(geometric_median(pts), torch.tensor([1.0, 1.0]))


def test_geometric_median_collinear_is_middle_point():
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])  # on a line: the median is the middle point
    torch.testing.assert_close(geometric_median(pts, iters=2000, tol=1e-12), torch.tensor([1.0, 0.0]),
                               atol=1e-3, rtol=0)


def test_geometric_median_minimises_sum_of_distances():
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(3)) ** 3  # heavy tails
    m = geometric_median(x)

    def cost(p):
        return (x - p).norm(dim=1).sum()

    assert cost(m) < cost(x.mean(dim=0))
    for _ in range(20):  # no small perturbation improves on it
        assert cost(m) <= cost(m + 1e-3 * torch.randn(5)) + 1e-4


def test_save_load_roundtrip_and_saelens_layout(tmp_path):
    from safetensors.torch import load_file

    sae = StandardSAE(4, 6, StandardSettings(0.3), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        sae.b_e.copy_(torch.arange(6.0))
        sae.b_d.copy_(torch.arange(4.0))
    sae.save(tmp_path, model_name="m", context_size=128)
    tensors = load_file(str(tmp_path / "sae_weights.safetensors"))
    assert tensors["W_enc"].shape == (4, 6) and tensors["W_dec"].shape == (6, 4)
    assert torch.equal(tensors["W_enc"], sae.W_e.detach().T) and torch.equal(tensors["W_dec"], sae.W_d.detach().T)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert (cfg["d_in"], cfg["d_sae"], cfg["architecture"], cfg["apply_b_dec_to_input"]) == (4, 6, "standard", True)
    assert cfg["normalize_activations"] == "none" and cfg["metadata"]["hook_name"] == cfg["hook_name"]
    assert list(cfg)[-2:] == ["l1_coefficient", "note"] and cfg["l1_coefficient"] == 0.3  # the pre-registry layout
    assert "monosemantic_architecture" not in cfg  # SAELens's own name is ours
    loaded = architectures.load(tmp_path)  # the class from cfg.json
    assert type(loaded) is StandardSAE and loaded.settings == StandardSettings(l1=0.3) and loaded.l1_coeff == 0.3
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), sae(x))
    for name in ("W_e", "b_e", "W_d", "b_d"):
        assert torch.equal(getattr(loaded, name), getattr(sae, name))
    assert loaded.W_d.T.is_contiguous()  # feature-major decoder storage, as trained


def test_registry_names_the_known_architectures(tmp_path):
    assert architectures.get("standard") is StandardSAE and StandardSAE.Settings is StandardSettings
    assert StandardSAE.resamples and StandardSAE.has_manual_backward and StandardSettings.knob == "l1"
    with pytest.raises(architectures.UnknownArchitectureError,
                       match=r"unknown SAE architecture 'relu' \(known: standard, standard_2024, topk, jumprelu, "
                             r"gated\)"):
        architectures.get("relu")
    StandardSAE(4, 6, StandardSettings(0.3)).save(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "architecture": "relu"}))
    with pytest.raises(architectures.UnknownArchitectureError, match="known: standard, standard_2024"):
        architectures.load(tmp_path)


def test_settings_check_and_hooks():
    assert StandardSettings(l1=0.0).check() == []
    assert StandardSettings(l1=-1.0).check() == ["l1: must be >= 0, got -1.0"]
    g = torch.Generator().manual_seed(6)
    sae, ref = (StandardSAE(8, 24, StandardSettings(0.05), generator=torch.Generator().manual_seed(6)) for _ in "ab")
    x = torch.relu(torch.randn(64, 8, generator=g))
    for s in (sae, ref):
        s.init_from_data(x)
    assert torch.equal(sae.b_d.detach(), geometric_median(x)) and sae.lr_scale(3, 10) == 1.0
    for s in (sae, ref):
        s.loss(x, 0, 10).total.backward()
    sae.before_step(0, 10)  # = remove_parallel_grad
    ref.remove_parallel_grad()
    assert torch.equal(sae.W_d.grad, ref.W_d.grad)
    with torch.no_grad():
        for s in (sae, ref):
            s.W_d.mul_(2.0)
    sae.after_step(0, 10)  # = normalize_decoder
    ref.normalize_decoder()
    assert torch.equal(sae.W_d, ref.W_d)
