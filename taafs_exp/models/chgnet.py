"""CHGNet (Deng et al., Nat. Mach. Intell. 2023) as matgl 4.x builds it, untrained, on our batch.

The modules are those of ``matgl.models.CHGNet`` (PyG backend): bases, embeddings, atom- and
bond-graph blocks, readout. :meth:`CHGNet.atomic_energies` runs them in the order of matgl's
``CHGNet.forward`` on the flat batch (:mod:`taafs_exp.data.keys`), for one atom i, bond i→j:

* bonds: matgl's edges (centre i → neighbour j) are our pairs, r_ij = x_j − x_i + s_ij (Å), so
  positions and shifts stay in the autograd graph (forces, virial); basis ẽ = w(e(r))·e(r), with
  e the radial basis below and w matgl's ``polynomial_cutoff`` applied to the basis values;
* bond graph (three-body line graph): its nodes are the bonds with r ≤ ``threebody_cutoff``, its
  edges join an incoming bond a→c to every outgoing bond c→b except the reverse c→a of the same
  image, carrying the angle θ_acb; the bond-graph blocks update bonds c→b and angles;
* E_frame = Σ_i [MLP(v_i) + b_{Z_i}]: matgl's per-atom readout summed (a total energy, eV) plus
  the per-element shift b_Z (eV) of the training split.

Only the line graph is built differently: matgl's ``create_directed_line_graph`` compares every
pair of the V short bonds of the batch (a dense V×V mask; V ≈ 1.7·10³ per 192-atom water frame),
70 % of an evaluation step on 4 water frames and quadratic in the frames per batch;
:func:`line_graph` enumerates, per centre atom, incoming × outgoing bonds (memory ∝ triplets).
The energy equals matgl's forward on matgl's own graph (``Atoms2Graph``) to 1e-9 eV in float64
(``tests/models/test_chgnet.py``). Frames without a cell have shifts = 0, as matgl's
``Atoms2Graph``/``Molecule2Graph`` give molecules (zero images): no vacuum box is needed.

Two changes to the matgl modules, tested in ``tests/models/test_chgnet.py``:

* smooth cutoff: matgl multiplies the radial Bessel basis
  e_n(r) = √(2/r_c) sin(f_n r/r_c)/r by ``polynomial_cutoff`` evaluated at the *basis values*
  e_n, not at r, so with learnable f_n (or even at init, through de_n/dr ≠ 0 at r_c) energy or
  forces jump when a pair crosses r_c. Both bases (r_c = ``cutoff`` and ``threebody_cutoff``) are
  replaced by :class:`EnvelopedBessel`, e_n(r)·u(r/r_c) with the polynomial envelope
  u(x) = 1 − (p+1)(p+2)/2 xᵖ + p(p+2) xᵖ⁺¹ − p(p+1)/2 xᵖ⁺², p = ``cutoff_exponent``, as in the
  ``chgnet`` package's ``RadialBessel(smooth_cutoff=p)``; u, u′, u″ vanish at x = 1, so E is C²
  across both cutoffs (matgl's w then acts on values that vanish with u).
* activations: matgl passes one SiLU module to every MLP and each ``_MLPNorm`` applies its
  ``activation`` after each hidden layer (and the last one if ``activate_last``), so one module
  serves several call sites. :func:`per_call_activations` gives every call its own module from
  the factory (``num_channels`` = width of the layer it follows); an ``_MLPNorm`` that never calls
  its activation (linear embeddings, the gate of the angle update) gets ``nn.Identity``. The
  sigmoid gates of the gated MLPs stay fixed: a gate must stay in (0, 1).

Dead modules are not built: matgl's ``bond_bond_weights`` when there is no bond update in the
atom graph, and the angle update of the last bond-graph block (no later block reads angles);
both are computed or stored by matgl but never reach the energy, so every parameter trains.

Magnetic moments (``sitewise_readout``) are not built: nothing here trains them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from matgl.graph._compute import compute_pair_vector_and_distance, compute_theta
from matgl.layers._basis import RadialBesselFunction
from matgl.layers._graph_convolution import _MLPNorm
from matgl.models import CHGNet as MatglCHGNet
from matgl.utils.cutoff import polynomial_cutoff
from torch import Tensor, nn

from taafs_exp.activations import PerCallActivation, build_activation
from taafs_exp.data import keys as K
from taafs_exp.models.base import ActivationFactory, Potential, precision_dtype

#: Resolution, Å, at which image shifts are compared to find the reverse of a bond.
SHIFT_RESOLUTION = 1e-4
#: matgl's clamp of cos θ before arccos (keeps dθ/dcos θ finite).
COS_CLAMP = 1e-7


class EnvelopedBessel(RadialBesselFunction):
    """Radial Bessel basis with the distance envelope: e_n(r)·u(r/r_c), (E, max_n), Å⁻¹ᐟ²·Å⁻¹.

    u is matgl's ``polynomial_cutoff`` of r (1 at r = 0, C² zero at r = r_c, 0 beyond).
    """

    def __init__(self, max_n: int, cutoff: float, exponent: int, learnable: bool) -> None:
        super().__init__(max_n=max_n, cutoff=cutoff, learnable=learnable)
        self.cutoff, self.exponent = float(cutoff), int(exponent)

    def forward(self, r: Tensor) -> Tensor:
        return super().forward(r) * polynomial_cutoff(r, self.cutoff, self.exponent)[:, None]


def line_graph(
    edge_index: Tensor, shifts: Tensor, dist: Tensor, cutoff: float, num_atoms: int
) -> tuple[Tensor, Tensor]:
    """CHGNet's directed bond graph, as matgl's ``create_directed_line_graph`` (same nodes, same
    edges in the same order) but enumerated per centre atom instead of over all bond pairs.

    Args:
        edge_index: (2, E) bonds i→j; shifts: (E, 3) their image shifts, Å; dist: (E,) |r_ij|, Å.
        cutoff: bonds with |r_ij| ≤ cutoff are the nodes, Å.

    Returns:
        bonds: (V,) ids in ``edge_index`` of the nodes, ascending.
        lg_edge_index: (2, T) node pairs (a→c, c→b), row 0 the incoming bond, row 1 the bond it
            updates: every pair at every centre c except b = a with s_cb = −s_ac (the reverse).
    """
    with torch.no_grad():
        bonds = torch.nonzero(dist <= cutoff).squeeze(1)
        src, dst = edge_index[0, bonds], edge_index[1, bonds]
        image = torch.round(shifts[bonds] / SHIFT_RESOLUTION)  # −s compares exactly with s
        by_centre = torch.argsort(src, stable=True)
        count = torch.bincount(src, minlength=num_atoms)
        first = torch.cumsum(count, 0) - count
        fan = count[dst]  # bonds leaving the end atom of each incoming bond
        total = int(fan.sum())
        incoming = torch.repeat_interleave(
            torch.arange(len(bonds), device=bonds.device), fan, output_size=total
        )
        rank = torch.arange(total, device=bonds.device) - (torch.cumsum(fan, 0) - fan)[incoming]
        outgoing = by_centre[first[dst[incoming]] + rank]
        reverse = (src[incoming] == dst[outgoing]) & (image[incoming] == -image[outgoing]).all(1)
    return bonds, torch.stack([incoming[~reverse], outgoing[~reverse]])


def smoothed(expansion: Tensor, cutoff: float, exponent: int) -> Tensor:
    """matgl's ``polynomial_cutoff(e, r_c, p)·e``: its envelope w applied to the basis values e."""
    return polynomial_cutoff(expansion, cutoff, exponent) * expansion


def mlp_call_widths(mlp: _MLPNorm) -> list[int]:
    """Width of the layer before each call of ``mlp.activation``, in the order forward calls it."""
    widths = [layer.out_features for layer in mlp.layers[:-1]]
    return widths + [mlp.layers[-1].out_features] if mlp.activate_last else widths


def per_call_activations(model: nn.Module, factory: ActivationFactory) -> int:
    """Give every activation call of every ``_MLPNorm`` in ``model`` its own ``factory`` module.

    One call: ``mlp.activation = factory(num_channels=w)``; several: a :class:`PerCallActivation`
    with one module per call (its counter is reset by a forward pre-hook on the MLP); none:
    ``nn.Identity()``. Returns the number of call sites.
    """
    sites = 0
    for mlp in [m for m in model.modules() if isinstance(m, _MLPNorm)]:
        modules = [factory(num_channels=w) for w in mlp_call_widths(mlp)]
        if len(modules) > 1:
            mlp.activation = PerCallActivation(modules)
            mlp.register_forward_pre_hook(mlp.activation.reset)
        else:
            mlp.activation = modules[0] if modules else nn.Identity()
        sites += len(modules)
    return sites


class CHGNet(Potential):
    """matgl's CHGNet on the flat batch, total energy per frame in eV.

    Args:
        type_map: element symbols; row t of the atom embedding is ``type_map[t]``. Resolve
            ``null`` from the data first (:meth:`Potential.resolve_hparams`).
        cutoff: atom-graph radius r_c, Å (the data layer builds pairs for it).
        threebody_cutoff: bond-graph radius, Å (≤ ``cutoff``): bonds that form angles.
        cutoff_exponent: p of the polynomial envelope of both radial bases.
        max_n: radial Bessel functions; max_f: Fourier orders of the angle (2·max_f + 1 features).
        learn_basis: train the Bessel and Fourier frequencies.
        dim_atom_embedding, dim_bond_embedding, dim_angle_embedding: feature widths.
        num_blocks: atom-graph blocks (bond-graph blocks: ``num_blocks − 1``).
        atom_conv_hidden_dims: hidden widths of the gated MLP of the atom update.
        bond_update_hidden_dims: hidden widths of a bond update in the atom graph (None: none).
        bond_conv_hidden_dims: hidden widths of the gated MLP of the bond-graph bond update.
        angle_update_hidden_dims: hidden widths of the angle update (None: no angle update).
        final_hidden_dims: hidden widths of the per-atom readout MLP.
        precision: ``float32`` (matgl's) or ``float64``, dtype of parameters and computation.
        activation: factory called once per activation call site with ``num_channels``;
            None builds ``base_activation`` from the registry.
        base_activation: registry name of CHGNet's activation (SiLU, matgl's ``swish``).
    """

    def __init__(
        self,
        type_map: Sequence[str],
        cutoff: float = 5.0,
        threebody_cutoff: float = 3.0,
        cutoff_exponent: int = 5,
        max_n: int = 9,
        max_f: int = 4,
        learn_basis: bool = True,
        dim_atom_embedding: int = 64,
        dim_bond_embedding: int = 64,
        dim_angle_embedding: int = 64,
        num_blocks: int = 4,
        atom_conv_hidden_dims: Sequence[int] = (64,),
        bond_update_hidden_dims: Sequence[int] | None = None,
        bond_conv_hidden_dims: Sequence[int] = (64,),
        angle_update_hidden_dims: Sequence[int] | None = (),
        final_hidden_dims: Sequence[int] = (64, 64),
        precision: str = "float32",
        activation: ActivationFactory | None = None,
        base_activation: str = "silu",
    ) -> None:
        super().__init__()
        self.set_type_map(type_map)
        if not 0 < threebody_cutoff <= cutoff:
            raise ValueError(
                f"CHGNet: need 0 < threebody_cutoff ≤ cutoff, got {threebody_cutoff}, {cutoff}"
            )
        self.cutoff = float(cutoff)
        self.threebody_cutoff = float(threebody_cutoff)
        self.dtype = precision_dtype("CHGNet", precision)
        self.chgnet = MatglCHGNet(
            element_types=tuple(self.type_map),
            dim_atom_embedding=dim_atom_embedding,
            dim_bond_embedding=dim_bond_embedding,
            dim_angle_embedding=dim_angle_embedding,
            cutoff=self.cutoff,
            threebody_cutoff=self.threebody_cutoff,
            cutoff_exponent=cutoff_exponent,
            max_n=max_n,
            max_f=max_f,
            learn_basis=learn_basis,
            num_blocks=num_blocks,
            atom_conv_hidden_dims=list(atom_conv_hidden_dims),
            bond_update_hidden_dims=(
                None if bond_update_hidden_dims is None else list(bond_update_hidden_dims)
            ),
            bond_conv_hidden_dims=list(bond_conv_hidden_dims),
            angle_update_hidden_dims=(
                None if angle_update_hidden_dims is None else list(angle_update_hidden_dims)
            ),
            final_hidden_dims=list(final_hidden_dims),
            pooling_operation="sum",
            activation_type="swish",
            num_site_targets=0,
        )
        # Modules whose output matgl's forward never reads get no gradient (DDP fails on them,
        # and their TAAFS curves would count without training): drop them.
        if bond_update_hidden_dims is None:  # only the atom graph's bond update reads them
            self.chgnet.bond_bond_weights = None
        if self.chgnet.bond_graph_layers:  # the last bond block's angle output is never read
            self.chgnet.bond_graph_layers[-1].conv.edge_update_func = None
        self.chgnet.bond_expansion = EnvelopedBessel(max_n, cutoff, cutoff_exponent, learn_basis)
        self.chgnet.threebody_bond_expansion = EnvelopedBessel(
            max_n, threebody_cutoff, cutoff_exponent, learn_basis
        )
        factory = activation or functools.partial(build_activation, base_activation)
        self.num_activation_sites = per_call_activations(self.chgnet, factory)
        self.register_buffer("energy_shift", torch.zeros(len(self.type_map)))
        self.to(self.dtype)

    def extra_repr(self) -> str:
        return (
            f"type_map={self.type_map}, cutoff={self.cutoff}, "
            f"threebody_cutoff={self.threebody_cutoff}, dtype={self.dtype}, "
            f"activation_sites={self.num_activation_sites}"
        )

    def atomic_energies(self, batch: dict[str, Tensor]) -> Tensor:
        """E_i = CHGNet_i + b_{Z_i}, (N,), eV, in the model dtype, as matgl's forward (whose
        sum pooling is :meth:`Potential.forward`); b_Z fitted by :meth:`Potential.fit_statistics`."""
        net = self.chgnet
        edge_index, shifts = batch[K.EDGE_INDEX], batch[K.SHIFTS].to(self.dtype)
        types = self.atom_types(batch[K.NUMBERS])
        vectors, dist = compute_pair_vector_and_distance(
            batch[K.POSITIONS].to(self.dtype), edge_index, shifts
        )
        expansion = smoothed(net.bond_expansion(dist), net.cutoff, net.cutoff_exponent)
        bonds, lg_edge_index = line_graph(
            edge_index, shifts, dist, net.three_body_cutoff, len(types)
        )
        lg_expansion = smoothed(
            net.threebody_bond_expansion(dist[bonds]), net.three_body_cutoff, net.cutoff_exponent
        )
        incoming, outgoing = lg_edge_index
        sign = vectors.new_full((len(bonds), 1), -1.0)  # the incoming bond a→c, seen from c
        cos_theta = compute_theta(vectors[bonds], sign, incoming, outgoing, directed=True)
        theta = torch.acos(torch.clamp(cos_theta, -1 + COS_CLAMP, 1 - COS_CLAMP))
        centres = edge_index[1, bonds[incoming]]

        atom_feat = net.atom_embedding(types)
        bond_feat = net.bond_embedding(expansion)
        angle_feat = net.angle_embedding(net.angle_expansion(theta))
        atom_weights = net.atom_bond_weights(expansion)
        bond_weights = (
            net.bond_bond_weights(expansion) if net.bond_bond_weights is not None else None
        )
        lg_weights = net.threebody_bond_weights(lg_expansion)
        for block, atom_layer in enumerate(net.atom_graph_layers):
            atom_feat, bond_feat, _ = atom_layer(
                edge_index, atom_feat, bond_feat, expansion, None, None, atom_weights, bond_weights
            )
            if block < len(net.bond_graph_layers):
                bond_feat, angle_feat = net.bond_graph_layers[block](
                    lg_edge_index,
                    bond_feat,
                    angle_feat,
                    atom_feat,
                    bonds,
                    centres,
                    lg_expansion,
                    lg_weights,
                )
        return net.final_layer(atom_feat).squeeze(-1) + self.energy_shift[types]
