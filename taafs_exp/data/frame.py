"""One labelled atomic configuration, the unit every reader yields."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Frame:
    """A configuration with its DFT (or other reference) labels.

    Attributes:
        positions: (n, 3) Cartesian coordinates, Å, float64.
        numbers: (n,) atomic numbers, int64.
        cell: (3, 3) lattice vectors as rows, Å, or None for an isolated system.
        pbc: (3,) periodic directions, bool (all False when ``cell`` is None).
        energy: scalar total energy, eV.
        forces: (n, 3) forces, eV/Å.
        virial: (3, 3) virial, eV, or None.
        source: where the frame came from (``file:index``), for error messages.
    """

    positions: Tensor
    numbers: Tensor
    cell: Tensor | None
    pbc: Tensor
    energy: Tensor
    forces: Tensor
    virial: Tensor | None = None
    source: str = ""

    @property
    def num_atoms(self) -> int:
        return int(self.numbers.shape[0])

    def to(self, dtype: torch.dtype) -> "Frame":
        """Copy with floating fields cast to ``dtype``."""

        def cast(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(dtype)

        return Frame(
            positions=self.positions.to(dtype),
            numbers=self.numbers,
            cell=cast(self.cell),
            pbc=self.pbc,
            energy=self.energy.to(dtype),
            forces=self.forces.to(dtype),
            virial=cast(self.virial),
            source=self.source,
        )
