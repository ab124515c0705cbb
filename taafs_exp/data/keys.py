"""Names of the fields of a frame and of a flat batch (one dict of tensors).

Units everywhere inside the package: energy eV, length Å, force eV/Å, virial eV.
A batch holds F frames with N atoms in total and E directed neighbour pairs.
"""

from typing import Final

POSITIONS: Final[str] = "positions"  #: (N, 3) Cartesian coordinates, Å
NUMBERS: Final[str] = "numbers"  #: (N,) atomic numbers, int64
BATCH: Final[str] = "batch"  #: (N,) index of the frame each atom belongs to, int64
NUM_ATOMS: Final[str] = "num_atoms"  #: (F,) atoms per frame, int64
CELL: Final[str] = "cell"  #: (F, 3, 3) lattice vectors as rows, Å (zeros when no cell)
PBC: Final[str] = "pbc"  #: (F, 3) periodic directions, bool
EDGE_INDEX: Final[str] = "edge_index"  #: (2, E) pair (i, j), global atom indices, int64
SHIFTS: Final[str] = "shifts"  #: (E, 3) Cartesian image shift: r_ij = pos[j] - pos[i] + shift, Å
ENERGY: Final[str] = "energy"  #: (F,) total energy, eV
FORCES: Final[str] = "forces"  #: (N, 3) forces, eV/Å
VIRIAL: Final[str] = "virial"  #: (F, 3, 3) virial, eV (optional)
HAS_VIRIAL: Final[str] = "has_virial"  #: (F,) whether the frame carries a virial label, bool
