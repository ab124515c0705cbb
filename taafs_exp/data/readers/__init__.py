"""``load_dataset``: one entry point over the per-format readers (one module per format)."""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path

from taafs_exp.data.errors import DataError
from taafs_exp.data.readers.base import FrameDataset

log = logging.getLogger(__name__)

#: format name -> "module:function" returning a list of FrameBlock (imported on use).
READERS: dict[str, str] = {
    "deepmd": "taafs_exp.data.readers.deepmd:read_deepmd",
    "extxyz": "taafs_exp.data.readers.extxyz:read_extxyz",
    "ani_h5": "taafs_exp.data.readers.ani_h5:read_ani_h5",
    "md17": "taafs_exp.data.readers.md17:read_md17",
}
#: file suffix -> format, for ``format="auto"`` (a folder is deepmd/npy). The md17 reader
#: still demands ``units=`` when the file does not state them.
SUFFIXES: dict[str, str] = {
    ".xyz": "extxyz",
    ".extxyz": "extxyz",
    ".h5": "ani_h5",
    ".hdf5": "ani_h5",
    ".npz": "md17",
}


def guess_format(path: Path) -> str:
    """Format of ``path`` from its kind and suffix: a folder is ``deepmd``."""
    if path.is_dir():
        return "deepmd"
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise DataError(
            f"{path}: cannot tell the format from suffix {path.suffix!r}, expected a folder "
            f"(deepmd) or one of {sorted(SUFFIXES)}; pass format= one of {sorted(READERS)}"
        ) from None


def load_dataset(path: str | os.PathLike, format: str = "auto", **options) -> FrameDataset:
    """Read a labelled dataset into float64 :class:`~taafs_exp.data.frame.Frame` s (Å, eV, eV/Å).

    Args:
        path: file or folder.
        format: one of :data:`READERS` or ``"auto"`` (guessed from ``path``, logged).
        options: passed to the reader: deepmd ``type_map``; extxyz ``energy_key``,
            ``forces_key``, ``virial_key``, ``stress_key``, ``system_key``, ``units``; ani_h5
            ``energy_key``, ``forces_key``, ``units`` (default hartree); md17 ``units``
            (required unless the file has ``e_unit``).

    Returns:
        A :class:`FrameDataset`: ``ds[i]`` a frame, ``ds.systems`` the system names,
        ``ds.system_of(i)`` / ``ds.system_index`` which system each frame came from.

    Raises:
        DataError: missing path, unknown format, bad or empty data.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if format == "auto":
        format = guess_format(path)
        log.info("load_dataset: reading %s as format %r (guessed from the path)", path, format)
    if format not in READERS:
        raise DataError(f"format: {format!r}, expected 'auto' or one of {sorted(READERS)}")
    module, function = READERS[format].split(":")
    blocks = getattr(importlib.import_module(module), function)(path, **options)
    dataset = FrameDataset(blocks)
    if len(dataset) == 0:
        raise DataError(f"{path}: no frames ({format}), expected at least one")
    return dataset
