"""RDFs on cases with known answers (ideal gas, cubic lattices), drift, closest pair, speed."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from taafs_exp.md import RDF, energy_drift, first_peak, radial_distribution, rdf_distance
from taafs_exp.md.observables import max_rdf_radius, min_pair_distance, ns_per_day

#: A skewed cell: minimum images by fractional rounding must still be right.
TRICLINIC = np.array([[10.0, 0.0, 0.0], [3.0, 9.0, 0.0], [-2.0, 2.5, 9.5]])


def test_ideal_gas_has_g_equal_one():
    """Uniform random points in a triclinic cell: g(r) = 1 within Poisson noise at every r.

    Each bin holds ~C ordered pairs (each unordered pair twice), so g's relative noise is
    sqrt(2/C); a wrong image convention or normalisation shows as a trend far beyond it.
    """
    rng = np.random.default_rng(0)
    n, num_frames = 300, 30
    frames = rng.random((num_frames, n, 3)) @ TRICLINIC
    numbers = np.full(n, 18)
    r_max = max_rdf_radius(TRICLINIC)
    g = radial_distribution(frames, TRICLINIC, numbers, [(18, 18)], r_max, 40)[(18, 18)]
    expected_pairs = num_frames * n * g.density * g.shell_volumes()
    sigma = np.sqrt(2.0 / expected_pairs)
    far = g.r > 1.0  # bins with enough pairs for a meaningful check
    assert np.all(np.abs(g.g[far] - 1.0) < 5 * sigma[far])
    assert abs(np.average(g.g[far], weights=expected_pairs[far]) - 1.0) < 0.01
    assert g.density == pytest.approx((n - 1) / abs(np.linalg.det(TRICLINIC)))


def _coordination_at(rdf: RDF, r: float) -> float:
    """Running coordination number n(r) at the bin edge r, Å."""
    return float(rdf.coordination()[np.searchsorted(rdf.edges, r) - 1])


def _cubic_lattice(a: float, reps: int, jitter: float, seed: int = 0):
    """Simple-cubic sites (spacing a, Å) with Gaussian jitter; species alternate like rock salt."""
    grid = np.stack(np.meshgrid(*[np.arange(reps)] * 3, indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    positions = a * grid + rng.normal(0.0, jitter, grid.shape)
    numbers = np.where(grid.sum(1) % 2 == 0, 11, 17)
    return positions, np.eye(3) * a * reps, numbers


def test_simple_cubic_peak_and_coordination():
    """All atoms alike: nothing below 0.8a, first peak (before the midpoint to the √2·a shell)
    at a, 6 neighbours within 1.2a, 6 + 12 within 1.6a."""
    a = 2.0
    positions, cell, numbers = _cubic_lattice(a, reps=6, jitter=0.03)
    numbers = np.full(len(numbers), 18)
    g = radial_distribution([positions], cell, numbers, [(18, 18)], 5.0, 100)[(18, 18)]
    assert not g.g[g.r < 0.8 * a].any()
    first_shell = g.r < 0.5 * (1 + np.sqrt(2)) * a
    assert g.r[np.argmax(np.where(first_shell, g.g, 0.0))] == pytest.approx(a, abs=g.edges[1])
    assert _coordination_at(g, 1.2 * a) == pytest.approx(6.0, abs=1e-9)
    assert _coordination_at(g, 1.6 * a) == pytest.approx(18.0, abs=1e-9)


def test_rock_salt_partial_rdfs():
    """Alternating species on the cubic sites: 6 unlike first neighbours, 12 like at √2·a."""
    a = 2.0
    positions, cell, numbers = _cubic_lattice(a, reps=6, jitter=0.03)
    rdfs = radial_distribution([positions], cell, numbers, [(11, 17), (11, 11)], 5.0, 100)
    unlike, like = rdfs[(11, 17)], rdfs[(11, 11)]
    assert _coordination_at(unlike, 1.2 * a) == pytest.approx(6.0, abs=1e-9)
    assert _coordination_at(like, 1.2 * a) == pytest.approx(0.0, abs=1e-12)
    assert _coordination_at(like, 1.6 * a) == pytest.approx(12.0, abs=1e-9)


def test_rdf_refuses_radius_beyond_half_cell():
    with pytest.raises(ValueError, match="half the cell width"):
        radial_distribution(np.zeros((1, 2, 3)), np.eye(3) * 10, np.array([1, 1]), [(1, 1)], 5.5)


def test_rdf_distance():
    edges = np.linspace(0.0, 6.0, 61)
    one = RDF((8, 8), edges, np.ones(60), 0.03)
    zero = RDF((8, 8), edges, np.zeros(60), 0.03)
    assert rdf_distance(one, one) == 0.0
    assert rdf_distance(one, zero) == pytest.approx(6.0)  # ∫₀⁶ 1² dr


def test_min_pair_distance_matches_ase_minimum_image():
    rng = np.random.default_rng(1)
    positions = rng.random((40, 3)) @ TRICLINIC + 30.0  # unwrapped coordinates
    atoms = Atoms("Ar40", positions=positions, cell=TRICLINIC, pbc=True)
    distances = atoms.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    assert min_pair_distance(positions, TRICLINIC) == pytest.approx(distances.min(), rel=1e-12)


def test_energy_drift_recovers_slope_and_fluctuation():
    """E/N = 2 meV/atom/ps · t + 0.5 meV/atom · cos(20πt): slope 2, fluctuation 0.5/√2 (the
    cosine is uncorrelated with t over whole periods)."""
    t = np.linspace(0.0, 1.0, 2001)  # ps, whole periods of the cosine
    n = 192
    energy = n * 1e-3 * (2.0 * t + 0.5 * np.cos(2 * np.pi * 10 * t)) - 100.0  # eV
    out = energy_drift(t, energy, n)
    assert out["drift_meV_per_atom_per_ps"] == pytest.approx(2.0, rel=1e-3)
    assert out["fluctuation_meV_per_atom"] == pytest.approx(0.5 / np.sqrt(2), rel=1e-2)


def test_ns_per_day():
    assert ns_per_day(1.0, 1.0) == pytest.approx(0.0864)  # 86 400 fs per day


def test_first_peak_is_the_first_shell_refined_between_bins():
    """g = 0 inside the core, a first shell (height 1.6 at 1.83 Å, between bin centres), a dip
    below 1, then a higher second shell at 2.8 Å: first_peak finds the first shell, not the
    highest peak, and the parabola puts it within a tenth of the 0.05 Å bin of the truth."""
    edges = np.linspace(0.0, 6.0, 121)
    r = 0.5 * (edges[1:] + edges[:-1])
    g = np.where(r < 1.5, 0.0, 0.8) + 0.8 * np.exp(-((r - 1.83) ** 2) / (2 * 0.08**2)) \
        + 2.2 * np.exp(-((r - 2.8) ** 2) / (2 * 0.12**2))
    position, height = first_peak(RDF(pair=(8, 1), edges=edges, g=g, density=0.1))
    assert position == pytest.approx(1.83, abs=0.005)
    assert height == pytest.approx(1.6, rel=0.01)
    with pytest.raises(ValueError, match="never exceeds 1"):
        first_peak(RDF(pair=(8, 1), edges=edges, g=np.full(120, 0.5), density=0.1))
