"""ANI-2x specifics; the shared suite (cases.py) covers forces, invariances, smoothness."""

from __future__ import annotations

import functools

import hydra
import pytest
import torch
from ase.units import Hartree
from helpers import compose_config
from torchani.nn import ANINetworks

from taafs_exp.activations import TAAFS, build_activation, extra_parameter_count
from taafs_exp.data import keys as K
from taafs_exp.data.collate import batch_frames
from taafs_exp.data.frame import Frame
from taafs_exp.data.stats import DatasetStatistics
from taafs_exp.models.ani2 import ANI2x, half_neighbors

SEVEN = ["H", "C", "N", "O", "S", "F", "Cl"]
#: The published ANI-2x self-energy of H, -0.5978583943827134 Ha, in eV (CODATA 2014 Hartree).
H_SELF_ENERGY_EV = -16.268555557456406
chebyshev = functools.partial(build_activation, name="chebyshev", num_basis=8, share="layer")


def tiny(**options) -> ANI2x:
    torch.manual_seed(0)
    return ANI2x(**{"default_hidden_dims": (6, 5, 4), "precision": "float64", **options})


def single_atom(z: int) -> Frame:
    return Frame(
        positions=torch.zeros(1, 3, dtype=torch.float64),
        numbers=torch.tensor([z]),
        cell=None,
        pbc=torch.zeros(3, dtype=torch.bool),
        energy=torch.tensor(0.0, dtype=torch.float64),
        forces=torch.zeros(1, 3, dtype=torch.float64),
    )


def test_one_taafs_curve_per_layer_and_element(isolated_water: Frame) -> None:
    """3 hidden layers × 7 elements (H has 2) curves, K = 8 coefficients each, all in use."""
    model = tiny(activation=chebyshev, hidden_dims={"H": [7, 5]})
    curves = [m for m in model.modules() if isinstance(m, TAAFS)]
    assert len({id(c) for c in curves}) == len(curves) == 2 + 3 * 6
    assert extra_parameter_count(model) == (2 + 3 * 6) * 8
    assert [a.coefficients.numel() for a in model.networks["H"].activations] == [8, 8]
    energy = model(batch_frames([isolated_water], model.cutoff))
    energy.sum().backward()
    for symbol, net in model.networks.atomics.items():
        used = symbol in ("H", "O")  # water
        for act in net.activations:
            grad = act.coefficients.grad
            assert (grad is not None and bool(grad.abs().sum() > 0)) == used, (symbol, act)


def test_paper_preset_has_the_torchani_ani2x_networks() -> None:
    """model=ani2_paper: the layer shapes of ``ANINetworks.like_2x``, plus 3 curves per element."""
    cfg = compose_config(["model=ani2_paper", "activation=chebyshev", "activation.num_basis=8"])
    model = hydra.utils.instantiate(cfg.model)
    ours = {k: v.shape for k, v in model.networks.state_dict().items() if ".activations." not in k}
    reference = {k: v.shape for k, v in ANINetworks.like_2x().state_dict().items()}
    assert ours == reference
    assert model.aev_computer.out_dim == 1008 and model.cutoff == 5.1
    assert extra_parameter_count(model) == 3 * 7 * 8
    cpu = hydra.utils.instantiate(compose_config(["model=ani2", "activation=tanh"]).model)
    assert cpu.type_map == SEVEN and all(
        len(n.activations) == 3 for n in cpu.networks.atomics.values()
    )
    assert (
        sum(p.numel() for p in cpu.parameters()) < sum(p.numel() for p in model.parameters()) / 3
    )


def test_default_activation_is_tight_celu() -> None:
    model = tiny()
    acts = [a for net in model.networks.atomics.values() for a in net.activations]
    assert len(acts) == 21 and all(isinstance(a, torch.nn.CELU) and a.alpha == 0.1 for a in acts)


def test_element_outside_ani2x_is_an_error(isolated_water: Frame) -> None:
    model = tiny(type_map=["H", "O"])
    frame = isolated_water.to(torch.float64)
    frame.numbers = frame.numbers.clone()
    frame.numbers[0] = 29
    with pytest.raises(
        ValueError, match=r"ANI2x: element\(s\) \['Cu'\] not in the model's type_map \['H', 'O'\]"
    ):
        model(batch_frames([frame], model.cutoff))
    with pytest.raises(ValueError, match=r"\['Cu'\].*'H', 'C', 'N', 'O', 'S', 'F', 'Cl'"):
        ANI2x(type_map=["H", "Cu"])


def test_hartree_to_ev_and_the_ani2x_shift() -> None:
    """Last layer zeroed: E(isolated atom) = its self-energy, H: −0.59786 Ha = −16.2686 eV."""
    assert H_SELF_ENERGY_EV == pytest.approx(-0.5978583943827134 * Hartree, abs=1e-12)
    model = tiny(energy_shift="ani2x")
    for net in model.networks.atomics.values():
        torch.nn.init.zeros_(net.final_layer.weight)
        torch.nn.init.zeros_(net.final_layer.bias)
    energy = model(batch_frames([single_atom(1)], model.cutoff))
    assert energy.item() == pytest.approx(H_SELF_ENERGY_EV, abs=1e-9)
    assert model(batch_frames([single_atom(17)], model.cutoff)).item() == pytest.approx(
        -460.1681939421027 * Hartree, abs=1e-8
    )
    # the network output is in Hartree: a final bias of 1 adds E_h = 27.2114 eV
    torch.nn.init.ones_(model.networks["H"].final_layer.bias)
    energy = model(batch_frames([single_atom(1)], model.cutoff))
    assert energy.item() == pytest.approx(H_SELF_ENERGY_EV + Hartree, abs=1e-9)


def test_data_shift_from_the_training_statistics() -> None:
    model = tiny(type_map=["H", "C", "O"])
    stats = DatasetStatistics(
        energy_shift={1: -13.5, 8: -430.0},
        force_rms=1.0,
        avg_num_neighbors=10.0,
        energy_per_atom_std=0.1,
        elements=[1, 8],
    )
    model.fit_statistics(stats, [])
    assert model.self_energies.tolist() == [-13.5, 0.0, -430.0]


@pytest.mark.parametrize("fixture", ["periodic_water", "isolated_water"])
def test_aev_from_our_pairs_equals_torchani(fixture: str, request: pytest.FixtureRequest) -> None:
    """Our half list fed to compute_from_neighbors = torchani's own neighbour search (+ PBC)."""
    frame: Frame = request.getfixturevalue(fixture)
    model = tiny()
    batch = batch_frames([frame], model.cutoff)
    neighbors = half_neighbors(batch[K.POSITIONS], batch[K.EDGE_INDEX], batch[K.SHIFTS], 5.1)
    assert 2 * neighbors.indices.shape[1] == batch[K.EDGE_INDEX].shape[1]
    if frame.cell is not None:  # the ~5 Å cell puts atoms within 5.1 Å of their own images
        assert bool((neighbors.indices[0] == neighbors.indices[1]).any())
    ours, elem = model.aev(batch)
    cell = frame.cell
    pbc = frame.pbc if cell is not None else None
    theirs = model.aev_computer(elem[None], frame.positions[None], cell, pbc)[0]
    assert ours.shape == (frame.num_atoms, 1008)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    assert bool(ours[:, 112:].abs().sum() > 0)  # angular terms present


@pytest.mark.parametrize("activation", [None, chebyshev], ids=["celu", "chebyshev"])
def test_second_derivatives_through_a_force_loss(activation, periodic_water: Frame) -> None:
    """∂²E/∂R² (gradgradcheck) and ∂L_F/∂θ of L_F = Σ(F − F_ref)², F = −∂E/∂R, by central FD."""
    model = tiny(type_map=["H", "O"], activation=activation, default_hidden_dims=(4, 3))
    batch = batch_frames([periodic_water], model.cutoff)

    def energy(positions: torch.Tensor) -> torch.Tensor:
        return model({**batch, K.POSITIONS: positions})

    positions = batch[K.POSITIONS][:6].clone().requires_grad_(True)
    rest = batch[K.POSITIONS][6:]
    assert torch.autograd.gradgradcheck(
        lambda p: energy(torch.cat([p, rest])), (positions,), eps=1e-6, atol=1e-5
    )

    reference = torch.randn(
        batch[K.POSITIONS].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )

    def force_loss() -> torch.Tensor:
        positions = batch[K.POSITIONS].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(positions).sum(), positions, create_graph=True)
        return ((-grad - reference) ** 2).sum()

    weight = model.networks["O"].layers[1].weight
    direction = torch.randn(
        weight.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    (analytic,) = torch.autograd.grad(force_loss(), weight)
    h = 1e-6

    def loss_at(step: float) -> float:
        with torch.no_grad():
            weight.add_(step * direction)
        value = force_loss().item()
        with torch.no_grad():
            weight.sub_(step * direction)
        return value

    numeric = (loss_at(h) - loss_at(-h)) / (2 * h)
    assert (analytic * direction).sum().item() == pytest.approx(numeric, rel=1e-6)
    assert abs(numeric) > 1e-6
