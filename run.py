"""Train one model, or sweep with -m:  python run.py model=dp activation=chebyshev

Configuration lives in conf/ (see conf/config.yaml); every run writes metrics.json,
checkpoints and logs into its Hydra output folder.
"""

import os
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import taafs_exp  # noqa: E402, F401  (registers the resolvers the configs use)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from taafs_exp.training.train import optimized_value, train

    metrics = train(cfg)
    return optimized_value(metrics, cfg.optimized_metric)


if __name__ == "__main__":
    main()
