"""Physics and plumbing every backbone must satisfy, as a mixin (subclassed per case).

All in float64, energies in eV, forces in eV/Å, on the frames of ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import hydra
import pytest
import torch
from cases import ACTIVATIONS, ModelCase
from water_frames import make_frame, random_rotation
from omegaconf import OmegaConf
from torch import Tensor

from taafs_exp.activations import TAAFS
from taafs_exp.data import keys as K
from taafs_exp.data.collate import batch_frames, collate_graphs, frame_to_graph
from taafs_exp.data.datamodule import compute_statistics
from taafs_exp.data.frame import Frame
from taafs_exp.data.neighbors import neighbor_list
from taafs_exp.models.base import Potential
from taafs_exp.training.module import predict

CONF = Path(__file__).resolve().parents[2] / "conf"
#: Atoms per frame whose force components are checked by finite differences.
FD_ATOMS = 4


def build_model(
    case: ModelCase, activation: str, frames: Sequence[Frame], seed: int = 0, fit: bool = True
) -> Potential:
    """``conf/model/<case>.yaml`` + overrides + activation node, resolved and built as in training.

    TAAFS coefficients get a random perturbation (they start as their base curve) so the test
    sees a curve of the family, not tanh; ``fit`` runs ``fit_statistics`` on ``frames``.
    """
    cfg = OmegaConf.create(
        {
            "model": OmegaConf.load(CONF / "model" / f"{case.config}.yaml"),
            "activation": {
                "_target_": "taafs_exp.activations.build_activation",
                "_partial_": True,
                **ACTIVATIONS[activation],
            },
        }
    )
    cfg.model = OmegaConf.merge(cfg.model, case.overrides)
    hparams = OmegaConf.to_container(cfg.model, resolve=True)
    hparams = hydra.utils.get_class(hparams["_target_"]).resolve_hparams(hparams, frames)
    torch.manual_seed(seed)
    model = hydra.utils.instantiate(hparams)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, TAAFS):
                for p in module.parameters():
                    p.add_(0.3 * torch.randn_like(p))
    if fit:
        graphs = [frame_to_graph(f, model.cutoff) for f in frames]
        model.fit_statistics(compute_statistics(frames, graphs), [collate_graphs(graphs)])
    return model


def energy_forces(model: Potential, frames: Sequence[Frame]) -> tuple[Tensor, Tensor]:
    """(F,) energies and (N, 3) forces of ``frames`` batched together."""
    out = predict(model, batch_frames(frames, model.cutoff), create_graph=False)
    return out[K.ENERGY].detach(), out[K.FORCES].detach()


def moved(frame: Frame, positions: Tensor, cell: Tensor | None = None) -> Frame:
    """``frame`` with new positions (and cell)."""
    return make_frame(positions, frame.cell if cell is None else cell)


def crossing_frames(cutoff: float, eps: float) -> list[Frame]:
    """A water molecule and an H atom on the far side of its O at distance r_c ∓ eps/2.

    The other pairs of the extra H are ≥ 0.5 Å longer, so exactly one pair crosses the cutoff.
    """
    water = [[0.0, 0.0, 0.0], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0]]
    frames = []
    for d in (cutoff - eps / 2, cutoff + eps / 2):
        frame = make_frame(torch.tensor([*water, [0.0, -d, 0.0]], dtype=torch.float64), None)
        frame.numbers = torch.tensor([8, 1, 1, 1])
        frames.append(frame)
    return frames


class BackboneSuite:
    """Mixin: subclass with ``case = ModelCase(...)`` (``test_backbones.py`` does, per case).

    One model per (case, activation) serves the class; tests leave it unchanged.
    """

    case: ModelCase

    @pytest.fixture(scope="class", params=list(ACTIVATIONS))
    @classmethod
    def activation(cls, request: pytest.FixtureRequest) -> str:
        return request.param

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, activation: str, frames: list[Frame]) -> Potential:
        return build_model(cls.case, activation, frames)

    def test_energy_is_float64_and_forces_finite(self, model: Potential, frames: list[Frame]):
        energy, forces = energy_forces(model, frames)
        assert energy.dtype == torch.float64 and energy.shape == (2,)
        assert torch.isfinite(forces).all() and forces.abs().max() > 0

    def test_forces_match_finite_differences(self, model: Potential, frames: list[Frame]):
        """F = −∂E/∂R against central differences (h = 1e-5 Å) in the 3 coordinates of the first
        FD_ATOMS atoms of each frame; all displaced copies are evaluated as one batch."""
        batch = batch_frames(frames, model.cutoff)
        forces = predict(model, batch, create_graph=False)[K.FORCES].detach()
        first = torch.cumsum(batch[K.NUM_ATOMS], 0) - batch[K.NUM_ATOMS]
        atoms = (first[:, None] + torch.arange(FD_ATOMS)).flatten()
        coords = (3 * atoms[:, None] + torch.arange(3)).flatten()
        h, n = 1e-5, len(coords)
        step = torch.zeros(2 * n, forces.numel(), dtype=forces.dtype)
        step[torch.arange(n), coords] = h
        step[n + torch.arange(n), coords] = -h
        copies = collate_graphs([batch] * (2 * n))
        copies[K.POSITIONS] = copies[K.POSITIONS] + step.view(-1, 3)
        with torch.no_grad():
            energies = model(copies).view(2 * n, len(frames)).sum(1)
        numeric = -(energies[:n] - energies[n:]) / (2 * h)
        torch.testing.assert_close(forces.flatten()[coords], numeric, rtol=1e-6, atol=1e-8)

    def test_rotation_invariance(self, model: Potential, periodic_water: Frame):
        """E(R·Q, cell·Q) = E(R, cell) and F rotates with the frame, Q a random rotation."""
        q = random_rotation(torch.Generator().manual_seed(7))
        rotated = moved(periodic_water, periodic_water.positions @ q.T, periodic_water.cell @ q.T)
        energy, forces = energy_forces(model, [periodic_water])
        energy_r, forces_r = energy_forces(model, [rotated])
        torch.testing.assert_close(energy_r, energy, rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(forces_r, forces @ q.T, rtol=1e-9, atol=1e-10)

    def test_translation_invariance(self, model: Potential, frames: list[Frame]):
        shift = torch.tensor([1.3, -2.1, 0.7], dtype=torch.float64)
        energy, forces = energy_forces(model, frames)
        energy_t, forces_t = energy_forces(model, [moved(f, f.positions + shift) for f in frames])
        torch.testing.assert_close(energy_t, energy, rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(forces_t, forces, rtol=1e-9, atol=1e-10)

    def test_permutation_invariance(self, model: Potential, periodic_water: Frame):
        """Relabelling atoms of the same element: same E, forces permuted alike."""
        g = torch.Generator().manual_seed(3)
        numbers = periodic_water.numbers
        perm = torch.arange(len(numbers))
        for z in numbers.unique():
            idx = torch.nonzero(numbers == z).squeeze(1)
            perm[idx] = idx[torch.randperm(len(idx), generator=g)]
        assert not torch.equal(perm, torch.arange(len(numbers)))
        energy, forces = energy_forces(model, [periodic_water])
        energy_p, forces_p = energy_forces(
            model, [moved(periodic_water, periodic_water.positions[perm])]
        )
        torch.testing.assert_close(energy_p, energy, rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(forces_p, forces[perm], rtol=1e-9, atol=1e-10)

    def test_periodic_image_choice(self, model: Potential, periodic_water: Frame):
        """Same E and F after moving one atom by a lattice vector, and after wrapping all atoms."""
        cell, positions = periodic_water.cell, periodic_water.positions
        shifted = positions.clone()
        shifted[4] += cell[0] - 2 * cell[2]
        frac = positions @ torch.linalg.inv(cell)
        wrapped = (frac - torch.floor(frac)) @ cell
        assert not torch.allclose(wrapped, positions)
        energy, forces = energy_forces(model, [periodic_water])
        for other in (shifted, wrapped):
            energy_o, forces_o = energy_forces(model, [moved(periodic_water, other)])
            torch.testing.assert_close(energy_o, energy, rtol=1e-12, atol=1e-10)
            torch.testing.assert_close(forces_o, forces, rtol=1e-9, atol=1e-10)

    def test_batch_invariance(self, model: Potential, frames: list[Frame]):
        """A frame's energy alone equals its energy in a batch; no gradient crosses frames."""
        periodic, isolated = frames
        alone = torch.cat([energy_forces(model, [f])[0] for f in frames])
        batch = batch_frames([isolated, periodic, isolated], model.cutoff)
        positions = batch[K.POSITIONS].detach().requires_grad_(True)
        energies = model({**batch, K.POSITIONS: positions})
        torch.testing.assert_close(energies.detach(), alone[[1, 0, 1]], rtol=1e-12, atol=1e-10)
        (grad,) = torch.autograd.grad(energies[1], positions)
        own = batch[K.BATCH] == 1
        assert grad[own].abs().max() > 0
        assert torch.count_nonzero(grad[~own]) == 0

    def test_continuous_at_cutoff(self, model: Potential):
        """E and F continuous as a neighbour crosses r_c: over a step of eps = 1e-6 Å the energy
        changes as the work −F̄·Δr (residual ≤ 1e-10 eV) and the forces by ≤ 1e-4 eV/Å."""
        eps = 1e-6
        inside, outside = crossing_frames(model.cutoff, eps)
        pairs = [neighbor_list(f.positions, model.cutoff)[0].shape[1] for f in (inside, outside)]
        assert pairs[0] == pairs[1] + 2
        energy_in, forces_in = energy_forces(model, [inside])
        energy_out, forces_out = energy_forces(model, [outside])
        work = -0.5 * ((forces_in + forces_out) * (outside.positions - inside.positions)).sum()
        assert abs(float(energy_out - energy_in - work)) < 1e-10
        assert float((forces_out - forces_in).abs().max()) < 1e-4

    def test_force_loss_second_derivative(self, model: Potential, frames: list[Frame]):
        """∂L/∂θ of the force loss L = Σ F² (a second derivative of E) against central
        differences in θ, for one entry of the first, the last and a TAAFS parameter."""
        batch = batch_frames(frames, model.cutoff)

        def loss() -> Tensor:
            return predict(model, batch, create_graph=True)[K.FORCES].pow(2).sum()

        params = list(model.parameters())
        grads = torch.autograd.grad(loss(), params, allow_unused=True, materialize_grads=True)
        used = [i for i, g in enumerate(grads) if g.abs().max() > 0]
        taafs = {id(p) for m in model.modules() if isinstance(m, TAAFS) for p in m.parameters()}
        chosen = [used[0], used[-1], *[i for i in used if id(params[i]) in taafs][:1]]
        assert bool(taafs) == (len(chosen) == 3), "a TAAFS parameter has no force-loss gradient"
        for i in chosen:
            flat, index = params[i].view(-1), int(grads[i].abs().argmax())
            value = flat[index].item()
            h = 1e-5 * max(1.0, abs(value))
            values = []
            for x in (value + h, value - h):
                with torch.no_grad():
                    flat[index] = x
                values.append(loss().detach())
            with torch.no_grad():
                flat[index] = value
            numeric = (values[0] - values[1]) / (2 * h)
            torch.testing.assert_close(grads[i].view(-1)[index], numeric, rtol=1e-5, atol=1e-9)

    def test_state_dict_round_trip(self, model: Potential, activation: str, frames: list[Frame]):
        """A fresh model (other seed, no statistics) loading the state dict predicts the same."""
        other = build_model(self.case, activation, frames, seed=1, fit=False)
        energy = energy_forces(model, frames)[0]
        assert not torch.allclose(energy_forces(other, frames)[0], energy)
        other.load_state_dict(model.state_dict())
        assert torch.equal(energy_forces(other, frames)[0], energy)

    def test_kernel_paths_agree(self, model: Potential, activation: str, frames: list[Frame]):
        """Energies, forces and force-loss gradients are the same on every TAAFS kernel path
        (compiled, eager, naive autograd) to 1e-10 in float64."""
        sites = [m for m in model.modules() if isinstance(m, TAAFS) and hasattr(m, "kernel")]
        if not sites:
            pytest.skip(f"{activation} has no kernel paths")
        batch = batch_frames(frames, model.cutoff)

        def outputs(kernel: str) -> list[Tensor]:
            for site in sites:
                site.kernel = kernel
            out = predict(model, batch, create_graph=True)
            grads = torch.autograd.grad(out[K.FORCES].pow(2).sum(), list(model.parameters()),
                                        allow_unused=True, materialize_grads=True)
            return [out[K.ENERGY].detach(), out[K.FORCES].detach(), *grads]

        try:
            reference = outputs("naive")
            for kernel in ("compiled", "eager"):
                for a, b in zip(outputs(kernel), reference):
                    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
        finally:
            for site in sites:
                site.kernel = "compiled"
