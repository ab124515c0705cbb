"""Forces and virials from ``predict`` against finite differences, on a Lennard-Jones pair model.

The pair model is a real (if simple) Potential: E = Σ_{i<j} 4ε[(σ/r)^12 − (σ/r)^6] switched
smoothly to zero at the cutoff, evaluated from the batch's neighbour pairs and image shifts,
which is exactly what the backbones read.
"""

import torch

from taafs_exp.data import keys as K
from taafs_exp.data.collate import batch_frames
from taafs_exp.data.frame import Frame
from taafs_exp.models.base import Potential
from taafs_exp.training.module import predict


class PairLJ(Potential):
    cutoff = 3.0

    def forward(self, batch):
        i, j = batch[K.EDGE_INDEX]
        vec = batch[K.POSITIONS][j] - batch[K.POSITIONS][i] + batch[K.SHIFTS]
        r = vec.norm(dim=1)
        x = (r / self.cutoff).clamp(max=1.0)
        switch = (1 - x**2) ** 3
        pair = 4.0 * 0.01 * ((1.1 / r) ** 12 - (1.1 / r) ** 6) * switch
        frame = batch[K.BATCH][i]
        out = torch.zeros(batch[K.NUM_ATOMS].shape[0], dtype=r.dtype)
        return 0.5 * out.index_add(0, frame, pair)


def periodic_frame(seed: int) -> Frame:
    g = torch.Generator().manual_seed(seed)
    cell = torch.tensor([[4.0, 0.0, 0.0], [0.4, 4.2, 0.0], [0.3, -0.2, 3.9]], dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(*[torch.arange(2.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    frac = (grid + 0.15 * torch.rand(8, 3, generator=g, dtype=torch.float64)) / 2
    n = frac.shape[0]
    return Frame(
        positions=frac @ cell,
        numbers=torch.full((n,), 18),
        cell=cell,
        pbc=torch.ones(3, dtype=torch.bool),
        energy=torch.tensor(0.0, dtype=torch.float64),
        forces=torch.zeros(n, 3, dtype=torch.float64),
    )


def energy_of(model, frame):
    return predict(model, batch_frames([frame], model.cutoff), create_graph=False)[K.ENERGY]


def test_forces_are_minus_gradient_by_finite_differences():
    model, frame = PairLJ(), periodic_frame(0)
    forces = predict(model, batch_frames([frame], model.cutoff), create_graph=False)[K.FORCES]
    h = 1e-5
    for atom, axis in [(0, 0), (3, 1), (7, 2)]:
        plus, minus = periodic_frame(0), periodic_frame(0)
        plus.positions[atom, axis] += h
        minus.positions[atom, axis] -= h
        fd = -(energy_of(model, plus) - energy_of(model, minus)) / (2 * h)
        assert torch.allclose(forces[atom, axis], fd, rtol=1e-6, atol=1e-9)


def test_virial_is_minus_strain_derivative():
    model, frame = PairLJ(), periodic_frame(1)
    batch = batch_frames([frame, periodic_frame(2)], model.cutoff)
    virial = predict(model, batch, create_graph=False, virial=True)[K.VIRIAL][0]
    assert virial.abs().max() > 1e-6  # the test is not vacuous
    h = 1e-6
    for a, b in [(0, 0), (1, 1), (0, 2)]:
        energies = []
        for sign in (1, -1):
            strain = torch.zeros(3, 3, dtype=torch.float64)
            strain[a, b] += 0.5 * sign * h
            strain[b, a] += 0.5 * sign * h
            deformed = periodic_frame(1)
            deformed.positions = frame.positions @ (torch.eye(3, dtype=torch.float64) + strain)
            deformed.cell = frame.cell @ (torch.eye(3, dtype=torch.float64) + strain)
            energies.append(energy_of(model, deformed)[0])
        fd = -(energies[0] - energies[1]) / (2 * h)
        assert torch.allclose(virial[a, b], fd, rtol=1e-5, atol=1e-9)


def test_create_graph_keeps_forces_differentiable():
    model, frame = PairLJ(), periodic_frame(3)
    batch = batch_frames([frame], model.cutoff)
    assert not predict(model, batch, create_graph=False)[K.FORCES].requires_grad
    assert predict(model, batch, create_graph=True)[K.FORCES].requires_grad
