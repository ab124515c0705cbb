"""End to end: run.py writes metrics.json; a resumed run continues exactly."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import compose_config
from taafs_exp.training.module import METRIC_NAMES
from taafs_exp.training.rebuild import load_checkpoint
from taafs_exp.training.train import optimized_value, train

ROOT = Path(__file__).resolve().parents[1]

#: A DP small enough for seconds per run on water (same code path as the default).
TINY_DP = [
    "model.neuron=[4,8]",
    "model.axis_neuron=2",
    "model.fitting_neuron=[8,8]",
    "model.rcut=3.0",
    "model.rcut_smth=2.5",
    "model.sel=auto",
    "data.eval_batch_size=25",
]


def test_run_py_writes_valid_metrics(tmp_path):
    """The documented command, as a user types it (with a tiny budget)."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "trainer.max_steps=5",
            "trainer.val_check_interval=5",
            "logger=csv",
            "torch_threads=1",
            *TINY_DP,
            f"hydra.run.dir={out}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "dp_cpu" and metrics["data"] == "water"
    assert metrics["activation"]["name"] == "chebyshev"
    assert metrics["steps"] == 5 and metrics["torch_threads"] == 1
    if (ROOT / ".git").exists():  # the commit that trained it (+dirty: uncommitted code)
        assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", metrics["code_version"])
    else:
        assert metrics["code_version"] is None
    # Chebyshev K = 8, one curve per hidden layer: 2 layers in each of the 2 embedding nets
    # (type_one_side: one per neighbour type, O and H) and in each of the 2 fitting nets
    assert metrics["n_extra_params"] == (2 * 2 + 2 * 2) * 8
    assert metrics["n_params"] > metrics["n_extra_params"]
    assert metrics["test"]["split"].startswith("test: data_3 (")
    for name in METRIC_NAMES:
        assert metrics["test"][name] > 0
    assert [row["step"] for row in metrics["val_curve"]] == [5]
    # a sweeper tunes on validation; the test value only when asked for by name
    val_f = metrics["val_curve"][-1]["rmse_f_meV_per_A"]
    assert optimized_value(metrics, "val/rmse_f_meV_per_A") == val_f
    assert optimized_value(metrics, "test/rmse_f_meV_per_A") == metrics["test"]["rmse_f_meV_per_A"]
    assert (out / "checkpoints" / "last.ckpt").exists()
    assert "force  RMSE" in proc.stdout


def train_losses(cfg) -> dict[int, float]:
    train(cfg)
    rows = list(csv.DictReader(open(Path(cfg.paths.output_dir) / "csv" / "version_0" / "metrics.csv")))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


@pytest.mark.parametrize("activation", ["bspline"])
def test_resume_continues_the_same_run(tmp_path, activation):
    common = [
        f"activation={activation}",
        "logger=csv",
        "trainer.log_every_n_steps=1",
        "training.num_steps=6",
        "training.lr.decay_steps=2",
        "test=false",
        *TINY_DP,
    ]
    straight = train_losses(
        compose_config([*common, "trainer.max_steps=6", "trainer.val_check_interval=3"], tmp_path / "a")
    )
    first = train_losses(
        compose_config([*common, "trainer.max_steps=3", "trainer.val_check_interval=3"], tmp_path / "b")
    )
    ckpt = tmp_path / "b" / "checkpoints" / "last.ckpt"
    resumed = train_losses(
        compose_config(
            [*common, "trainer.max_steps=6", "trainer.val_check_interval=3", f"ckpt_path={ckpt}"],
            tmp_path / "c",
        )
    )
    assert len(straight) == 6
    assert first == {s: straight[s] for s in range(3)}
    # the step after the resume (and the rest) equals the uninterrupted run
    for step in (3, 4, 5):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-10, abs=0)


def test_resume_from_the_end_of_training_checkpoint(tmp_path):
    """The last step (3) is no validation step: last.ckpt is RunCheckpoint's end-of-training save,
    and a run resumed from it with more steps continues the same epoch at the next logger step."""
    common = ["activation=tanh", "logger=csv", "trainer.log_every_n_steps=1",
              "training.num_steps=5", "training.lr.decay_steps=2", "test=false",
              "trainer.val_check_interval=2", "trainer.limit_val_batches=1", *TINY_DP]
    straight = train_losses(compose_config([*common, "trainer.max_steps=5"], tmp_path / "a"))
    train_losses(compose_config([*common, "trainer.max_steps=3"], tmp_path / "b"))
    ckpt = tmp_path / "b" / "checkpoints" / "last.ckpt"
    saved = load_checkpoint(ckpt)
    assert (saved["global_step"], saved["epoch"]) == (3, 0)
    resumed = train_losses(
        compose_config([*common, "trainer.max_steps=5", f"ckpt_path={ckpt}"], tmp_path / "c")
    )
    assert sorted(resumed) == [3, 4]
    for step in (3, 4):
        assert resumed[step] == pytest.approx(straight[step], rel=1e-10, abs=0)


def test_wandb_is_offline_by_default_and_never_asks_for_a_key(tmp_path):
    """No WANDB_MODE, no API key, no terminal: the run finishes and keeps its W&B files."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "trainer.max_steps=2", "trainer.val_check_interval=2",
         "trainer.limit_val_batches=1", "logger=wandb", *TINY_DP,
         f"hydra.run.dir={out}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((out / "wandb").glob("offline-run-*")), "expected an offline W&B run folder"
    assert (out / "metrics.json").exists()
    # the TAAFS curves (default activation: chebyshev) are logged as an image
    images = list((out / "wandb").glob("offline-run-*/files/media/images/activations/*.png"))
    assert images and images[0].stat().st_size > 10_000
