"""Atomistic data: frames, readers/writers, neighbour lists (Å, eV, eV/Å throughout)."""

from taafs_exp.data.errors import DataError
from taafs_exp.data.frame import Frame
from taafs_exp.data.neighbors import neighbor_list
from taafs_exp.data.readers import load_dataset
from taafs_exp.data.readers.base import FrameDataset
from taafs_exp.data.readers.deepmd import write_deepmd
from taafs_exp.data.readers.extxyz import write_extxyz
from taafs_exp.data.stats import DatasetStatistics

__all__ = [
    "DataError",
    "DatasetStatistics",
    "Frame",
    "FrameDataset",
    "load_dataset",
    "neighbor_list",
    "write_deepmd",
    "write_extxyz",
]
