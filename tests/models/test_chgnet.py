"""CHGNet-specific checks (the shared suite covers the rest): TAAFS call sites, equality with
matgl's own graph pipeline, smooth cutoffs, element errors, second derivatives. float64, eV, Å."""

from __future__ import annotations

import functools

import hydra
import pytest
import torch
import torch.nn.functional as F
from ase import Atoms
from water_frames import make_frame
from omegaconf import OmegaConf
from matgl.ext.ase import Atoms2Graph
from matgl.graph._compute import compute_pair_vector_and_distance, create_directed_line_graph
from matgl.layers._basis import RadialBesselFunction
from torch import Tensor, nn

from helpers import compose_config
from taafs_exp.activations import TAAFS, build_activation, extra_parameter_count
from taafs_exp.data import keys as K
from taafs_exp.data.collate import batch_frames
from taafs_exp.data.frame import Frame
from taafs_exp.data.neighbors import neighbor_list
from taafs_exp.data.stats import DatasetStatistics
from taafs_exp.models.chgnet import CHGNet, line_graph
from taafs_exp.training.module import predict

TINY = dict(
    type_map=["H", "O"],
    cutoff=4.0,
    threebody_cutoff=3.0,
    max_n=5,
    max_f=2,
    dim_atom_embedding=6,
    dim_bond_embedding=6,
    dim_angle_embedding=6,
    num_blocks=3,
    atom_conv_hidden_dims=[6],
    bond_conv_hidden_dims=[6],
    final_hidden_dims=[6, 6],
    precision="float64",
)
CHEBYSHEV = functools.partial(build_activation, "chebyshev", num_basis=4, base="silu")


def tiny(activation=CHEBYSHEV, seed: int = 0, **overrides) -> CHGNet:
    """A small float64 CHGNet whose TAAFS coefficients are perturbed away from SiLU."""
    torch.manual_seed(seed)
    model = CHGNet(**{**TINY, **overrides}, activation=activation)
    with torch.no_grad():
        for p in (p for m in model.modules() if isinstance(m, TAAFS) for p in m.parameters()):
            p.add_(0.3 * torch.randn_like(p))
    return model


def energy_forces(model: CHGNet, frames: list[Frame]) -> tuple[Tensor, Tensor]:
    out = predict(model, batch_frames(frames, model.cutoff), create_graph=False)
    return out[K.ENERGY].detach(), out[K.FORCES].detach()


def test_every_activation_call_site_is_its_own_taafs_module():
    """Sites per gated MLP: value = hidden + 1 (activate_last), gate = hidden; readout = hidden.

    atom blocks 3 × [(2+1) + 2 (atom) + (1+1) + 1 (bond update)] = 24, bond blocks
    [(1+1) + 1 (bond) + (1+1) + 1 (angle)] + [(1+1) + 1] (the last has no angle update) = 9,
    readout 3: 36 sites, each called once per forward, none a SiLU.
    """
    widths = dict(
        atom_conv_hidden_dims=[5, 7], bond_update_hidden_dims=[4], angle_update_hidden_dims=[3]
    )
    channel = functools.partial(build_activation, "chebyshev", num_basis=4, share="channel")
    for activation, per_site in ((CHEBYSHEV, 4), (channel, None)):
        model = tiny(activation, final_hidden_dims=[6, 6, 6], **widths)
        taafs = [m for m in model.modules() if isinstance(m, TAAFS)]
        assert model.num_activation_sites == len(taafs) == 36
        assert not any(isinstance(m, nn.SiLU) for m in model.modules())
        if per_site is not None:
            assert extra_parameter_count(model) == 36 * per_site
        else:  # channel sharing: K coefficients per channel of the layer each site follows
            assert {m.num_channels for m in taafs} == {3, 4, 5, 6, 7}
        calls = {id(m): 0 for m in taafs}
        hooks = [
            m.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls[id(m)] + 1))
            for m in taafs
        ]
        silu_calls = []
        original = F.silu
        F.silu = lambda *a, **k: silu_calls.append(1) or original(*a, **k)
        try:
            frames = [make_frame(torch.rand(6, 3, dtype=torch.float64) * 3, None)]
            model(batch_frames(frames, model.cutoff))
        finally:
            F.silu = original
            for h in hooks:
                h.remove()
        assert set(calls.values()) == {1}
        assert not silu_calls


@pytest.mark.parametrize(
    "config, sites, params", [("chgnet", 18, 16_136), ("chgnet_paper", 25, 361_048)]
)
def test_presets_count_sites_and_extra_parameters(config: str, sites: int, params: int, tmp_path):
    """Chebyshev K=8, share=layer: 8 extra parameters per call site; SiLU adds none."""
    counts = {}
    for activation, options in (
        ("silu", []),
        ("chebyshev", ["activation.num_basis=8", "activation.share=layer"]),
    ):
        cfg = compose_config(
            [f"model={config}", f"activation={activation}", "logger=none", *options], tmp_path
        )
        hparams = OmegaConf.to_container(cfg.model, resolve=True)
        model = hydra.utils.instantiate({**hparams, "type_map": ["H", "O"]})
        assert model.num_activation_sites == sites
        counts[activation] = (
            sum(p.numel() for p in model.parameters()),
            extra_parameter_count(model),
        )
    assert counts == {"silu": (params, 0), "chebyshev": (params + 8 * sites, 8 * sites)}


def matgl_energy_forces(model: CHGNet, frame: Frame) -> tuple[Tensor, Tensor]:
    """matgl's pipeline: ``Atoms2Graph`` topology and images, geometry as ``predict_structure``
    (pos = frac @ lattice, offshift = images @ lattice) in float64, then matgl's forward."""
    cell = frame.cell if frame.cell is not None else torch.zeros(3, 3, dtype=torch.float64)
    atoms = Atoms(
        numbers=frame.numbers.numpy(),
        positions=frame.positions.numpy(),
        cell=cell.numpy(),
        pbc=frame.cell is not None,
    )
    graph, _, _ = Atoms2Graph(tuple(model.type_map), model.cutoff).get_graph(atoms)
    graph.pos = frame.positions.clone().requires_grad_(True)
    graph.pbc_offshift = graph.pbc_offset.double() @ cell
    energy = model.chgnet(graph) + model.energy_shift[graph.node_type].sum()
    (grad,) = torch.autograd.grad(energy, graph.pos)
    return energy.detach().reshape(1), -grad


def test_energy_and_forces_equal_matgls_own_graph(periodic_water: Frame, isolated_water: Frame):
    """Also for a pair beyond the three-body cutoff (an empty bond graph)."""
    model = tiny()
    model.energy_shift.copy_(torch.tensor([-13.6, -432.1], dtype=torch.float64))
    pair = make_frame(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 3.5]], dtype=torch.float64), None)
    pair.numbers = torch.tensor([8, 1])
    for frame in (periodic_water, isolated_water, pair):
        energy, forces = energy_forces(model, [frame])
        energy_m, forces_m = matgl_energy_forces(model, frame)
        torch.testing.assert_close(energy, energy_m, rtol=0, atol=1e-9)
        torch.testing.assert_close(forces, forces_m, rtol=0, atol=1e-9)


@pytest.mark.parametrize("cutoff", [3.0, 5.5])
def test_line_graph_equals_matgls(periodic_water: Frame, isolated_water: Frame, cutoff: float):
    """Same nodes and edges in the same order as matgl's dense construction; at 5.5 Å the
    ~5 Å cell puts periodic images of an atom among its own bonds (the reverse-image test)."""
    batch = batch_frames([periodic_water, isolated_water], cutoff)
    edge_index, shifts = batch[K.EDGE_INDEX], batch[K.SHIFTS]
    vectors, dist = compute_pair_vector_and_distance(batch[K.POSITIONS], edge_index, shifts)
    bonds, lg_edge_index = line_graph(edge_index, shifts, dist, cutoff, batch[K.NUMBERS].shape[0])
    matgl_edges, matgl_vectors = create_directed_line_graph(
        edge_index, shifts, vectors, dist, cutoff
    )[:2]
    assert (edge_index[0, bonds] == edge_index[1, bonds]).any() == (cutoff > 5)
    assert torch.equal(vectors[bonds], matgl_vectors)
    assert torch.equal(lg_edge_index, matgl_edges.long())


def crossing(distance: float) -> list[Frame]:
    """A water molecule and an H on the far side of its O at ``distance`` ∓ 5e-7 Å (the other
    pairs are > 0.6 Å from ``distance``), as the shared suite's cutoff test."""
    frames = []
    for d in (distance - 5e-7, distance + 5e-7):
        positions = torch.tensor(
            [[0.0, 0.0, 0.0], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0], [0.0, -d, 0.0]]
        )
        frame = make_frame(positions.double(), None)
        frame.numbers = torch.tensor([8, 1, 1, 1])
        frames.append(frame)
    return frames


@pytest.mark.parametrize("where", ["cutoff", "threebody_cutoff"])
def test_smooth_when_a_bond_crosses_either_cutoff(where: str):
    """Over a 1e-6 Å step across r_c the energy changes by the work −F̄·Δr and F by < 1e-7 eV/Å;
    with matgl's basis (its envelope acts on the basis values) F jumps by > 1e-6 eV/Å there."""
    model = tiny()
    radius = getattr(model, where)
    inside, outside = crossing(radius)
    pairs = [neighbor_list(f.positions, radius)[0].shape[1] for f in (inside, outside)]
    assert pairs[0] == pairs[1] + 2

    def jump() -> tuple[float, float]:
        (e_in, f_in), (e_out, f_out) = energy_forces(model, [inside]), energy_forces(
            model, [outside]
        )
        work = -0.5 * ((f_in + f_out) * (outside.positions - inside.positions)).sum()
        return abs(float(e_out - e_in - work)), float((f_out - f_in).abs().max())

    energy_jump, force_jump = jump()
    assert energy_jump < 1e-10 and force_jump < 1e-7
    name = "bond_expansion" if where == "cutoff" else "threebody_bond_expansion"
    setattr(
        model.chgnet, name, RadialBesselFunction(TINY["max_n"], radius, learnable=True).double()
    )
    assert jump()[1] > 1e-6


def test_unknown_elements_are_named():
    with pytest.raises(ValueError, match="Xx"):
        CHGNet(type_map=["H", "Xx"])
    model = tiny()
    copper = make_frame(torch.rand(3, 3, dtype=torch.float64), None)
    copper.numbers = torch.tensor([8, 29, 1])
    with pytest.raises(ValueError, match=r"\['Cu'\] not in the model's type_map \['H', 'O'\]"):
        model(batch_frames([copper], model.cutoff))
    stats = DatasetStatistics(
        energy_shift={1: -1.0, 29: -3.0},
        force_rms=1.0,
        avg_num_neighbors=1.0,
        energy_per_atom_std=0.1,
    )
    with pytest.raises(ValueError, match="Cu"):
        model.fit_statistics(stats, [])


def test_energy_shift_from_statistics(isolated_water: Frame):
    model = tiny()
    batch = batch_frames([isolated_water], model.cutoff)
    before = model(batch).detach()
    stats = DatasetStatistics(
        energy_shift={1: -13.6, 8: -432.1},
        force_rms=1.0,
        avg_num_neighbors=1.0,
        energy_per_atom_std=0.1,
    )
    model.fit_statistics(stats, [])
    torch.testing.assert_close(
        model(batch).detach() - before, torch.tensor([6 * -13.6 + 3 * -432.1], dtype=torch.float64)
    )


def test_force_loss_gradient_through_basis_and_taafs(periodic_water: Frame, isolated_water: Frame):
    """∂(Σ F²)/∂θ against central differences for the Bessel frequencies of both bases (through
    the envelope), the three-body weights and a TAAFS coefficient: E is twice differentiable."""
    model = tiny()
    batch = batch_frames([periodic_water, isolated_water], model.cutoff)
    taafs = next(m for m in model.modules() if isinstance(m, TAAFS))
    chosen = [
        model.chgnet.bond_expansion.frequencies,
        model.chgnet.threebody_bond_expansion.frequencies,
        model.chgnet.threebody_bond_weights.weight,
        taafs.coefficients,
    ]

    def loss() -> Tensor:
        return predict(model, batch, create_graph=True)[K.FORCES].pow(2).sum()

    for param, grad in zip(chosen, torch.autograd.grad(loss(), chosen)):
        index, h = int(grad.abs().argmax()), 1e-6
        values = []
        for step in (h, -2 * h, h):
            with torch.no_grad():
                param.view(-1)[index] += step
            values.append(loss().detach())
        plus, minus = values[0], values[1]
        assert grad.view(-1)[index].abs() > 0
        torch.testing.assert_close(
            grad.view(-1)[index], (plus - minus) / (2 * h), rtol=1e-5, atol=1e-9
        )


def test_every_parameter_gets_a_gradient(isolated_water: Frame):
    """No dead module (DDP needs every parameter in the graph of the loss Σ F² + Σ E)."""
    for bond_update in (None, [6]):
        model = tiny(bond_update_hidden_dims=bond_update)
        out = predict(model, batch_frames([isolated_water], model.cutoff), create_graph=True)
        (out[K.FORCES].pow(2).sum() + out[K.ENERGY].sum()).backward()
        dead = [
            n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
        ]
        assert not dead
