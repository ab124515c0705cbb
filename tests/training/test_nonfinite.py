"""A non-finite loss, gradient or validation error stops training with one line naming the step
and the term; no metrics.json (a sweep reruns the run), never a bare NaN in a results file."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from taafs_exp.data import keys as K
from taafs_exp.training.errors import NonFiniteError
from taafs_exp.training.module import PotentialModule, check_finite
from taafs_exp.training.rebuild import load_checkpoint
from taafs_exp.training.run_store import write_json_atomic
from test_loss import MODEL, training
from test_run import TINY_DP

ROOT = Path(__file__).resolve().parents[2]


def test_nan_loss_term_is_named():
    """A NaN force label makes the force term non-finite: that term and the step are named."""
    module = PotentialModule(MODEL, training())
    batch = {K.ENERGY: torch.tensor([1.0], dtype=torch.float64), K.NUM_ATOMS: torch.tensor([3]),
             K.FORCES: torch.full((3, 3), math.nan, dtype=torch.float64)}
    pred = {K.ENERGY: torch.tensor([1.5], dtype=torch.float64),
            K.FORCES: torch.zeros(3, 3, dtype=torch.float64)}
    terms = module.loss_terms(batch, pred, step=0)
    with pytest.raises(NonFiniteError, match=r"step 7: training loss: non-finite force loss term"):
        check_finite({f"{k} loss term": v for k, v in terms.items()}, "step 7: training loss")
    check_finite({"energy loss term": terms["energy"]}, "step 7")  # a finite term passes


def test_metrics_json_refuses_nan(tmp_path):
    path = tmp_path / "metrics.json"
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json_atomic(path, {"test": {"rmse_f_meV_per_A": math.nan}})
    assert not path.exists()


def test_diverging_run_fails_with_one_line_and_leaves_no_metrics(tmp_path):
    """The issue's command (tiny model): exit status != 0, one line naming the step and the
    non-finite quantity, no traceback, no metrics.json, only finite checkpoints."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "trainer.max_steps=3", "trainer.val_check_interval=1",
         "trainer.limit_val_batches=1", "training.lr.start_lr=1e30", "logger=csv",
         "torch_threads=1", "trainer.enable_progress_bar=false", *TINY_DP, f"hydra.run.dir={out}"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step ") and "non-finite" in last, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not (out / "metrics.json").exists()
    for ckpt in (out / "checkpoints").glob("*.ckpt"):
        weights = load_checkpoint(ckpt)["state_dict"].values()
        assert all(bool(torch.isfinite(w).all()) for w in weights if w.is_floating_point())
