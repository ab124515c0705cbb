"""LightningDataModule: load, split, neighbour lists (cached), training-split statistics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from taafs_exp.data import keys as K
from taafs_exp.data.collate import collate_graphs, frame_to_graph
from taafs_exp.data.errors import DataError
from taafs_exp.data.frame import Frame
from taafs_exp.data.stats import DatasetStatistics

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")
#: The split when ``data.split`` is null: random frames, 80/10/10, seeded by ``split_seed``.
RANDOM_SPLIT = {"fractions": [0.8, 0.1, 0.1]}


class GraphDataset(Dataset):
    """Frames of one split as single-frame graphs; each neighbour list is built once, then cached."""

    def __init__(self, frames: Sequence[Frame], cutoff: float) -> None:
        self.frames = frames
        self.cutoff = cutoff
        self._graphs: list[dict[str, Tensor] | None] = [None] * len(frames)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        graph = self._graphs[index]
        if graph is None:
            graph = self._graphs[index] = frame_to_graph(self.frames[index], self.cutoff)
        return graph


def split_members(split: Mapping[str, Any] | None, stage: str) -> str:
    """What ``stage`` holds under a split config (None: the default random split): its systems
    (``data_0, data_1``) or its random share (``random 10%``, ``random 10% of systems``)."""
    split = split or RANDOM_SPLIT
    if "fractions" in split:
        share = 100 * float(split["fractions"][STAGES.index(stage)])
        return f"random {share:.0f}%" + (" of systems" if split.get("by") == "system" else "")
    return ", ".join(map(str, split[stage]))


def split_indices(
    systems: Sequence[str], split: dict[str, Any] | None, seed: int, source: str
) -> dict[str, list[int]]:
    """Frame indices of train/val/test.

    Args:
        systems: the system name of every frame (e.g. ``data_0`` for a deepmd folder).
        split: ``{"train": [names], "val": [names], "test": [names]}`` to split by named
            systems, or ``{"fractions": [f_train, f_val, f_test]}`` for a random split seeded by
            ``seed``: of frames, or with ``"by": "system"`` of whole systems (held-out runs or
            molecules: no frame of a val/test system in train); None means :data:`RANDOM_SPLIT`.
        source: the data path, named in errors.
    """
    split = dict(split or RANDOM_SPLIT)
    num_frames = len(systems)
    if "fractions" in split:
        fractions = [float(f) for f in split["fractions"]]
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise DataError(
                f"{source}: data.split.fractions = {fractions}; expected three non-negative "
                "numbers (train, val, test) that sum to 1"
            )
        unknown_keys = set(split) - {"fractions", "by"}
        by = split.get("by", "frame")
        if unknown_keys or by not in ("frame", "system"):
            raise DataError(
                f"{source}: data.split = {split}; with 'fractions' expected only 'by' beside it, "
                "'frame' (default) or 'system'"
            )
        units = list(range(num_frames)) if by == "frame" else sorted(set(systems))
        order = torch.randperm(len(units), generator=torch.Generator().manual_seed(seed)).tolist()
        n_train = round(fractions[0] * len(units))
        n_val = round(fractions[1] * len(units))
        chosen = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        if by == "frame":
            parts = chosen
        else:
            stage_of = {units[i]: stage for stage, picks in chosen.items() for i in picks}
            parts = {stage: [i for i, s in enumerate(systems) if stage_of[s] == stage]
                     for stage in STAGES}
    else:
        unknown_keys = set(split) - set(STAGES)
        if unknown_keys or not set(STAGES) <= set(split):
            raise DataError(
                f"{source}: data.split has keys {sorted(split)}; expected 'fractions' or all of "
                f"{list(STAGES)} (lists of system names)"
            )
        available = sorted(set(systems))
        parts = {}
        for stage in STAGES:
            names = [str(n) for n in split[stage]]
            missing = [n for n in names if n not in available]
            if missing:
                raise DataError(
                    f"{source}: data.split.{stage} names systems {missing} that are not in the "
                    f"data; available systems: {available}"
                )
            parts[stage] = [i for i, s in enumerate(systems) if s in names]
        held_out = {str(n) for stage in ("val", "test") for n in split[stage]}
        shared = sorted(held_out & {str(n) for n in split["train"]})
        if shared:
            raise DataError(
                f"{source}: data.split.train shares systems {shared} with val/test; expected "
                "held-out splits without training frames (val and test may coincide)"
            )
    for stage, indices in parts.items():
        if not indices:
            raise DataError(
                f"{source}: the {stage} split is empty ({num_frames} frames, split {split}); "
                "expected at least one frame in each of train, val and test"
            )
    return parts


def compute_statistics(
    frames: Sequence[Frame], graphs: Sequence[dict[str, Tensor]]
) -> DatasetStatistics:
    """Statistics of the training split (see :class:`DatasetStatistics`).

    Energies and forces come from every training frame; the neighbour count from ``graphs``
    (a subset is enough, as DeePMD-kit's ``data_stat_nbatch``). The per-element energy shift
    solves min ‖A s − E‖ with A[f, Z] the count of element Z in frame f, by least squares with
    the minimum-norm solution when A is rank deficient (as DeePMD-kit does, e.g. water where
    every frame has the same composition).
    """
    elements = sorted({int(z) for f in frames for z in f.numbers.tolist()})
    column = {z: c for c, z in enumerate(elements)}
    counts = torch.zeros(len(frames), len(elements), dtype=torch.float64)
    for row, frame in enumerate(frames):
        for value, n in zip(*torch.unique(frame.numbers, return_counts=True)):
            counts[row, column[int(value)]] = float(n)
    energies = torch.stack([f.energy.reshape(()) for f in frames]).to(torch.float64)
    shift = torch.linalg.lstsq(counts, energies[:, None], driver="gelsd").solution[:, 0]
    natoms = counts.sum(1)
    residual_per_atom = (energies - counts @ shift) / natoms
    forces = torch.cat([f.forces for f in frames]).to(torch.float64)
    num_edges = sum(g[K.EDGE_INDEX].shape[1] for g in graphs)
    num_atoms = sum(int(g[K.NUM_ATOMS].sum()) for g in graphs)
    return DatasetStatistics(
        energy_shift={z: float(shift[c]) for z, c in column.items()},
        force_rms=float(forces.pow(2).mean().sqrt()),
        avg_num_neighbors=num_edges / max(num_atoms, 1),
        energy_per_atom_std=float(residual_per_atom.std()) if len(frames) > 1 else 0.0,
        elements=elements,
    )


class AtomsDataModule(pl.LightningDataModule):
    """Energies and forces of atomic frames, served as flat batches (keys in :mod:`.keys`).

    Args:
        path: data file or folder (see :func:`taafs_exp.data.load_dataset`).
        format: reader name or ``auto``.
        reader_options: passed to the reader (e.g. ``energy_key``, ``units``).
        split: named systems or fractions (see :func:`split_indices`).
        split_seed: seed of a random split.
        batch_size: training frames per step; ``eval_batch_size`` for validation and test.
        num_workers: DataLoader workers (0 keeps the neighbour-list cache in this process).
        generator: builds ``path`` on first use when it does not exist (a data generator).
        shuffle_seed: seed of the training order (resumable: the order is saved in checkpoints).
        stat_frames: training frames (evenly spaced over the split) whose neighbour lists feed
            the neighbour statistics and the models' input normalisation (DeePMD-kit's
            ``data_stat_nbatch``); energies and forces statistics use every training frame.
    """

    def __init__(
        self,
        path: str,
        format: str = "auto",
        reader_options: dict[str, Any] | None = None,
        split: dict[str, Any] | None = None,
        split_seed: int = 0,
        batch_size: int = 1,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        generator: Callable[[Path], Any] | None = None,
        shuffle_seed: int = 0,
        stat_frames: int = 64,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.format = format
        self.reader_options = dict(reader_options or {})
        self.split = dict(split) if split is not None else None
        self.split_seed = split_seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.generator = generator
        self.shuffle_seed = shuffle_seed
        self.stat_frames = stat_frames
        self.cutoff: float | None = None
        self.frames: dict[str, list[Frame]] = {}
        self.datasets: dict[str, GraphDataset] = {}
        self._statistics: DatasetStatistics | None = None

    def prepare_data(self) -> None:
        if not self.path.exists() and self.generator is not None:
            log.info("generating %s (first use)", self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.generator(self.path)

    def setup(self, stage: str | None = None) -> None:
        if self.frames:
            return
        from taafs_exp.data import load_dataset

        self.prepare_data()
        dataset = load_dataset(self.path, format=self.format, **self.reader_options)
        systems = [dataset.system_of(i) for i in range(len(dataset))]
        parts = split_indices(systems, self.split, self.split_seed, str(self.path))
        self.frames = {s: [dataset[i] for i in idx] for s, idx in parts.items()}
        log.info(
            "data %s: %s frames (train/val/test)",
            self.path,
            "/".join(str(len(self.frames[s])) for s in STAGES),
        )

    def describe_split(self, stage: str) -> str:
        """E.g. ``test: data_3 (100 frames)`` or ``test: random 10% (seed 0, 40 frames)``."""
        self.setup()
        seed = f"seed {self.split_seed}, " if "fractions" in (self.split or RANDOM_SPLIT) else ""
        count = len(self.frames[stage])
        return f"{stage}: {split_members(self.split, stage)} ({seed}{count} frames)"

    def set_cutoff(self, cutoff: float) -> None:
        """Neighbour-list radius of the model, Å; graphs are built lazily and cached (and kept
        when the radius does not change)."""
        self.setup()
        if self.datasets and self.cutoff == float(cutoff):
            return
        self.cutoff = float(cutoff)
        self.datasets = {s: GraphDataset(f, self.cutoff) for s, f in self.frames.items()}
        self._statistics = None

    def elements(self) -> list[int]:
        """Atomic numbers present in the training split, sorted."""
        self.setup()
        return sorted({int(z) for f in self.frames["train"] for z in f.numbers.tolist()})

    def check_elements(self, type_map: Sequence[str], owner: str) -> None:
        """DataError naming the first frame (``file:index``) of any split that holds an element
        outside ``type_map``: found before training, not at the first validation."""
        from ase.data import atomic_numbers, chemical_symbols

        self.setup()
        allowed = {atomic_numbers[s] for s in type_map}
        for stage in STAGES:
            for frame in self.frames[stage]:
                unknown = sorted({int(z) for z in frame.numbers.unique().tolist()} - allowed)
                if unknown:
                    raise DataError(
                        f"{frame.source or self.path}: {stage} frame with element(s) "
                        f"{[chemical_symbols[z] for z in unknown]} not in {owner}'s type_map "
                        f"{list(type_map)}; expected only those elements (type_map: null takes "
                        "the training split's elements)"
                    )

    def _require_cutoff(self) -> None:
        if self.cutoff is None:
            raise RuntimeError("AtomsDataModule.set_cutoff(model.cutoff) must be called first")

    def statistics(self) -> DatasetStatistics:
        """Training-split statistics at the current cutoff (computed once)."""
        self._require_cutoff()
        if self._statistics is None:
            train = self.datasets["train"]
            graphs = [train[i] for i in self._stat_indices()]
            self._statistics = compute_statistics(self.frames["train"], graphs)
        return self._statistics

    def _stat_indices(self) -> list[int]:
        num = len(self.frames["train"])
        count = min(num, self.stat_frames)
        return torch.linspace(0, num - 1, count).round().long().unique().tolist()

    def train_batches(self, batch_size: int = 16) -> Iterator[dict[str, Tensor]]:
        """The ``stat_frames`` subset of the training split, for models' input normalisation."""
        self._require_cutoff()
        train = self.datasets["train"]
        indices = self._stat_indices()
        for start in range(0, len(indices), batch_size):
            yield collate_graphs([train[i] for i in indices[start : start + batch_size]])

    def rank_sampler(self, stage: str) -> DistributedSampler | None:
        """This rank's share of a split under DDP (None in one process; Lightning then injects
        no sampler of its own). Training: frames r, r+W, r+2W, ... (rank r of W) of the epoch's
        permutation seeded ``shuffle_seed + epoch``, which in epoch 0 is the one process's order,
        so W ranks of batch b see the frames of one process with batch W·b; padded by repeats
        to equal steps per rank. Validation and test: every frame exactly once (ranks may
        differ by one batch: no collective runs per evaluation batch)."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return None
        dataset, world = self.datasets[stage], trainer.world_size
        if len(dataset) < world:
            raise DataError(f"{self.path}: the {stage} split has {len(dataset)} frame(s) for "
                            f"{world} ranks; expected at least one frame per rank")
        if stage == "train":
            return DistributedSampler(dataset, world, trainer.global_rank, shuffle=True,
                                      seed=self.shuffle_seed)
        return UnrepeatedDistributedSampler(dataset, world, trainer.global_rank, shuffle=False)

    def _loader(self, stage: str, shuffle: bool) -> StatefulDataLoader:
        self._require_cutoff()
        sampler = self.rank_sampler(stage)
        shuffle = shuffle and sampler is None
        return StatefulDataLoader(
            self.datasets[stage],
            batch_size=self.batch_size if stage == "train" else self.eval_batch_size,
            shuffle=shuffle,
            sampler=sampler,
            generator=torch.Generator().manual_seed(self.shuffle_seed) if shuffle else None,
            collate_fn=collate_graphs,
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> StatefulDataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> StatefulDataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> StatefulDataLoader:
        return self._loader("test", shuffle=False)
