"""Fixtures of the backbone tests: small water frames (Å, eV), one torch thread."""

from __future__ import annotations

import pytest
import torch

from taafs_exp.data.frame import Frame
from water_frames import make_frame, water_molecules


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
