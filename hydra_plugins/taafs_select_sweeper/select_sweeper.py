"""The select sweeper as a Hydra plugin (Hydra runs only sweepers of the ``hydra_plugins``
package). Hydra imports this module at every start to find its plugins, so the implementation,
:class:`taafs_exp.search.sweeper.SelectSweeperImpl`, is imported when a search starts."""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SelectSweeper(Sweeper):
    """Optuna search with pruning and a resumable stored study (``conf/hparams_search/``)."""

    def __init__(self, **options: Any) -> None:
        from taafs_exp.search.sweeper import SelectSweeperImpl

        self.sweeper = SelectSweeperImpl(**options)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.sweeper.sweep(arguments)
