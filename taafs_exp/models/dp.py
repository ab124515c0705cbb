"""Deep Potential – Smooth Edition with the ``se_e2_a`` descriptor (Zhang et al., NeurIPS 2018).

Follows DeePMD-kit's PyTorch backend (``deepmd/pt/model/descriptor/se_a.py``, ``env_mat.py``,
``deepmd/dpmodel/utils/env_mat_stat.py``, ``network/mlp.py``, ``task/ener.py``), in DeePMD-kit's
units (Å, eV). For atom i of type c with neighbours j within r_c:

* environment matrix (``prod_env_mat``): one row per neighbour slot,
  R_ij = s(r_ij)·(1, x_ij/r_ij, y_ij/r_ij, z_ij/r_ij), with the switch (``compute_smooth_weight``)
  s(r) = 1/r · w(u), u = (r − r_s)/(r_c − r_s), w = u³(−6u² + 15u − 10) + 1 clamped to [0, 1],
  so s = 1/r below r_s, 0 beyond r_c, and C² everywhere;
* normalisation: R̃_ij = (R_ij − davg_c) / dstd_c with per-type statistics of the training split;
* embedding (``filter_layers``): G_ij = 𝒢_{t_j}(R̃_ij,0) ∈ R^M, a ResNet MLP per neighbour type
  (per (centre, neighbour) type pair when ``type_one_side`` is false);
* descriptor: T_i = R̃_iᵀ G_i / N_c ∈ R^{4×M} (N_c = Σ sel), D_i = T_iᵀ T_i^< ∈ R^{M×M'} with
  T_i^< the first M' = ``axis_neuron`` columns, so D_i = (Gᵀ R̃)(R̃ᵀ G^<) / N_c²;
* fitting (``EnergyFittingNet``): E_i = ℱ_{c}(D_i) + b_c, an MLP per element ending in a linear
  layer, b_c the per-element energy bias (eV); E = Σ_i E_i.

Neighbour slots: DeePMD-kit gives every atom ``sel[t]`` slots for neighbours of type t, filled
(nearest first) by the real neighbours and padded with empty slots whose raw row is exactly 0 —
the row of a neighbour at r ≥ r_c. Empty slots therefore enter the descriptor exactly like a
neighbour just beyond the cutoff (R̃ = −davg/dstd, as in DeePMD-kit), which keeps E smooth when a
neighbour crosses r_c; normalised empty rows set to 0 instead would make E jump there. The padded
(N, Σsel, 4) matrix is built here from ``edge_index``/``shifts``; r and 1/r are only computed for
real pairs (no NaN in any derivative), and 𝒢 runs on filled slots only, the identical empty slots
being added in closed form (:func:`_embed`). Unlike DeePMD-kit, which silently keeps only the
nearest ``sel[t]``, an atom with more than ``sel[t]`` neighbours of type t raises
:class:`SelOverflowError`: a truncated environment would change the energy discontinuously.

Checked against DeePMD-kit 3.2.0 (PyTorch backend) with copied weights on a water frame:
environment statistics, energy and forces agree to machine precision; 1 014 182 parameters for
its water example, as here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from taafs_exp.activations import build_activation
from taafs_exp.data import keys as K
from taafs_exp.data.frame import Frame
from taafs_exp.data.neighbors import neighbor_list
from taafs_exp.data.stats import DatasetStatistics
from taafs_exp.models.base import (
    ActivationFactory,
    Potential,
    atom_types,
    precision_dtype,
    type_lookup,
)

#: DeePMD-kit's ``sel: auto`` margin (``BaseUpdateSel.parse_auto_sel_ratio``).
AUTO_SEL_RATIO = 1.1
#: Floor of the environment-matrix std and its value for a type without data (``compute_std``).
STD_PROTECTION = 1e-2
STD_DEFAULT = 0.1


class SelOverflowError(ValueError):
    """An atom has more neighbours of one type within r_c than its ``sel`` slots."""


def _pair_groups(
    edge_index: Tensor, vectors: Tensor, types: Tensor, ntypes: int, rcut: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Keep the pairs with |r_ij| < r_c and group them by (centre i, neighbour type t_j).

    Returns:
        keep: indices of the kept pairs, sorted by i, then t_j, then distance (DeePMD-kit's order).
        group: (kept,) i·ntypes + t_j of each kept pair, in that order.
        counts: (N, ntypes) neighbours of each type within r_c of each atom.
    """
    with torch.no_grad():
        dist = vectors.detach().norm(dim=-1)
        keep = torch.nonzero(dist < rcut).squeeze(1)
        keep = keep[torch.argsort(dist[keep], stable=True)]
        group = edge_index[0, keep] * ntypes + types[edge_index[1, keep]]
        order = torch.argsort(group, stable=True)
        keep, group = keep[order], group[order]
        counts = torch.bincount(group, minlength=types.shape[0] * ntypes)
    return keep, group, counts.view(-1, ntypes)


def _wrap_up_4(x: float) -> int:
    """DeePMD-kit's ``wrap_up_4``: int(x) rounded up to a multiple of 4."""
    return 4 * ((int(x) + 3) // 4)


def auto_sel(
    frames_or_graphs: Iterable[Frame | dict[str, Tensor]],
    type_map: Sequence[str],
    rcut: float,
    ratio: float = AUTO_SEL_RATIO,
) -> list[int]:
    """``sel: auto`` as DeePMD-kit's ``update_sel``: sel_t = wrap_up_4(ratio · max_i n_i,t).

    n_i,t is the number of neighbours of type t within ``rcut`` (Å) of atom i, maximised over
    every atom of every frame; graphs must carry pairs built with a cutoff ≥ ``rcut``.
    """
    lookup = type_lookup(type_map)
    ntypes = len(type_map)
    largest = torch.zeros(ntypes, dtype=torch.long)
    for item in frames_or_graphs:
        if isinstance(item, Frame):
            positions, numbers = item.positions, item.numbers
            edge_index, shifts = neighbor_list(positions, rcut, item.cell, item.pbc)
        else:
            positions, numbers = item[K.POSITIONS], item[K.NUMBERS]
            edge_index, shifts = item[K.EDGE_INDEX], item[K.SHIFTS]
        types = atom_types("DeepPotSeA", numbers, lookup, type_map)
        vectors = positions[edge_index[1]] - positions[edge_index[0]] + shifts
        counts = _pair_groups(edge_index, vectors, types, ntypes, rcut)[2]
        if counts.numel():
            largest = torch.maximum(largest, counts.max(0).values.cpu())
    return [_wrap_up_4(n * ratio) for n in largest.tolist()]


class _ResidualLayer(nn.Module):
    """One DeePMD-kit ``MLPLayer`` with ``resnet=True``: y = idt ⊙ φ(x W + b) + skip(x).

    skip(x) = x when out = in, [x, x] when out = 2·in, 0 otherwise; the timestep vector idt
    (``resnet_dt``) exists only on layers with a skip. Initialisation as DeePMD-kit:
    W ~ N(0, 1/(in + out)), b ~ N(0, 1), idt ~ N(0.1, 0.001²).
    """

    def __init__(self, n_in: int, n_out: int, activation: nn.Module, resnet_dt: bool) -> None:
        super().__init__()
        self.linear = _linear(n_in, n_out)
        self.activation = activation
        self.skip = n_out in (n_in, 2 * n_in)
        self.idt = (
            nn.Parameter(torch.normal(0.1, 0.001, (n_out,))) if resnet_dt and self.skip else None
        )

    def forward(self, x: Tensor) -> Tensor:
        y = self.activation(self.linear(x))
        if self.idt is not None:
            y = y * self.idt
        if not self.skip:
            return y
        return y + (x if y.shape[-1] == x.shape[-1] else torch.cat([x, x], dim=-1))


def _linear(n_in: int, n_out: int) -> nn.Linear:
    """nn.Linear with DeePMD-kit's default initialisation."""
    layer = nn.Linear(n_in, n_out)
    nn.init.normal_(layer.weight, std=(n_in + n_out) ** -0.5)
    nn.init.normal_(layer.bias)
    return layer


def _mlp(
    n_in: int, widths: Sequence[int], factory: ActivationFactory, resnet_dt: bool
) -> list[nn.Module]:
    """Hidden layers of DeePMD-kit's ``EmbeddingNet``; one activation instance per layer."""
    layers: list[nn.Module] = []
    for width in widths:
        layers.append(_ResidualLayer(n_in, width, factory(num_channels=width), resnet_dt))
        n_in = width
    return layers


def _embed(net: nn.Module, rows: Tensor, filled: Tensor, empty_row: Tensor) -> Tensor:
    """Σ_slots R̃ᵀ 𝒢(R̃_0) of one neighbour type, (n, 4, M), from normalised rows (n, sel_t, 4).

    𝒢 runs on the filled slots only; every empty slot has the row (e, 0, 0, 0), e = ``empty_row``
    (n, 1), so together they add n_empty · e · 𝒢(e) to row 0 — what DeePMD-kit computes slot by
    slot, at the cost of one 𝒢 evaluation per atom.
    """
    g = net(rows[filled][:, :1])
    g = g.new_zeros(*filled.shape, g.shape[-1]).index_put((filled,), g)
    n_empty = (~filled).sum(1, keepdim=True).to(rows.dtype)
    empty = (n_empty * empty_row) * net(empty_row)
    return rows.transpose(1, 2) @ g + nn.functional.pad(empty[:, None], (0, 0, 0, 3))


class DeepPotSeA(Potential):
    """DeepPot-SE (``se_e2_a`` descriptor + ``ener`` fitting) as in DeePMD-kit.

    Args:
        type_map: element symbols; type t is ``type_map[t]``. Resolve ``null`` from the data
            before instantiating.
        rcut: cutoff r_c, Å. rcut_smth: start r_s of the switch, Å.
        sel: slots per neighbour type (resolve ``auto`` with :func:`auto_sel` first).
        neuron: embedding widths. axis_neuron: M', columns of G^<.
        resnet_dt: timestep vectors in the embedding net (DeePMD-kit's descriptor ``resnet_dt``).
        type_one_side: one embedding net per neighbour type (True) or per (centre, neighbour).
        fitting_neuron: fitting widths. fitting_resnet_dt: timesteps in the fitting net.
        precision: ``float64`` or ``float32``, dtype of parameters, buffers and the computation.
        embedding_activation, fitting_activation: factories called once per hidden layer with
            ``num_channels=width``; ``base_activation`` when None.
        base_activation: registry name of DP's published activation (DeePMD-kit: tanh); TAAFS
            configs start their curves from it.
    """

    energy_shift_buffer = "bias_atom_e"  # DeePMD-kit's name of the per-type energy bias

    def __init__(
        self,
        type_map: Sequence[str],
        rcut: float = 6.0,
        rcut_smth: float = 0.5,
        sel: Sequence[int] = (46, 92),
        neuron: Sequence[int] = (25, 50, 100),
        axis_neuron: int = 16,
        resnet_dt: bool = False,
        type_one_side: bool = True,
        fitting_neuron: Sequence[int] = (240, 240, 240),
        fitting_resnet_dt: bool = True,
        precision: str = "float64",
        embedding_activation: ActivationFactory | None = None,
        fitting_activation: ActivationFactory | None = None,
        base_activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.set_type_map(type_map)
        if isinstance(sel, str):
            raise ValueError(
                f"DeepPotSeA: sel={sel!r}; resolve 'sel: auto' from the data "
                "(DeepPotSeA.resolve_hparams) before instantiating"
            )
        if len(sel) != len(self.type_map):
            raise ValueError(
                f"DeepPotSeA: sel {list(sel)} needs one entry per type of {self.type_map}"
            )
        if not 0 <= rcut_smth < rcut:
            raise ValueError(f"DeepPotSeA: need 0 ≤ rcut_smth < rcut, got {rcut_smth}, {rcut}")
        dtype = precision_dtype("DeepPotSeA", precision)
        if axis_neuron > neuron[-1]:
            raise ValueError(
                f"DeepPotSeA: axis_neuron {axis_neuron} > last embedding width {neuron[-1]}"
            )
        self.ntypes = len(self.type_map)
        self.cutoff = self.rcut = float(rcut)
        self.rcut_smth = float(rcut_smth)
        self.sel = [int(s) for s in sel]
        self.sec = [0]
        for s in self.sel:
            self.sec.append(self.sec[-1] + s)
        self.nnei = self.sec[-1]
        self.neuron = list(neuron)
        self.axis_neuron = axis_neuron
        self.type_one_side = type_one_side
        default = functools.partial(build_activation, base_activation)
        embed = embedding_activation or default
        fit = fitting_activation or default
        num_nets = self.ntypes if type_one_side else self.ntypes**2
        #: net of neighbour type t (and centre type c): filter_layers[t] or [t·ntypes + c]
        self.filter_layers = nn.ModuleList(
            nn.Sequential(*_mlp(1, neuron, embed, resnet_dt)) for _ in range(num_nets)
        )
        self.fitting_nets = nn.ModuleList(
            nn.Sequential(
                *_mlp(neuron[-1] * axis_neuron, fitting_neuron, fit, fitting_resnet_dt),
                _linear(fitting_neuron[-1] if fitting_neuron else neuron[-1] * axis_neuron, 1),
            )
            for _ in range(self.ntypes)
        )
        self.register_buffer("davg", torch.zeros(self.ntypes, 4))
        self.register_buffer("dstd", torch.ones(self.ntypes, 4))
        self.register_buffer("bias_atom_e", torch.zeros(self.ntypes))
        self.to(dtype)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters, buffers and computation (follows ``.to()``)."""
        return self.davg.dtype

    @classmethod
    def resolve_hparams(
        cls, hparams: dict[str, Any], train_frames: Sequence[Frame]
    ) -> dict[str, Any]:
        """``type_map: null`` as the base class does; ``sel: auto`` or ``auto:<ratio>`` by
        :func:`auto_sel` on the training frames."""
        hparams = super().resolve_hparams(hparams, train_frames)
        sel = hparams.get("sel")
        if isinstance(sel, str):
            word, _, ratio = sel.partition(":")
            if word != "auto":
                raise ValueError(
                    f"DeepPotSeA: sel {sel!r}, expected a list of ints, 'auto' or 'auto:<ratio>'"
                )
            hparams["sel"] = auto_sel(
                train_frames,
                hparams["type_map"],
                hparams.get("rcut", 6.0),
                float(ratio or AUTO_SEL_RATIO),
            )
        return hparams

    def extra_repr(self) -> str:
        return (
            f"type_map={self.type_map}, rcut={self.rcut}, rcut_smth={self.rcut_smth}, "
            f"sel={self.sel}, axis_neuron={self.axis_neuron}, dtype={self.dtype}"
        )

    def environment(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Raw environment matrix (N, Σsel, 4), its filled slots (N, Σsel) and atom types (N,).

        Slots of neighbour type t are columns sec[t] … sec[t+1]−1, nearest first; empty slots
        are exactly 0 and never pass through 1/r (no NaN in any derivative). Positions and
        shifts are cast to the model dtype and stay in the autograd graph.
        Raises SelOverflowError when an atom has more neighbours of a type than its slots.
        """
        positions = batch[K.POSITIONS].to(self.dtype)
        edge_index = batch[K.EDGE_INDEX]
        types = self.atom_types(batch[K.NUMBERS])
        shifts = batch[K.SHIFTS].to(self.dtype)
        vectors = positions[edge_index[1]] - positions[edge_index[0]] + shifts
        keep, group, counts = _pair_groups(edge_index, vectors, types, self.ntypes, self.rcut)
        sel = torch.tensor(self.sel, device=counts.device)
        if bool((counts > sel).any()):
            self._raise_overflow(batch, types, counts, sel)
        with torch.no_grad():
            first = torch.cumsum(counts.flatten(), 0) - counts.flatten()
            rank = torch.arange(keep.shape[0], device=keep.device) - first[group]
            sec = torch.tensor(self.sec[:-1], device=keep.device)
            slot = (group // self.ntypes) * self.nnei + sec[group % self.ntypes] + rank
        vec = vectors[keep]
        r = vec.norm(dim=-1, keepdim=True)
        u = ((r - self.rcut_smth) / (self.rcut - self.rcut_smth)).clamp(0.0, 1.0)
        s = (u**3 * (-6 * u**2 + 15 * u - 10) + 1) / r
        rows = torch.cat([s, s * vec / r], dim=-1)
        shape = (types.shape[0], self.nnei)
        env = rows.new_zeros(shape[0] * shape[1], 4).index_put((slot,), rows)
        filled = torch.zeros(shape[0] * shape[1], dtype=torch.bool, device=slot.device)
        filled = filled.index_put((slot,), torch.ones_like(slot, dtype=torch.bool))
        return env.view(*shape, 4), filled.view(shape), types

    def _raise_overflow(
        self, batch: dict[str, Tensor], types: Tensor, counts: Tensor, sel: Tensor
    ) -> None:
        excess = counts - sel
        atom, t = divmod(int(torch.argmax(excess)), self.ntypes)
        frame = int(batch[K.BATCH][atom])
        first_atom = int(batch[K.NUM_ATOMS][:frame].sum())
        raise SelOverflowError(
            f"DeepPotSeA: atom {atom - first_atom} ({self.type_map[int(types[atom])]}) of frame "
            f"{frame} in the batch has {int(counts[atom, t])} {self.type_map[t]} neighbours "
            f"within rcut={self.rcut} Å, more than sel[{t}]={self.sel[t]} (sel={self.sel}); "
            "raise sel or use 'sel: auto'"
        )

    def descriptor(self, env: Tensor, filled: Tensor, types: Tensor) -> Tensor:
        """D_i = (Gᵀ R̃)(R̃ᵀ G^<) / N_c², flattened to (N, M·M'), from the raw environment."""
        env = (env - self.davg[types][:, None]) / self.dstd[types][:, None]
        empty_row = -self.davg[types, :1] / self.dstd[types, :1]  # R̃_0 of an empty slot
        t_mat = env.new_zeros(env.shape[0], 4, self.neuron[-1])
        for t in range(self.ntypes):
            cols = slice(self.sec[t], self.sec[t + 1])
            if self.type_one_side:
                net = self.filter_layers[t]
                t_mat = t_mat + _embed(net, env[:, cols], filled[:, cols], empty_row)
                continue
            for c in range(self.ntypes):
                i = torch.nonzero(types == c).squeeze(1)
                net = self.filter_layers[t * self.ntypes + c]
                t_mat = t_mat.index_add(
                    0, i, _embed(net, env[i, cols], filled[i, cols], empty_row[i])
                )
        t_mat = t_mat / self.nnei
        d = t_mat.transpose(1, 2) @ t_mat[..., : self.axis_neuron]
        return d.flatten(1)

    def atomic_energies(self, batch: dict[str, Tensor]) -> Tensor:
        """E_i = ℱ_{c_i}(D_i) + b_{c_i}, (N,), eV."""
        env, filled, types = self.environment(batch)
        d = self.descriptor(env, filled, types)
        energies = d.new_zeros(d.shape[0])
        for c, net in enumerate(self.fitting_nets):
            atoms = torch.nonzero(types == c).squeeze(1)
            energies = energies.index_add(
                0, atoms, net(d[atoms]).squeeze(-1) + self.bias_atom_e[c]
            )
        return energies

    @torch.no_grad()
    def fit_statistics(
        self, stats: DatasetStatistics, train_batches: Iterable[dict[str, Tensor]]
    ) -> None:
        """DeePMD-kit's ``EnvMatStatSe`` and output bias.

        Per centre type c, over every slot (empty ones count as 0) of every atom of type c:
        davg_c = (mean of s, 0, 0, 0); dstd_c = (std of s, std of s·x/r ×3) with the three
        angular columns pooled; std floored at 0.01, 0.1 for a type absent from the data.
        b_c = ``stats.energy_shift[Z_c]`` (eV; 0 for an element the split lacks), as every backbone.
        """
        super().fit_statistics(stats, train_batches)
        moments = torch.zeros(self.ntypes, 2, 3, dtype=torch.float64, device=self.davg.device)
        for batch in train_batches:
            env, _, types = self.environment({k: v.to(self.davg.device) for k, v in batch.items()})
            env = env.to(torch.float64)
            columns = (env[..., :1].flatten(1), env[..., 1:].flatten(1))  # s; s·x/r, s·y/r, s·z/r
            sums = [
                torch.stack([c.new_full(c.shape[:1], c.shape[1]), c.sum(1), (c**2).sum(1)], -1)
                for c in columns
            ]
            moments = moments.index_add(0, types, torch.stack(sums, 1))
        number, total, squares = moments.unbind(-1)
        mean = torch.where(number > 0, total / number.clamp(min=1), 0.0)
        var = (squares / number.clamp(min=1) - mean**2).clamp(min=0.0)
        std = torch.where(number > 0, var.sqrt().clamp(min=STD_PROTECTION), STD_DEFAULT)
        self.davg.zero_()
        self.davg[:, 0] = mean[:, 0]
        self.dstd.copy_(torch.cat([std[:, :1], std[:, 1:].expand(-1, 3)], 1))
