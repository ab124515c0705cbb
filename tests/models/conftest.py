"""Small water frames (Å, eV) for the backbone tests."""

from __future__ import annotations

import math

import pytest
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


@pytest.fixture(scope="session")
def periodic_water() -> Frame:
    """Four molecules in a triclinic ~5 Å cell (12 atoms; pairs cross the cell faces)."""
    g = torch.Generator().manual_seed(0)
    cell = torch.tensor([[5.2, 0.0, 0.0], [0.4, 5.0, 0.0], [-0.3, 0.2, 5.1]], dtype=torch.float64)
    frac = torch.tensor(
        [[0.25, 0.25, 0.25], [0.75, 0.75, 0.25], [0.75, 0.25, 0.75], [0.25, 0.75, 0.75]]
    )
    frac = frac.double() + 0.05 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    return make_frame(water_molecules(frac @ cell, g), cell)


@pytest.fixture(scope="session")
def isolated_water() -> Frame:
    """A cluster of three molecules, no cell."""
    g = torch.Generator().manual_seed(1)
    oxygens = torch.tensor(
        [[0.0, 0.0, 0.0], [2.8, 0.3, 0.0], [1.2, 2.6, 0.4]], dtype=torch.float64
    )
    return make_frame(water_molecules(oxygens, g), None)


@pytest.fixture(scope="session")
def frames(periodic_water: Frame, isolated_water: Frame) -> list[Frame]:
    """The periodic and the isolated frame, in that order."""
    return [periodic_water, isolated_water]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these tensors are tiny, and on a busy machine OpenMP's spinning
    threads cost more than they give (x10 per forward on a shared 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
