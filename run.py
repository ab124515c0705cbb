"""Train one model, or sweep with -m:  python run.py model=dp activation=chebyshev

Configuration lives in conf/ (see conf/config.yaml); every run writes metrics.json,
checkpoints and logs into its Hydra output folder. Data, config and checkpoint errors and a
diverged training print one line (``HYDRA_FULL_ERROR=1``: the traceback) and exit non-zero; a
sweep finishes its other runs and ends with a summary of the failed ones.
"""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
import lightning  # noqa: E402, F401  (before Hydra's job logging, which removes its handler)
from omegaconf import DictConfig  # noqa: E402

import taafs_exp  # noqa: E402, F401  (registers the resolvers the configs use)
from taafs_exp.training.errors import exit_with_summary, run_reported  # noqa: E402

#: (output folder, error message or None) of every run of this process
OUTCOMES: list[tuple[str, str | None]] = []


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from taafs_exp.training.console import final_line
    from taafs_exp.training.train import optimized_value, train

    metrics = run_reported(train, cfg, OUTCOMES)
    if metrics is None:
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.RUN and rank_zero_only.rank == 0:
        print(final_line(cfg.paths.output_dir, cfg.activation.name, list(hydra_cfg.overrides.task)),
              flush=True)
    return optimized_value(metrics, cfg.optimized_metric)


if __name__ == "__main__":
    main()
    exit_with_summary(OUTCOMES)
