"""Frames -> graphs -> one flat batch (PyG-style ``batch`` vector, keys in :mod:`.keys`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from taafs_exp.data import keys as K
from taafs_exp.data.frame import Frame
from taafs_exp.data.neighbors import neighbor_list


def frame_to_graph(frame: Frame, cutoff: float) -> dict[str, Tensor]:
    """One frame as a batch of one, with its neighbour pairs within ``cutoff`` (Å)."""
    cell = frame.cell if frame.cell is not None else torch.zeros(3, 3, dtype=frame.positions.dtype)
    pbc = frame.pbc if frame.cell is not None else torch.zeros(3, dtype=torch.bool)
    edge_index, shifts = neighbor_list(frame.positions, cutoff, frame.cell, pbc)
    n = frame.num_atoms
    graph = {
        K.POSITIONS: frame.positions,
        K.NUMBERS: frame.numbers,
        K.BATCH: torch.zeros(n, dtype=torch.long),
        K.NUM_ATOMS: torch.tensor([n]),
        K.CELL: cell.unsqueeze(0),
        K.PBC: pbc.unsqueeze(0),
        K.EDGE_INDEX: edge_index,
        K.SHIFTS: shifts,
        K.ENERGY: frame.energy.reshape(1),
        K.FORCES: frame.forces,
        K.HAS_VIRIAL: torch.tensor([frame.virial is not None]),
        K.VIRIAL: (frame.virial if frame.virial is not None else torch.zeros_like(cell)).unsqueeze(0),
    }
    return graph


def collate_graphs(graphs: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Concatenate single-frame graphs into one batch, offsetting atom and frame indices."""
    if not graphs:
        raise ValueError("collate_graphs: got no graphs; expected at least one frame")
    atom_offsets = torch.cumsum(torch.tensor([0] + [int(g[K.NUM_ATOMS].sum()) for g in graphs]), 0)
    frame_offsets = torch.cumsum(torch.tensor([0] + [len(g[K.NUM_ATOMS]) for g in graphs]), 0)
    batch = {key: torch.cat([g[key] for g in graphs]) for key in graphs[0] if key not in (K.EDGE_INDEX, K.BATCH)}
    batch[K.EDGE_INDEX] = torch.cat(
        [g[K.EDGE_INDEX] + atom_offsets[i] for i, g in enumerate(graphs)], dim=1
    )
    batch[K.BATCH] = torch.cat([g[K.BATCH] + frame_offsets[i] for i, g in enumerate(graphs)])
    return batch


def batch_frames(frames: Sequence[Frame], cutoff: float) -> dict[str, Tensor]:
    """Neighbour lists for every frame, then one flat batch."""
    return collate_graphs([frame_to_graph(f, cutoff) for f in frames])
