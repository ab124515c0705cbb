"""PaiNN, the polarizable atom interaction neural network (Schütt, Unke, Gastegger, ICML 2021).

Every atom i carries scalar features s_i ∈ R^F and vector features v_i ∈ R^{3×F}; s_i^0 is an
embedding of its element, v_i^0 = 0. For a pair r_ij = R_j − R_i (+ image shift), r = ‖r_ij‖ < r_c:

* filter: W_l(r) = (A_l e(r) + b_l)·f_c(r) ∈ R^{3F}, radial basis e_n(r) = sin(nπr/r_c)/r
  (n = 1..20, Å⁻¹), cosine cutoff f_c(r) = ½(cos(πr/r_c) + 1);
* message block: φ(s_j) ⊙ W_l(r_ij) = (a^s, a^vv, a^vs)_ij (φ: Linear–σ–Linear, F → 3F),
  Δs_i = Σ_j a^s_ij,  Δv_i = Σ_j a^vv_ij ⊙ v_j + a^vs_ij ⊙ r_ij/r;
* update block: U v_i, V v_i (linear over channels, no bias), ‖V v_i‖_ε = √(Σ_xyz (V v_i)² + ε),
  a(s_i, ‖V v_i‖_ε) = (a^vv, a^sv, a^ss)_i (a: Linear–σ–Linear, 2F → 3F),
  Δv_i = a^vv ⊙ U v_i,  Δs_i = a^sv ⊙ ⟨U v_i, V v_i⟩ + a^ss;
* energy: E = Σ_i σ·y(s_i) + μ_{Z_i}, y an atomwise MLP (F → F/2 → 1 in the paper), μ_Z the
  per-element shift (eV) and σ the force RMS of the training split taken in eV (y is O(1), so
  forces start at the scale of the labels, as in MACE and NequIP).

σ is the only activation of the network and sits in three kinds of scalar MLP: φ and a of every
interaction and the hidden layers of y; each gets its own module from the activation factory
(2·num_interactions + len(output_hidden) modules), so TAAFS learns one curve per layer.

Smoothness: ‖·‖_ε keeps every derivative finite at V v = 0 (an atom without neighbours keeps
v = 0); E is C¹ in the positions (W and W' vanish at r_c, so forces are continuous; the force
derivatives jump there, as with the paper's cosine cutoff).

Why not ``schnetpack``: its newest release on PyPI (2.1.1; there is no 2.2.0) requires
``sympy<=1.12`` while torch 2.13 requires ``sympy>=1.13.3``, so it cannot be installed beside the
torch pin; and its ``PaiNN`` takes one activation *callable* and hands the same object to every
interaction and mixing block (one shared module, hence one shared TAAFS curve). PaiNN is therefore
implemented here on the project's neighbour list with ``Tensor.index_add`` (pure torch, twice
differentiable, any device), following schnetpack's layout (v as (N, 3, F), xavier init, ε = 1e-8).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from taafs_exp.activations import build_activation
from taafs_exp.data import keys as K
from taafs_exp.data.stats import DatasetStatistics
from taafs_exp.models.base import ActivationFactory, Potential, precision_dtype



def _dense(n_in: int, n_out: int, bias: bool = True) -> nn.Linear:
    """nn.Linear with schnetpack's ``Dense`` init: xavier-uniform weight, zero bias."""
    layer = nn.Linear(n_in, n_out, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def _scalar_mlp(
    n_in: int, hidden: Sequence[int], n_out: int, activation: ActivationFactory
) -> nn.Sequential:
    """Linear → σ → … → Linear; one ``activation(num_channels=width)`` per hidden layer."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [_dense(n_in, width), activation(num_channels=width)]
        n_in = width
    return nn.Sequential(*layers, _dense(n_in, n_out))


def cosine_cutoff(r: Tensor, cutoff: float) -> Tensor:
    """f_c(r) = ½(cos(πr/r_c) + 1) for r < r_c, else 0 (dimensionless)."""
    inside = 0.5 * (torch.cos(math.pi * r / cutoff) + 1.0)
    return torch.where(r < cutoff, inside, torch.zeros_like(r))


class PaiNNInteraction(nn.Module):
    """One message block followed by one update block (module docstring), on (s, v)."""

    def __init__(
        self, num_features: int, num_radial: int, epsilon: float, activation: ActivationFactory
    ) -> None:
        super().__init__()
        f = num_features
        self.num_features, self.epsilon = f, epsilon
        self.filter = _dense(num_radial, 3 * f)
        self.message = _scalar_mlp(f, [f], 3 * f, activation)
        self.vector_mix = _dense(f, 2 * f, bias=False)
        self.update = _scalar_mlp(2 * f, [f], 3 * f, activation)

    def forward(
        self, s: Tensor, v: Tensor, edge_index: Tensor, radial: Tensor, unit: Tensor
    ) -> tuple[Tensor, Tensor]:
        """New (s, v) from s (N, F), v (N, 3, F), radial = [e(r)·f_c(r), f_c(r)] (E, n_rbf + 1)
        and r̂_ij (E, 3).

        W(r) = (A e(r) + b)·f_c(r) is one matmul [e f_c, f_c]·[A, b]ᵀ (no (E, 3F) product).
        """
        f = self.num_features
        i, j = edge_index
        w = torch.cat([self.filter.weight, self.filter.bias[:, None]], 1)
        x = self.message(s)[j] * nn.functional.linear(radial, w)
        ds, dvv, dvs = torch.split(x, f, dim=-1)
        dv = dvv[:, None] * v[j] + dvs[:, None] * unit[..., None]
        s = s.index_add(0, i, ds)
        v = v.index_add(0, i, dv)

        uv, vv = torch.split(self.vector_mix(v), f, dim=-1)
        norm = torch.sqrt((vv * vv).sum(1) + self.epsilon)
        avv, asv, ass = torch.split(self.update(torch.cat([s, norm], -1)), f, dim=-1)
        return s + asv * (uv * vv).sum(1) + ass, v + avv[:, None] * uv


class PaiNN(Potential):
    """PaiNN energy model (module docstring); lengths Å, energies eV.

    Args:
        type_map: element symbols the embedding knows (resolve ``null`` from the data first).
        cutoff: r_c, Å. num_features: F. num_interactions: message+update pairs. num_radial: sin
            basis size. output_hidden: hidden widths of the atomwise energy MLP.
        epsilon: ε of ‖V v‖_ε (v is dimensionless).
        scale_by_force_rms: σ = force RMS of the training split (else σ = 1).
        zero_init_output: start the last layer of y at 0, so the initial model is E = Σ μ_Z
            (with a random readout the atomic energies start O(σ) = O(1 eV) off, which the
            DeePMD-kit loss, small energy weight early, corrects slowly).
        precision: ``float32`` or ``float64``.
        activation: factory called once per hidden layer with ``num_channels``; None uses
            ``base_activation``. base_activation: the published activation (SiLU).
    """

    def __init__(
        self,
        type_map: Sequence[str],
        cutoff: float = 5.0,
        num_features: int = 128,
        num_interactions: int = 3,
        num_radial: int = 20,
        output_hidden: Sequence[int] = (64,),
        epsilon: float = 1e-8,
        scale_by_force_rms: bool = True,
        zero_init_output: bool = True,
        precision: str = "float32",
        activation: ActivationFactory | None = None,
        base_activation: str = "silu",
    ) -> None:
        super().__init__()
        self.set_type_map(type_map)
        dtype = precision_dtype("PaiNN", precision)
        if not cutoff > 0:
            raise ValueError(f"PaiNN: cutoff must be > 0 Å, got {cutoff}")
        self.cutoff = float(cutoff)
        self.scale_by_force_rms = bool(scale_by_force_rms)
        activation = activation or functools.partial(build_activation, name=base_activation)
        self.embedding = nn.Embedding(len(self.type_map), num_features)
        self.interactions = nn.ModuleList(
            PaiNNInteraction(num_features, num_radial, epsilon, activation)
            for _ in range(num_interactions)
        )
        self.output = _scalar_mlp(num_features, list(output_hidden), 1, activation)
        if zero_init_output:
            nn.init.zeros_(self.output[-1].weight)
        frequencies = math.pi / self.cutoff * torch.arange(1, num_radial + 1.0)  # nπ/r_c, Å⁻¹
        self.register_buffer("frequencies", frequencies, persistent=False)
        self.register_buffer("energy_shift", torch.zeros(len(self.type_map)))
        self.register_buffer("energy_scale", torch.ones(()))
        self.to(dtype)

    def extra_repr(self) -> str:
        return (
            f"type_map={self.type_map}, cutoff={self.cutoff}, "
            f"scale_by_force_rms={self.scale_by_force_rms}"
        )

    def features(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Final scalar (N, F) and vector (N, 3, F) features, and the atom types (N,)."""
        dtype = self.frequencies.dtype
        positions = batch[K.POSITIONS].to(dtype)
        edge_index = batch[K.EDGE_INDEX]
        types = self.atom_types(batch[K.NUMBERS])
        vectors = positions[edge_index[1]] - positions[edge_index[0]] + batch[K.SHIFTS].to(dtype)
        r = torch.linalg.vector_norm(vectors, dim=-1, keepdim=True)
        cut = cosine_cutoff(r, self.cutoff)
        radial = torch.cat([torch.sin(self.frequencies * r) / r * cut, cut], -1)
        unit = vectors / r
        s = self.embedding(types)
        v = s.new_zeros(s.shape[0], 3, s.shape[1])
        for interaction in self.interactions:
            s, v = interaction(s, v, edge_index, radial, unit)
        return s, v, types

    def atomic_energies(self, batch: dict[str, Tensor]) -> Tensor:
        """E_i = σ·y(s_i) + μ_{Z_i}, (N,), eV."""
        s, _, types = self.features(batch)
        return self.energy_scale * self.output(s).squeeze(-1) + self.energy_shift[types]

    @torch.no_grad()
    def fit_statistics(
        self, stats: DatasetStatistics, train_batches: Iterable[dict[str, Tensor]]
    ) -> None:
        """μ_Z = ``stats.energy_shift[Z]``, eV (0 for an element the split lacks), as every
        backbone; σ = ``stats.force_rms`` when ``scale_by_force_rms`` and the split has non-zero
        forces.
        """
        super().fit_statistics(stats, train_batches)
        if self.scale_by_force_rms and stats.force_rms > 0:
            self.energy_scale.fill_(stats.force_rms)
