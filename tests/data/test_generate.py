"""Data generators: labels are −dE/dR, files are seeded, complete and atomically written."""

from __future__ import annotations

import itertools
import runpy
from collections.abc import Callable
from pathlib import Path

import ase.io
import hydra
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.calculators.emt import EMT

from helpers import compose_config
from taafs_exp.data import generate

ROOT = Path(__file__).resolve().parents[2]
ANI2X = {"H", "C", "N", "O", "F", "S", "Cl"}
TINY = {
    "xtb_organic": dict(
        molecules=("CH3Cl", "H2O"),
        temperatures=(600.0,),
        num_frames=5,
        sample_every=3,
        equilibration_steps=5,
    ),
    "emt_alloy": dict(
        supercells=((False, (2, 2, 2)),),
        num_frames=5,
        frames_per_cell=2,
        sample_every=3,
        equilibration_steps=5,
    ),
}
FACTORY = {"xtb_organic": "_xtb_calculator", "emt_alloy": "EMT"}
GENERATORS = pytest.mark.parametrize("name", sorted(TINY))


def make(name: str, path: Path, seed: int = 0) -> list[Atoms]:
    generate_fn = getattr(generate, name)
    assert generate_fn(path, seed=seed, progress=False, **TINY[name]) == path
    return ase.io.read(path, ":", format="extxyz")


def calculator(name: str) -> Calculator:
    return getattr(generate, FACTORY[name])()


def broken(name: str, after: int, fault: Callable[[Calculator], None]) -> Callable[[], Calculator]:
    """The generator's calculator factory; its calculators call ``fault`` after ``after`` calls."""
    calls, make_calculator = itertools.count(), getattr(generate, FACTORY[name])

    def factory() -> Calculator:
        calc = make_calculator()
        original = calc.calculate

        def calculate(*args, **kwargs):
            original(*args, **kwargs)
            if next(calls) >= after:
                fault(calc)

        calc.calculate = calculate
        return calc

    return factory


def crash(calc: Calculator) -> None:
    raise RuntimeError("simulated crash")


def nan_energy(calc: Calculator) -> None:
    calc.results["energy"] = float("nan")


@GENERATORS
def test_frames_have_finite_labels_and_metadata(name, tmp_path):
    frames = make(name, tmp_path / "out.extxyz")
    assert len(frames) == TINY[name]["num_frames"]
    for frame in frames:
        assert np.isfinite(frame.get_potential_energy())
        forces = frame.get_forces()
        assert forces.shape == (len(frame), 3) and np.isfinite(forces).all()
        assert np.abs(forces).max() > 1e-3  # thermal snapshots, not minima
        assert frame.info["temperature_K"] in TINY[name].get("temperatures", (300.0, 600.0, 900.0))
        assert "momenta" not in frame.arrays
    if name == "xtb_organic":
        assert [f.info["system"] for f in frames] == ["CH3Cl"] * 3 + ["H2O"] * 2
        assert all(not f.pbc.any() for f in frames)
    else:
        for frame in frames:
            assert frame.pbc.all() and set(frame.get_chemical_symbols()) <= {"Cu", "Ag", "Au"}
            virial = frame.info["virial"]
            expected = -frame.get_stress(voigt=False) * frame.get_volume()
            np.testing.assert_allclose(virial, expected, rtol=1e-12, atol=1e-12)
        assert len({f.info["system"] for f in frames}) == 3  # 5 frames, 2 per cell


def test_default_molecules_cover_the_ani2x_elements():
    from ase.build import molecule

    covered = {s for name in generate.XTB_MOLECULES for s in molecule(name).get_chemical_symbols()}
    assert covered == ANI2X


@GENERATORS
def test_forces_are_minus_the_energy_gradient(name, tmp_path):
    frame = make(name, tmp_path / "out.extxyz")[1]
    atoms = frame.copy()
    atoms.calc = calculator(name)
    h, fd = 1e-3, np.zeros((len(atoms), 3))
    with generate._single_openmp_thread():  # as in generation: tblite is slow on many threads
        for i, k in itertools.product(range(len(atoms)), range(3)):
            energies = []
            for step in (h, -h):
                displaced = frame.positions.copy()
                displaced[i, k] += step
                atoms.positions = displaced
                energies.append(atoms.get_potential_energy())
            fd[i, k] = -(energies[0] - energies[1]) / (2 * h)
    np.testing.assert_allclose(frame.get_forces(), fd, atol=2e-3)


def test_virial_is_minus_the_strain_derivative_of_the_energy(tmp_path):
    """virial = −dE/dε (eV) for a symmetric strain ε, i.e. −stress·V in ASE's sign convention."""
    frame = make("emt_alloy", tmp_path / "out.extxyz")[0]
    atoms = frame.copy()
    atoms.calc = EMT()
    h, fd = 1e-5, np.zeros((3, 3))
    for a, b in itertools.product(range(3), range(3)):
        energies = []
        for step in (h, -h):
            strain = np.eye(3)
            strain[a, b] += step / 2
            strain[b, a] += step / 2
            atoms.set_cell(frame.cell @ strain, scale_atoms=True)
            energies.append(atoms.get_potential_energy())
        fd[a, b] = -(energies[0] - energies[1]) / (2 * h)
    np.testing.assert_allclose(frame.info["virial"], fd, atol=1e-4)


@GENERATORS
def test_same_seed_same_file_other_seed_other_data(name, tmp_path):
    make(name, tmp_path / "a.extxyz", seed=0)
    make(name, tmp_path / "b.extxyz", seed=0)
    other = make(name, tmp_path / "c.extxyz", seed=1)
    assert (tmp_path / "a.extxyz").read_bytes() == (tmp_path / "b.extxyz").read_bytes()
    first = ase.io.read(tmp_path / "a.extxyz", ":")
    assert not np.allclose(first[-1].positions, other[-1].positions)
    assert not np.allclose(first[-1].get_forces(), other[-1].get_forces())


@GENERATORS
@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("fault, error", [(crash, RuntimeError), (nan_energy, ValueError)])
def test_failed_generation_writes_nothing(name, existing, fault, error, tmp_path, monkeypatch):
    path = tmp_path / "out.extxyz"
    if existing:
        path.write_text("previous data\n")
    monkeypatch.setattr(generate, FACTORY[name], broken(name, 6, fault))
    with pytest.raises(error, match="simulated crash|not finite"):
        make(name, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["out.extxyz"] if existing else [])
    if existing:
        assert path.read_text() == "previous data\n"


def test_interrupted_write_leaves_no_temporary_or_partial_file(tmp_path, monkeypatch):
    def write_half(f, frames, **kwargs):
        f.write(f"{len(frames[0])}\npartial\n")
        raise OSError("disk full")

    monkeypatch.setattr(generate.ase.io, "write", write_half)
    with pytest.raises(OSError, match="disk full"):
        make("emt_alloy", tmp_path / "out.extxyz")
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "nested" / "emt.extxyz"
    main = runpy.run_path(str(ROOT / "scripts" / "generate_data.py"))["main"]
    main(["emt_alloy", "--out", str(out), "--num-frames", "3", "--seed", "2", "--no-progress"])
    assert len(ase.io.read(out, ":")) == 3
    assert f"wrote {out}: 3 frames" in capsys.readouterr().out


@GENERATORS
def test_config_builds_the_data_on_first_use(name, tmp_path):
    path = tmp_path / f"{name}.extxyz"
    cfg = compose_config(
        [
            f"data={name}",
            f"data.path={path}",
            "data.generator.num_frames=4",
            "+data.generator.equilibration_steps=2",
            "+data.generator.sample_every=2",
            "logger=none",
        ],
        tmp_path,
    )
    assert cfg.data.generator.seed == 0
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    assert len(ase.io.read(path, ":")) == 4
