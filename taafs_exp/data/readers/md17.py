"""MD17 / rMD17 ``.npz`` trajectories of one molecule.

Keys ``R, z, E, F`` (MD17, sGDML's files) or ``coords, nuclear_charges, energies, forces``
(rMD17). Positions are Å. Both are distributed in kcal/mol and kcal/mol/Å, but the files
rarely say so (sGDML's carry ``e_unit`` / ``r_unit``; rMD17's carry nothing), and copies
converted to eV circulate: the energy unit is therefore never assumed. It is read from
``e_unit`` when present, else it must be given as ``units=`` (e.g. ``units="kcal/mol"``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from taafs_exp.data.errors import DataError
from taafs_exp.data.readers.base import FrameBlock, energy_unit, make_block

#: (positions, atomic numbers, energies, forces) key sets, MD17 then rMD17.
KEY_SETS = (("R", "z", "E", "F"), ("coords", "nuclear_charges", "energies", "forces"))
_ANGSTROM = {"ang", "angstrom", "å", "a"}


def read_md17(path: str | os.PathLike, units: str | None = None) -> list[FrameBlock]:
    """Read one MD17/rMD17 file as one system named after the file (``aspirin``).

    Args:
        units: energy unit of the file (forces in units/Å); required unless the file
            records ``e_unit``, and must agree with it when both are present.
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not readable as .npz ({error})") from None
    keys = next((k for k in KEY_SETS if all(key in data for key in k)), None)
    if keys is None:
        raise DataError(
            f"{path}: keys {sorted(data.files)}, expected {KEY_SETS[0]} (MD17) or "
            f"{KEY_SETS[1]} (rMD17)"
        )
    stored = str(data["e_unit"]) if "e_unit" in data else None
    if stored is not None and units is not None and energy_unit(stored) != energy_unit(units):
        raise DataError(f"{path} [e_unit]: {stored!r}, but units={units!r} was given")
    if stored is None and units is None:
        raise DataError(
            f"{path}: energy unit unknown (no e_unit in the file); expected units= "
            "('kcal/mol' for MD17/rMD17 as distributed, 'eV' for converted copies)"
        )
    if "r_unit" in data and str(data["r_unit"]).lower() not in _ANGSTROM:
        raise DataError(f"{path} [r_unit]: {str(data['r_unit'])!r}, expected Å ('Ang')")
    scale = energy_unit(stored or units)
    positions, numbers, energy, forces = (data[k] for k in keys)
    return [
        make_block(
            path.stem,
            str(path),
            positions=positions,
            numbers=numbers,
            energy=np.asarray(energy, dtype=np.float64) * scale,
            forces=np.asarray(forces, dtype=np.float64) * scale,
            fields={
                field: f"{path} [{key}]"
                for field, key in zip(("positions", "numbers", "energy", "forces"), keys)
            },
        )
    ]
