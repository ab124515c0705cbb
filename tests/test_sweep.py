"""A study end to end: `run.py -m experiment=...` fills the run store, a restart skips finished
runs, and the tables and figures rebuild from the run store alone."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from taafs_exp.analysis.collect import collect_runs
from taafs_exp.analysis.figures import build_figures
from taafs_exp.analysis.tables import build_tables
from taafs_exp.training.callbacks import taafs_modules
from taafs_exp.training.module import PotentialModule
from taafs_exp.training.run_store import SNAPSHOT_FILE
from test_run import TINY_DP

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sweep(root: Path, *grid: str) -> subprocess.CompletedProcess:
    """A study's grid, 4 steps, run store under ``root``; by default the two-point basis_dp grid
    (tanh, bspline; seed 0)."""
    grid = grid or ("experiment=basis_dp", "activation=tanh,bspline")
    return subprocess.run(
        [
            sys.executable, str(ROOT / "run.py"), "-m", *grid, "seed=0", "trainer.max_steps=4", "trainer.val_check_interval=2",
            "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", *TINY_DP,
            f"paths.root={root}", f"paths.data_dir={ROOT / 'data'}",
        ],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    proc = sweep(root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "results" / "runs"


def test_sweep_writes_one_run_per_grid_point(store):
    study = store / "basis_dp" / "dp_cpu" / "water"
    assert sorted(p.name for p in study.iterdir() if p.is_dir()) == [
        "bspline-8-layer-s0", "tanh-na-fixed-s0"]
    runs = collect_runs(store)
    assert {(r.activation, r.experiment, r.budget, r.seed) for r in runs} == {
        ("tanh", "basis_dp", "cpu", 0), ("bspline", "basis_dp", "cpu", 0)}
    assert all(r.metrics["steps"] == 4 for r in runs)
    assert [p["step"] for p in runs[0].metrics["val_curve"]] == [2, 4]
    # TAAFS curves are snapshotted; a fixed activation has none
    assert (study / "bspline-8-layer-s0" / SNAPSHOT_FILE).exists()
    assert not (study / "tanh-na-fixed-s0" / SNAPSHOT_FILE).exists()


def test_restart_skips_finished_runs(store):
    """A restart neither retrains a finished run nor overwrites its metrics or saved config; a
    restart whose config would train another model is refused, naming the differing key."""
    finished = sorted(store.rglob("metrics.json")) + sorted(store.rglob(".hydra/*.yaml"))
    assert len(finished) == 2 + 2 * 3
    before = [p.read_bytes() for p in finished]
    proc = sweep(store.parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished already, skipped") == 2
    assert [p.read_bytes() for p in finished] == before
    proc = sweep(store.parents[1], "experiment=basis_dp", "activation=tanh",
                 "training.loss.start_pref_e=0.5")
    assert proc.returncode != 0
    assert "tanh-na-fixed-s0: holds a finished run trained with another config" in proc.stderr
    assert "training.loss.start_pref_e differ" in proc.stderr
    assert [p.read_bytes() for p in finished] == before


def test_snapshot_holds_the_trained_curves(store):
    """The stored curves are the final model's activations evaluated on the stored grid."""
    folder = store / "basis_dp" / "dp_cpu" / "water" / "bspline-8-layer-s0"
    snapshot = json.loads((folder / SNAPSHOT_FILE).read_text())
    ckpt = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    module = PotentialModule(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    modules = dict(taafs_modules(module.model))
    assert [layer["name"] for layer in snapshot["layers"]] == list(modules)
    for layer in snapshot["layers"]:
        act = modules[layer["name"]]
        x = torch.tensor(layer["x"], dtype=next(act.parameters()).dtype)
        with torch.no_grad():
            expected = act(x).double()
        assert torch.allclose(torch.tensor(layer["y"][0], dtype=torch.float64), expected,
                              rtol=1e-5, atol=1e-5)
        hist = layer["inputs"]
        assert len(hist["counts"]) == len(hist["edges"]) - 1
        assert sum(hist["counts"]) + hist["below"] + hist["above"] > 0
    # the evolution starts before the first step and ends at the last one
    steps = [point["step"] for point in snapshot["evolution"]]
    assert steps[0] == 0 and steps[-1] == 4 and steps == sorted(set(steps))


def test_identical_run_of_another_study_is_reused(store):
    """sharing_dp's (bspline, layer, seed 0) is basis_dp's (bspline, seed 0): its results are
    taken, not retrained; (bspline, channel) differs and trains."""
    proc = sweep(store.parents[1], "experiment=sharing_dp", "activation=bspline",
                 "activation.share=layer,channel")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("identical to a finished run, reused") == 1
    original = store / "basis_dp" / "dp_cpu" / "water" / "bspline-8-layer-s0"
    study = store / "sharing_dp" / "dp_cpu" / "water"
    reused = json.loads((study / "bspline-8-layer-s0" / "metrics.json").read_text())
    expected = json.loads((original / "metrics.json").read_text())
    assert reused.pop("reused_from") == "basis_dp/dp_cpu/water/bspline-8-layer-s0"
    assert (reused.pop("experiment"), expected.pop("experiment")) == ("sharing_dp", "basis_dp")
    assert reused == expected
    assert (study / "bspline-8-layer-s0" / SNAPSHOT_FILE).read_bytes() == (
        original / SNAPSHOT_FILE).read_bytes()
    assert not (study / "bspline-8-layer-s0" / "checkpoints").exists()
    trained = json.loads((study / "bspline-8-channel-s0" / "metrics.json").read_text())
    assert "reused_from" not in trained and trained["activation"]["share"] == "channel"
    assert (study / "bspline-8-channel-s0" / "checkpoints" / "last.ckpt").exists()


def test_tables_and_figures_rebuild_from_the_run_store(store, tmp_path):
    runs = [run for run in collect_runs(store) if run.experiment == "basis_dp"]
    tables = build_tables(runs, tmp_path / "tables")
    text = (tmp_path / "tables" / "basis_dp__dp_cpu__water.md").read_text()
    assert "bspline K=8 layer" in text and "tanh (base, basis_dp)" in text
    assert tables[-1].name == "summary.md"
    figures = build_figures(runs, tmp_path / "figures")
    names = sorted(p.name for p in figures)
    assert names == sorted(
        f"basis_dp__dp_cpu__water__{kind}.png"
        for kind in ("convergence", "activations", "evolution", "spline_vs_cubic")
    )
    for path in figures:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
