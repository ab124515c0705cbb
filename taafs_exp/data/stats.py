"""Training-split statistics handed to the backbones."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DatasetStatistics:
    """Statistics of the training split only (never validation or test).

    Attributes:
        energy_shift: per-element energy, eV, keyed by atomic number; the least-squares
            solution of E_frame ≈ Σ_Z n_Z(frame) · shift_Z (as DeePMD-kit and torchani do).
        force_rms: root mean square of the force components, eV/Å.
        avg_num_neighbors: mean number of neighbours within the cutoff per atom.
        energy_per_atom_std: std of the residual energy per atom after the shift, eV/atom.
        elements: sorted atomic numbers present in the training split.
    """

    energy_shift: dict[int, float]
    force_rms: float
    avg_num_neighbors: float
    energy_per_atom_std: float
    elements: list[int] = field(default_factory=list)
