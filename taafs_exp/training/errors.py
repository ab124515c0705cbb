"""The errors a person gets as one line (no traceback): bad data, bad config, an untrusted or
unusable checkpoint, a diverged or interrupted training. ``HYDRA_FULL_ERROR=1`` keeps the
traceback (run.py)."""

from __future__ import annotations

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
