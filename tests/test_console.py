"""What `make run` prints: each log line once, no third-party notices, steps out of max_steps,
and a last line naming the run folder and the tanh run to compare with."""

import logging
import re
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

from taafs_exp.training.console import THIRD_PARTY_WARNINGS, final_line, quiet_third_party
from test_run import ROOT, TINY_DP

#: What the four notices of the issue start with (two warnings, wandb's and Lightning's lines).
NOTICES = ("'set_vital' is deprecated", "LeafSpec", "anonymous setting", "litlogger")


def test_a_run_prints_each_line_once_steps_and_where_its_folder_is(tmp_path):
    """The default run (W&B offline, progress bar on), tiny: every record of the run's log file
    once on the console, none of the notices, a bar of 2/2 steps, then the folder line last."""
    out = tmp_path / "run"
    overrides = ["trainer.max_steps=2", "trainer.val_check_interval=2",
                 "trainer.limit_val_batches=1", "torch_threads=1", *TINY_DP]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *overrides, f"hydra.run.dir={out}"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = proc.stdout + proc.stderr
    records = [line.split("] - ", 1)[1] for line in (out / "run.log").read_text().splitlines()
               if "] - " in line]
    assert any(r.startswith("Seed set to") for r in records)
    for record in records:
        assert console.count(record) == 1, record
    for notice in NOTICES:
        assert notice not in console
    # what a terminal line starts with (cursor moves of the bars dropped)
    shown = re.split(r"[\r\n]", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", proc.stdout))
    bar = [s for s in shown if s.startswith("steps:")]
    assert bar and "| 2/2 " in bar[-1] and "Epoch" not in proc.stdout
    val_lines = [s for s in shown if "[val]" in s]  # its own line, not inside a bar
    assert len(val_lines) == 1 and val_lines[0].startswith("[val] step      2  lr ")
    last = proc.stdout.strip().splitlines()[-1]
    folder, compare = last.removeprefix("run folder: ").split(" — compare with tanh: ")
    assert Path(folder) == out and (Path(folder) / "metrics.json").is_file()
    assert shlex.split(compare) == ["python", "run.py", "activation=tanh", *overrides]


def test_final_line_swaps_the_activation_and_drops_hydra_options(tmp_path):
    line = final_line(tmp_path, "tanh", ["activation=tanh", "model=dp", "hydra.run.dir=x",
                                         "trainer.max_steps=5", "model.neuron=[4,8]"])
    assert line == (f"run folder: {tmp_path} — compare with chebyshev: python run.py "
                    "activation=chebyshev model=dp trainer.max_steps=5 'model.neuron=[4,8]'")
    line = final_line(tmp_path, "chebyshev", ["activation.num_basis=12", "+activation.x=1"])
    assert line.endswith("compare with tanh: python run.py activation=tanh")


def test_only_the_named_third_party_notices_are_hidden():
    """Same message from another module, or another message from that module, still shows."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party()
        for message, module in THIRD_PARTY_WARNINGS:
            text = message.replace("\\", "")
            warnings.warn_explicit(text, UserWarning, "f.py", 1, module=module.replace("\\", ""))
            warnings.warn_explicit(text, UserWarning, "f.py", 1, module="taafs_exp.data")
            warnings.warn_explicit("other", UserWarning, "f.py", 1, module=module.replace("\\", ""))
    shown = [(str(w.message), w.filename) for w in caught]
    assert len(shown) == 2 * len(THIRD_PARTY_WARNINGS)
    tip = logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, "f.py", 1,
                            "💡 Tip: For seamless cloud logging, try installing litlogger", None, None)
    other = logging.LogRecord("lightning.pytorch.utilities.rank_zero", logging.INFO, "f.py", 1,
                              "GPU available: False, used: False", None, None)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert not rank_zero.filter(tip) and rank_zero.filter(other)
