"""A tiny DP trained once per session (5 steps on the bundled water) and water frames for MD."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ase import Atoms

from helpers import compose_config
from taafs_exp.data import load_dataset
from taafs_exp.md import TAAFSCalculator
from taafs_exp.training.train import train
from test_run import TINY_DP

ROOT = Path(__file__).resolve().parents[2]
WATER = ROOT / "data" / "water"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """best.ckpt of a tiny Chebyshev-TAAFS DP (r_c 3 Å), trained by ``train`` as run.py does."""
    out = tmp_path_factory.mktemp("md_tiny_dp")
    overrides = [
        "model=dp",  # float64, as DeePMD-kit (the default dp_cpu is float32)
        *TINY_DP,
        "trainer.max_steps=5",
        "trainer.val_check_interval=5",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "test=false",
    ]
    train(compose_config(overrides, out))
    return out / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="session")
def water_frame():
    """First frame of data/water/data_3: 64 H2O, periodic 12.44 Å box (Å, eV)."""
    return load_dataset(WATER / "data_3", "deepmd")[0]


@pytest.fixture
def water_atoms(water_frame, tiny_checkpoint) -> Atoms:
    """The water frame as ASE Atoms carrying the tiny model's calculator."""
    atoms = Atoms(
        numbers=water_frame.numbers.numpy(),
        positions=water_frame.positions.numpy(),
        cell=water_frame.cell.numpy(),
        pbc=True,
    )
    atoms.calc = TAAFSCalculator.from_checkpoint(tiny_checkpoint)
    return atoms


@pytest.fixture
def checkpoint_dict(tiny_checkpoint) -> dict:
    """The tiny checkpoint's content (safe load), to tamper with."""
    return torch.load(tiny_checkpoint, weights_only=True)
