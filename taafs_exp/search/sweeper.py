"""The sweeper of ``conf/hparams_search/``: hydra-optuna-sweeper's search, with pruned trials,
a stored study that a rerun resumes, and activation options suggested only where they exist.

What it changes in :class:`OptunaSweeperImpl` (which only sees the value a job returns):

- trial ``n`` trains in ``<hydra.sweep.dir>/trial-<n>`` and its job gets its number
  (``callbacks.optuna_pruning.trial``): :class:`~taafs_exp.search.pruning.OptunaPruning` reports
  the validation curve to that trial and raises ``optuna.TrialPruned``, told here as PRUNED;
- ``n_trials`` is the size of the stored study, not the trials of this process: a rerun adds
  what is missing, and first retrains the trials a killed search left RUNNING, in their own
  folders (training resumes from their ``last.ckpt``);
- a rerun must compose the same trial config (``ConfigError`` naming the differing keys);
- the objective must be a validation metric and the validation split disjoint from the test
  split; ``splits`` holds the search's own split of data sets whose config validates on test;
- an ``activation.<option>`` is suggested only when the chosen activation has that option
  (rational has no ``num_basis``);
- a suggestion that repeats a complete trial's parameters is not trained: training is
  deterministic at the study's fixed config and thread count, so it is told that trial's value
  (TPE does re-suggest its best points).

A job that returns no value (a diverged run: run.py printed why) is told FAIL and the search
goes on; any other job error is told FAIL and raised.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobStatus
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import BaseDistribution
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from taafs_exp.search.study import (
    ATTR_DATA_SPLIT,
    ATTR_IDENTITY,
    ATTR_OVERRIDES,
    ATTR_PRUNERS,
    ATTR_REPEAT_OF,
    ATTR_SPLIT,
    TRIAL_DIR,
    check_held_out,
    open_study,
)
from taafs_exp.training.errors import ConfigError
from taafs_exp.training.run_store import differing_keys, training_identity

log = logging.getLogger(__name__)

#: The pruning callback's key in ``callbacks`` (conf/hparams_search/select_basis.yaml).
PRUNING_CALLBACK = "optuna_pruning"
_ABSENT = object()


def hydra_literal(value: Any) -> str:
    """``value`` (str, number, list, dict) in Hydra's override grammar, strings quoted."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_literal(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def data_split(cfg: DictConfig) -> dict[str, Any] | None:
    """``data.split`` of a config as plain values (None: the reader's random split)."""
    return OmegaConf.to_container(cfg.data)["split"]


def present_keys(cfg: DictConfig, names: Iterable[str]) -> list[str]:
    """The dotted keys of ``names`` that ``cfg`` has (``activation.num_basis`` is absent when
    the activation is rational)."""
    return [name for name in names if OmegaConf.select(cfg, name, default=_ABSENT) is not _ABSENT]


def check_objective(metric: str) -> None:
    """ConfigError unless ``metric`` is a validation metric (``val/<key>``)."""
    if not str(metric).startswith("val/"):
        raise ConfigError(f"optimized_metric={metric!r}: a search selects on a validation "
                          "metric, val/<key> (e.g. val/rmse_f_meV_per_A), never on test")


def repeated_trial(study: optuna.Study, params: Mapping[str, Any]) -> FrozenTrial | None:
    """The first complete, trained trial with exactly these parameters, if any."""
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if frozen.params == dict(params) and ATTR_REPEAT_OF not in frozen.user_attrs:
            return frozen
    return None


class SelectSweeperImpl(OptunaSweeperImpl):
    """See the module docstring. ``splits``: data choice -> named split the trials use."""

    def __init__(
        self,
        sampler: Any,
        pruner: BasePruner,
        direction: str,
        storage: str,
        study_name: str,
        n_trials: int,
        splits: Mapping[str, Any] | None = None,
        params: DictConfig | None = None,
    ) -> None:
        super().__init__(sampler, direction, storage, study_name, n_trials, n_jobs=1,
                         max_failure_rate=0.0, search_space=None, custom_search_space=None,
                         params=params)
        self.pruner = pruner
        self.splits = OmegaConf.to_container(splits) if isinstance(splits, DictConfig) else dict(
            splits or {})

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The job config these overrides give (what the launcher composes)."""
        return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

    def open(self) -> optuna.Study:
        """The stored study, read afresh (Optuna caches the trials a study object asked for)."""
        return open_study(self.storage, self.study_name, self.pruner, self.sampler)

    def sweep(self, arguments: list[str]) -> None:
        try:
            self._sweep(arguments)
        except ConfigError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)

    def _sweep(self, arguments: list[str]) -> None:
        check_objective(self.config.optimized_metric)
        distributions, fixed = create_params_from_overrides(
            self._parse_sweeper_params_config() + list(arguments))
        data = self.config.hydra.runtime.choices.get("data")
        command = [f"{name}={value}" for name, value in fixed.items()]
        fixed_overrides = list(command)
        if data in self.splits:
            fixed_overrides.append(f"data.split={hydra_literal(self.splits[data])}")
        base = self.compose(fixed_overrides)
        check_held_out(data_split(base), f"data={data}: data.split")
        self.init_study(base, distributions, [
            c for c in command if not c.lstrip("~+").startswith(
                ("hparams_search=", f"callbacks.{PRUNING_CALLBACK}"))])

        study = self.open()
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            log.info("trial %d was left running by a killed search: training it again",
                     frozen.number)
            overrides = [f"{name}={value}" for name, value in frozen.params.items()]
            self.run_trial(frozen.number, [*overrides, *fixed_overrides])
        while len((study := self.open()).get_trials(deepcopy=False)) < self.n_trials:
            trial = study.ask()
            overrides = self.suggest(trial, distributions, fixed_overrides)
            earlier = repeated_trial(study, trial.params)
            if earlier is not None:
                log.info("trial %d repeats trial %d: told its value %.4g, not trained",
                         trial.number, earlier.number, earlier.value)
                trial.set_user_attr(ATTR_REPEAT_OF, earlier.number)
                study.tell(trial.number, earlier.value, state=TrialState.COMPLETE)
                continue
            self.run_trial(trial.number, [*overrides, *fixed_overrides])
        finished = self.open().get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if finished:
            best = min(finished, key=lambda t: t.value)
            log.info("best trial %d: %s = %.4g with %s", best.number,
                     self.config.optimized_metric, best.value, best.params)

    def init_study(self, base: DictConfig, distributions: Mapping[str, BaseDistribution],
                   command: list[str]) -> None:
        """Create the study (first run) or check that a rerun trains trials as it did: the
        job config without the searched keys and the pruning callback, which decides when a
        trial stops, not what it trains (ConfigError naming the keys that differ); records the
        pruner of this run. ``command``:
        the fixed overrides of the search command that retrain its choice (not those of the search
        or its pruning)."""
        Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        searched = {name.split(".")[0] for name in distributions}
        identity = {k: v for k, v in training_identity(base).items() if k not in searched}
        identity["callbacks"].pop(PRUNING_CALLBACK)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage,
                                    sampler=self.sampler, pruner=self.pruner,
                                    direction=self.direction, load_if_exists=True)
        pruner = OmegaConf.to_container(base.callbacks[PRUNING_CALLBACK].pruner, resolve=True)
        pruners = study.user_attrs.get(ATTR_PRUNERS, [])
        if pruner not in pruners:  # the report names every pruner the trials were asked with
            study.set_user_attr(ATTR_PRUNERS, [*pruners, pruner])
        stored = study.user_attrs.get(ATTR_IDENTITY)
        if stored is None:
            study.set_user_attr(ATTR_IDENTITY, identity)
            study.set_user_attr(ATTR_OVERRIDES, command)
            study.set_user_attr(ATTR_SPLIT, data_split(base))
            study.set_user_attr(ATTR_DATA_SPLIT, data_split(self.config))
            return
        differ = differing_keys(stored, identity)
        if differ:
            raise ConfigError(
                f"{self.storage}: study {self.study_name!r} holds trials of another config "
                f"({', '.join(differ[:6])} differ); rerun with the config that started it, or "
                "search in another folder (hydra.sweep.dir=...)"
            )

    def suggest(self, trial: optuna.trial.Trial, distributions: Mapping[str, BaseDistribution],
                fixed_overrides: list[str]) -> list[str]:
        """Suggest the config-group choices, then each other parameter that the config they
        compose has (an option of another basis is left out); returns the trial's overrides."""
        choices = self.config.hydra.runtime.choices
        groups = [name for name in distributions if name in choices]
        for name in groups:
            trial._suggest(name, distributions[name])
        cfg = self.compose([*fixed_overrides, *(f"{n}={trial.params[n]}" for n in groups)])
        for name in present_keys(cfg, [n for n in distributions if n not in groups]):
            trial._suggest(name, distributions[name])
        return [f"{name}={value}" for name, value in trial.params.items()]

    def run_trial(self, number: int, overrides: list[str]) -> None:
        """Train trial ``number`` in its folder and tell the study how it ended."""
        job = [*overrides, f"hydra.sweep.subdir={TRIAL_DIR.format(number=number)}",
               f"callbacks.{PRUNING_CALLBACK}.trial={number}"]
        [ret] = self.launcher.launch([job], initial_job_idx=self.job_idx)
        self.job_idx += 1
        study = self.open()
        if ret.status == JobStatus.FAILED:
            error = ret._return_value  # JobReturn.return_value would re-raise it
            if isinstance(error, optuna.TrialPruned):
                log.info("trial %d pruned: %s", number, error)
                study.tell(number, state=TrialState.PRUNED)
                return
            study.tell(number, state=TrialState.FAIL)
            raise error
        if ret.return_value is None:
            log.warning("trial %d failed (no %s; see the error above)", number,
                        self.config.optimized_metric)
            study.tell(number, state=TrialState.FAIL)
            return
        study.tell(number, float(ret.return_value), state=TrialState.COMPLETE)
