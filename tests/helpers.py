"""Compose the project's Hydra config the way run.py does, for tests."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """``conf/config.yaml`` with overrides, as run.py would see it (hydra.* resolved, CPU)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg
