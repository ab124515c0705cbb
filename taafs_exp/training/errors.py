"""The errors a person gets as one line (no traceback): bad data, bad config, an untrusted or
unusable checkpoint, a diverged or interrupted training. ``HYDRA_FULL_ERROR=1`` keeps the
traceback (run.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from taafs_exp.data.errors import DataError


class ConfigError(ValueError):
    """A configuration value that cannot train; the message names the option."""


class CheckpointError(ValueError):
    """A checkpoint or saved run file that cannot be trusted or used (says which file and why)."""


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss, gradient, weight or validation error (names the
    step and the term)."""


class RunInterrupted(RuntimeError):
    """SIGINT/SIGTERM stopped training after ``last.ckpt`` was saved; rerunning resumes."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


#: Errors reported as their message alone.
USER_ERRORS: tuple[type[Exception], ...] = (
    DataError, ConfigError, CheckpointError, NonFiniteError, RunInterrupted,
)


def run_reported(task: Callable[[Any], Any], cfg: Any, outcomes: list[tuple[str, str | None]]) -> Any:
    """``task(cfg)``, with the errors of :data:`USER_ERRORS` printed as one line on stderr
    (``HYDRA_FULL_ERROR=1`` re-raises them with their traceback).

    A single run then exits with status 2. In a sweep run by Hydra's basic launcher the failure
    is recorded in ``outcomes`` (output folder, message) and the sweep goes on with the next run
    (:func:`exit_with_summary` reports at the end); other launchers get the error re-raised.
    SIGINT/SIGTERM (:class:`RunInterrupted`) stop the whole sweep, exit status 128 + signal.
    Under DDP every rank raises the same error (the ranks agree on a stop); rank 0 reports it,
    the others exit quietly with status 0, as Lightning SIGKILLs rank 0 when a rank it started
    fails.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    where = str(cfg.paths.output_dir)
    try:
        result = task(cfg)
    except USER_ERRORS as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if rank_zero_only.rank != 0:
            sys.exit(0)
        print(f"error: {err}", file=sys.stderr, flush=True)
        if isinstance(err, RunInterrupted):
            sys.exit(128 + err.signum)
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            sys.exit(2)
        if not str(hydra_cfg.launcher.get("_target_", "")).endswith("BasicLauncher"):
            raise
        outcomes.append((where, str(err)))
        return None
    outcomes.append((where, None))
    return result


def exit_with_summary(outcomes: list[tuple[str, str | None]]) -> None:
    """After a sweep: one line per failed run and exit status 1 when any failed."""
    failed = [(where, message) for where, message in outcomes if message is not None]
    if not failed:
        return
    lines = [f"sweep: {len(failed)} of {len(outcomes)} runs failed (rerun the same command to "
             "retry them; finished runs are skipped):"]
    lines += [f"  {where}: {message}" for where, message in failed]
    print("\n".join(lines), file=sys.stderr, flush=True)
    sys.exit(1)
