"""ANI-2x (Devereux et al., JCTC 2020) built untrained from torchani 2.x, on the project's pairs.

Pieces taken from torchani (``torchani.aev.AEVComputer.like_2x``, ``torchani.nn.ANINetworks``,
``torchani.nn.AtomicNetwork``); nothing is downloaded. For atom i of element Z_i:

* AEV G_i (``AEVComputer.like_2x``, lengths in Å): radial terms
  G^R_{i,s,k} = Σ_{j∈s, r_ij<5.1} ¼·exp(−19.7 (r_ij − R_k)²) f_c(r_ij), 16 shifts R_k in
  [0.8, 5.1); angular terms
  G^A_{i,st,k,m} = Σ_{j<l; j∈s, l∈t} 2·((1 + cos(θ_ijl − θ_m))/2)^14.1 ·
  exp(−12.5 ((r_ij + r_il)/2 − R_k)²) f_c(r_ij) f_c(r_il) within 3.5 Å, 8 shifts R_k,
  4 sections θ_m, θ_ijl = acos(0.95 cos ∠jil); f_c(r) = ½ cos(π r/r_c) + ½ (C¹ at r_c).
  With the seven ANI-2x elements G_i has 16·7 + 32·28 = 1008 entries.
* element network (torchani's ``AtomicNetwork`` layout: Linear → activation per hidden layer,
  final Linear → 1), one per element, output in Hartree;
* E = Σ_i [E_h · NN_{Z_i}(G_i) + e_{Z_i}] in eV, E_h = ``torchani.units.HARTREE_TO_EV``
  = 27.211386024367243 eV/Ha (equal to ``ase.units.Hartree``), the one Hartree → eV conversion;
  e_Z the per-element shift in eV (fitted on the training split, or the published ANI-2x
  self-energies).

AEVs come from the data layer's neighbour pairs (``edge_index``/``shifts``, periodic images
included), handed to ``AEVComputer.compute_from_neighbors`` as torchani's half list, so there is
one neighbour list in the project, no padding, and periodic water works as molecules do.

Unlike torchani's ``AtomicNetwork``, which applies one shared activation module after every
hidden layer, every hidden layer of every element network here owns its activation instance
(``activation(num_channels=width)`` is called once per layer and element), so TAAFS curves are
per layer and element.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torchani.aev import AEVComputer
from torchani.neighbors import Neighbors
from torchani.nn import ANINetworks, AtomicNetwork
from torchani.units import HARTREE_TO_EV
from torchani.utils import SYMBOLS_2X

from taafs_exp.activations import FIXED_ACTIVATIONS, build_activation
from taafs_exp.data import keys as K
from taafs_exp.data.stats import DatasetStatistics
from taafs_exp.models.base import ActivationFactory, Potential, precision_dtype

#: Hidden widths of the ANI-2x element networks (``ANINetworks.like_2x``).
PAPER_HIDDEN_DIMS: dict[str, tuple[int, ...]] = {
    "H": (256, 192, 160),
    "C": (224, 192, 160),
    "N": (192, 160, 128),
    "O": (192, 160, 128),
    "S": (160, 128, 96),
    "F": (160, 128, 96),
    "Cl": (160, 128, 96),
}
#: Published ANI-2x self-energies, Hartree (wB97X/6-31G(d) linear fit; isayev/ASE_ANI
#: ``ani_models/ani-2x_8x/sae_linfit.dat``, the values of torchani's pretrained ANI2x).
ANI2X_SELF_ENERGIES_HA: dict[str, float] = {
    "H": -0.5978583943827134,
    "C": -38.08933878049795,
    "N": -54.711968298621066,
    "O": -75.19106774742086,
    "S": -398.1577125334925,
    "F": -99.80348506781634,
    "Cl": -460.1681939421027,
}
ENERGY_SHIFTS = ("data", "ani2x")


class ElementNetwork(AtomicNetwork):
    """torchani's ``AtomicNetwork`` (same ``layers``, ``final_layer``), one activation per layer.

    y = W_L φ_{L−1}(… φ_1(W_1 x + b_1) …) + b_L, φ_l = ``activations[l]``.

    Args:
        layer_dims: (in, hidden..., out).
        activation: factory called once per hidden layer with ``num_channels`` = its width.
        bias: biases in every Linear (ANI-2x: True).
    """

    def __init__(
        self, layer_dims: Sequence[int], activation: ActivationFactory, bias: bool = True
    ) -> None:
        super().__init__(layer_dims, activation=nn.Identity(), bias=bias)
        del self.activation  # the shared module of the parent; replaced by one per layer
        self.activations = nn.ModuleList(activation(num_channels=d) for d in layer_dims[1:-1])

    def forward(self, features: Tensor) -> Tensor:
        for layer, activation in zip(self.layers, self.activations):
            features = activation(layer(features))
        return self.final_layer(features)

    def extra_repr(self) -> str:
        dims = [layer.in_features for layer in self.layers] + [
            self.final_layer.in_features,
            self.final_layer.out_features,
        ]
        return f"layer_dims={tuple(dims)}, bias={self.has_biases}"


class ElementNetworks(ANINetworks):
    """torchani's per-element dispatch, E_i = NN_{Z_i}(G_i), loading state dicts as nn.Module does.

    ``ANINetworks._load_from_state_dict`` renames every key without ``layers``/``final_layer``
    (torchani 1.x checkpoints), which would break the activations' parameters.
    """

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        nn.Module._load_from_state_dict(self, *args, **kwargs)


def half_neighbors(
    positions: Tensor, edge_index: Tensor, shifts: Tensor, cutoff: float
) -> Neighbors:
    """torchani's half neighbour list from the project's full one, pairs within ``cutoff`` (Å).

    Every pair is listed twice in ``edge_index`` ((i, j, s) and (j, i, −s), with
    r_ij = x_j − x_i + s); the copy kept has i < j, or for an atom and its own periodic image
    (i = j) the shift s whose first non-zero component is positive. torchani's convention is
    ``diff_vectors = x[idx0] − x[idx1] + shift``, so the kept pair is stored as (j, i) with
    ``diff_vectors`` = r_ij. Distances stay in the autograd graph of ``positions`` and ``shifts``.
    """
    i, j = edge_index
    with torch.no_grad():
        first = (shifts != 0).to(torch.uint8).argmax(dim=1, keepdim=True)
        positive = shifts.gather(1, first).squeeze(1) > 0
        vectors = positions[j] - positions[i] + shifts
        keep = ((i < j) | ((i == j) & positive)) & (vectors.norm(dim=1) <= cutoff)
        keep = keep.nonzero().squeeze(1)
    i, j = i[keep], j[keep]
    vectors = positions[j] - positions[i] + shifts[keep]
    return Neighbors(torch.stack([j, i]), vectors.norm(dim=1), vectors)


class ANI2x(Potential):
    """The ANI-2x architecture (torchani 2.x AEV and element networks), energy in eV.

    Args:
        type_map: element symbols with a network, a subset of the seven ANI-2x elements
            (default all seven, torchani's order H C N O S F Cl); resolve ``null`` from the data
            (:meth:`Potential.resolve_hparams`) before instantiating.
        hidden_dims: hidden widths per element symbol; elements not listed get
            ``default_hidden_dims``. The ANI-2x sizes are :data:`PAPER_HIDDEN_DIMS`.
        default_hidden_dims: hidden widths of the elements missing from ``hidden_dims``.
        activation: factory called once per hidden layer and element with
            ``num_channels`` = width; None builds ``base_activation``.
        base_activation: name of the published activation, CELU(α = 0.1); TAAFS configs start
            their curve from it.
        energy_shift: ``data``: e_Z from the training split (``stats.energy_shift``, eV; 0 for
            an element absent there); ``ani2x``: the published ANI-2x self-energies in eV.
        precision: ``float32`` (torchani's) or ``float64``, dtype of parameters, buffers and the
            computation.
    """

    energy_shift_buffer = "self_energies"

    def __init__(
        self,
        type_map: Sequence[str] = SYMBOLS_2X,
        hidden_dims: Mapping[str, Sequence[int]] | None = None,
        default_hidden_dims: Sequence[int] = (160, 128, 96),
        activation: ActivationFactory | None = None,
        base_activation: str = "celu",
        energy_shift: str = "data",
        precision: str = "float32",
    ) -> None:
        super().__init__()
        self.set_type_map(type_map)
        unsupported = [s for s in self.type_map if s not in SYMBOLS_2X]
        if unsupported:
            raise ValueError(
                f"ANI2x: element(s) {unsupported} in type_map {self.type_map} are not "
                f"supported; ANI-2x covers {list(SYMBOLS_2X)}"
            )
        for option, value, valid in (
            ("energy_shift", energy_shift, ENERGY_SHIFTS),
            ("base_activation", base_activation, list(FIXED_ACTIVATIONS)),
        ):
            if value not in valid:
                raise ValueError(f"ANI2x: {option}={value!r}, expected one of {list(valid)}")
        self.base_activation = base_activation
        self.energy_shift = energy_shift
        self.dtype = precision_dtype("ANI2x", precision)
        factory = activation or functools.partial(build_activation, base_activation)
        hidden_dims = dict(hidden_dims or {})
        self.aev_computer = AEVComputer.like_2x(num_species=len(self.type_map))
        self.cutoff = float(self.aev_computer.radial.cutoff)
        width = self.aev_computer.out_dim
        self.networks = ElementNetworks(
            {
                s: ElementNetwork(
                    (width, *hidden_dims.get(s, default_hidden_dims), 1), factory, bias=True
                )
                for s in self.type_map
            }
        )
        shifts = [
            HARTREE_TO_EV * ANI2X_SELF_ENERGIES_HA[s] if energy_shift == "ani2x" else 0.0
            for s in self.type_map
        ]
        self.register_buffer("self_energies", torch.tensor(shifts, dtype=torch.float64))
        self.to(self.dtype)

    def extra_repr(self) -> str:
        return (
            f"type_map={self.type_map}, cutoff={self.cutoff}, energy_shift={self.energy_shift!r}, "
            f"base_activation={self.base_activation!r}, dtype={self.dtype}"
        )

    @torch.no_grad()
    def fit_statistics(
        self, stats: DatasetStatistics, train_batches: Iterable[dict[str, Tensor]]
    ) -> None:
        """``energy_shift: data``: e_Z from the training split as every backbone
        (:meth:`Potential.fit_statistics`); ``ani2x`` keeps the published self-energies."""
        if self.energy_shift == "data":
            super().fit_statistics(stats, train_batches)

    def aev(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """AEVs (N, D) of the batch atoms and their element indices (N,)."""
        positions = batch[K.POSITIONS].to(self.dtype)
        elem = self.atom_types(batch[K.NUMBERS])
        neighbors = half_neighbors(
            positions, batch[K.EDGE_INDEX], batch[K.SHIFTS].to(self.dtype), self.cutoff
        )
        aev = self.aev_computer.compute_from_neighbors(elem[None], positions[None], neighbors)
        return aev[0], elem

    def atomic_energies(self, batch: dict[str, Tensor]) -> Tensor:
        """E_i = E_h · NN_{Z_i}(G_i) + e_{Z_i}, (N,), eV."""
        aev, elem = self.aev(batch)
        atomic = self.networks(elem[None], aev[None], atomic=True)[0]  # (N,) Hartree
        return HARTREE_TO_EV * atomic + self.self_energies[elem]
