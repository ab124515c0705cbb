"""The ZBL floor (taafs_exp/md/repulsion.py): zero on the data, Coulomb at r → 0, F = −∇E."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.fd import calculate_numerical_forces

from conftest import WATER
from taafs_exp.data import load_dataset
from taafs_exp.md import frame_atoms
from taafs_exp.md.repulsion import COULOMB_EV_A, ZBLRepulsion, shortest_pair_distances, zbl_energy


@pytest.fixture(scope="module")
def water_frames():
    """20 frames of data/water/data_3 (64 H2O, periodic)."""
    dataset = load_dataset(WATER / "data_3", "deepmd")
    return [dataset[i] for i in range(20)]


def dimer(z_a: int, z_b: int, r: float) -> Atoms:
    return Atoms(numbers=[z_a, z_b], positions=[[0.0, 0.0, 0.0], [r, 0.0, 0.0]])


def test_shortest_distances_are_the_brute_force_minima(water_frames):
    shortest = shortest_pair_distances(water_frames)
    assert set(shortest) == {(1, 1), (1, 8), (8, 8)}
    for (z_a, z_b), d in shortest.items():
        brute = np.inf
        for frame in water_frames:
            # the 12.44 Å box is wider than twice every shortest distance: minimum image is exact
            distances = frame_atoms(frame).get_all_distances(mic=True)
            z = frame.numbers.numpy()
            mask = (z[:, None] == z_a) & (z[None, :] == z_b)
            np.fill_diagonal(distances, np.inf)
            brute = min(brute, distances[mask].min())
        assert d == pytest.approx(brute, abs=1e-12)


def test_floor_is_exactly_zero_on_the_frames_it_was_built_from(water_frames):
    floor = ZBLRepulsion.below_frames(water_frames, width_A=0.5)
    for frame in water_frames[::5]:
        atoms = frame_atoms(frame)
        atoms.calc = floor
        assert atoms.get_potential_energy() == 0.0
        assert not atoms.get_forces().any()


def test_bare_coulomb_at_short_range_and_screened_beyond():
    """Σ c_k = 1: r·φ(r) → k_e Z_a Z_b as r → 0; the screening makes φ fall faster than 1/r."""
    z_a, z_b = torch.tensor(8.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    r = torch.tensor([1e-6, 0.5, 1.0, 2.0], dtype=torch.float64)
    rphi = r * zbl_energy(r, z_a, z_b)
    assert float(rphi[0]) == pytest.approx(COULOMB_EV_A * 8, rel=1e-4)
    assert bool((rphi.diff() < 0).all())


@pytest.mark.parametrize("r", [0.2, 0.6, 0.75, 0.9, 1.05])
def test_dimer_energy_follows_the_switch_and_forces_are_its_gradient(r):
    """O-H floor ending at 1.1 Å, width 0.5: whole ZBL below 0.6 Å, none beyond 1.1 Å, rising
    monotonically as the pair closes; forces match central differences."""
    floor = ZBLRepulsion({(8, 1): 1.1}, width_A=0.5)
    atoms = dimer(8, 1, r)
    atoms.calc = floor
    energy = atoms.get_potential_energy()
    phi = float(zbl_energy(*(torch.tensor(v, dtype=torch.float64) for v in (r, 8.0, 1.0))))
    if r <= 0.6:
        assert energy == pytest.approx(phi, rel=1e-12)
    assert 0.0 < energy <= phi
    closer = dimer(8, 1, r - 0.01)
    closer.calc = floor
    assert closer.get_potential_energy() > energy
    numeric = calculate_numerical_forces(atoms, eps=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), numeric, atol=1e-6 * max(1.0, phi))
    assert atoms.get_forces()[1, 0] > 0  # pushes the H away from the O


def test_pairs_without_a_floor_get_none():
    floor = ZBLRepulsion({(8, 8): 2.3})
    atoms = dimer(8, 1, 0.3)
    atoms.calc = floor
    assert atoms.get_potential_energy() == 0.0


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="repulsion.width_A"):
        ZBLRepulsion({(8, 8): 2.3}, width_A=0.0)


def test_periodic_images_count_once_each():
    """A 1.0 Å simple-cubic cell of one H, floor on below 1.5 Å and off from 2.0 Å: per atom half
    of its 6 neighbours at 1 Å, 12 at √2 and 8 at √3 Å (the self-images of its one atom);
    a 2×2×2 supercell has 8× the energy."""
    floor = ZBLRepulsion({(1, 1): 2.0}, width_A=0.5)
    atoms = Atoms("H", positions=[[0.0, 0.0, 0.0]], cell=[1.0, 1.0, 1.0], pbc=True)
    atoms.calc = floor

    def switched(r: float) -> float:
        x = min(max((r - 1.5) / 0.5, 0.0), 1.0)
        one = torch.tensor(1.0, dtype=torch.float64)
        phi = float(zbl_energy(torch.tensor(r, dtype=torch.float64), one, one))
        return (1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x**2)) * phi

    expected = 0.5 * (6 * switched(1.0) + 12 * switched(2**0.5) + 8 * switched(3**0.5))
    assert atoms.get_potential_energy() == pytest.approx(expected, rel=1e-12)
    big = atoms.repeat(2)
    big.calc = floor
    assert big.get_potential_energy() == pytest.approx(8 * expected, rel=1e-12)
    assert np.abs(big.get_forces()).max() < 1e-10  # every atom at a centre of symmetry
