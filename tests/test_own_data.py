"""Own data works first time: every backbone trains on deepmd/npy data given only
``data=deepmd data.path=...``, its type_map (and DP's sel) taken from the training split.

Two sets, made with the project's generator (:func:`taafs_exp.data.generate.sample_md`, ASE's
EMT; eV, Å) and writer (:func:`taafs_exp.data.write_deepmd`): C/H/O molecules of three sizes
without a cell (CH4, H2O, CH3OH; one system folder each, named after the molecule) and periodic
diamond carbon (the 2-atom primitive and the 8-atom cubic cell, 1000 K). Runs go through
``train`` in-process, as run.py calls it (see tests/test_run.py), for 2 steps with tanh.
"""

from __future__ import annotations

import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from helpers import compose_config
from taafs_exp.data import load_dataset, write_deepmd
from taafs_exp.data.generate import Trajectory, sample_md
from taafs_exp.training.rebuild import load_checkpoint
from taafs_exp.training.train import train

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["dp_cpu", "dp", "ani2", "painn", "chgnet"]
MOLECULES = ("CH4", "H2O", "CH3OH")
#: Frames per trajectory (Langevin samples 2 steps apart after 10 steps).
FRAMES = 4
#: Test-speed overrides only: 2 steps, one validation batch, tanh, no logger.
FAST = [
    "activation=tanh",
    "logger=none",
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
]
#: The data path the README's commands name.
README_PATH = "/my/deepmd/systems"


def emt_deepmd(tmp: Path, trajectories: list[Trajectory], stress: bool) -> Path:
    """EMT Langevin frames of ``trajectories`` as deepmd/npy under ``tmp/systems`` (one system
    per atom list), each system folder renamed after its trajectory's ``system`` label."""
    extxyz = sample_md(
        tmp / "frames.extxyz",
        trajectories,
        EMT,
        seed=np.random.SeedSequence(0),
        sample_every=2,
        equilibration_steps=10,
        timestep_fs=0.5,
        friction_per_fs=0.02,
        stress=stress,
        progress=False,
        desc="EMT",
    )
    data = load_dataset(extxyz, format="extxyz")
    out = tmp / "systems"
    write_deepmd([data[i] for i in range(len(data))], out)
    for k, traj in enumerate(trajectories):
        (out / f"system_{k:03d}").rename(out / traj.system.lower())
    return out


@pytest.fixture(scope="module")
def molecules(tmp_path_factory) -> Path:
    """CH4, H2O, CH3OH (5, 3, 6 atoms), no cell, 500 K."""
    trajectories = [Trajectory(molecule(name), 500.0, FRAMES, name) for name in MOLECULES]
    return emt_deepmd(tmp_path_factory.mktemp("molecules"), trajectories, stress=False)


@pytest.fixture(scope="module")
def diamond(tmp_path_factory) -> Path:
    """Periodic carbon: diamond primitive (2 atoms) and cubic (8 atoms) cells, 1000 K."""
    trajectories = [
        Trajectory(bulk("C", "diamond", a=3.57, cubic=cubic), 1000.0, FRAMES, name)
        for cubic, name in ((False, "primitive"), (True, "cubic"))
    ]
    return emt_deepmd(tmp_path_factory.mktemp("diamond"), trajectories, stress=True)


def random_test_split(path: Path) -> str:
    """``describe_split`` of the default split of ``path``'s frames: the test split is what
    remains after round(80 %) for training and round(10 %) for validation."""
    frames = len(load_dataset(path, format="deepmd"))
    test = frames - round(0.8 * frames) - round(0.1 * frames)
    return f"test: random 10% (seed 0, {test} frames)"


def run(overrides: list[str], output_dir: Path) -> tuple[dict, dict]:
    """``train`` on the composed config; its metrics and the model options of its checkpoint."""
    metrics = train(compose_config([*overrides, *FAST], output_dir))
    checkpoint = load_checkpoint(output_dir / "checkpoints" / "last.ckpt")
    return metrics, checkpoint["hyper_parameters"]["model"]


def test_the_sets_are_what_the_tests_claim(molecules: Path, diamond: Path):
    mols = load_dataset(molecules, format="deepmd")
    assert sorted({mols.system_of(i) for i in range(len(mols))}) == ["ch3oh", "ch4", "h2o"]
    assert sorted({mols[i].num_atoms for i in range(len(mols))}) == [3, 5, 6]
    assert all(mols[i].cell is None for i in range(len(mols)))
    crystal = load_dataset(diamond, format="deepmd")
    assert sorted({crystal[i].num_atoms for i in range(len(crystal))}) == [2, 8]
    assert all(bool(crystal[i].pbc.all()) for i in range(len(crystal)))
    assert {int(z) for i in range(len(crystal)) for z in crystal[i].numbers} == {6}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    "dataset, type_map", [("molecules", ["H", "C", "O"]), ("diamond", ["C"])]
)
def test_every_backbone_trains_on_own_data(model, dataset, type_map, request, tmp_path):
    """Only data=deepmd data.path=...: 2 steps, finite test errors, the data's elements."""
    path = request.getfixturevalue(dataset)
    metrics, hparams = run([f"model={model}", "data=deepmd", f"data.path={path}"], tmp_path)
    assert metrics["steps"] == 2 and metrics["model"] == model and metrics["data"] == "deepmd"
    assert metrics["test"]["split"] == random_test_split(path)
    for key in ("rmse_e_per_atom_meV", "rmse_f_meV_per_A"):
        assert math.isfinite(metrics["test"][key]) and metrics["test"][key] > 0
    assert hparams["type_map"] == type_map
    if model.startswith("dp"):  # sel: auto, one slot count per type (multiples of 4)
        assert len(hparams["sel"]) == len(type_map) and all(s % 4 == 0 for s in hparams["sel"])


def readme_commands() -> list[list[str]]:
    """The README's own-data commands (``python run.py`` lines naming README_PATH), each as its
    Hydra overrides, without repeats."""
    commands: list[list[str]] = []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("python run.py") and README_PATH in line:
            overrides = shlex.split(line, comments=True)[2:]
            if overrides not in commands:
                commands.append(overrides)
    return commands


def test_readme_own_data_commands_run(molecules: Path, tmp_path):
    """Every own-data command of the README as typed (the data path swapped), among them
    model=dp on any elements and a named split that holds out a molecule."""
    commands = readme_commands()
    assert ["model=dp", "data=deepmd", f"data.path={README_PATH}"] in commands
    assert sum(any(w.startswith("data.split={train:") for w in cmd) for cmd in commands) == 1
    for i, cmd in enumerate(commands):
        overrides = [w.replace(README_PATH, str(molecules)) for w in cmd]
        metrics, hparams = run(overrides, tmp_path / str(i))
        assert metrics["steps"] == 2 and hparams["type_map"] == ["H", "C", "O"]
        named = re.search(r"test:\[(\w+)\]", " ".join(cmd))
        assert metrics["test"]["split"] == (
            f"test: {named.group(1)} ({FRAMES} frames)" if named else random_test_split(molecules)
        )
