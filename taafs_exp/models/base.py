"""The contract every backbone (DP, ANI-2x, PaiNN, CHGNet) fulfils.

A backbone maps a flat batch (see :mod:`taafs_exp.data.keys`) to one total energy
per frame, in eV. Forces are never computed here: :class:`~taafs_exp.training.PotentialModule`
takes -dE/dR by autograd, so every backbone must keep ``batch[POSITIONS]`` (and
``batch[SHIFTS]``) in its graph and use only twice-differentiable operations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

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
