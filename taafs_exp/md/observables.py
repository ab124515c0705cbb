"""MD observables in numpy: energy drift, radial distribution functions, closest pairs.

Units: Å, eV, ps (drift), K. Cells are (3, 3) lattice vectors as rows, periodic in all three
directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def ns_per_day(steps_per_s: float, timestep_fs: float) -> float:
    """Simulated time per day of wall time, ns/day, at ``steps_per_s`` steps of ``timestep_fs``."""
    return steps_per_s * timestep_fs * 86400.0 * 1e-6


def energy_drift(
    time_ps: np.ndarray, total_energy: np.ndarray, num_atoms: int
) -> dict[str, float]:
    """Linear drift and fluctuation of the NVE total energy.

    Args:
        time_ps: (T,) times, ps. total_energy: (T,) E_pot + E_kin, eV. num_atoms: N.

    Returns:
        ``drift_meV_per_atom_per_ps``: slope of a least-squares line through E/N (meV/atom/ps);
        ``fluctuation_meV_per_atom``: std of E/N about that line (meV/atom), the short-time
        integration error once the drift is removed; ``max_deviation_meV_per_atom``: largest
        |E − E(0)|/N (meV/atom).
    """
    t = np.asarray(time_ps, dtype=np.float64)
    e = 1000.0 * np.asarray(total_energy, dtype=np.float64) / num_atoms
    if t.size < 2:
        raise ValueError(f"energy_drift: need at least 2 samples, got {t.size}")
    slope, intercept = np.polyfit(t, e, 1)
    return {
        "drift_meV_per_atom_per_ps": float(slope),
        "fluctuation_meV_per_atom": float(np.std(e - (slope * t + intercept))),
        "max_deviation_meV_per_atom": float(np.max(np.abs(e - e[0]))),
    }


def max_rdf_radius(cell: np.ndarray) -> float:
    """Half the smallest distance between opposite cell faces, Å (the inscribed-sphere radius).

    A vector shorter than this has every fractional coordinate in (−½, ½) (|s_k| = |r·b_k| ≤
    |r| / w_k with w_k the face distance), so below it the minimum-image convention by rounding
    fractional differences is exact for any cell shape, and each pair has one image.
    """
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(cell))
    faces = [np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])) for k in range(3)]
    return 0.5 * volume / max(faces)


def _pair_distances(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """(N, N) minimum-image distances, Å (exact below :func:`max_rdf_radius`); the diagonal
    is +inf so an atom is never its own partner."""
    frac = positions @ np.linalg.inv(cell)
    diff = frac[None, :, :] - frac[:, None, :]
    diff -= np.round(diff)
    r = np.linalg.norm(diff @ cell, axis=-1)
    np.fill_diagonal(r, np.inf)
    return r


def min_pair_distance(positions: np.ndarray, cell: np.ndarray) -> float:
    """Shortest minimum-image distance between two different atoms, Å (cell periodic in all
    directions). Exact when below :func:`max_rdf_radius`, an upper bound above it."""
    positions = np.asarray(positions, dtype=np.float64)
    return float(_pair_distances(positions, np.asarray(cell, dtype=np.float64)).min())


def _shell_volumes(edges: np.ndarray) -> np.ndarray:
    return 4.0 * np.pi / 3.0 * np.diff(edges**3)


@dataclass
class RDF:
    """g_ab(r) on bins ``edges`` (Å); ``density``: mean number density of partner atoms b
    (excluding the centre itself when a = b), Å⁻³, the ρ of the normalisation."""

    pair: tuple[int, int]
    edges: np.ndarray
    g: np.ndarray
    density: float

    @property
    def r(self) -> np.ndarray:
        """Bin centres, Å."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def shell_volumes(self) -> np.ndarray:
        """4π/3 (r_{k+1}³ − r_k³) per bin, Å³."""
        return _shell_volumes(self.edges)

    def coordination(self) -> np.ndarray:
        """Running coordination number n(r) = ρ ∫₀^r g(r') 4πr'² dr' at the upper bin edges."""
        return np.cumsum(self.density * self.g * self.shell_volumes())


def radial_distribution(
    frames: Sequence[np.ndarray] | np.ndarray,
    cells: Sequence[np.ndarray] | np.ndarray,
    numbers: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    r_max: float,
    num_bins: int = 200,
) -> dict[tuple[int, int], RDF]:
    """Partial radial distribution functions g_ab(r), averaged over frames.

    g_ab(r) = ⟨n_ab(r)⟩ / (N_a ρ_b V_shell(r)), with n_ab(r) the ordered (a, b) pairs in the
    shell [r, r + dr) over minimum images, ρ_b = (N_b − δ_ab) / V the ideal-gas density of
    partners and V_shell = 4π/3 ((r + dr)³ − r³), so an uncorrelated (ideal) gas has g = 1.

    Args:
        frames: (F, N, 3) positions, Å. cells: (F, 3, 3) or one (3, 3) cell for all frames.
        numbers: (N,) atomic numbers. pairs: (Z_a, Z_b) pairs, e.g. [(8, 8), (8, 1), (1, 1)].
        r_max: largest radius, Å; at most :func:`max_rdf_radius` of every cell.
        num_bins: bins on [0, r_max].
    """
    frames = np.asarray(frames, dtype=np.float64)
    cells = np.broadcast_to(np.asarray(cells, dtype=np.float64), (len(frames), 3, 3))
    numbers = np.asarray(numbers)
    count = {z: int(np.sum(numbers == z)) for pair in pairs for z in pair}
    if not all(count.values()):
        raise ValueError(f"radial_distribution: pairs {list(pairs)} name elements absent: {count}")
    edges = np.linspace(0.0, r_max, num_bins + 1)
    hist = {p: np.zeros(num_bins) for p in pairs}
    inverse_volume = 0.0  # Σ over frames of 1/V
    for positions, cell in zip(frames, cells):
        limit = max_rdf_radius(cell)
        if r_max > limit * (1 + 1e-12):
            raise ValueError(
                f"radial_distribution: r_max {r_max} Å exceeds half the cell width {limit:.4f} Å; "
                "the minimum image is then not exact"
            )
        inverse_volume += 1.0 / abs(np.linalg.det(cell))
        r = _pair_distances(positions, cell)
        for a, b in pairs:
            block = r[np.ix_(numbers == a, numbers == b)]
            hist[(a, b)] += np.histogram(block[block < r_max], bins=edges)[0]
    shell = _shell_volumes(edges)
    rdfs = {}
    for a, b in pairs:
        partners = count[b] - (a == b)
        density = partners * inverse_volume / len(frames)
        g = hist[(a, b)] / len(frames) / (count[a] * density * shell)
        rdfs[(a, b)] = RDF(pair=(a, b), edges=edges, g=g, density=density)
    return rdfs


def first_peak(rdf: RDF) -> tuple[float, float]:
    """Position (Å) and height of g(r)'s first peak: the maximum of the first run of bins with
    g > 1 (the first coordination shell; robust to noise wiggles on its flanks), refined by the
    vertex of the parabola through that bin and its two neighbours, so the position resolves
    below the bin width. ValueError when g never exceeds 1."""
    above = np.flatnonzero(rdf.g > 1.0)
    if above.size == 0:
        raise ValueError(f"first_peak: g{rdf.pair} never exceeds 1")
    start = above[0]
    below = np.flatnonzero(rdf.g[start:] <= 1.0)
    stop = start + int(below[0]) if below.size else rdf.g.size
    k = start + int(np.argmax(rdf.g[start:stop]))
    if not 0 < k < rdf.g.size - 1:
        return float(rdf.r[k]), float(rdf.g[k])
    left, mid, right = rdf.g[k - 1 : k + 2]
    curvature = left - 2.0 * mid + right
    offset = 0.0 if curvature == 0 else 0.5 * (left - right) / curvature  # in bins, |.| ≤ ½
    width = rdf.edges[k + 1] - rdf.edges[k]
    return float(rdf.r[k] + offset * width), float(mid - 0.25 * (left - right) * offset)


def rdf_distance(first: RDF, second: RDF) -> float:
    """∫ (g₁(r) − g₂(r))² dr over the common bins, Å (0 for identical structure)."""
    if not np.allclose(first.edges, second.edges):
        raise ValueError("rdf_distance: the two RDFs use different bins")
    return float(np.sum((first.g - second.g) ** 2 * np.diff(first.edges)))
