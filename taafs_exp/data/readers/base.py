"""What every reader shares: the validated frame block, the dataset, units, atomic writes."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from taafs_exp.data.errors import DataError
from taafs_exp.data.frame import Frame
from taafs_exp.data.neighbors import cell_degeneracy, neighbor_list

#: Two atoms closer than this (Å) are a broken configuration.
MIN_DISTANCE = 0.1
#: Frames with at most this many atoms² are distance-checked in batches ...
_BATCHED_PAIRS = 1 << 20
#: ... of about this many pairs (small enough to stay in cache).
_DISTANCE_CHUNK = 1 << 16


def energy_unit(units: str) -> float:
    """eV per ``units`` (one of eV, meV, hartree/Ha, kcal/mol, kJ/mol; ASE's CODATA values)."""
    from ase import units as u

    table = {
        "ev": 1.0,
        "mev": 1e-3,
        "hartree": u.Hartree,
        "ha": u.Hartree,
        "kcal/mol": u.kcal / u.mol,
        "kj/mol": u.kJ / u.mol,
    }
    try:
        return table[units.lower()]
    except KeyError:
        raise DataError(
            f"units: {units!r}, expected one of eV, meV, hartree, kcal/mol, kJ/mol"
        ) from None


@dataclass(frozen=True)
class FrameBlock:
    """F validated frames of one system with the same atoms, float64 (Å, eV, eV/Å).

    Attributes:
        system: name of the system the frames belong to (used for splits).
        source: file or folder they were read from (``Frame.source`` is ``source:index``).
        positions: (F, n, 3). numbers: (n,) int64. cells: (F, 3, 3) or None.
        pbc: (3,) bool. energy: (F,). forces: (F, n, 3). virial: (F, 3, 3) or None.
        index: (F,) index of every frame within ``source``.
    """

    system: str
    source: str
    positions: Tensor
    numbers: Tensor
    cells: Tensor | None
    pbc: Tensor
    energy: Tensor
    forces: Tensor
    virial: Tensor | None
    index: Tensor

    def __len__(self) -> int:
        return int(self.energy.shape[0])

    def frame(self, row: int) -> Frame:
        return Frame(
            positions=self.positions[row],
            numbers=self.numbers,
            cell=None if self.cells is None else self.cells[row],
            pbc=self.pbc,
            energy=self.energy[row],
            forces=self.forces[row],
            virial=None if self.virial is None else self.virial[row],
            source=f"{self.source}:{int(self.index[row])}",
        )


def _float_field(
    where: str,
    value,
    frames: int,
    shape: tuple[int, ...],
    meaning: str,
    index: Tensor,
    origin: str,
) -> Tensor:
    """``value`` as a finite float64 tensor of shape (frames, *shape); accepts the per-frame
    part flattened, as deepmd/npy stores it ((F, 3n) for (F, n, 3)). ``origin`` is where the
    frame count came from."""
    array = torch.as_tensor(np.asarray(value, dtype=np.float64))
    size = int(np.prod(shape))
    if array.ndim == 0 or array.shape[0] != frames:
        found = "a scalar" if array.ndim == 0 else f"{array.shape[0]} frames"
        raise DataError(
            f"{where}: shape {tuple(array.shape)} ({found}), expected {frames} frames "
            f"(as in {origin}), each {meaning}"
        )
    if array[0].numel() != size or array.shape[1:] not in (shape, (size,)):
        raise DataError(
            f"{where}: shape {tuple(array.shape)}, expected {(frames, *shape)} "
            f"or {(frames, size)} ({meaning})"
        )
    array = array.reshape(frames, *shape)
    bad = ~torch.isfinite(array)
    if bool(bad.any()):
        frame, *entry = torch.nonzero(bad)[0].tolist()
        raise DataError(
            f"{where}: {int(bad.sum())} NaN/inf value(s), first in frame {int(index[frame])}"
            f"{f' at {tuple(entry)}' if entry else ''}; expected finite numbers"
        )
    return array


def make_block(
    system: str,
    source: str,
    *,
    positions,
    numbers,
    energy,
    forces,
    cells=None,
    pbc=None,
    virial=None,
    fields: dict[str, str] | None = None,
    index: Sequence[int] | None = None,
) -> FrameBlock:
    """Validate one system's arrays (already in Å, eV, eV/Å) and stack them as a block.

    Checks shapes (F from ``positions``, n from ``numbers``), finiteness, atomic numbers
    1..118, non-singular periodic cells and that no two atoms (or images) are closer than
    :data:`MIN_DISTANCE`. ``fields`` maps each field to the file it came from and ``index``
    gives each frame's index within ``source`` (default 0..F-1), for messages.

    Raises:
        DataError: naming the file, the field, what was found and what was expected.
    """
    where = {k: f"{source} [{k}]" for k in ("positions", "numbers", "energy", "forces")}
    where.update(cells=f"{source} [cell]", virial=f"{source} [virial]")
    where.update(fields or {})
    numbers = torch.as_tensor(np.asarray(numbers)).long()
    if numbers.ndim != 1 or numbers.numel() == 0:
        raise DataError(
            f"{where['numbers']}: shape {tuple(numbers.shape)}, expected one atomic number "
            "per atom (n,), n ≥ 1"
        )
    out_of_range = (numbers < 1) | (numbers > 118)
    if bool(out_of_range.any()):
        k = int(torch.nonzero(out_of_range)[0])
        raise DataError(
            f"{where['numbers']}: atomic number {int(numbers[k])} at atom {k}, expected 1..118"
        )
    n = numbers.numel()
    frames = np.shape(positions)[0] if np.ndim(positions) else 0
    if frames == 0:
        raise DataError(f"{where['positions']}: no frames, expected at least one")
    index_t = torch.arange(frames) if index is None else torch.as_tensor(index, dtype=torch.long)

    def field(key: str, value, shape: tuple[int, ...], meaning: str) -> Tensor:
        return _float_field(where[key], value, frames, shape, meaning, index_t, where["positions"])

    pos = field("positions", positions, (n, 3), f"{n} atoms × 3, Å")
    block_energy = field("energy", energy, (), "one energy, eV")
    block_forces = field("forces", forces, (n, 3), f"{n} atoms × 3, eV/Å")
    block_virial = None if virial is None else field("virial", virial, (3, 3), "3×3, eV")
    pbc_t = torch.zeros(3, dtype=torch.bool) if pbc is None else torch.as_tensor(pbc).bool()
    block_cells = None
    if cells is not None:
        block_cells = field("cells", cells, (3, 3), "3×3 rows a, b, c, Å")
    if bool(pbc_t.any()):
        if block_cells is None:
            raise DataError(f"{where['cells']}: missing, expected a cell for pbc={pbc_t.tolist()}")
        degeneracy = cell_degeneracy(block_cells, pbc_t)
        if bool((degeneracy < 1e-6).any()):
            k = int(torch.nonzero(degeneracy < 1e-6)[0])
            raise DataError(
                f"{where['cells']}: frame {int(index_t[k])} has a singular cell "
                f"{block_cells[k].tolist()}; expected linearly independent lattice vectors"
            )
    _check_distances(where["positions"], pos, block_cells, pbc_t, index_t)
    return FrameBlock(
        system, source, pos, numbers, block_cells, pbc_t, block_energy, block_forces,
        block_virial, index_t,
    )  # fmt: skip


def _check_distances(
    where: str, positions: Tensor, cells: Tensor | None, pbc: Tensor, index: Tensor
) -> None:
    """Raise if two atoms (or periodic images) of a frame are closer than MIN_DISTANCE.

    Frames that are small, and isolated or fully periodic with lattice-plane spacings
    h_a > 2·MIN_DISTANCE, are checked in batches by the minimum image: a pair closer than
    MIN_DISTANCE has |Δf_a + n_a| < MIN_DISTANCE / h_a < 1/2, so n_a = -round(Δf_a).
    Other frames go through :func:`neighbor_list`.
    """
    frames, n, _ = positions.shape
    periodic = bool(pbc.any())
    batched = n * n <= _BATCHED_PAIRS
    if periodic:
        recip = torch.linalg.inv(cells)
        spacing = 1.0 / recip.norm(dim=-2)
        batched = batched and bool(pbc.all()) and bool((spacing > 2 * MIN_DISTANCE).all())
    found: tuple[int, int, int, float] | None = None
    if batched:
        step = max(1, _DISTANCE_CHUNK // (n * n))
        eye = torch.eye(n, dtype=torch.bool)
        for start in range(0, frames, step):
            chunk = positions[start : start + step]
            if periodic:  # fractional differences wrapped to [-1/2, 1/2], back to Å
                frac = chunk @ recip[start : start + step]
                delta = frac[:, None, :, :] - frac[:, :, None, :]  # [f, i, j]: j - i
                delta = (delta - torch.round(delta)).flatten(1, 2) @ cells[start : start + step]
            else:
                delta = chunk[:, None, :, :] - chunk[:, :, None, :]
            d = delta.reshape(-1, n, n, 3).norm(dim=-1).masked_fill(eye, float("inf"))
            close = torch.nonzero(d < MIN_DISTANCE)
            if close.shape[0]:
                f, i, j = close[0].tolist()
                found = (start + f, i, j, float(d[f, i, j]))
                break
    else:
        for f in range(frames):
            edges, shifts = neighbor_list(
                positions[f], MIN_DISTANCE, None if cells is None else cells[f], pbc
            )
            if edges.shape[1]:
                i, j = edges[:, 0].tolist()
                found = (f, i, j, float((positions[f, j] - positions[f, i] + shifts[0]).norm()))
                break
    if found is not None:
        f, i, j, d = found
        raise DataError(
            f"{where}: frame {int(index[f])}, atoms {i} and {j} are {d:.4g} Å apart; "
            f"expected at least {MIN_DISTANCE} Å (broken or duplicated coordinates?)"
        )


class FrameDataset(Dataset):
    """A ``torch`` dataset of :class:`Frame` (float64), grouped into named systems.

    ``ds[i]`` is a frame, ``ds.systems`` the system names (e.g. ``data_0``),
    ``ds.system_index`` the (len,) index into ``ds.systems`` of every frame.
    """

    def __init__(self, blocks: Sequence[FrameBlock], rows: Tensor | None = None) -> None:
        """``rows``: (len, 2) int64 (block, row) pairs; default every frame of every block."""
        self.blocks = list(blocks)
        if rows is None:
            every = [torch.stack([torch.full((len(b),), k), torch.arange(len(b))], 1)
                     for k, b in enumerate(self.blocks)]  # fmt: skip
            rows = torch.cat([torch.zeros(0, 2, dtype=torch.long), *every])
        self.rows = rows
        names = [b.system for b in self.blocks]
        present = sorted(set(rows[:, 0].tolist()))
        self.systems: list[str] = list(dict.fromkeys(names[k] for k in present))
        block_system = torch.tensor(
            [self.systems.index(name) if name in self.systems else -1 for name in names],
            dtype=torch.long,
        )
        self.system_index: Tensor = block_system[rows[:, 0]] if len(rows) else rows[:, 0]

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, index: int) -> Frame:
        block, row = self.rows[index].tolist()
        return self.blocks[block].frame(row)

    def __iter__(self) -> Iterator[Frame]:
        return (self[i] for i in range(len(self)))

    def system_of(self, index: int) -> str:
        """Name of the system frame ``index`` came from."""
        return self.systems[int(self.system_index[index])]

    def subset(self, indices: Sequence[int] | Tensor) -> FrameDataset:
        """The frames at ``indices`` (in that order), sharing storage."""
        return FrameDataset(self.blocks, self.rows[torch.as_tensor(indices, dtype=torch.long)])

    def select_systems(self, names: Sequence[str]) -> FrameDataset:
        """The frames of the named systems, in dataset order.

        Raises:
            DataError: a name is not a system of this dataset.
        """
        missing = [name for name in names if name not in self.systems]
        if missing:
            raise DataError(f"systems: {missing} not found, expected some of {self.systems}")
        wanted = torch.tensor([self.systems.index(name) for name in names], dtype=torch.long)
        return self.subset(torch.nonzero(torch.isin(self.system_index, wanted))[:, 0])


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path to write to; on success move it onto ``path``.

    Nothing is left at ``path`` (nor in its place) if writing fails.

    Raises:
        DataError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"{path}: already exists, expected a new path (or overwrite=True)")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield scratch / path.name
        backup = scratch / "old"
        if path.is_dir():
            path.rename(backup)
        try:
            os.replace(scratch / path.name, path)
        except OSError:
            if backup.exists():
                backup.rename(path)
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
