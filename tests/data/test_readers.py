"""Readers and writers: deepmd/npy, extxyz, ANI HDF5, MD17; round trips, units, bad input."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from ase.units import Hartree, kcal, mol

from taafs_exp.data import DataError, Frame, load_dataset, write_deepmd, write_extxyz
from taafs_exp.data.readers import deepmd as deepmd_module

WATER = Path(__file__).resolve().parents[2] / "data" / "water"
KCAL_MOL = kcal / mol


def make_frames(
    count: int, numbers: list[int], periodic: bool, virial: bool = False, seed: int = 0
) -> list[Frame]:
    """Random labelled frames; atoms on a jittered 1.5 Å grid, so none closer than 0.1 Å."""
    rng = np.random.default_rng(seed)
    n = len(numbers)
    frames = []
    for k in range(count):
        grid = np.stack(np.unravel_index(rng.permutation(27)[:n], (3, 3, 3)), 1) * 1.5
        pos = grid + rng.uniform(-0.3, 0.3, (n, 3))
        cell = np.diag([4.5, 4.6, 4.7]) + rng.uniform(-0.3, 0.3, (3, 3)) if periodic else None
        frames.append(
            Frame(
                positions=torch.tensor(pos),
                numbers=torch.tensor(numbers),
                cell=None if cell is None else torch.tensor(cell),
                pbc=torch.full((3,), periodic),
                energy=torch.tensor(rng.normal(-100.0, 5.0), dtype=torch.float64),
                forces=torch.tensor(rng.normal(0.0, 1.0, (n, 3))),
                virial=torch.tensor(rng.normal(0.0, 1.0, (3, 3))) if virial else None,
                source=f"made:{k}",
            )
        )
    return frames


def assert_frames_equal(got: list[Frame], want: list[Frame], atol: float = 0.0) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.positions.dtype == torch.float64
        torch.testing.assert_close(a.numbers, b.numbers, rtol=0, atol=0)
        assert a.pbc.tolist() == b.pbc.tolist()
        assert (a.cell is None) == (b.cell is None) and (a.virial is None) == (b.virial is None)
        pairs = [(a.positions, b.positions), (a.energy, b.energy), (a.forces, b.forces)]
        pairs += [(x, y) for x, y in [(a.cell, b.cell), (a.virial, b.virial)] if x is not None]
        for x, y in pairs:
            torch.testing.assert_close(x, y, rtol=0, atol=atol)


# --------------------------------------------------------------------------- deepmd/npy


@pytest.fixture(scope="module")
def water():
    return load_dataset(WATER)


def test_water_frames_systems_and_values(water):
    counts = {
        s.name: sum(len(np.load(f / "energy.npy")) for f in sorted(s.glob("set.*")))
        for s in sorted(WATER.glob("data_*"))
    }
    assert len(water) == sum(counts.values()) == 400
    assert water.systems == ["data_0", "data_1", "data_2", "data_3"]
    assert [int((water.system_index == k).sum()) for k in range(4)] == list(counts.values())
    last = water[len(water) - 1]
    coord = np.load(WATER / "data_3" / "set.000" / "coord.npy")[-1].reshape(-1, 3)
    assert water.system_of(len(water) - 1) == "data_3"
    assert last.source.endswith("data_3/set.000:79")
    assert last.positions.dtype == torch.float64 and last.positions.shape == (192, 3)
    np.testing.assert_array_equal(last.positions.numpy(), coord.astype(np.float64))
    assert last.numbers.tolist() == [8] * 64 + [1] * 128 and bool(last.pbc.all())
    np.testing.assert_allclose(torch.diagonal(last.cell).numpy(), 12.444661, rtol=1e-7)
    assert len(water.select_systems(["data_3"])) == 80
    sub = water.subset([399, 0])
    assert sub.systems == ["data_0", "data_3"] and sub.system_of(0) == "data_3"
    with pytest.raises(DataError, match="data_9"):
        water.select_systems(["data_9"])


def test_deepmd_round_trip_periodic_with_virial(tmp_path):
    frames = make_frames(5, [8, 1, 1, 8, 1, 1], periodic=True, virial=True)
    write_deepmd(frames, tmp_path / "sys")
    assert sorted(p.name for p in (tmp_path / "sys").iterdir()) == [
        "set.000", "type.raw", "type_map.raw"
    ]  # fmt: skip
    ds = load_dataset(tmp_path / "sys")
    assert ds.systems == ["sys"]
    assert_frames_equal(list(ds), frames)


def test_deepmd_nopbc_and_mixed_sizes(tmp_path):
    water = make_frames(3, [8, 1, 1], periodic=False, seed=1)
    methane = make_frames(2, [6, 1, 1, 1, 1], periodic=False, seed=2)
    write_deepmd(water + methane, tmp_path / "mols")
    assert (tmp_path / "mols" / "system_000" / "nopbc").exists()
    ds = load_dataset(tmp_path / "mols", format="deepmd")
    assert ds.systems == ["system_000", "system_001"]
    assert [f.num_atoms for f in ds] == [3, 3, 3, 5, 5]
    assert (tmp_path / "mols" / "system_001" / "type_map.raw").read_text().split() == [
        "H",
        "C",
        "O",
    ]
    assert_frames_equal(list(ds), water + methane)


def test_deepmd_type_map_option(tmp_path):
    write_deepmd(make_frames(2, [8, 1, 1], periodic=True), tmp_path / "s")
    (tmp_path / "s" / "type_map.raw").unlink()
    with pytest.raises(DataError, match="type_map.raw: file not found"):
        load_dataset(tmp_path / "s")
    ds = load_dataset(tmp_path / "s", type_map=["H", "O"])
    assert ds[0].numbers.tolist() == [8, 1, 1]


def test_write_is_atomic(tmp_path, monkeypatch):
    frames = make_frames(2, [8, 1, 1], periodic=True)
    calls = []
    real_save = np.save

    def failing_save(path, array):  # the third array fails half-way through the system
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real_save(path, array)

    monkeypatch.setattr(deepmd_module.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_deepmd(frames, tmp_path / "out")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == [], "a half-written system or temp folder was left"
    write_deepmd(frames, tmp_path / "out")
    with pytest.raises(DataError, match="already exists"):
        write_deepmd(frames, tmp_path / "out")
    write_deepmd(frames[:1], tmp_path / "out", overwrite=True)
    assert len(load_dataset(tmp_path / "out")) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.fixture
def system(tmp_path) -> Path:
    """A small valid periodic deepmd system to break."""
    write_deepmd(make_frames(4, [8, 1, 1, 8, 1, 1], periodic=True), tmp_path / "sys")
    return tmp_path / "sys"


def _edit(path: Path, change) -> None:
    np.save(path, change(np.load(path)))


def _set_value(index, value):
    def change(array):
        array = array.copy()
        array[index] = value
        return array

    return change


BAD_DEEPMD = {
    "missing-file": (
        lambda s: (s / "set.000" / "coord.npy").unlink(),
        "coord.npy: file not found",
    ),
    "missing-box": (lambda s: (s / "set.000" / "box.npy").unlink(), "box.npy: file not found"),
    "coord-not-nx3": (
        lambda s: _edit(s / "set.000" / "coord.npy", lambda a: a[:, :-1]),
        r"coord.npy: shape \(4, 17\), expected \(4, 6, 3\)",
    ),
    "energy-count": (
        lambda s: _edit(s / "set.000" / "energy.npy", lambda a: a[:3]),
        r"energy.npy: shape \(3,\) \(3 frames\), expected 4 frames \(as in .*coord.npy\)",
    ),
    "nan-force": (
        lambda s: _edit(s / "set.000" / "force.npy", _set_value((2, 5), np.nan)),
        r"force.npy: 1 NaN/inf value\(s\), first in frame 2",
    ),
    "inf-coord": (
        lambda s: _edit(s / "set.000" / "coord.npy", _set_value((1, 0), np.inf)),
        "coord.npy: 1 NaN/inf",
    ),
    "type-index": (
        lambda s: (s / "type.raw").write_text("0\n1\n1\n2\n1\n1\n"),
        r"type.raw: type index 2 at atom 3, expected 0..1",
    ),
    "empty-set": (
        lambda s: [
            _edit(s / "set.000" / f"{k}.npy", lambda a: a[:0])
            for k in ("coord", "energy", "force", "box")
        ],
        "coord.npy: no frames",
    ),
    "no-system": (lambda s: (s / "type.raw").unlink(), "no deepmd system found"),
    "singular-cell": (
        lambda s: _edit(s / "set.000" / "box.npy", _set_value(1, [4, 0, 0, 8, 0, 0, 0, 0, 4])),
        "box.npy: frame 1 has a singular cell",
    ),
    "close-atoms": (
        lambda s: _edit(
            s / "set.000" / "coord.npy",
            lambda a: np.concatenate([a[:, :3], a[:, :3] + 0.05, a[:, 6:]], 1),
        ),
        r"coord.npy: frame 0, atoms 0 and 1 are 0.0866 Å apart; expected at least 0.1 Å",
    ),
}


@pytest.mark.parametrize("case", BAD_DEEPMD)
def test_bad_deepmd_input_raises_one_clear_error(system, case):
    breaks, message = BAD_DEEPMD[case]
    breaks(system)
    with pytest.raises(DataError, match=message):
        load_dataset(system)


def test_missing_path_and_unknown_format(tmp_path, caplog):
    with pytest.raises(DataError, match="nowhere: file not found"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "a.cif").write_text("")
    with pytest.raises(DataError, match=r"a.cif: cannot tell the format from suffix '.cif'"):
        load_dataset(tmp_path / "a.cif")
    with pytest.raises(DataError, match="format: 'cif'"):
        load_dataset(tmp_path / "a.cif", format="cif")


# --------------------------------------------------------------------------- extxyz


def test_extxyz_round_trip_mixed_sizes_and_pbc(tmp_path, caplog):
    frames = make_frames(2, [8, 1, 1], periodic=True, virial=True, seed=3) + make_frames(
        2, [6, 1, 1, 1, 1], periodic=False, seed=4
    )
    write_extxyz(frames, tmp_path / "all.xyz")
    with caplog.at_level(logging.INFO):
        ds = load_dataset(tmp_path / "all.xyz")
    assert "as format 'extxyz'" in caplog.text
    assert ds.systems == ["all.xyz"] and ds[3].source.endswith("all.xyz:3")
    assert_frames_equal(list(ds), frames, atol=1e-8)  # ASE prints 8 decimals


def test_extxyz_keys_units_and_stress(tmp_path):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms.cell, atoms.pbc = np.diag([5.0, 6.0, 7.0]), True
    atoms.info.update(REF_energy=-2.0, config_type="water")
    atoms.arrays["REF_forces"] = np.arange(9.0).reshape(3, 3)
    stress = np.array([1.0, 2.0, 3.0, 0.1, 0.2, 0.3]) * 1e-3  # Voigt xx yy zz yz xz xy
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.ones((3, 3)), stress=stress)
    write(tmp_path / "w.extxyz", [atoms], format="extxyz")

    default = load_dataset(tmp_path / "w.extxyz")[0]
    assert float(default.energy) == -1.0 and bool((default.forces == 1).all())
    expected_virial = -210.0 * np.array(
        [[1.0, 0.3, 0.2], [0.3, 2.0, 0.1], [0.2, 0.1, 3.0]]
    ) * 1e-3  # fmt: skip
    np.testing.assert_allclose(default.virial.numpy(), expected_virial, rtol=1e-12)

    ref = load_dataset(
        tmp_path / "w.extxyz",
        energy_key="REF_energy",
        forces_key="REF_forces",
        system_key="config_type",
        units="kcal/mol",
    )
    assert ref.systems == ["water"]
    assert float(ref[0].energy) == pytest.approx(-2.0 * KCAL_MOL, rel=1e-12)
    np.testing.assert_allclose(ref[0].forces.numpy(), np.arange(9.0).reshape(3, 3) * KCAL_MOL)
    with pytest.raises(DataError, match=r"frame 0: no 'dft_energy' in info, arrays or calculator"):
        load_dataset(tmp_path / "w.extxyz", energy_key="dft_energy")


# --------------------------------------------------------------------------- ANI HDF5


def test_ani_h5_legacy_layout_hartree_to_ev(tmp_path):
    rng = np.random.default_rng(5)
    coords = np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]) + rng.normal(0, 0.01, (4, 3, 3))
    energy, forces = rng.normal(-76.0, 0.01, 4), rng.normal(0, 0.1, (4, 3, 3))
    with h5py.File(tmp_path / "ani.h5", "w") as h5:
        group = h5.create_group("gdb11_s01").create_group("gdb11_s01-0")
        group["coordinates"], group["energies"], group["forces"] = coords, energy, forces
        group["species"] = np.array([b"O", b"H", b"H"])
    ds = load_dataset(tmp_path / "ani.h5")
    assert ds.systems == ["gdb11_s01/gdb11_s01-0"] and len(ds) == 4
    assert ds[2].numbers.tolist() == [8, 1, 1] and ds[2].cell is None
    np.testing.assert_allclose(ds[2].energy.item(), energy[2] * Hartree, rtol=1e-15)
    np.testing.assert_allclose(ds[2].forces.numpy(), forces[2] * Hartree, rtol=1e-15)
    np.testing.assert_array_equal(ds[2].positions.numpy(), coords[2])


def test_ani_h5_flat_layout_padding_and_keys(tmp_path):
    species = np.array([[8, 1, 1, -1], [6, 1, 1, 1], [8, 1, 1, -1]])
    coords = np.zeros((3, 4, 3))
    coords[:, :4] = [[0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    with h5py.File(tmp_path / "flat.hdf5", "w") as h5:
        group = h5.create_group("004")
        group["coordinates"], group["species"] = coords, species
        group["wb97x_dz.energy"], group["forces"] = np.array([-1.0, -2.0, -3.0]), np.ones(
            (3, 4, 3)
        )
    with pytest.raises(DataError, match=r"flat.hdf5:004: missing \['energies'\]"):
        load_dataset(tmp_path / "flat.hdf5")
    ds = load_dataset(tmp_path / "flat.hdf5", energy_key="wb97x_dz.energy", units="eV")
    by_source = {f.source.rsplit(":", 1)[1]: f for f in ds}
    assert sorted(by_source) == ["0", "1", "2"]
    assert by_source["1"].numbers.tolist() == [6, 1, 1, 1]
    assert by_source["2"].numbers.tolist() == [8, 1, 1] and by_source["2"].forces.shape == (3, 3)
    assert float(by_source["2"].energy) == -3.0


# --------------------------------------------------------------------------- MD17 / rMD17


def _md17(path: Path, keys, extra=None) -> None:
    pos = np.array([[[0, 0, 0], [1.1, 0, 0], [0, 1.1, 0]]] * 2, dtype=float)
    arrays = dict(
        zip(keys, (pos, np.array([6, 1, 1]), np.array([-1.0, -2.0]), np.ones((2, 3, 3))))
    )
    np.savez(path, **arrays, **(extra or {}))


def test_md17_units_are_required_or_read_from_the_file(tmp_path):
    _md17(tmp_path / "rmd17_benzene.npz", ("coords", "nuclear_charges", "energies", "forces"))
    with pytest.raises(DataError, match="energy unit unknown.*expected units="):
        load_dataset(tmp_path / "rmd17_benzene.npz")
    ds = load_dataset(tmp_path / "rmd17_benzene.npz", units="kcal/mol")
    assert ds.systems == ["rmd17_benzene"] and ds[0].numbers.tolist() == [6, 1, 1]
    assert float(ds[1].energy) == pytest.approx(-2.0 * KCAL_MOL, rel=1e-14)
    np.testing.assert_allclose(ds[1].forces.numpy(), KCAL_MOL, rtol=1e-14)

    _md17(tmp_path / "md17.npz", ("R", "z", "E", "F"), {"e_unit": "kcal/mol", "r_unit": "Ang"})
    assert float(load_dataset(tmp_path / "md17.npz")[0].energy) == pytest.approx(-KCAL_MOL)
    with pytest.raises(DataError, match=r"\[e_unit\]: 'kcal/mol', but units='eV'"):
        load_dataset(tmp_path / "md17.npz", units="eV")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match=r"other.npz: keys \['x'\], expected \('R', 'z'"):
        load_dataset(tmp_path / "other.npz", units="eV")


# --------------------------------------------------------------------------- shared checks


def _pair_frame(pbc: list[bool], gap: float) -> Frame:
    """Two H atoms `gap` Å apart through the periodic x boundary of a 6 Å cell."""
    pos = torch.tensor([[0.5 * gap, 1.0, 1.0], [6.0 - 0.5 * gap, 1.0, 1.0]], dtype=torch.float64)
    return Frame(
        positions=pos,
        numbers=torch.tensor([1, 1]),
        cell=6.0 * torch.eye(3, dtype=torch.float64),
        pbc=torch.tensor(pbc),
        energy=torch.tensor(0.0, dtype=torch.float64),
        forces=torch.zeros(2, 3, dtype=torch.float64),
    )


@pytest.mark.parametrize("pbc", [[True] * 3, [True, True, False]], ids=["bulk", "slab"])
def test_close_atoms_through_the_periodic_boundary(tmp_path, pbc):
    write_extxyz([_pair_frame(pbc, 0.5), _pair_frame(pbc, 0.05)], tmp_path / "pair.xyz")
    with pytest.raises(DataError, match=r"pair.xyz frame 0..1 \[pos\]: frame 1, atoms 0 and 1"):
        load_dataset(tmp_path / "pair.xyz")
    shutil.copy(tmp_path / "pair.xyz", tmp_path / "ok.xyz")
    write_extxyz([_pair_frame(pbc, 0.5)], tmp_path / "ok.xyz", overwrite=True)
    assert len(load_dataset(tmp_path / "ok.xyz")) == 1


def test_empty_inputs_raise(tmp_path):
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(DataError, match="empty.xyz: no frames"):
        load_dataset(tmp_path / "empty.xyz")
    with pytest.raises(DataError, match="no frames to write"):
        write_extxyz([], tmp_path / "none.xyz")
    assert not (tmp_path / "none.xyz").exists()
