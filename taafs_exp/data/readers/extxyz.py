"""Extended XYZ through ``ase.io`` (ASE's convention: Å, eV, eV/Å, stress eV/Å³).

Labels are looked up by key, first in ``atoms.info`` / ``atoms.arrays`` (e.g. ``REF_energy``),
then in the calculator results ASE builds from ``energy=``, ``forces``, ``stress=``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from itertools import groupby
from pathlib import Path

import numpy as np

from taafs_exp.data.errors import DataError
from taafs_exp.data.frame import Frame
from taafs_exp.data.readers.base import FrameBlock, atomic_output, energy_unit, make_block


def read_extxyz(
    path: str | os.PathLike,
    energy_key: str = "energy",
    forces_key: str = "forces",
    virial_key: str = "virial",
    stress_key: str = "stress",
    system_key: str | None = None,
    units: str = "eV",
) -> list[FrameBlock]:
    """Read every frame of an extended XYZ file.

    Args:
        energy_key, forces_key: where the labels are (info/arrays key or calculator result).
        virial_key: optional 3×3 (or 9) virial, eV; else ``stress_key`` σ (eV/Å³, fully
            periodic frames) gives the virial W = -σ·V. Neither is fine (no virial).
        system_key: info key naming each frame's system (for splits); default the file name.
        units: energy unit of the file (forces in units/Å, stress units/Å³); ASE's is eV.
    """
    import ase.io
    from ase.stress import voigt_6_to_full_3x3_stress

    path = Path(path)
    scale = energy_unit(units)
    try:
        images = ase.io.read(path, index=":", format="extxyz")
    except Exception as error:  # ase raises many kinds on malformed files
        raise DataError(f"{path}: not readable as extxyz ({error})") from None
    records = []
    for index, atoms in enumerate(images):
        where = f"{path} frame {index}"
        energy = _label(atoms, energy_key, where, "the total energy")
        forces = np.asarray(_label(atoms, forces_key, where, "the (n, 3) forces"), dtype=float)
        virial = _label(atoms, virial_key, where, "", required=False)
        stress = _label(atoms, stress_key, where, "", required=False)
        if virial is None and stress is not None and atoms.pbc.all():
            stress = np.asarray(stress, dtype=np.float64)
            full = voigt_6_to_full_3x3_stress(stress) if stress.size == 6 else stress
            virial = -np.reshape(full, (3, 3)) * atoms.get_volume()
        system = (
            path.name if system_key is None else str(_label(atoms, system_key, where, "a name"))
        )
        key = (system, tuple(atoms.numbers), tuple(atoms.pbc), forces.shape, virial is None)
        records.append((key, index, atoms, energy, forces, virial))
    if not records:
        raise DataError(f"{path}: no frames, expected at least one")
    blocks = []
    # Consecutive frames of the same system and atoms form one block (validated at once).
    for (system, _, pbc, _, no_virial), group in groupby(records, key=lambda r: r[0]):
        _, indices, frames, energy, forces, virial = zip(*group)
        where = f"{path} frame {indices[0]}" + (f"..{indices[-1]}" if len(indices) > 1 else "")
        blocks.append(
            make_block(
                system,
                str(path),
                positions=np.stack([atoms.positions for atoms in frames]),
                numbers=frames[0].numbers,
                energy=np.asarray(energy, dtype=np.float64) * scale,
                forces=np.stack(forces) * scale,
                cells=np.stack([atoms.cell.array for atoms in frames]) if any(pbc) else None,
                pbc=pbc,
                virial=None if no_virial else np.stack(virial).astype(np.float64) * scale,
                fields={
                    "positions": f"{where} [pos]",
                    "numbers": f"{where} [species]",
                    "energy": f"{where} [{energy_key}]",
                    "forces": f"{where} [{forces_key}]",
                    "cells": f"{where} [Lattice]",
                    "virial": f"{where} [{virial_key}/{stress_key}]",
                },
                index=indices,
            )
        )
    return blocks


def _label(atoms, key: str, where: str, meaning: str, required: bool = True):
    """``atoms.info[key]``, ``atoms.arrays[key]`` or the calculator's ``results[key]``."""
    results = atoms.calc.results if atoms.calc is not None else {}
    for store in (atoms.info, atoms.arrays, results):
        if key in store:
            return store[key]
    if required:
        found = sorted({*atoms.info, *atoms.arrays, *results} - {"numbers", "positions"})
        raise DataError(
            f"{where}: no {key!r} in info, arrays or calculator results (found {found}); "
            f"expected {meaning} there, or pass the key that holds it"
        )
    return None


def write_extxyz(
    frames: Iterable[Frame], path: str | os.PathLike, overwrite: bool = False
) -> None:
    """Write frames as extended XYZ (energy, forces; virial in ``info['virial']``), atomically.

    ASE prints positions and forces with 8 decimals, so a round trip is exact to 1e-8.

    Raises:
        DataError: no frames, or ``path`` exists and ``overwrite`` is False.
    """
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    images = []
    for frame in frames:
        cell = (
            np.zeros((3, 3)) if frame.cell is None else frame.cell.detach().cpu().double().numpy()
        )
        atoms = Atoms(
            numbers=frame.numbers.cpu().numpy(),
            positions=frame.positions.detach().cpu().double().numpy(),
            cell=cell,
            pbc=frame.pbc.cpu().numpy(),
        )
        if frame.virial is not None:
            atoms.info["virial"] = frame.virial.detach().cpu().double().numpy()
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=float(frame.energy),
            forces=frame.forces.detach().cpu().double().numpy(),
        )
        images.append(atoms)
    if not images:
        raise DataError(f"{path}: no frames to write, expected at least one")
    with atomic_output(path, overwrite) as out:
        ase.io.write(out, images, format="extxyz")
