"""NVE / NVT molecular dynamics with ASE, watched for blow-ups (times fs, energies eV, K).

A run stops at the first sign of instability and says so: a non-finite energy, two atoms
closer than ``min_distance`` (Å), a temperature above ``max_temperature_K``, or a model that
refuses the configuration (DP: more neighbours than its ``sel`` slots, i.e. a collapse).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.constraints import FixCom
from ase.io import Trajectory
from ase.md.langevin import Langevin
from ase.md.md import MolecularDynamics
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from taafs_exp.data.frame import Frame
from taafs_exp.md.observables import min_pair_distance
from taafs_exp.models.dp import SelOverflowError

#: Start of ``MDRun.reason`` when the model cannot evaluate a configuration (e.g. more
#: neighbours than DP's ``sel``): the run stops there, but nothing physical has blown up yet.
REFUSED = "model refused the configuration"


@dataclass(frozen=True)
class StabilityLimits:
    """Bounds a physical water run at 300 K stays far inside (Å, K)."""

    min_distance: float = 0.5
    max_temperature_K: float = 2000.0


@dataclass
class MDRun:
    """What one run produced: a row per logged step, snapshots for structure, the verdict."""

    ensemble: str
    timestep_fs: float
    steps_requested: int
    num_atoms: int
    steps_done: int = 0
    wall_s: float = 0.0
    time_fs: list[float] = field(default_factory=list)
    potential_energy: list[float] = field(default_factory=list)  # eV
    kinetic_energy: list[float] = field(default_factory=list)  # eV
    temperature_K: list[float] = field(default_factory=list)
    min_distance: list[float] = field(default_factory=list)  # Å
    snapshots: list[np.ndarray] = field(default_factory=list)  # (N, 3) positions, Å
    snapshot_steps: list[int] = field(default_factory=list)
    blew_up: bool = False
    failed_step: int | None = None
    reason: str | None = None

    @property
    def total_energy(self) -> np.ndarray:
        return np.asarray(self.potential_energy) + np.asarray(self.kinetic_energy)

    @property
    def steps_per_s(self) -> float:
        return self.steps_done / self.wall_s if self.wall_s > 0 else float("nan")

    def _record(self, step: int, atoms: Atoms, energy: float, min_distance: float) -> None:
        self.time_fs.append(step * self.timestep_fs)
        self.potential_energy.append(energy)
        self.kinetic_energy.append(float(atoms.get_kinetic_energy()))
        self.temperature_K.append(float(atoms.get_temperature()))
        self.min_distance.append(min_distance)


def frame_atoms(frame: Frame) -> Atoms:
    """ASE Atoms of a data Frame (positions and cell in Å)."""
    return Atoms(
        numbers=frame.numbers.numpy(),
        positions=frame.positions.numpy(),
        cell=frame.cell.numpy(),
        pbc=frame.pbc.numpy(),
    )


def make_dynamics(
    atoms: Atoms,
    ensemble: str,
    timestep_fs: float,
    temperature_K: float,
    friction_per_fs: float = 0.01,
    seed: int = 0,
) -> MolecularDynamics:
    """Maxwell–Boltzmann velocities at ``temperature_K`` (zero total momentum), then
    velocity Verlet (``nve``) or Langevin at ``temperature_K`` with friction γ in fs⁻¹
    (``nvt``; the centre of mass is held by an added FixCom constraint, as ASE advises).
    Velocities and Langevin noise are seeded by ``seed``."""
    if ensemble not in ("nve", "nvt"):
        raise ValueError(f"make_dynamics: ensemble {ensemble!r}, expected 'nve' or 'nvt'")
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K, rng=rng)
    Stationary(atoms)
    dt = timestep_fs * units.fs
    if ensemble == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    atoms.set_constraint([*atoms.constraints, FixCom()])
    return Langevin(
        atoms,
        timestep=dt,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )


def run_md(
    dyn: MolecularDynamics,
    ensemble: str,
    steps: int,
    *,
    log_interval: int = 10,
    snapshot_interval: int = 20,
    limits: StabilityLimits = StabilityLimits(),
    trajectory: str | Path | None = None,
) -> MDRun:
    """Run ``steps`` steps of ``dyn`` (its atoms: periodic, with a calculator), checking stability.

    Every step: a finite potential energy. Every ``log_interval`` steps (and step 0): energies,
    temperature and the closest pair are recorded and checked against ``limits``. Every
    ``snapshot_interval`` steps positions are kept (and written to ``trajectory``, ASE .traj).
    A violation stops the run with ``blew_up``, ``failed_step`` and ``reason`` set; the data up
    to it are kept. ``wall_s`` times the whole loop, checks and writing included.
    """
    atoms: Atoms = dyn.atoms
    run = MDRun(ensemble, dyn.dt / units.fs, steps, len(atoms))
    writer = Trajectory(str(trajectory), "w", atoms) if trajectory else None
    start = time.perf_counter()
    try:
        for _ in dyn.irun(steps):
            step = dyn.nsteps
            run.steps_done = step
            energy = float(atoms.get_potential_energy())
            reason = None if np.isfinite(energy) else f"potential energy {energy}"
            if reason is None and step % log_interval == 0:
                closest = min_pair_distance(atoms.positions, atoms.cell.array)
                run._record(step, atoms, energy, closest)
                reason = _violation(closest, run.temperature_K[-1], limits)
            if reason is None and step % snapshot_interval == 0:
                run.snapshots.append(atoms.positions.copy())
                run.snapshot_steps.append(step)
                if writer is not None:
                    writer.write(atoms)
            if reason is not None:
                run.blew_up, run.failed_step, run.reason = True, step, reason
                break
    except SelOverflowError as err:
        run.blew_up, run.failed_step = True, dyn.nsteps + 1
        run.reason = f"{REFUSED}: {err}"
    finally:
        run.wall_s = time.perf_counter() - start
        if writer is not None:
            writer.close()
    return run


def _violation(closest: float, temperature: float, limits: StabilityLimits) -> str | None:
    if closest < limits.min_distance:
        return f"atoms {closest:.3f} Å apart (< {limits.min_distance} Å)"
    if not temperature < limits.max_temperature_K:
        return f"temperature {temperature:.0f} K (≥ {limits.max_temperature_K} K)"
    return None
