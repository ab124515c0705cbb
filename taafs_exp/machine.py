"""Provenance and timing for results: the machine, the code version, and paired timing."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def code_version(root: Path = Path(__file__).resolve().parents[1]) -> str | None:
    """The git commit of the code at ``root``, with ``+dirty`` when the code that trains (the
    package, conf/, run.py, pyproject.toml) has uncommitted changes; None outside a checkout."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  check=True, timeout=10).stdout.strip()
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--",
                         "taafs_exp", "conf", "run.py", "pyproject.toml"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def paired_timing(fn: Callable[[], None], ref: Callable[[], None], repeats: int) -> tuple[float, float]:
    """Median ms of ``fn`` and median of its per-repeat ratio to ``ref`` timed just before it,
    after one warm-up call of each. Pairing cancels most of the drift of a shared, loaded machine.
    """
    fn(), ref()
    times, ratios = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        ref()
        middle = time.perf_counter()
        fn()
        end = time.perf_counter()
        times.append(end - middle)
        ratios.append((end - middle) / (middle - start))
    return 1e3 * statistics.median(times), statistics.median(ratios)


def load_average() -> str:
    """The 1/5/15-minute load average as ``"a / b / c"`` (Unix), for benchmark reports."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())
