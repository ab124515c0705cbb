"""trainer=ddp on the CPU (gloo): two ranks train like one process on the same frames, report
global metrics and leave one metrics.json and one set of checkpoints."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import compose_config
from taafs_exp.training.module import METRIC_NAMES
from taafs_exp.training.rebuild import load_checkpoint
from taafs_exp.training.train import train
from test_run import ROOT, TINY_DP

#: float64 DP with tanh, 3 steps, validation and test over frames of data_3 (20 per batch).
COMMON = ["model=dp", *TINY_DP, "data.eval_batch_size=20", "activation=tanh", "torch_threads=1",
          "trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.enable_progress_bar=false",
          "logger=none"]
#: Two ranks with one training frame each per step, one validation batch each (20 frames).
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "data.batch_size=1",
       "trainer.limit_val_batches=1"]
#: One process with both ranks' frames per step: Lightning's DistributedSampler gives rank r the
#: frames r, r+2, ... of the permutation the single process's sampler draws with the same seed,
#: so step k sees the same two frames; two validation batches = the 40 frames the ranks saw.
SINGLE = ["trainer=cpu", "data.batch_size=2", "trainer.limit_val_batches=2"]


def test_two_ranks_train_and_report_like_one_process(tmp_path):
    """DDP averages the two ranks' gradients; the single process's loss averages the two frames
    (equal atom counts), so the gradients agree up to float64 summation order (~1e-16 relative
    per sum) and so do the weights after 3 Adam steps (Adam's step is continuous in the
    gradient, no amplification in 3 steps): 1e-10 relative. The RMSEs are torchmetrics sums
    kept in float32, added per rank then across ranks: a few float32 ulps, 1e-6 relative. A
    mean of the two ranks' RMSEs, or rank 0's half alone, would differ by far more (the halves'
    errors differ by percent)."""
    out = tmp_path / "ddp"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *COMMON, *DDP, f"hydra.run.dir={out}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    single = train(compose_config([*COMMON, *SINGLE], tmp_path / "single"))  # meanwhile
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == single["steps"] == 3
    for name in METRIC_NAMES:
        assert metrics["test"][name] == pytest.approx(single["test"][name], rel=1e-6, abs=0)
    assert [r["step"] for r in metrics["val_curve"]] == [r["step"] for r in single["val_curve"]]
    for ours, ref in zip(metrics["val_curve"], single["val_curve"]):
        for key in ("rmse_e_per_atom_meV", "rmse_f_meV_per_A"):
            assert ours[key] == pytest.approx(ref[key], rel=1e-6, abs=0)

    weights = load_checkpoint(out / "checkpoints" / "last.ckpt")["state_dict"]
    reference = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.ckpt")["state_dict"]
    assert weights.keys() == reference.keys()
    for key, value in reference.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-10, atol=1e-12, msg=key)

    # rank 0 alone writes and prints: one metrics.json, one set of checkpoints, one summary
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert sorted(p.name for p in out.glob("**/metrics.json")) == ["metrics.json"]
    assert stdout.count("force  RMSE") == 1 and stdout.count("run folder:") == 1
