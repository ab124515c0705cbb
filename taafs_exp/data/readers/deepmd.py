"""deepmd/npy systems (DeePMD-kit's format), read and written in its own units: Å, eV, eV/Å.

A system is a folder with ``type.raw`` (one type index per atom), ``type_map.raw`` (element
symbol per type index) and folders ``set.*`` holding ``coord.npy`` (F, 3n), ``energy.npy`` (F,),
``force.npy`` (F, 3n), ``box.npy`` (F, 9) unless a ``nopbc`` file marks it non-periodic, and
optionally ``virial.npy`` (F, 9), eV.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from taafs_exp.data.errors import DataError
from taafs_exp.data.frame import Frame
from taafs_exp.data.readers.base import FrameBlock, atomic_output, make_block


def find_systems(root: Path) -> list[Path]:
    """``root`` itself if it is a system (has ``type.raw``), else every system below it, sorted."""
    if (root / "type.raw").is_file():
        return [root]
    return sorted(p.parent for p in root.rglob("type.raw"))


def read_deepmd(
    path: str | os.PathLike, type_map: Sequence[str] | None = None
) -> list[FrameBlock]:
    """Read a deepmd/npy system or every system below ``path`` (one block per set).

    Args:
        path: a system folder or a folder of systems (searched recursively).
        type_map: element symbols per type index, for systems without ``type_map.raw``;
            must agree with ``type_map.raw`` where both exist.

    System names are the paths relative to ``path`` (``data_0``), or the folder's own name
    when ``path`` is a system.
    """
    root = Path(path)
    systems = find_systems(root)
    if not systems:
        raise DataError(f"{root}: no deepmd system found, expected folders with a type.raw file")
    return [
        block
        for system in systems
        for block in _read_system(system, system.relative_to(root).as_posix(), type_map)
    ]


def _read_system(system: Path, name: str, type_map: Sequence[str] | None) -> list[FrameBlock]:
    from ase.data import atomic_numbers

    name = system.name if name == "." else name
    types = _read_raw(system / "type.raw")
    try:
        types = np.array([int(t) for t in types], dtype=np.int64)
    except ValueError:
        raise DataError(
            f"{system / 'type.raw'}: entries {types[:5]}..., expected integer type indices"
        ) from None
    symbols = _type_map(system, type_map)
    bad = np.nonzero((types < 0) | (types >= len(symbols)))[0]
    if bad.size:
        raise DataError(
            f"{system / 'type.raw'}: type index {types[bad[0]]} at atom {bad[0]}, expected "
            f"0..{len(symbols) - 1} (type map {' '.join(symbols)})"
        )
    unknown = [s for s in symbols if s not in atomic_numbers]
    if unknown:
        raise DataError(f"{system}: type map entries {unknown} are not element symbols")
    numbers = np.array([atomic_numbers[s] for s in symbols])[types]
    periodic = not (system / "nopbc").exists()
    sets = sorted(p for p in system.glob("set.*") if p.is_dir())
    if not sets:
        raise DataError(f"{system}: no set.* folder, expected at least one (set.000)")
    blocks = []
    for folder in sets:
        arrays = {
            key: _load(folder / f"{key}.npy", required)
            for key, required in [
                ("coord", True), ("energy", True), ("force", True),
                ("box", periodic), ("virial", False),
            ]
        }  # fmt: skip
        blocks.append(
            make_block(
                name,
                str(folder),
                positions=arrays["coord"],
                numbers=numbers,
                energy=arrays["energy"],
                forces=arrays["force"],
                cells=arrays["box"] if periodic else None,
                pbc=[periodic] * 3,
                virial=arrays["virial"],
                fields={
                    "positions": str(folder / "coord.npy"),
                    "numbers": str(system / "type.raw"),
                    "energy": str(folder / "energy.npy"),
                    "forces": str(folder / "force.npy"),
                    "cells": str(folder / "box.npy"),
                    "virial": str(folder / "virial.npy"),
                },
            )
        )
    return blocks


def _read_raw(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path.read_text().split()


def _type_map(system: Path, given: Sequence[str] | None) -> list[str]:
    path = system / "type_map.raw"
    if not path.is_file():
        if given is None:
            raise DataError(
                f"{path}: file not found, expected it or a type_map= option (element per type)"
            )
        return list(given)
    symbols = _read_raw(path)
    if given is not None and list(given) != symbols:
        raise DataError(f"{path}: {symbols}, but type_map= option says {list(given)}")
    return symbols


#: The first bytes of every .npy file.
NPY_MAGIC = b"\x93NUMPY"


def _load(path: Path, required: bool) -> np.ndarray | None:
    if not path.is_file():
        if required:
            hint = (
                " (or add a 'nopbc' file for a non-periodic system)" if path.stem == "box" else ""
            )
            raise DataError(f"{path}: file not found, expected it in every set{hint}")
        return None
    with open(path, "rb") as fh:
        head = fh.read(len(NPY_MAGIC))
    if head != NPY_MAGIC:
        raise DataError(
            f"{path}: not a .npy file (starts with {head!r}, a .npy file with {NPY_MAGIC!r}); "
            "expected an array written by numpy.save"
        )
    try:
        return np.load(path)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable ({error}), expected a .npy array") from None


def write_deepmd(
    frames: Iterable[Frame], path: str | os.PathLike, overwrite: bool = False
) -> None:
    """Write frames as deepmd/npy, atomically (a temporary folder renamed onto ``path``).

    Frames with the same atoms (in order), periodicity and virial presence form one system;
    a single system is written at ``path`` itself, several as ``path/system_000``, ... .
    Every system shares one type map (elements sorted by atomic number). Arrays are float64.

    Raises:
        DataError: no frames, partial periodicity (deepmd/npy has none) or ``path`` exists.
    """
    from ase.data import chemical_symbols

    groups: dict[tuple, list[Frame]] = {}
    for frame in frames:
        periodic = bool(frame.pbc.any())
        if periodic and not bool(frame.pbc.all()):
            raise DataError(
                f"{frame.source}: pbc={frame.pbc.tolist()}, expected all or none periodic "
                "(deepmd/npy cannot store partial periodicity)"
            )
        key = (tuple(frame.numbers.tolist()), periodic, frame.virial is not None)
        groups.setdefault(key, []).append(frame)
    if not groups:
        raise DataError(f"{path}: no frames to write, expected at least one")
    elements = sorted({z for key in groups for z in key[0]})
    with atomic_output(path, overwrite) as out:
        for k, ((numbers, periodic, has_virial), group) in enumerate(groups.items()):
            system = out if len(groups) == 1 else out / f"system_{k:03d}"
            (system / "set.000").mkdir(parents=True)
            (system / "type_map.raw").write_text(
                "\n".join(chemical_symbols[z] for z in elements) + "\n"
            )
            (system / "type.raw").write_text(
                "\n".join(str(elements.index(z)) for z in numbers) + "\n"
            )
            if not periodic:
                (system / "nopbc").touch()
            columns = {
                "coord": [f.positions for f in group],
                "energy": [f.energy for f in group],
                "force": [f.forces for f in group],
                "box": [f.cell for f in group] if periodic else None,
                "virial": [f.virial for f in group] if has_virial else None,
            }
            for key, values in columns.items():
                if values is not None:
                    stacked = np.stack([v.detach().cpu().double().numpy() for v in values])
                    if stacked.ndim > 1:  # (F, 3n) coord/force, (F, 9) box/virial
                        stacked = stacked.reshape(len(group), -1)
                    np.save(system / "set.000" / f"{key}.npy", stacked)
