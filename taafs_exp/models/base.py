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
    """``type_map`` as a list of str; ValueError when it is unresolved (None), empty, repeats a
    symbol or names unknown ones."""
    if type_map is None:
        raise ValueError(
            f"{owner}: type_map is None; resolve 'type_map: null' from the data first "
            f"({owner}.resolve_hparams)"
        )
    symbols = [str(s) for s in type_map]
    if not symbols or len(set(symbols)) != len(symbols):
        raise ValueError(f"{owner}: type_map {symbols} must be non-empty without repeats")
    unknown = [s for s in symbols if s not in atomic_numbers]
    if unknown:
        raise ValueError(f"{owner}: unknown element symbol(s) {unknown} in type_map {symbols}")
    return symbols


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

    A backbone with element types calls :meth:`set_type_map` in its constructor and keeps its
    per-type energy shifts e_t (eV) in the buffer named by :attr:`energy_shift_buffer`; then
    :meth:`atom_types`, the type-map checks and the shift fit of :meth:`fit_statistics` are
    the ones here.

    Attributes:
        cutoff: neighbour-list radius the data layer must build pairs for, Å.
        type_map: element symbols; type t is ``type_map[t]``.
        energy_shift_buffer: name of the (T,) shift buffer (a checkpoint key, so per backbone).
    """

    cutoff: float
    type_map: list[str]
    energy_shift_buffer: str = "energy_shift"

    def set_type_map(self, type_map: Sequence[str] | None) -> None:
        """Keep ``type_map`` (checked by :func:`check_type_map`) and its lookup Z → t, the
        buffer ``type_lookup`` (not saved: it follows from the type map)."""
        self.type_map = check_type_map(type(self).__name__, type_map)
        self.register_buffer("type_lookup", type_lookup(self.type_map), persistent=False)

    def atom_types(self, numbers: Tensor) -> Tensor:
        """(N,) type index of every atom; ValueError naming the elements outside ``type_map``."""
        return atom_types(type(self).__name__, numbers, self.type_lookup, self.type_map)

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
        """Set data-dependent buffers from the training split, once before training.

        Here the per-type energy shift e_t = ``stats.energy_shift[Z_t]`` (eV; 0 for a type the
        split lacks; ValueError when the split has elements outside ``type_map``); backbones
        extend it (input normalisation, output scale) with ``train_batches``.
        """
        shift = energy_shift_per_type(type(self).__name__, stats, self.type_map)
        getattr(self, self.energy_shift_buffer).copy_(shift)

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
