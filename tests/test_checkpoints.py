"""Checkpoints a user can trust: last.ckpt is always the latest state, a killed or interrupted
run resumes from its own folder when rerun with the same command and ends equal to an
uninterrupted run, and a run folder never holds two generations of checkpoints."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from taafs_exp.training.rebuild import load_checkpoint
from test_run import TINY_DP

ROOT = Path(__file__).resolve().parents[1]
STEPS = 42  # not a multiple of the validation interval: the end state is saved apart


def command(out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "run.py"), f"trainer.max_steps={STEPS}",
            "trainer.val_check_interval=5", "trainer.limit_val_batches=1", "logger=none",
            "torch_threads=1", "trainer.enable_progress_bar=false", *TINY_DP,
            f"hydra.run.dir={out}"]


def interrupted(out: Path, signum: int) -> tuple[int, str]:
    """Exit status and stderr of the run, stopped by ``signum`` once its first last.ckpt exists
    (mid-training)."""
    proc = subprocess.Popen(command(out), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    return proc.returncode, stderr


def rerun(out: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(command(out), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def assert_same_run(out: Path, reference: Path) -> None:
    """Same steps, validation curve, test errors and final weights; one checkpoint generation."""
    got, want = (json.loads((p / "metrics.json").read_text()) for p in (out, reference))
    assert got["steps"] == want["steps"] == STEPS
    assert [r["step"] for r in got["val_curve"]] == [r["step"] for r in want["val_curve"]]
    for a, b in zip(got["val_curve"], want["val_curve"]):
        assert a["rmse_f_meV_per_A"] == pytest.approx(b["rmse_f_meV_per_A"], rel=1e-9)
    for key, value in want["test"].items():
        assert got["test"][key] == (pytest.approx(value, rel=1e-9) if key != "split" else value)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    a, b = (load_checkpoint(p / "checkpoints" / "last.ckpt") for p in (out, reference))
    assert a["global_step"] == b["global_step"] == STEPS
    for key, value in b["state_dict"].items():
        torch.testing.assert_close(a["state_dict"][key], value, rtol=1e-9, atol=0)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    rerun(out)
    return out


def test_last_checkpoint_is_the_final_state(uninterrupted):
    """Validation runs at step 40; last.ckpt still holds step 42."""
    assert load_checkpoint(uninterrupted / "checkpoints" / "last.ckpt")["global_step"] == STEPS


def test_sigkilled_run_resumes_from_its_folder(tmp_path, uninterrupted):
    out = tmp_path / "run"
    returncode, _ = interrupted(out, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert not (out / "metrics.json").exists()
    done = rerun(out)
    assert f"resuming from {out / 'checkpoints' / 'last.ckpt'}" in done.stdout
    assert_same_run(out, uninterrupted)


def test_sigint_saves_a_resumable_last_checkpoint(tmp_path, uninterrupted):
    out = tmp_path / "run"
    returncode, stderr = interrupted(out, signal.SIGINT)
    assert returncode == 128 + signal.SIGINT, stderr[-3000:]
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: SIGINT after step ") and "rerun the same command" in last_line
    step = int(last_line.split("after step ")[1].split(":")[0])
    assert load_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == step < STEPS
    rerun(out)
    assert_same_run(out, uninterrupted)
