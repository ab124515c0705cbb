"""Pruning of search trials from their validation curve (callbacks.optuna_pruning of
``conf/hparams_search/select_basis.yaml``)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import optuna
from optuna.pruners import BasePruner

from taafs_exp.search.study import open_study, trial_handle
from taafs_exp.training.errors import ConfigError


class OptunaPruning(pl.Callback):
    """Reports each validation's ``monitor`` value (step = training step) to trial ``trial`` of
    the stored study and raises ``optuna.TrialPruned`` when ``pruner`` calls the trial bad: the
    run stops without metrics.json and the sweeper tells the study PRUNED.

    The last validation (step = ``max_steps``) is reported, never pruned: that training is
    complete. A resumed trial first reports the curve of its checkpoint (Optuna keeps the first
    value reported for a step).

    Args:
        storage: the study's SQLAlchemy URL (the sweeper's ``storage``).
        study_name: the study (the sweeper's ``study_name``).
        trial: the trial number; the sweeper sets it for each job.
        pruner: the study's pruner (Optuna does not store it).
        monitor: ``val/<key>`` of the module's validation curve (meV/Å for the force RMSE).
    """

    def __init__(self, storage: str, study_name: str, trial: int | None, pruner: BasePruner,
                 monitor: str = "val/rmse_f_meV_per_A") -> None:
        if trial is None:
            raise ConfigError("callbacks.optuna_pruning.trial is null: the select sweeper sets it "
                              "for each trial; run the search with python run.py -m "
                              "hparams_search=<name>")
        stage, self.key = monitor.split("/", 1) if "/" in monitor else ("", monitor)
        if stage != "val":
            raise ConfigError(f"callbacks.optuna_pruning.monitor={monitor!r}: expected a "
                              "validation metric val/<key>; a search never reads the test split")
        self.trial = trial_handle(open_study(storage, study_name, pruner), int(trial))

    def report(self, row: dict[str, Any]) -> None:
        """Report one validation-curve row to the trial."""
        self.trial.report(float(row[self.key]), int(row["step"]))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for row in pl_module.val_curve:
            self.report(row)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not pl_module.val_curve:
            return
        row = pl_module.val_curve[-1]
        self.report(row)
        complete = trainer.max_steps != -1 and row["step"] >= trainer.max_steps
        if not complete and self.trial.should_prune():
            raise optuna.TrialPruned(
                f"trial {self.trial.number} pruned at step {row['step']}: validation "
                f"{self.key} {row[self.key]:.4g} is worse than the pruner's threshold"
            )
