"""scripts/md_validate.py end to end (its Hydra config composed in-process; tiny model)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import ase.io
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from taafs_exp.data import load_dataset
from taafs_exp.md import frame_atoms
from taafs_exp.md.repulsion import ZBLRepulsion, shortest_pair_distances
from taafs_exp.md.scan import pair_scan, water_pairs

ROOT = Path(__file__).resolve().parents[2]


def md_validate(overrides: list[str]) -> None:
    """Run the script's ``main`` on ``conf/md.yaml`` with ``overrides``, as Hydra would."""
    spec = importlib.util.spec_from_file_location(
        "md_validate", ROOT / "scripts" / "md_validate.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("md", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    script.main(cfg)


def test_md_validate_writes_report_and_summary(tiny_checkpoint, tmp_path):
    results = tmp_path / "results"
    md_validate(
        [
            f"checkpoint={tiny_checkpoint}",
            "name=tiny",
            f"results_dir={results}",
            f"data_path={ROOT / 'data' / 'water' / 'data_3'}",
            "nve.steps=10",
            "nvt.steps=20",
            "nvt.equilibration_steps=10",
            "log_interval=5",
            "snapshot_interval=5",
            "stability.min_distance=0.1",  # the 5-step model lets an H approach its O
        ]
    )
    out = results / "tiny"
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["activation"] == "chebyshev"
    assert report["reference_frames"] == 80  # every frame of data_3
    assert report["nve"]["steps_done"] == 10 and report["nve"]["stable"]
    assert_energy_matches_trajectory(report["nve"], out / "nve.traj")
    scans = report["short_range"]
    assert set(scans) == {"O-H bond", "O-H intermolecular", "O-O molecule"}
    for scan in scans.values():  # from 0.3 Å out to the pair's own distance, E relative to it
        assert scan["r_A"][0] == 0.3 and scan["energy_eV"][-1] == 0.0
        e = scan["energy_eV"]
        assert scan["wall_eV"] == max(scan["energy_eV"])
        assert scan["largest_drop_when_closing_eV"] == max(
            [0.0] + [e[j] - min(e[:j]) for j in range(1, len(e))])
    assert report["nvt"]["rdf_snapshots"] == 3  # steps 10, 15, 20
    assert set(report["nvt"]["rdf"]) == {"O-O", "O-H", "H-H", "total_distance_A"}
    rdf = report["nvt"]["rdf"]
    pairs = [rdf[p]["distance_A"] for p in ("O-O", "O-H", "H-H")]
    assert min(pairs) > 0 and rdf["total_distance_A"] == pytest.approx(sum(pairs))
    nvt = report["nvt"]  # steps/s × fs/step × 86400 s/day × 1e-6 ns/fs
    assert nvt["ns_per_day"] == pytest.approx(nvt["steps_per_s"] * nvt["timestep_fs"] * 0.0864)
    for name in ("report.md", "energy.png", "rdf.png", "nve.traj", "nvt.traj"):
        assert (out / name).stat().st_size > 0, name
    summary = (results / "summary.md").read_text()
    assert "| tiny | chebyshev |" in summary
    assert (results / "rdf_comparison.png").exists()


def assert_energy_matches_trajectory(nve: dict, trajectory: Path) -> None:
    """The NVE drift and fluctuation against the total energies E_i (meV/atom) that nve.traj
    holds at steps 0, 5, 10 (every log step is a snapshot here). For three equally spaced
    samples the least-squares line has slope (E_2 − E_0)/(t_2 − t_0) and residuals
    c·(1, −2, 1) with c = (E_0 − 2E_1 + E_2)/6, so their std is √2·|c|."""
    frames = ase.io.read(trajectory, ":")
    assert len(frames) == 3
    e = [1000.0 * (a.get_potential_energy() + a.get_kinetic_energy()) / len(a) for a in frames]
    span_ps = 10 * nve["timestep_fs"] / 1000.0
    c = (e[0] - 2.0 * e[1] + e[2]) / 6.0
    energy = nve["energy"]
    assert energy["samples"] == 3
    assert energy["drift_meV_per_atom_per_ps"] == pytest.approx((e[2] - e[0]) / span_ps, rel=1e-6)
    assert energy["fluctuation_meV_per_atom"] == pytest.approx(math.sqrt(2.0) * abs(c), rel=1e-6)
    assert energy["max_deviation_meV_per_atom"] == pytest.approx(
        max(abs(e[1] - e[0]), abs(e[2] - e[0])), rel=1e-6
    )


def test_md_validate_with_the_zbl_floor(tiny_checkpoint, tmp_path):
    """``repulsion={width_A: …}``: the report names each pair's floor, ending at the pair's
    shortest distance in the data frames, and the scans see model + floor."""
    data = ROOT / "data" / "water" / "data_3"
    common = [
        f"checkpoint={tiny_checkpoint}",
        f"data_path={data}",
        "nve.steps=5",
        "nvt.steps=5",
        "nvt.equilibration_steps=0",
        "log_interval=5",
        "snapshot_interval=5",
        "stability.min_distance=0.1",
        "write_trajectory=false",
    ]
    md_validate([*common, "name=bare", f"results_dir={tmp_path}"])
    md_validate([*common, "name=floor", f"results_dir={tmp_path}", "repulsion={width_A:0.4}"])
    bare = json.loads((tmp_path / "bare" / "report.json").read_text())
    floor = json.loads((tmp_path / "floor" / "report.json").read_text())
    assert bare["repulsion"] is None
    dataset = load_dataset(data, "deepmd")
    shortest = shortest_pair_distances(dataset[i] for i in range(len(dataset)))
    assert floor["repulsion"] == {
        "kind": "zbl",
        "width_A": 0.4,
        "r_off_A": {"H-H": shortest[(1, 1)], "H-O": shortest[(1, 8)], "O-O": shortest[(8, 8)]},
    }
    # what the floor adds to the O-H scan is the floor's own scan (relative to r_0 like it)
    atoms = frame_atoms(dataset[0])
    scan_bare, scan_floor = bare["short_range"]["O-H bond"], floor["short_range"]["O-H bond"]
    pair = water_pairs(atoms)["O-H bond"]
    only_floor = pair_scan(atoms, ZBLRepulsion(shortest, 0.4), *pair, scan_floor["r_A"])
    added = np.subtract(scan_floor["energy_eV"], scan_bare["energy_eV"])
    np.testing.assert_allclose(added, only_floor - only_floor[-1], rtol=1e-6, atol=1e-6)
    assert only_floor[0] > 100.0  # at 0.3 Å the whole O-H ZBL (103 eV) is on
