"""PaiNN-specific checks (the physics shared by all backbones is in ``backbone_suite.py``)."""

from __future__ import annotations

import functools

import pytest
import torch
from helpers import compose_config
from hydra.utils import instantiate
from torch import nn
from water_frames import make_frame, random_rotation

from taafs_exp.activations import TAAFS, build_activation, extra_parameter_count
from taafs_exp.data import keys as K
from taafs_exp.data.collate import batch_frames
from taafs_exp.data.frame import Frame
from taafs_exp.data.stats import DatasetStatistics
from taafs_exp.models.painn import PaiNN
from taafs_exp.training.module import predict

TINY = dict(
    type_map=["H", "O"],
    cutoff=3.5,
    num_features=8,
    num_interactions=2,
    num_radial=6,
    zero_init_output=False,
    precision="float64",
)


def chebyshev(**options) -> functools.partial:
    return functools.partial(
        build_activation, name="chebyshev", num_basis=8, base="silu", **options
    )


def tiny(**overrides) -> PaiNN:
    torch.manual_seed(0)
    return PaiNN(**{**TINY, "activation": chebyshev(), **overrides})


def stats(shift: dict[int, float], force_rms: float = 0.7) -> DatasetStatistics:
    return DatasetStatistics(
        energy_shift=shift, force_rms=force_rms, avg_num_neighbors=10.0, energy_per_atom_std=0.1
    )


def test_vector_features_rotate_with_the_frame(periodic_water: Frame):
    """s(RQᵀ) = s(R) and v(RQᵀ) = Q v(R) for every atom and channel, Q a random rotation."""
    model = tiny()
    q = random_rotation(torch.Generator().manual_seed(11))
    rotated = make_frame(periodic_water.positions @ q.T, periodic_water.cell @ q.T)
    s, v, _ = model.features(batch_frames([periodic_water], model.cutoff))
    s_r, v_r, _ = model.features(batch_frames([rotated], model.cutoff))
    assert v.abs().max() > 1e-3
    torch.testing.assert_close(s_r, s, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(v_r, torch.einsum("ij,njf->nif", q, v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("model_config", ["painn", "painn_paper"])
def test_one_taafs_curve_per_scalar_mlp_layer(model_config: str):
    """From the Hydra configs: φ and a of each interaction and the output MLP's hidden layer each
    own a curve (2·3 + 1 = 7), chebyshev K=8 share=layer adds 7·8 = 56 parameters."""
    cfg = compose_config([f"model={model_config}", "model.type_map=[H,O]", "activation=chebyshev"])
    model = instantiate(cfg.model)
    curves = [m for m in model.modules() if isinstance(m, TAAFS)]
    assert len(curves) == len({id(m) for m in curves}) == 7
    assert all(m.coefficients.shape == (8,) for m in curves)
    assert extra_parameter_count(model) == 56


def test_channel_shared_curves_and_base_activation():
    """share=channel: K per channel of every hidden layer; no factory: SiLU modules, no TAAFS."""
    f, hidden = TINY["num_features"], [8, 4]
    model = tiny(activation=chebyshev(share="channel"), output_hidden=hidden)
    assert extra_parameter_count(model) == 8 * (2 * 2 * f + sum(hidden))
    base = tiny(activation=None, output_hidden=hidden)
    assert sum(isinstance(m, nn.SiLU) for m in base.modules()) == 2 * 2 + len(hidden)
    assert extra_parameter_count(base) == 0
    n_base = sum(p.numel() for p in base.parameters())
    assert sum(p.numel() for p in model.parameters()) == n_base + extra_parameter_count(model)


def test_unknown_element_is_named(isolated_water: Frame):
    model = tiny()
    copper = make_frame(isolated_water.positions, None)
    copper.numbers = copper.numbers.clone()
    copper.numbers[0] = 29
    with pytest.raises(ValueError, match=r"\['Cu'\] not in the model's type_map \['H', 'O'\]"):
        model(batch_frames([copper], model.cutoff))
    with pytest.raises(ValueError, match=r"\['Cu'\] not in the model's type_map"):
        model.fit_statistics(stats({1: -1.0, 8: -2.0, 29: -3.0}), [])
    with pytest.raises(ValueError, match="unknown element symbol"):
        tiny(type_map=["H", "Xx"])


def test_statistics_set_shift_and_scale(isolated_water: Frame):
    """E = σ·Σ y(s_i) + Σ μ_Z: fitting μ = (H: −1, O: −2) eV and σ = 0.7 eV moves E accordingly."""
    model = tiny()
    batch = batch_frames([isolated_water], model.cutoff)
    raw = model(batch)
    model.fit_statistics(stats({1: -1.0, 8: -2.0}), [])
    torch.testing.assert_close(model(batch), 0.7 * raw + 6 * -1.0 + 3 * -2.0)
    model.fit_statistics(stats({1: -1.0, 8: -2.0}, force_rms=0.0), [])
    assert float(model.energy_scale) == 0.7  # a split without forces leaves σ unchanged


def test_zero_initial_readout_starts_at_the_shifts_and_trains(isolated_water: Frame):
    """Default init: E = Σ μ_Z and F = 0 exactly, yet a force loss (random target: a uniform
    one has no gradient, Σ_a ∂E/∂R_a = 0) has a gradient w.r.t. the zeroed layer."""
    model = tiny(zero_init_output=True)
    model.fit_statistics(stats({1: -1.0, 8: -2.0}), [])
    out = predict(model, batch_frames([isolated_water], model.cutoff), create_graph=True)
    assert float(out[K.ENERGY].detach()) == 6 * -1.0 + 3 * -2.0
    assert torch.count_nonzero(out[K.FORCES]) == 0
    target = torch.randn(out[K.FORCES].shape, generator=torch.Generator().manual_seed(0))
    (grad,) = torch.autograd.grad((out[K.FORCES] - target).pow(2).sum(), model.output[-1].weight)
    assert grad.abs().max() > 0


def test_energy_is_extensive(isolated_water: Frame):
    """Two copies 30 Å apart (≫ r_c): twice the energy, the same forces on each copy."""
    model = tiny()
    model.fit_statistics(stats({1: -1.0, 8: -2.0}), [])
    far = torch.tensor([30.0, 0.0, 0.0], dtype=torch.float64)
    pair = make_frame(torch.cat([isolated_water.positions, isolated_water.positions + far]), None)
    one = predict(model, batch_frames([isolated_water], model.cutoff), create_graph=False)
    two = predict(model, batch_frames([pair], model.cutoff), create_graph=False)
    torch.testing.assert_close(two[K.ENERGY], 2 * one[K.ENERGY], rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(two[K.FORCES], one[K.FORCES].repeat(2, 1), rtol=1e-10, atol=1e-12)


def test_atom_without_neighbours_has_finite_second_derivatives(isolated_water: Frame):
    """A lone H keeps v = 0 through every layer, where ‖V v‖ has no derivative without ε:
    the gradient of the force loss w.r.t. every parameter stays finite (and non-zero)."""
    model = tiny()
    lone = torch.tensor([[20.0, 0.0, 0.0]], dtype=torch.float64)
    frame = make_frame(torch.cat([isolated_water.positions, lone]), None)
    frame.numbers = torch.cat([isolated_water.numbers, torch.tensor([1])])
    batch = batch_frames([frame], model.cutoff)
    v = model.features(batch)[1]
    assert torch.count_nonzero(v[-1]) == 0
    loss = predict(model, batch, create_graph=True)[K.FORCES].pow(2).sum()
    grads = torch.autograd.grad(
        loss, list(model.parameters()), allow_unused=True, materialize_grads=True
    )
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
