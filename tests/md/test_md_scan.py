"""Short-range pair scans: exact energies of a known pair potential, the hole measure, and the
water pairs picked from a DFT frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones

from taafs_exp.data import load_dataset
from taafs_exp.md import frame_atoms
from taafs_exp.md.scan import largest_drop_when_closing, pair_scan, water_pairs

ROOT = Path(__file__).resolve().parents[2]


def test_pair_scan_matches_the_lennard_jones_formula():
    """Three atoms, the third far away (beyond the LJ cutoff): E(r) of the scanned pair is
    4ε((σ/r)¹² − (σ/r)⁶), shifted by the cutoff energy as ASE's calculator does."""
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [1.5, 0, 0], [0, 20, 0]])
    calc = LennardJones(sigma=1.0, epsilon=1.0, rc=3.0, smooth=False)
    r = np.array([0.9, 1.0, 1.2, 2.0])
    energy = pair_scan(atoms, calc, fixed=0, moving=1, distances=r)
    shift = 4 * (3.0**-12 - 3.0**-6)
    assert energy == pytest.approx(4 * (r**-12 - r**-6) - shift, rel=1e-10)


@pytest.mark.parametrize(
    "energy, drop",
    [([5.0, 2.0, 0.0], 0.0),          # rises monotonically as r shrinks: no hole
     ([1.0, 4.0, 0.0], 3.0),          # falls from 4 to 1 on the way in
     ([-5.0, -1.0, -2.0, 0.0], 5.0)],  # deepest at the shortest r: 5 eV below E(r0)
)
def test_largest_drop_when_closing(energy, drop):
    assert largest_drop_when_closing(np.linspace(0.3, 1.0, len(energy)), energy) == drop


def test_water_pairs_are_own_and_foreign_hydrogen_and_a_neighbour_molecule():
    atoms = frame_atoms(load_dataset(ROOT / "data" / "water" / "data_3", "deepmd")[0])
    pairs = water_pairs(atoms)
    own = atoms.get_distance(*pairs["O-H bond"], mic=True)
    foreign = atoms.get_distance(*pairs["O-H intermolecular"], mic=True)
    assert 0.85 < own < 1.15 and 1.4 < foreign < 2.6
    oxygen, (partner, *partner_h) = pairs["O-O molecule"]
    assert atoms.numbers[partner] == 8 and list(atoms.numbers[partner_h]) == [1, 1]
    assert 2.3 < atoms.get_distance(oxygen, partner, mic=True) < 3.2
    assert all(atoms.get_distance(partner, h, mic=True) < 1.15 for h in partner_h)


def test_a_rigid_group_keeps_its_shape():
    """Moving a molecule as a group: its internal distances stay, its lead atom lands at r."""
    atoms = Atoms("OH2O", positions=[[0, 0, 0], [3.0, 0.8, 0], [3.0, -0.8, 0], [3.0, 0, 0]])
    seen = []

    class Recorder(LennardJones):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            seen.append(atoms.get_positions().copy())
            super().calculate(atoms, properties, system_changes)

    pair_scan(atoms, Recorder(), fixed=0, moving=[3, 1, 2], distances=[1.5, 2.0])
    for r, positions in zip([1.5, 2.0], seen):
        assert np.linalg.norm(positions[3] - positions[0]) == pytest.approx(r)
        np.testing.assert_allclose(positions[[1, 2]] - positions[3], [[0, 0.8, 0], [0, -0.8, 0]])
