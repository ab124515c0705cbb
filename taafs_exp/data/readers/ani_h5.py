"""ANI HDF5 datasets (torchani's ``ANIDataset`` layouts, read with h5py).

Every group holding a ``coordinates`` dataset (C, n, 3), Å, is a set of C conformers with
``species`` (or ``numbers`` / ``atomic_numbers``): (n,) or (C, n), element symbols or atomic
numbers, -1 padding allowed; energies (C,) and forces (C, n, 3) under configurable keys.
Both the legacy nested layout (pyanitools) and the flat by-formula / by-size layouts match.
ANI data sets store Hartree and Hartree/Å, hence ``units="hartree"`` by default.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from taafs_exp.data.errors import DataError
from taafs_exp.data.readers.base import FrameBlock, energy_unit, make_block

#: Accepted names of the element dataset, tried in this order.
SPECIES_KEYS = ("species", "numbers", "atomic_numbers")
PADDING = -1


def read_ani_h5(
    path: str | os.PathLike,
    energy_key: str = "energies",
    forces_key: str = "forces",
    units: str = "hartree",
) -> list[FrameBlock]:
    """Read every conformer group of an ANI HDF5 file; each group is one system, named by
    its HDF5 path (e.g. ``C2H6O`` or ``gdb11_s01/gdb11_s01-0``).

    Args:
        energy_key, forces_key: dataset names of the labels (ANI-1x: ``wb97x_dz.energy``).
        units: energy unit stored in the file (forces in units/Å).
    """
    import h5py

    path = Path(path)
    scale = energy_unit(units)
    try:
        with h5py.File(path, "r") as h5:
            names = ["/"] if "coordinates" in h5 else []
            h5.visititems(
                lambda name, item: (
                    names.append(name)
                    if isinstance(item, h5py.Group) and "coordinates" in item
                    else None
                )
            )
            if not names:
                raise DataError(
                    f"{path}: no group with a 'coordinates' dataset, expected ANI conformers"
                )
            return [
                block
                for name in names
                for block in _read_group(h5[name], name, path, energy_key, forces_key, scale)
            ]
    except OSError as error:
        raise DataError(f"{path}: not readable as HDF5 ({error})") from None


def _read_group(
    group, name: str, path: Path, energy_key: str, forces_key: str, scale: float
) -> list[FrameBlock]:
    from ase.data import atomic_numbers

    where = f"{path}:{name}"
    species_key = next((k for k in SPECIES_KEYS if k in group), None)
    missing = [k for k in (energy_key, forces_key) if k not in group] + (
        [] if species_key else ["species"]
    )
    if missing:
        raise DataError(
            f"{where}: missing {missing}, found {sorted(group)}; expected coordinates, one of "
            f"{SPECIES_KEYS}, {energy_key!r} and {forces_key!r} (set energy_key=/forces_key=)"
        )
    coordinates = np.asarray(group["coordinates"], dtype=np.float64)
    conformers = len(coordinates) if coordinates.ndim else 0
    species = np.asarray(group[species_key])
    if species.dtype.kind in "SUO":  # element symbols, "" for padding
        symbols = np.char.strip(species.astype(str))
        unknown = sorted(set(symbols.ravel()) - set(atomic_numbers) - {""})
        if unknown:
            raise DataError(f"{where} [{species_key}]: {unknown} are not element symbols")
        species = np.vectorize(lambda s: atomic_numbers.get(s, PADDING), otypes=[np.int64])(
            symbols
        )
    if species.ndim == 1:
        species = np.broadcast_to(species, (conformers, len(species)))
    n = species.shape[-1] if species.ndim else 0
    arrays = {
        "coordinates": (coordinates, (conformers, n, 3)),
        species_key: (species, (conformers, n)),
        energy_key: (np.asarray(group[energy_key], dtype=np.float64).reshape(-1), (conformers,)),
        forces_key: (np.asarray(group[forces_key], dtype=np.float64), (conformers, n, 3)),
    }
    for key, (array, shape) in arrays.items():
        if array.shape != shape:
            raise DataError(
                f"{where} [{key}]: shape {array.shape}, expected {shape} "
                f"({conformers} conformers of {n} atoms, species {species_key!r} per atom)"
            )
    energy = arrays[energy_key][0] * scale
    forces = arrays[forces_key][0] * scale
    # Conformers with the same atoms (padding removed) form one block.
    rows, inverse = np.unique(species, axis=0, return_inverse=True)
    blocks = []
    for row, take in ((row, np.nonzero(inverse.ravel() == k)[0]) for k, row in enumerate(rows)):
        atoms = row != PADDING
        blocks.append(
            make_block(
                name,
                where,
                positions=coordinates[take][:, atoms],
                numbers=row[atoms],
                energy=energy[take],
                forces=forces[take][:, atoms],
                fields={
                    "positions": f"{where} [coordinates]",
                    "numbers": f"{where} [{species_key}]",
                    "energy": f"{where} [{energy_key}]",
                    "forces": f"{where} [{forces_key}]",
                },
                index=take,
            )
        )
    return blocks
