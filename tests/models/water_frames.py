"""Small water frames (Å, eV) for the backbone tests (imported by tests and conftest)."""

from __future__ import annotations

import math

import torch

from taafs_exp.data.frame import Frame

#: O–H bond length (Å) and H–O–H angle of a rigid water molecule.
OH_BOND, HOH_ANGLE = 0.9572, math.radians(104.52)


def random_rotation(generator: torch.Generator) -> torch.Tensor:
    """A uniformly random proper rotation (3, 3), float64."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def water_molecules(oxygens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Positions (3M, 3) of M randomly oriented molecules, O at ``oxygens``, ordered O, H, H."""
    half = HOH_ANGLE / 2
    local = OH_BOND * torch.tensor(
        [
            [0.0, 0.0, 0.0],
            [math.sin(half), math.cos(half), 0.0],
            [-math.sin(half), math.cos(half), 0.0],
        ],
        dtype=torch.float64,
    )
    mols = [o + local @ random_rotation(generator).T for o in oxygens]
    return torch.cat(mols)


def make_frame(positions: torch.Tensor, cell: torch.Tensor | None) -> Frame:
    """A water frame (O, H, H per molecule) with placeholder labels."""
    n = positions.shape[0]
    numbers = torch.tensor([8, 1, 1] * (n // 3))
    return Frame(
        positions=positions,
        numbers=numbers,
        cell=cell,
        pbc=torch.full((3,), cell is not None),
        energy=torch.tensor(-0.5 * n, dtype=torch.float64),
        forces=torch.zeros(n, 3, dtype=torch.float64),
    )
