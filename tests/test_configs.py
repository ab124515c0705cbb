"""Every model × activation composes and builds; bad names give Hydra's clear errors."""

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import DictConfig

from helpers import CONF, compose_config
from taafs_exp.activations import (
    FIXED_ACTIVATIONS, available_activations, extra_parameter_count,
)
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


def activation_sites(hparams: DictConfig, type_map: Sequence[str]) -> int:
    """Activation call sites of a backbone config, from its architecture (n_t = len(type_map)).

    DP: every hidden layer of the embedding nets (n_t with type_one_side, else n_t²) and of the
    n_t fitting nets. ANI: every hidden layer of every element's network. PaiNN: 2 per
    interaction (message and update MLPs) + one per readout hidden layer. CHGNet: a gated MLP
    with hidden widths h has 2·len(h) + 1 (value h + 1, gate h); every atom block has the atom
    update (+ the bond update), the num_blocks − 1 bond blocks the bond update (+ the angle
    update, all but the last), then one per readout hidden layer.
    """
    kind, n_t = hparams._target_.rsplit(".", 1)[1], len(type_map)
    if kind == "DeepPotSeA":
        nets = n_t if hparams.type_one_side else n_t**2
        return nets * len(hparams.neuron) + n_t * len(hparams.fitting_neuron)
    if kind == "ANI2x":
        return sum(len(hparams.hidden_dims.get(e, hparams.default_hidden_dims)) for e in type_map)
    if kind == "PaiNN":
        return 2 * hparams.num_interactions + len(hparams.output_hidden)
    if kind == "CHGNet":
        def gated(hidden: Sequence[int] | None) -> int:
            return 0 if hidden is None else 2 * len(hidden) + 1

        blocks = hparams.num_blocks
        atom = blocks * (
            gated(hparams.atom_conv_hidden_dims) + gated(hparams.bond_update_hidden_dims)
        )
        bond = (blocks - 1) * gated(hparams.bond_conv_hidden_dims)
        angle = (blocks - 2) * gated(hparams.angle_update_hidden_dims)
        return atom + bond + angle + len(hparams.final_hidden_dims)
    raise AssertionError(f"activation_sites: no architecture formula for {hparams._target_}")


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def base_parameters(water, tmp_path_factory):
    """Parameter count of each model config built with its own (fixed) base activation."""
    counts: dict[str, int] = {}

    def count(model: str, base_activation: str) -> int:
        if model not in counts:
            overrides = [f"model={model}", f"activation={base_activation}", "logger=none"]
            cfg = compose_config(overrides, tmp_path_factory.mktemp("base"))
            counts[model] = parameter_count(build_module(cfg, water).model)
        return counts[model]

    return count


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_model_and_activation_builds(model, activation, water, base_parameters, tmp_path):
    """The model has its base build's parameters plus, at each activation call site, one curve
    with the parameters of the activation built alone (share=layer: K; fixed: none)."""
    cfg = compose_config([f"model={model}", f"activation={activation}", "logger=none"], tmp_path)
    assert cfg.model_name == model and cfg.activation_name == activation
    base = base_parameters(model, cfg.model.base_activation)
    module = build_module(cfg, water)
    per_curve = extra_parameter_count(hydra.utils.instantiate(cfg.activation)(num_channels=1))
    assert (per_curve == 0) == (activation in FIXED_ACTIVATIONS)
    extra = activation_sites(cfg.model, module.model.type_map) * per_curve
    assert module.n_extra_params() == extra
    assert parameter_count(module.model) == base + extra


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
    """Each study names itself (``<study>_<model>.yaml``, or ``<study>_<model>_<data>.yaml`` for
    the same study on other data, e.g. basis_dp_xtb_organic), sweeps registry activations over
    seeds at a study budget and lands in results/runs/<study>/<model>/<data>."""
    cfg = compose_config([f"experiment={experiment}"], tmp_path)
    study, data = cfg.experiment_name, cfg.hydra.runtime.choices.data
    assert experiment in (study, f"{study}_{data}")
    assert cfg.hydra.mode.name == "MULTIRUN"
    model = cfg.hydra.runtime.choices.model
    assert cfg.hydra.sweep.dir == f"{ROOT}/results/runs/{study}/{model}/{data}"
    params = cfg.hydra.sweeper.params
    assert params.seed == "0,1,2"
    activations = params.get("activation", cfg.activation.name).split(",")
    assert set(activations) <= set(available_activations())
    assert model.split("_")[0] == study.rsplit("_", 1)[1]  # <study>_<model>
    if study.startswith("basis_"):  # the model's own activation is the base
        assert cfg.model.base_activation in activations
    assert cfg.budget_name not in ("default", None) and cfg.trainer.max_steps > 0
