"""Reference-data generators: Langevin MD under a reference calculator, sampled into extxyz.

* :func:`xtb_organic` — GFN2-xTB (tblite) on small organic molecules of the ANI-2x elements.
* :func:`emt_alloy` — ASE's EMT on strained, randomly substituted fcc Cu–Ag–Au supercells.
* :func:`sample_md` — the engine of both: any start structures (:class:`Trajectory`) under any
  ASE calculator (e.g. EMT, which also has rough H, C, N, O parameters).

Every frame is written with ASE's standard extxyz labels, so ``ase.io.read(path, ":")`` gives
them back as ``atoms.get_potential_energy()`` (key ``energy``, eV) and ``atoms.get_forces()``
(key ``forces``, eV/Å). EMT frames also carry ``stress`` (ASE convention, eV/Å³, a calculator
result) and ``virial`` = −stress · volume (eV, in ``atoms.info``). ``atoms.info`` also holds
``system`` (molecule name or alloy-cell label) and ``temperature_K`` (bath temperature, K).
Labels are potential-energy derivatives only (no kinetic term in the stress).

Deterministic: the same arguments and seed give a byte-identical file. Files are written
atomically (temporary file in the same folder, validated, then ``os.replace``).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixCom
from ase.data import atomic_numbers, reference_states
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from tqdm import tqdm

#: Closed-shell molecules of ``ase.collections.g2`` covering H C N O F S Cl (ANI-2x elements).
XTB_MOLECULES: tuple[str, ...] = (
    "CH4",  # H C
    "H2O",  # H O
    "NH3",  # H N
    "CH3OH",  # H C O
    "CH3CH2OH",  # H C O
    "CH3CN",  # H C N
    "CH3CONH2",  # H C N O
    "CH3COF",  # H C O F
    "CH3SH",  # H C S
    "CH3Cl",  # H C Cl
)

#: fcc supercells for :func:`emt_alloy` as (cubic cell?, repeat): 32 atoms orthorhombic,
#: 27 atoms triclinic (primitive rhombohedral cell).
EMT_SUPERCELLS: tuple[tuple[bool, tuple[int, int, int]], ...] = (
    (True, (2, 2, 2)),
    (False, (3, 3, 3)),
)


@dataclass(frozen=True)
class Trajectory:
    """One Langevin run: start structure, bath temperature (K), frames to sample, label."""

    atoms: Atoms
    temperature_K: float
    num_frames: int
    system: str


def xtb_organic(
    path: str | Path,
    *,
    molecules: Sequence[str] = XTB_MOLECULES,
    temperatures: Sequence[float] = (300.0, 600.0, 1000.0),
    num_frames: int = 3000,
    sample_every: int = 10,
    equilibration_steps: int = 200,
    timestep_fs: float = 0.5,
    friction_per_fs: float = 0.02,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """GFN2-xTB Langevin MD of isolated molecules, one run per (molecule, temperature).

    ``num_frames`` are shared as evenly as possible over the runs (in order, molecule-major);
    each run equilibrates for ``equilibration_steps`` then keeps every ``sample_every``-th
    step (timestep ``timestep_fs`` fs, friction ``friction_per_fs`` 1/fs). Molecules come from
    ``ase.build.molecule`` (g2 names), neutral closed shell, no cell, no periodicity.
    Energies in eV, forces in eV/Å. Returns ``path``.
    """
    base, extra = divmod(num_frames, len(molecules) * len(temperatures))
    runs = [(name, t) for name in molecules for t in temperatures]
    trajectories = [
        Trajectory(molecule(name), float(t), base + (i < extra), name)
        for i, (name, t) in enumerate(runs)
    ]
    with _single_openmp_thread():
        return sample_md(
            path,
            trajectories,
            _xtb_calculator,
            seed=np.random.SeedSequence(seed),
            sample_every=sample_every,
            equilibration_steps=equilibration_steps,
            timestep_fs=timestep_fs,
            friction_per_fs=friction_per_fs,
            stress=False,
            progress=progress,
            desc="GFN2-xTB MD",
        )


def emt_alloy(
    path: str | Path,
    *,
    elements: Sequence[str] = ("Cu", "Ag", "Au"),
    supercells: Sequence[tuple[bool, tuple[int, int, int]]] = EMT_SUPERCELLS,
    temperatures: Sequence[float] = (300.0, 600.0, 900.0),
    max_strain: float = 0.03,
    num_frames: int = 1000,
    frames_per_cell: int = 10,
    sample_every: int = 10,
    equilibration_steps: int = 40,
    timestep_fs: float = 2.0,
    friction_per_fs: float = 0.02,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """EMT Langevin MD of periodic fcc alloy cells, ``frames_per_cell`` snapshots per cell.

    Each cell: a supercell drawn from ``supercells``; every site gets an element of
    ``elements`` with fractions drawn from a flat Dirichlet; lattice constant by Vegard's law
    from ASE's reference fcc constants; then a random symmetric strain with components
    uniform in ±``max_strain`` (atoms scaled with the cell); bath temperature drawn from
    ``temperatures`` (K). Energies eV, forces eV/Å, stress eV/Å³ (ASE sign), virial eV.
    Returns ``path``.
    """
    structure_seed, md_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(structure_seed)
    lattice = np.array([reference_states[atomic_numbers[el]]["a"] for el in elements])
    trajectories = []
    for i, start in enumerate(range(0, num_frames, frames_per_cell)):
        cubic, repeat = supercells[rng.integers(len(supercells))]
        template = bulk("Cu", "fcc", a=1.0, cubic=cubic).repeat(repeat)
        fractions = rng.dirichlet(np.ones(len(elements)))
        kinds = rng.choice(len(elements), size=len(template), p=fractions)
        a = lattice[kinds].mean()
        atoms = Atoms(
            [elements[k] for k in kinds],
            positions=template.positions * a,
            cell=template.cell * a,
            pbc=True,
        )
        strain = rng.uniform(-max_strain, max_strain, size=(3, 3))
        atoms.set_cell(atoms.cell @ (np.eye(3) + (strain + strain.T) / 2), scale_atoms=True)
        temperature = float(rng.choice(temperatures))
        count = min(frames_per_cell, num_frames - start)
        trajectories.append(Trajectory(atoms, temperature, count, f"alloy-{i:04d}"))
    return sample_md(
        path,
        trajectories,
        EMT,
        seed=md_seed,
        sample_every=sample_every,
        equilibration_steps=equilibration_steps,
        timestep_fs=timestep_fs,
        friction_per_fs=friction_per_fs,
        stress=True,
        progress=progress,
        desc="EMT alloy MD",
    )


def _xtb_calculator() -> Calculator:
    """A quiet GFN2-xTB calculator (tblite, the ``xtb`` extra)."""
    try:
        from tblite.ase import TBLite
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "xtb_organic needs tblite: pip install -e '.[xtb]' (tblite's ASE calculator)"
        ) from err
    return TBLite(method="GFN2-xTB", verbosity=0)


@contextmanager
def _single_openmp_thread() -> Iterator[None]:
    """Run tblite's OpenMP regions on one thread, restoring the previous count afterwards.

    On molecules of a few atoms threads only add overhead (tens of times slower when cores
    are shared), and OpenMP reductions make the trajectory depend on the thread count, so
    the same seed would not give the same file.
    """
    try:
        gomp = ctypes.CDLL("libgomp.so.1")  # the OpenMP runtime tblite's Linux wheels link
    except OSError:
        warnings.warn(
            "libgomp not found: cannot pin tblite to one thread; set OMP_NUM_THREADS=1 for "
            "a reproducible (and fast) xtb_organic",
            RuntimeWarning,
            stacklevel=3,
        )
        yield
        return
    previous = gomp.omp_get_max_threads()
    gomp.omp_set_num_threads(1)
    try:
        yield
    finally:
        gomp.omp_set_num_threads(previous)


def sample_md(
    path: str | Path,
    trajectories: Sequence[Trajectory],
    calculator: Callable[[], Calculator],
    *,
    seed: np.random.SeedSequence,
    sample_every: int,
    equilibration_steps: int,
    timestep_fs: float,
    friction_per_fs: float,
    stress: bool,
    progress: bool,
    desc: str,
) -> Path:
    """Run each trajectory (fresh calculator, own random stream) and write the frames atomically.

    Velocities start Maxwell–Boltzmann at the bath temperature with zero total momentum;
    the centre of mass stays fixed (``FixCom``). Each trajectory's stream is a child of ``seed``,
    so a trajectory does not depend on the ones before it.
    """
    frames: list[Atoms] = []
    streams = seed.spawn(len(trajectories))
    with tqdm(
        total=sum(t.num_frames for t in trajectories), desc=desc, disable=not progress
    ) as bar:
        for traj, stream in zip(trajectories, streams, strict=True):
            if traj.num_frames == 0:
                continue
            rng = np.random.default_rng(stream)
            atoms = traj.atoms.copy()
            atoms.calc = calculator()
            thermalize_momenta(atoms, traj.temperature_K, rng=rng)
            Stationary(atoms)
            atoms.set_constraint(FixCom())
            dyn = Langevin(
                atoms,
                timestep_fs * units.fs,
                temperature_K=traj.temperature_K,
                friction=friction_per_fs / units.fs,
                fixcm=False,
                rng=rng,
            )
            dyn.run(equilibration_steps)
            for _ in range(traj.num_frames):
                dyn.run(sample_every)
                frames.append(_labelled_frame(atoms, traj, stress))
                bar.set_postfix_str(f"{traj.system} {traj.temperature_K:g} K", refresh=False)
                bar.update()
    return _write_atomic(Path(path), frames)


def _labelled_frame(atoms: Atoms, traj: Trajectory, stress: bool) -> Atoms:
    """Positions and labels of ``atoms`` now, as a single-point frame without momenta.

    Forces are the calculator's, −dE/dR, not projected by the MD's ``FixCom`` constraint.
    """
    frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    forces = atoms.get_forces(apply_constraint=False)
    results = {"energy": atoms.get_potential_energy(), "forces": forces}
    if stress:
        results["stress"] = atoms.get_stress()
        frame.info["virial"] = -atoms.get_stress(voigt=False) * atoms.get_volume()
    frame.info["system"] = traj.system
    frame.info["temperature_K"] = traj.temperature_K
    frame.calc = SinglePointCalculator(frame, **results)
    return frame


def _check_frames(frames: Sequence[Atoms], path: Path) -> None:
    """Raise ``ValueError`` naming the frame and field if any label or coordinate is not finite."""
    if not frames:
        raise ValueError(f"{path}: no frames generated (num_frames must be ≥ 1)")
    for i, frame in enumerate(frames):
        fields = {"positions": frame.positions, **frame.calc.results, **frame.info}
        for name, value in fields.items():
            if isinstance(value, (float, np.ndarray)) and not np.all(np.isfinite(value)):
                raise ValueError(
                    f"{path}: frame {i} ({frame.info['system']}) field '{name}' is not finite: "
                    f"{value!r}; expected finite values"
                )


def _write_atomic(path: Path, frames: Sequence[Atoms]) -> Path:
    """Validate, write extxyz to a temporary file beside ``path``, re-read it, then rename."""
    _check_frames(frames, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x") as f:
            ase.io.write(f, frames, format="extxyz")
            f.flush()
            os.fsync(f.fileno())
        if len(ase.io.read(tmp, ":", format="extxyz")) != len(frames):
            raise RuntimeError(
                f"{tmp}: re-read frame count differs from the {len(frames)} written"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
