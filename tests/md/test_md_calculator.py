"""TAAFSCalculator: forces/stress are derivatives of its energy, equal the training path, and
checkpoints load safely with clear errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from taafs_exp.data import keys as K
from taafs_exp.data.collate import batch_frames
from taafs_exp.md import CheckpointError, TAAFSCalculator, activation_names, load_potential
from taafs_exp.training.module import PotentialModule


def test_forces_are_minus_energy_gradient(water_atoms):
    """Central differences of the calculator's own energy, h = 1e-4 Å (float64 model: the
    O(h²) error and round-off are both far below the 1e-6 eV/Å tolerance)."""
    forces = water_atoms.get_forces()
    atoms_idx, axes = [0, 5, 100, 191], [0, 1, 2]
    numeric = calculate_numerical_forces(water_atoms, eps=1e-4, iatoms=atoms_idx, icarts=axes)
    analytic = forces[atoms_idx][:, axes]
    assert np.abs(analytic).max() > 1e-3  # forces are not trivially zero
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


def test_stress_is_strain_derivative_in_ase_convention(water_atoms):
    """ASE's σ = (1/V) ∂E/∂ε, checked against ASE's own finite-difference strain."""
    stress = water_atoms.get_stress()
    numeric = calculate_numerical_stress(water_atoms, eps=1e-5)
    assert np.abs(stress).max() > 1e-5
    np.testing.assert_allclose(stress, numeric, rtol=1e-4, atol=1e-8)


def test_stress_needs_a_periodic_cell(water_atoms):
    water_atoms.pbc = [True, True, False]
    assert np.isfinite(water_atoms.get_potential_energy())
    with pytest.raises(PropertyNotImplementedError, match="periodic in every direction"):
        water_atoms.get_stress()


def test_calculator_equals_training_path(water_atoms, water_frame, tiny_checkpoint):
    """Energy and forces equal PotentialModule's forward (Lightning's own checkpoint loader),
    on the same frame: one force path for training and MD."""
    module = PotentialModule.load_from_checkpoint(tiny_checkpoint, map_location="cpu")
    module.eval()
    ref = module(batch_frames([water_frame], module.model.cutoff))
    assert water_atoms.get_potential_energy() == pytest.approx(ref[K.ENERGY].item(), abs=1e-9)
    np.testing.assert_allclose(
        water_atoms.get_forces(), ref[K.FORCES].detach().numpy(), rtol=0, atol=1e-10
    )


def test_model_dtype_and_activation(tiny_checkpoint):
    model, config = load_potential(tiny_checkpoint)
    assert next(model.parameters()).dtype == torch.float64  # DP's precision: float64
    assert not any(p.requires_grad for p in model.parameters())
    assert activation_names(config) == ["chebyshev"]


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "best.ckpt"
    with pytest.raises(FileNotFoundError, match=str(path)):
        TAAFSCalculator.from_checkpoint(path)


def test_wrong_architecture_names_the_keys(checkpoint_dict, tmp_path):
    """A config asking for wider embedding layers than the stored weights."""
    checkpoint_dict["hyper_parameters"]["model"]["neuron"] = [4, 16]
    path = tmp_path / "wrong.ckpt"
    torch.save(checkpoint_dict, path)
    with pytest.raises(CheckpointError, match="do not fit") as err:
        load_potential(path)
    assert "filter_layers.0.1.linear.weight (8, 4) vs (16, 4)" in str(err.value)


def test_missing_weights_are_named(checkpoint_dict, tmp_path):
    del checkpoint_dict["state_dict"]["model.davg"]
    path = tmp_path / "partial.ckpt"
    torch.save(checkpoint_dict, path)
    with pytest.raises(CheckpointError, match=r"missing \['davg'\]"):
        load_potential(path)


class _Trap:
    """Unpickling this object would create ``marker`` (what a malicious checkpoint could do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (self.marker.__class__.touch, (self.marker,))


def test_pickled_objects_are_refused(checkpoint_dict, tmp_path):
    """weights_only=True: an arbitrary pickled object is never constructed."""
    marker = tmp_path / "code_ran"
    checkpoint_dict["callbacks"] = _Trap(marker)
    path = tmp_path / "trap.ckpt"
    torch.save(checkpoint_dict, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_potential(path)
    assert not marker.exists()
    with open(path, "rb") as fh:  # the trap is real: a plain unpickler would have run it
        torch.load(fh, weights_only=False, pickle_module=pickle)
    assert marker.exists()


def test_untrusted_target_is_not_instantiated(checkpoint_dict, tmp_path):
    """The stored config cannot make hydra call something outside the package."""
    made = tmp_path / "made_by_target"
    checkpoint_dict["hyper_parameters"]["model"] = {"_target_": "os.makedirs", "name": str(made)}
    path = tmp_path / "target.ckpt"
    torch.save(checkpoint_dict, path)
    with pytest.raises(CheckpointError, match="os.makedirs"):
        load_potential(path)
    assert not made.exists()


@pytest.mark.parametrize(
    "content, message",
    [(b"not a torch file", "cannot be read"), ({"weights": torch.zeros(3)}, "not a taafs-exp")],
)
def test_foreign_files_are_refused(tmp_path, content, message):
    path = tmp_path / "foreign.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message):
        TAAFSCalculator.from_checkpoint(path)


def test_isolated_molecule_has_energy_and_forces(tiny_checkpoint):
    """No cell: a non-periodic water molecule works (energy, forces)."""
    atoms = Atoms("OH2", positions=[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    atoms.calc = TAAFSCalculator.from_checkpoint(tiny_checkpoint)
    forces = atoms.get_forces()
    assert forces.shape == (3, 3) and np.isfinite(atoms.get_potential_energy())
    np.testing.assert_allclose(forces.sum(0), 0.0, atol=1e-10)  # translation invariance
