"""Every study trains: each grid point of every conf/experiment/*.yaml composes, passes the
checks a run starts with, and one training step runs per distinct model.

What lightning-hydra-template does with ``fast_dev_run`` for each experiment, kept cheap: the
sweep grid is expanded as Hydra's basic sweeper expands it, with the seed axis collapsed to its
first value (a seed changes initial weights and data order, not what is built); every point is
composed and checked (:func:`check_config`), and one Lightning training step runs once per
distinct resolved ``model`` config, i.e. per
(backbone, activation, K, share, placement, residual), in-process on one water frame per split,
no logger and no callbacks. A study on other data (the generated sets, made on first use and
not in CI) steps on the same water frame, with the options it pins to its data (``type_map``,
DP's ``sel``) taken from that frame instead. ``make test`` runs the basis TAAFS on the eager
kernels (the compiled ones are tested in tests/activations; compiling every K up to 32 takes
minutes); the ``slow`` variant, in ``make test-all``, steps each point with the compiled kernels
the studies train with.
An experiment added later is picked up by the glob.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import hydra
import pytest
import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from helpers import CONF, compose_config
from taafs_exp.activations import build_activation
from taafs_exp.data.datamodule import AtomsDataModule
from taafs_exp.data.frame import Frame
from taafs_exp.training.train import build_module, check_config

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SEED = "seed"


def grid_points(cfg: DictConfig) -> list[list[str]]:
    """The override lists of the sweep ``cfg.hydra.sweeper.params`` (basic sweeper's cartesian
    product, in its order), the seed axis reduced to its first value."""
    params = cfg.hydra.sweeper.get("params") or {}
    overrides = [f"{k}={v}" for k, v in params.items() if k != SEED]
    if SEED in params:
        overrides.append(f"{SEED}={str(params[SEED]).split(',')[0]}")
    if not overrides:
        return [[]]
    parsed = OverridesParser.create().parse_overrides(overrides)
    return BasicSweeper.split_arguments(parsed, None)[0]


def set_kernel(cfg: DictConfig, kernel: str) -> None:
    """Basis TAAFS (those with a ``kernel`` option) evaluate through ``kernel``."""
    if hasattr(build_activation(cfg.activation.name), "kernel"):
        with open_dict(cfg):
            cfg.activation.kernel = kernel


def corner(frame: Frame) -> Frame:
    """The atoms of ``frame`` in the cell's first octant (fractional coordinates < 1/2: about
    1/8 of them, 24 of water's 192), in the same periodic cell, with their labels."""
    fractional = torch.linalg.solve(frame.cell.T, frame.positions.T).T % 1.0
    keep = (fractional < 0.5).all(dim=1)
    return dataclasses.replace(frame, positions=frame.positions[keep],
                               numbers=frame.numbers[keep], forces=frame.forces[keep])


@pytest.fixture(scope="module")
def one_water_frame(tmp_path_factory) -> AtomsDataModule:
    """The water data module on data_3 alone (80 frames to read, not 320), cut to one frame
    per split, and that frame to its first octant."""
    one_system = ["data.path=${paths.data_dir}/water/data_3",
                  "data.split=null"]  # random 80/10/10 of its frames
    cfg = compose_config(["logger=none", *one_system], tmp_path_factory.mktemp("water"))
    datamodule: AtomsDataModule = hydra.utils.instantiate(cfg.data)
    datamodule.setup()
    datamodule.frames = {stage: [corner(frames[0])] for stage, frames in datamodule.frames.items()}
    assert {int(z) for z in datamodule.frames["train"][0].numbers} == {1, 8}
    return datamodule


@pytest.fixture(scope="module")
def stepped() -> dict[str, str]:
    """Resolved model configs that already ran their step (json) -> the point that ran it."""
    return {}


def one_step(cfg: DictConfig, datamodule: AtomsDataModule) -> None:
    """One training step of ``cfg``'s model with ``cfg``'s trainer (no validation, checkpoint,
    logger or callback) and training config: it is taken, its loss is finite and it moves the
    weights."""
    torch.manual_seed(cfg.seed)
    module = build_module(cfg, datamodule)
    before = [p.detach().clone() for p in module.parameters()]
    trainer = hydra.utils.instantiate(
        cfg.trainer, max_steps=1, limit_val_batches=0, enable_checkpointing=False, logger=False,
        callbacks=[], enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 1
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    assert any(not torch.equal(a, p) for a, p in zip(before, module.parameters()))


@pytest.mark.parametrize("kernel", ["eager", pytest.param("compiled", marks=pytest.mark.slow)])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_grid_point_composes_and_trains_a_step(experiment, kernel, one_water_frame,
                                                     stepped, tmp_path):
    study = compose_config([f"experiment={experiment}"], tmp_path)
    points = grid_points(study)
    for point in points:
        cfg = compose_config([f"experiment={experiment}", *point, "logger=none"], tmp_path)
        check_config(cfg)
        set_kernel(cfg, kernel)
        if cfg.hydra.runtime.choices.data != "water":
            with open_dict(cfg):
                cfg.model.type_map = None
                if "sel" in cfg.model:
                    cfg.model.sel = "auto"
        key = json.dumps(OmegaConf.to_container(cfg.model, resolve=True), sort_keys=True)
        if key not in stepped:
            one_step(cfg, one_water_frame)
            stepped[key] = f"{experiment} {' '.join(point)}"
    assert len(points) >= 1
