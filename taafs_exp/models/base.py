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
from ase.data import chemical_symbols
from torch import Tensor, nn

from taafs_exp.data.frame import Frame
from taafs_exp.data.stats import DatasetStatistics

#: Builds one activation module; backbones call it once per layer (``num_channels`` = width).
ActivationFactory = Callable[..., nn.Module]


class Potential(nn.Module):
    """Base class of the backbones.

    Attributes:
        cutoff: neighbour-list radius the data layer must build pairs for, Å.
    """

    cutoff: float

    def forward(self, batch: dict[str, Tensor]) -> Tensor:  # pragma: no cover - interface
        """Return the (F,) total energies, eV, of the frames in ``batch``."""
        raise NotImplementedError

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
