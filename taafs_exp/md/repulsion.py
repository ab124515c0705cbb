"""A ZBL repulsion floor below the shortest pair distances of the data (the DP-ZBL idea).

A learned potential knows nothing about pairs closer than any in its training frames; there it
may fall instead of rise (taafs_exp/md/scan.py) and MD collapses into the hole. DeePMD-kit's
DP-ZBL answers with the Ziegler-Biersack-Littmark universal screened nuclear repulsion

    φ(r) = k_e Z_a Z_b / r · Σ_k c_k exp(−d_k r / a),  a = 0.46850 Å / (Z_a^0.23 + Z_b^0.23),

(eV, Å; k_e = e²/4πε₀ = 14.399645 eV·Å) switched on at short range. Here it is **added** per
element pair (a, b), E = Σ_{i<j} S(r_ij) φ(r_ij), with the smooth step
S = 1 − 10x³ + 15x⁴ − 6x⁵, x = (r − r_on)/(r_off − r_on) clipped to [0, 1] (C², S = 0 beyond
r_off). r_off of a pair is the shortest distance of that pair in the given frames, so the term
and its forces are exactly zero on every one of them: a model trained on those frames is the
same with or without it, and the floor changes only the extrapolation below the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from torch import Tensor

from taafs_exp.data import Frame
from taafs_exp.data.neighbors import neighbor_list

#: e²/(4πε₀), eV·Å.
COULOMB_EV_A = 14.399645
#: ZBL universal screening function: amplitudes c_k and decay rates d_k.
ZBL_C = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_D = (3.19980, 0.94229, 0.40290, 0.20162)
#: Search radius of the shortest-distance scan, Å.
SEARCH_CUTOFF_A = 4.0

Pair = tuple[int, int]


def zbl_energy(r: Tensor, z_a: Tensor, z_b: Tensor) -> Tensor:
    """φ(r) in eV for pairs at distances r (Å) with atomic numbers z_a, z_b (elementwise)."""
    a = 0.46850 / (z_a**0.23 + z_b**0.23)
    screening = sum(c * torch.exp(-d * r / a) for c, d in zip(ZBL_C, ZBL_D))
    return COULOMB_EV_A * z_a * z_b / r * screening


def smooth_off(r: Tensor, r_on: Tensor, r_off: Tensor) -> Tensor:
    """S(r): 1 below r_on, 0 above r_off, the C² quintic step between."""
    x = ((r - r_on) / (r_off - r_on)).clamp(0.0, 1.0)
    return 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x**2)


def _pairs(
    positions: Tensor, numbers: Tensor, cell: Tensor, pbc: Tensor, cutoff: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Every ordered pair (i, j, image) closer than ``cutoff`` — each pair twice, as (i, j) and
    (j, i), periodic self-images included: distances r (Å) and atomic numbers z_lo ≤ z_hi."""
    (i, j), shifts = neighbor_list(positions, cutoff, cell, pbc)
    r = (positions[j] - positions[i] + shifts).norm(dim=1)
    return r, torch.minimum(numbers[i], numbers[j]), torch.maximum(numbers[i], numbers[j])


def shortest_pair_distances(frames: Iterable[Frame]) -> dict[Pair, float]:
    """Shortest distance (Å, periodic images included) of each element pair (Z_a ≤ Z_b) over
    ``frames``; pairs never closer than :data:`SEARCH_CUTOFF_A` are absent."""
    shortest: dict[Pair, float] = {}
    for frame in frames:
        positions = frame.positions.to(torch.float64)
        cell = frame.cell.to(positions)
        r, lo, hi = _pairs(positions, frame.numbers, cell, frame.pbc, SEARCH_CUTOFF_A)
        pairs, which = torch.unique(torch.stack([lo, hi], dim=1), dim=0, return_inverse=True)
        nearest = torch.full((len(pairs),), torch.inf, dtype=r.dtype).scatter_reduce(
            0, which, r, reduce="amin"
        )
        for (z_a, z_b), d in zip(pairs.tolist(), nearest.tolist()):
            shortest[(z_a, z_b)] = min(shortest.get((z_a, z_b), d), d)
    return shortest


class ZBLRepulsion(Calculator):
    """ASE calculator of the switched ZBL floor (module docstring): energy (eV), forces (eV/Å).

    Args:
        r_off: per element pair (Z_a ≤ Z_b), the distance (Å) where the floor ends; pairs
            absent here get none.
        width_A: r_on = r_off − width_A; below r_on the floor is the whole ZBL.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, r_off: Mapping[Pair, float], width_A: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        if not width_A > 0:
            raise ValueError(f"repulsion.width_A: {width_A}, expected a positive distance in Å")
        self.r_off = {tuple(sorted(p)): float(d) for p, d in r_off.items()}
        self.width_A = float(width_A)

    @classmethod
    def below_frames(cls, frames: Iterable[Frame], width_A: float = 0.5) -> ZBLRepulsion:
        """The floor ending at each pair's shortest distance in ``frames``."""
        return cls(shortest_pair_distances(frames), width_A)

    def energy_tensor(
        self, positions: Tensor, numbers: Tensor, cell: Tensor, pbc: Tensor
    ) -> Tensor:
        """E (eV, float64 scalar) of one configuration; differentiable in ``positions``."""
        r, lo, hi = _pairs(positions, numbers, cell, pbc, max(self.r_off.values()))
        r_off = torch.zeros_like(r.detach())
        for (z_a, z_b), d in self.r_off.items():
            r_off[(lo == z_a) & (hi == z_b)] = d
        near = r < r_off
        r, r_off = r[near], r_off[near]
        z_lo, z_hi = lo[near].to(r), hi[near].to(r)
        pair_energy = smooth_off(r, r_off - self.width_A, r_off) * zbl_energy(r, z_lo, z_hi)
        return 0.5 * pair_energy.sum()  # each pair was listed twice

    def calculate(self, atoms: Atoms | None = None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        positions = torch.tensor(
            self.atoms.get_positions(), dtype=torch.float64, requires_grad=True
        )
        energy = self.energy_tensor(
            positions,
            torch.as_tensor(self.atoms.numbers),
            torch.tensor(np.asarray(self.atoms.cell), dtype=torch.float64),
            torch.as_tensor(self.atoms.pbc),
        )
        (grad,) = torch.autograd.grad(energy, positions)
        forces = -grad.numpy()
        energy = float(energy.detach())
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
