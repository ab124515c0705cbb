"""The contract every backbone (DP, ANI-2x, PaiNN, CHGNet) fulfils.

A backbone maps a flat batch (see :mod:`taafs_exp.data.keys`) to one total energy
per frame, in eV. Forces are never computed here: :class:`~taafs_exp.training.PotentialModule`
takes -dE/dR by autograd, so every backbone must keep ``batch[POSITIONS]`` (and
``batch[SHIFTS]``) in its graph and use only twice-differentiable operations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from ase.data import atomic_numbers, chemical_symbols
from torch import Tensor, nn

from taafs_exp.data import keys as K
from taafs_exp.data.frame import Frame
from taafs_exp.data.stats import DatasetStatistics

#: Builds one activation module; backbones call it once per layer (``num_channels`` = width).
ActivationFactory = Callable[..., nn.Module]
#: The ``precision`` option of every backbone.
PRECISIONS: dict[str, torch.dtype] = {"float64": torch.float64, "float32": torch.float32}


def precision_dtype(owner: str, precision: str) -> torch.dtype:
    """The dtype named by ``precision``; ValueError naming ``owner`` and the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"{owner}: precision {precision!r}, expected one of {list(PRECISIONS)}")
    return PRECISIONS[precision]


def check_type_map(owner: str, type_map: Sequence[str] | None) -> list[str]:
    """``type_map`` as a list; ValueError when it is unresolved (None) or names unknown symbols."""
    if type_map is None:
        raise ValueError(f"{owner}: type_map is None; resolve 'type_map: null' from the data first")
    unknown = [s for s in type_map if s not in atomic_numbers]
    if unknown:
        raise ValueError(
            f"{owner}: unknown element symbol(s) {unknown} in type_map {list(type_map)}"
        )
    return list(type_map)


def type_lookup(type_map: Sequence[str]) -> Tensor:
    """(119,) int64 map from atomic number to type index, −1 for elements outside ``type_map``."""
    lookup = torch.full((len(chemical_symbols),), -1, dtype=torch.long)
    for t, symbol in enumerate(type_map):
        if symbol not in atomic_numbers:
            raise ValueError(f"type_map: unknown element symbol {symbol!r} in {list(type_map)}")
        lookup[atomic_numbers[symbol]] = t
    return lookup


def atom_types(owner: str, numbers: Tensor, lookup: Tensor, type_map: Sequence[str]) -> Tensor:
    """Type index of every atom; ValueError naming the elements outside ``type_map``."""
    types = lookup.to(numbers.device)[numbers]
    if bool((types < 0).any()):
        unknown = sorted({chemical_symbols[int(z)] for z in numbers[types < 0].tolist()})
        raise ValueError(
            f"{owner}: element(s) {unknown} not in the model's type_map {list(type_map)}"
        )
    return types


def energy_shift_per_type(
    owner: str, stats: DatasetStatistics, type_map: Sequence[str]
) -> Tensor:
    """(T,) float64 per-type energy shift, eV, from ``stats`` (0 for a type the split lacks).

    ValueError when the training split has elements outside ``type_map``.
    """
    known = {atomic_numbers[s] for s in type_map}
    unknown = [chemical_symbols[z] for z in sorted(set(stats.energy_shift) - known)]
    if unknown:
        raise ValueError(
            f"{owner}: training data has element(s) {unknown} not in the model's type_map "
            f"{list(type_map)}"
        )
    shift = [stats.energy_shift.get(atomic_numbers[s], 0.0) for s in type_map]
    return torch.tensor(shift, dtype=torch.float64)


class Potential(nn.Module):
    """Base class of the backbones.

    Attributes:
        cutoff: neighbour-list radius the data layer must build pairs for, Å.
    """

    cutoff: float

    def atomic_energies(self, batch: dict[str, Tensor]) -> Tensor:  # pragma: no cover
        """(N,) energy of every atom, eV; backbones with an atomic decomposition define it."""
        raise NotImplementedError

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """(F,) total energies, eV: the sum of :meth:`atomic_energies` over each frame."""
        energies = self.atomic_energies(batch)
        total = energies.new_zeros(batch[K.NUM_ATOMS].shape[0])
        return total.index_add(0, batch[K.BATCH], energies)

    @torch.no_grad()
    def fit_statistics(
        self, stats: DatasetStatistics, train_batches: Iterable[dict[str, Tensor]]
    ) -> None:
        """Set data-dependent buffers (energy shift, input normalisation) from the training split.

        Called once before training; the default uses nothing.
        """

    @classmethod
    def resolve_hparams(cls, hparams: dict[str, Any], train_frames: Sequence[Frame]) -> dict[str, Any]:
        """Fill the hyper-parameters the config leaves to the data (before the model is built).

        The default replaces ``type_map: null`` by the chemical symbols of the training
        elements, in order of atomic number; backbones extend it (DP: ``sel: auto``).
        """
        hparams = dict(hparams)
        if "type_map" in hparams and hparams["type_map"] is None:
            elements = sorted({int(z) for f in train_frames for z in f.numbers.tolist()})
            hparams["type_map"] = [chemical_symbols[z] for z in elements]
        return hparams
