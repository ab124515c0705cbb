"""neighbor_list against ase.neighborlist.neighbor_list: same (i, j, image) set, same distances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list
from scipy.spatial.transform import Rotation

from taafs_exp.data import DataError, neighbor_list
from taafs_exp.data.neighbors import _canonical

WATER = Path(__file__).resolve().parents[2] / "data" / "water" / "data_0" / "set.000"
METHODS = ["vesin", "brute", "cells"]


def triclinic_cell(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Randomly rotated lattice with lengths in [low, high] and strong random skew."""
    lengths = rng.uniform(low, high, 3)
    cell = np.diag(lengths)
    cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-0.9, 0.9, 3) * lengths[[1, 2, 2]]
    return cell @ Rotation.random(random_state=rng.integers(1 << 31)).as_matrix().T


def reference(pos, cell, pbc, cutoff):
    """ASE's (i, j, S) triples, sorted, and the matching distances."""
    atoms = Atoms(positions=pos, cell=np.zeros((3, 3)) if cell is None else cell, pbc=pbc)
    i, j, images, d = ase_neighbor_list("ijSd", atoms, cutoff)
    return _sorted(i, j, images, d)


def ours(pos, cell, pbc, cutoff, method):
    edges, shifts = neighbor_list(
        torch.tensor(pos),
        cutoff,
        None if cell is None else torch.tensor(cell),
        None if pbc is None else torch.tensor(pbc),
        method=method,
    )
    i, j = edges.numpy()
    vectors = pos[j] - pos[i] + shifts.numpy()
    images = (  # pinv: zero rows of a partly periodic cell get image 0
        np.zeros_like(shifts.numpy()) if cell is None else shifts.numpy() @ np.linalg.pinv(cell)
    )
    assert np.abs(images - np.rint(images)).max(initial=0) < 1e-9, "shift is not n @ cell"
    assert np.all(np.diff(i) >= 0), "edges not sorted by i"
    return _sorted(i, j, np.rint(images).astype(int), np.linalg.norm(vectors, axis=1))


def _sorted(i, j, images, d):
    keys = np.column_stack([i, j, images]).astype(np.int64)
    order = np.lexsort(keys.T[::-1])
    return keys[order], d[order]


def assert_same(pos, cell, pbc, cutoff, method):
    ref_keys, ref_d = reference(pos, cell, np.zeros(3, bool) if pbc is None else pbc, cutoff)
    keys, d = ours(pos, cell, pbc, cutoff, method)
    assert keys.shape == ref_keys.shape, f"{len(keys)} pairs, ASE has {len(ref_keys)}"
    np.testing.assert_array_equal(keys, ref_keys)
    np.testing.assert_allclose(d, ref_d, rtol=0, atol=1e-10)
    return len(keys)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(4))
def test_random_triclinic(seed, method):
    rng = np.random.default_rng(seed)
    cell = triclinic_cell(rng, 5.0, 9.0)
    pos = rng.uniform(-0.3, 1.3, (40, 3)) @ cell  # some atoms outside the cell
    assert assert_same(pos, cell, np.ones(3, bool), 3.5, method) > 0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", range(3))
def test_tiny_cells_list_several_images(seed, method):
    rng = np.random.default_rng(10 + seed)
    cell = triclinic_cell(rng, 1.2, 2.5)  # every side shorter than the cutoff
    pos = rng.uniform(0, 1, (3, 3)) @ cell
    keys = reference(pos, cell, np.ones(3, bool), 4.0)[0]
    assert np.any((keys[:, 0] == keys[:, 1]) & np.any(keys[:, 2:] != 0, axis=1)), "no self-image"
    assert assert_same(pos, cell, np.ones(3, bool), 4.0, method) > 100


def test_single_atom_simple_cubic_images():
    """One atom, a = 2 Å, r_c = 3 Å: 6 faces at 2 Å and 12 edges at 2√2 Å, nothing else."""
    edges, shifts = neighbor_list(torch.zeros(1, 3), 3.0, 2.0 * torch.eye(3))
    d = shifts.norm(dim=1)
    assert edges.shape == (2, 18) and bool((edges == 0).all())
    assert int(torch.isclose(d, torch.tensor(2.0)).sum()) == 6
    assert int(torch.isclose(d, torch.tensor(8.0).sqrt()).sum()) == 12


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pbc", [[True, True, False], [False, True, False]])
def test_partial_pbc(pbc, method):
    rng = np.random.default_rng(3)
    cell = triclinic_cell(rng, 2.5, 6.0)
    pos = rng.uniform(-0.2, 1.2, (30, 3)) @ cell
    assert assert_same(pos, cell, np.array(pbc), 3.0, method) > 0


def test_slab_ignores_the_non_periodic_cell_vector():
    """A zero (or any) vector along a non-periodic axis changes nothing."""
    rng = np.random.default_rng(4)
    cell = triclinic_cell(rng, 3.0, 5.0)
    cell[2] = [0.0, 0.0, 20.0]
    pos = rng.uniform(0, 1, (25, 3)) @ cell
    flat = cell.copy()
    flat[2] = 0.0
    pbc = torch.tensor([True, True, False])
    a = neighbor_list(torch.tensor(pos), 3.0, torch.tensor(flat), pbc)
    b = neighbor_list(torch.tensor(pos), 3.0, torch.tensor(cell), pbc)
    assert a[0].shape[1] > 0
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_molecule_without_cell(method):
    rng = np.random.default_rng(5)
    pos = rng.normal(0, 2.0, (50, 3))
    assert assert_same(pos, None, None, 2.5, method) > 0


@pytest.fixture(scope="module")
def water() -> tuple[np.ndarray, np.ndarray]:
    pos = np.load(WATER / "coord.npy")[0].reshape(-1, 3).astype(np.float64)
    cell = np.load(WATER / "box.npy")[0].reshape(3, 3).astype(np.float64)
    return pos, cell


@pytest.mark.parametrize("method", METHODS)
def test_water_frame(water, method):
    pos, cell = water
    assert assert_same(pos, cell, np.ones(3, bool), 6.0, method) > 192 * 50


def test_methods_agree_on_replicated_water(water):
    """vesin, binning and the O(N²) path return identical tensors, in the same order, on
    2 × 192 atoms (r_c = 6 Å); ``auto`` is one of them."""
    pos, cell = water
    big = Atoms("O64H128", positions=pos, cell=cell, pbc=True).repeat((2, 1, 1))
    args = (torch.tensor(big.positions), 6.0, torch.tensor(big.cell.array))
    edges, shifts = neighbor_list(*args, method="brute")
    assert edges.shape[1] > 384 * 50
    for method in ("vesin", "cells", "auto"):
        other = neighbor_list(*args, method=method)
        torch.testing.assert_close(other, (edges, shifts), rtol=0, atol=0, msg=method)


@pytest.mark.parametrize("method", ["vesin", "cells"])
@pytest.mark.parametrize("seed", range(8))
def test_random_periodicity_matches_ase(seed, method):
    """Random atoms, cell, cutoff and periodic axes (seed 0 none, 7 all, else mixed; a zero
    cell row on some non-periodic axes): the same (i, j, n) and distances as ASE."""
    rng = np.random.default_rng(100 + seed)
    pbc = np.array([bool(seed & 1), bool(seed & 2), bool(seed & 4)])
    cell = triclinic_cell(rng, 2.0, 8.0)
    spread = np.where(pbc, 1.0, 3.0)[:, None]  # free axes: a cloud wider than the cell
    pos = rng.uniform(-0.5, 0.5, (int(rng.integers(2, 60)), 3)) @ (spread * cell)
    cell[~pbc & (rng.uniform(size=3) < 0.5)] = 0.0
    cutoff = float(rng.uniform(1.0, 5.0))
    assert assert_same(pos, cell, pbc, cutoff, method) > 0


def test_canonical_order_without_a_single_key():
    """The int64-overflow fallback (stable sorts) gives the same lexicographic (i, j, n) order
    and shifts n @ cell as the single-key sort."""
    rng = np.random.default_rng(8)
    atoms, images = rng.integers(0, 5, (300, 2)), rng.integers(-3, 4, (300, 3))
    keys = torch.unique(torch.tensor(np.hstack([atoms, images])), dim=0)  # sorted (i, j, n)
    cell = torch.tensor(triclinic_cell(rng, 2.0, 3.0))
    shuffled = keys[torch.randperm(len(keys))]
    for n_atoms in (5, 2**31):  # single key, then the fallback
        edges, shifts = _canonical(shuffled[:, 0], shuffled[:, 1], shuffled[:, 2:], n_atoms, cell)
        torch.testing.assert_close(edges, keys[:, :2].T, rtol=0, atol=0)
        torch.testing.assert_close(shifts, keys[:, 2:].double() @ cell, rtol=0, atol=1e-12)


def test_gradients_flow_through_positions_and_cell():
    """E = Σ_ij |r_ij|² over ordered pairs: ∂E/∂x_k = -4 Σ_j r_kj; shifts depend on the cell."""
    rng = np.random.default_rng(6)
    cell = torch.tensor(triclinic_cell(rng, 3.0, 4.0), requires_grad=True)
    pos = torch.tensor(rng.uniform(0, 1, (8, 3)) @ cell.detach().numpy(), requires_grad=True)
    (i, j), shifts = neighbor_list(pos, 3.5, cell)
    vectors = pos[j] - pos[i] + shifts
    (vectors**2).sum().backward()
    expected = torch.zeros_like(pos).index_add_(0, i, -4 * vectors.detach())
    torch.testing.assert_close(pos.grad, expected, rtol=1e-10, atol=1e-10)
    assert cell.grad is not None and float(cell.grad.abs().sum()) > 0


def test_dtype_and_empty_input():
    edges, shifts = neighbor_list(torch.rand(5, 3, dtype=torch.float32) * 10, 0.01)
    assert edges.dtype == torch.int64 and shifts.dtype == torch.float32
    assert edges.shape == (2, 0) and shifts.shape == (0, 3)
    edges, shifts = neighbor_list(torch.zeros(0, 3), 5.0, 3 * torch.eye(3))
    assert edges.shape == (2, 0) and shifts.shape == (0, 3)


@pytest.mark.parametrize(
    ("positions", "cell", "pbc", "match"),
    [
        (torch.zeros(2, 3), torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [0, 0, 1.0]]), None, "cell"),
        (torch.tensor([[0.0, 0, 0], [float("nan"), 0, 0]]), None, None, "NaN"),
        (torch.zeros(2, 2), None, None, "positions"),
        (torch.zeros(2, 3), None, torch.tensor([True, False, False]), "pbc"),
    ],
    ids=["singular-cell", "nan", "shape", "pbc-without-cell"],
)
def test_bad_input_raises(positions, cell, pbc, match):
    with pytest.raises(DataError, match=match):
        neighbor_list(positions, 2.0, cell, pbc)
