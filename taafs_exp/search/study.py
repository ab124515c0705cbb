"""The search's Optuna study in its SQLite storage: trial folders, trial handles, split checks.

Optuna's SQL storage keeps parameters, distributions and attributes as JSON: opening it runs
nothing that it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

from taafs_exp.training.errors import ConfigError

#: The study's SQLite file in the search folder (``hydra.sweep.dir``).
STORAGE_FILE = "optuna.db"
#: Folder of trial ``n`` in the search folder.
TRIAL_DIR = "trial-{number:03d}"
#: Study user attributes the sweeper writes when it creates a study.
ATTR_IDENTITY, ATTR_OVERRIDES, ATTR_SPLIT, ATTR_DATA_SPLIT, ATTR_PRUNERS = (
    "identity", "overrides", "split", "data_split", "pruners")
#: Trial user attribute: the number of the complete trial whose parameters it repeats (its value
#: is that trial's; it was not trained).
ATTR_REPEAT_OF = "repeat_of"


def storage_url(folder: str | Path) -> str:
    """SQLAlchemy URL of the study storage in ``folder`` (absolute path)."""
    return f"sqlite:///{Path(folder).resolve() / STORAGE_FILE}"


def open_study(storage: str, study_name: str | None = None, pruner: BasePruner | None = None,
               sampler: BaseSampler | None = None) -> optuna.Study:
    """The stored study ``study_name`` (None: the storage's only study) with the pruner and
    sampler to ask it with (Optuna stores neither); ConfigError naming the storage when it holds
    no such study."""
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if study_name is None and len(names) == 1:
        study_name = names[0]
    if study_name not in names:
        raise ConfigError(f"{storage}: no Optuna study {study_name!r} (it holds {names}); "
                          "expected the storage of a search (python run.py -m hparams_search=...)")
    return optuna.load_study(study_name=study_name, storage=storage, pruner=pruner,
                             sampler=sampler)


def trial_handle(study: optuna.Study, number: int) -> optuna.trial.Trial:
    """Trial ``number`` of ``study``, to report to and to ask ``should_prune`` (a job of the
    sweeper opens the trial the sweeper asked for)."""
    storage = study._storage  # optuna 2.10 has no public number -> Trial lookup
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)


def split_names(split: Mapping[str, Any] | None, stage: str) -> list[str]:
    """The systems a named split gives ``stage`` ([] for a random split by fractions)."""
    if not split or "fractions" in split:
        return []
    return [str(name) for name in split[stage]]


def check_held_out(split: Mapping[str, Any] | None, where: str) -> None:
    """ConfigError when the validation systems of ``split`` include test systems: a search on
    such a validation error would select on the test split."""
    shared = sorted(set(split_names(split, "val")) & set(split_names(split, "test")))
    if shared:
        raise ConfigError(
            f"{where}: validation shares {shared} with the test split; a search must validate on "
            "systems the test never sees: give this data set a held-out split in "
            "hydra.sweeper.splits.<data> (conf/hparams_search/select_basis.yaml)"
        )
