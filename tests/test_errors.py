"""Errors a person can read: data and config errors print one line naming the option or file
(no traceback unless HYDRA_FULL_ERROR=1) and exit non-zero, before data or model are built; a
sweep finishes its other runs and ends with a summary of the failed ones."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from taafs_exp.data import DataError, load_dataset
from test_run import TINY_DP

ROOT = Path(__file__).resolve().parents[1]


def run_py(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    flags = [o for o in overrides if o.startswith("-")]  # argparse wants -m before overrides
    overrides = tuple(o for o in overrides if not o.startswith("-"))
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *flags, "logger=none", *overrides],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)


@pytest.mark.parametrize("override, line", [
    ("seed=-1", "error: seed=-1: expected an integer from 0 to 4294967295"),
    ("activation.num_basis=abc",
     "error: activation.num_basis='abc': invalid literal for int() with base 10: 'abc'"),
    ("ckpt_path=/nowhere/last.ckpt", "error: ckpt_path=/nowhere/last.ckpt: no such checkpoint file"),
])
def test_config_errors_are_one_line_naming_the_option(tmp_path, override, line):
    proc = run_py(override, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == line, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "Loading" not in proc.stdout and not (tmp_path / "run" / "checkpoints").exists()


def test_full_error_keeps_the_traceback(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    proc = run_py("seed=-1", f"hydra.run.dir={tmp_path / 'run'}", env=env)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError: seed=-1" in proc.stderr


def corrupt_water(root: Path) -> Path:
    """A copy of the bundled water data whose data_0 energies are text, not a .npy array."""
    data = root / "water"
    shutil.copytree(ROOT / "data" / "water", data)
    (data / "data_0" / "set.000" / "energy.npy").write_text("-1234.5\n-1234.6\n")
    return data


def test_text_in_a_npy_file_is_named(tmp_path):
    data = corrupt_water(tmp_path)
    with pytest.raises(DataError, match=r"energy.npy: not a .npy file \(starts with b'-1234.'"):
        load_dataset(data / "data_0", "deepmd")


def test_sweep_finishes_the_good_runs_and_names_the_failed_one(tmp_path):
    bad_root = tmp_path / "bad"
    corrupt_water(bad_root)
    good_root = ROOT / "data"
    sweep = tmp_path / "sweep"
    proc = run_py("-m", f"paths.data_dir={bad_root},{good_root}", "trainer.max_steps=2",
                  "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
                  "trainer.enable_progress_bar=false", "torch_threads=1", *TINY_DP,
                  f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-2] == ("sweep: 1 of 2 runs failed (rerun the same command to retry them; "
                         "finished runs are skipped):")
    assert lines[-1].startswith(f"  {sweep / '0'}: ") and "energy.npy: not a .npy file" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert not (sweep / "0" / "metrics.json").exists()
    assert (sweep / "1" / "metrics.json").exists()
