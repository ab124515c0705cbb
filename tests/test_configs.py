"""Every model × activation composes and builds; bad names give Hydra's clear errors."""

import subprocess
import sys
from pathlib import Path

import hydra
import pytest
import torch

from helpers import CONF, compose_config
from taafs_exp.activations import FIXED_ACTIVATIONS, available_activations
from taafs_exp.training.train import build_module

ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
ACTIVATIONS = sorted(p.stem for p in (CONF / "activation").glob("*.yaml"))


def test_activation_configs_match_the_registry():
    assert ACTIVATIONS == sorted(available_activations())


@pytest.fixture(scope="module")
def water(tmp_path_factory):
    """The default data module, loaded once (every model config resolves against it)."""
    cfg = compose_config(["logger=none"], tmp_path_factory.mktemp("water"))
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup()
    return datamodule


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_model_and_activation_builds(model, activation, water, tmp_path):
    cfg = compose_config([f"model={model}", f"activation={activation}", "logger=none"], tmp_path)
    assert cfg.model_name == model and cfg.activation_name == activation
    module = build_module(cfg, water)
    assert sum(p.numel() for p in module.model.parameters()) > 0
    assert (module.n_extra_params() == 0) == (activation in FIXED_ACTIVATIONS)


def test_trainer_configs_compose(tmp_path):
    for trainer in sorted(p.stem for p in (CONF / "trainer").glob("*.yaml")):
        cfg = compose_config([f"trainer={trainer}"], tmp_path)
        assert cfg.trainer.inference_mode is False  # forces need autograd in val/test
    cfg = compose_config(["trainer=debug"], tmp_path)
    assert hydra.utils.instantiate(cfg.trainer, logger=False).fast_dev_run


@pytest.mark.parametrize(
    "override, expected",
    [
        ("activation=nope", "Could not find 'activation/nope'"),
        ("model=nope", "Could not find 'model/nope'"),
        ("no_such_key=1", "Could not override 'no_such_key'"),
    ],
)
def test_bad_overrides_fail_with_a_clear_message(override, expected):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), override],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode != 0
    assert expected in proc.stderr
    if override.startswith("activation"):
        assert "Available options in 'activation'" in proc.stderr and "chebyshev" in proc.stderr


def test_float64_default_is_not_leaked_into_torch():
    assert torch.get_default_dtype() == torch.float32


EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_to_a_registry_sweep(experiment, tmp_path):
    """Each study names itself, sweeps registry activations over seeds and lands in results/runs."""
    cfg = compose_config([f"experiment={experiment}"], tmp_path)
    assert cfg.experiment_name == experiment
    assert cfg.hydra.mode.name == "MULTIRUN"
    model = cfg.hydra.runtime.choices.model
    assert cfg.hydra.sweep.dir == f"{ROOT}/results/runs/{experiment}/{model}/{cfg.hydra.runtime.choices.data}"
    params = cfg.hydra.sweeper.params
    assert params.seed == "0,1,2"
    activations = params.get("activation", cfg.activation.name).split(",")
    assert set(activations) <= set(available_activations())
    assert model.split("_")[0] == experiment.rsplit("_", 1)[1]  # <study>_<model>
    if experiment.startswith("basis_"):  # the model's own activation is the base
        assert cfg.model.base_activation in activations
    assert cfg.budget_name.startswith("cpu") and cfg.trainer.max_steps > 0
