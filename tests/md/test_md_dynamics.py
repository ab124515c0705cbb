"""Watched MD: NVE energy conservation with a trained model; blow-ups stop the run and say why."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from taafs_exp.md import StabilityLimits, energy_drift, make_dynamics, run_md
from taafs_exp.models.dp import SelOverflowError


def test_nve_conserves_energy(water_atoms):
    """20 velocity-Verlet steps of 0.5 fs from a DFT water frame at 300 K (tiny trained DP).

    Bound: Verlet's energy error oscillates with relative amplitude ≈ (ω·dt)²/8 of the energy
    in a mode of angular frequency ω. The fastest water mode, the O–H stretch (~3700 cm⁻¹,
    period 9 fs, ω ≈ 0.7 fs⁻¹), gives (0.35)²/8 ≈ 1.5 % of its energy, and stretches hold about
    2/9 of the thermal energy: |E_tot(t) − E_tot(0)| ≤ 1 % of the initial kinetic energy is
    safe for a correct integrator with forces = −∇E, while wrong-sign or mis-scaled forces
    break it by the size of the kinetic-energy exchange itself (checked to be ≥ 5 % here).
    """
    dyn = make_dynamics(water_atoms, "nve", timestep_fs=0.5, temperature_K=300.0, seed=0)
    # The 5-step model is no physical water (an H may drift towards its O); this test is about
    # integration accuracy, so only the energy-based checks stay on.
    run = run_md(dyn, "nve", 20, log_interval=1, limits=StabilityLimits(min_distance=0.0))
    assert not run.blew_up and run.steps_done == 20 and len(run.time_fs) == 21
    kinetic = np.asarray(run.kinetic_energy)
    error = np.abs(run.total_energy - run.total_energy[0]).max()
    exchange = np.abs(kinetic - kinetic[0]).max()
    assert exchange > 0.05 * kinetic[0]  # energy really flows between kinetic and potential
    assert error < 0.01 * kinetic[0]
    drift = energy_drift(np.asarray(run.time_fs) / 1000, run.total_energy, len(water_atoms))
    assert drift["max_deviation_meV_per_atom"] == pytest.approx(1000 * error / len(water_atoms))


def _copper(temperature_K: float, seed: int = 0):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.calc = EMT()
    return make_dynamics(atoms, "nvt", 1.0, temperature_K, friction_per_fs=0.01, seed=seed)


def test_hot_run_is_reported_as_blown_up():
    run = run_md(_copper(8000.0), "nvt", 50, log_interval=1)
    assert run.blew_up and run.failed_step == 0
    assert "temperature" in run.reason and "2000" in run.reason
    assert run.time_fs == [0.0]  # the offending sample is kept for the report


def test_close_pair_is_reported_as_blown_up():
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [0.4, 0, 0]], cell=[6, 6, 6], pbc=True)
    atoms.calc = EMT()
    run = run_md(make_dynamics(atoms, "nve", 1.0, 10.0), "nve", 10, log_interval=1)
    assert run.blew_up and run.failed_step == 0
    assert "0.400 Å apart" in run.reason


class _FailsAfter(Calculator):
    """Zero forces; from the ``after``-th calculation on, NaN energy or SelOverflowError."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, after: int, failure: str) -> None:
        super().__init__()
        self.after, self.failure, self.calls = after, failure, 0

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.calls > self.after and self.failure == "overflow":
            raise SelOverflowError("atom 0 has 47 O neighbours within 6 Å, sel allows 46")
        nan = self.calls > self.after and self.failure == "nan"
        self.results = {
            "energy": float("nan") if nan else 0.0,
            "forces": np.zeros((len(self.atoms), 3)),
        }


@pytest.mark.parametrize(
    "failure, reason", [("nan", "potential energy nan"), ("overflow", "model refused")]
)
def test_failing_model_stops_the_run_at_that_step(failure, reason):
    """One calculation per step (step 0 included): the 6th fails, i.e. step 5."""
    atoms = Atoms("Ar2", positions=[[0, 0, 0], [3, 0, 0]], cell=[8, 8, 8], pbc=True)
    atoms.calc = _FailsAfter(5, failure)
    run = run_md(make_dynamics(atoms, "nve", 1.0, 50.0), "nve", 100, log_interval=1)
    assert run.blew_up and run.failed_step == 5 and reason in run.reason
    assert len(run.time_fs) == 5  # steps 0..4 were recorded


def test_runs_are_reproducible_and_record_on_schedule():
    """Same seed, same Langevin trajectory; samples every log/snapshot interval."""
    first = run_md(_copper(300.0, seed=3), "nvt", 20, log_interval=5, snapshot_interval=10)
    second = run_md(_copper(300.0, seed=3), "nvt", 20, log_interval=5, snapshot_interval=10)
    assert not first.blew_up and first.steps_done == 20
    assert first.time_fs == [0.0, 5.0, 10.0, 15.0, 20.0] and first.snapshot_steps == [0, 10, 20]
    np.testing.assert_array_equal(first.snapshots[-1], second.snapshots[-1])
    assert first.steps_per_s == 20 / first.wall_s  # steps taken (20), not samples logged (5)


def test_unknown_ensemble():
    with pytest.raises(ValueError, match="'npt'"):
        make_dynamics(bulk("Cu"), "npt", 1.0, 300.0)
