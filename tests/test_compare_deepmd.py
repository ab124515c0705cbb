"""scripts/compare_deepmd.py trains DeePMD-kit with exactly our `model=dp` and training recipe."""

import importlib.util
from pathlib import Path

from helpers import compose_config

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("compare_deepmd", ROOT / "scripts" / "compare_deepmd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deepmd_input_matches_our_dp_and_recipe(tmp_path):
    script = load_script()
    ref = script.deepmd_input(steps=1000, decay_steps=100, stop_lr=1e-5, disp_freq=100)
    cfg = compose_config(["model=dp", "activation=tanh"], tmp_path)
    model, training = cfg.model, cfg.training
    desc, fit = ref["model"]["descriptor"], ref["model"]["fitting_net"]
    assert ref["model"]["type_map"] == list(model.type_map)
    assert (desc["rcut"], desc["rcut_smth"], desc["sel"]) == (model.rcut, model.rcut_smth, list(model.sel))
    assert desc["neuron"] == list(model.neuron) and desc["axis_neuron"] == model.axis_neuron
    assert desc["resnet_dt"] == model.resnet_dt and desc["type_one_side"] == model.type_one_side
    assert fit["neuron"] == list(model.fitting_neuron) and fit["resnet_dt"] == model.fitting_resnet_dt
    assert desc["precision"] == fit["precision"] == model.precision
    assert model.base_activation == "tanh"  # DeePMD-kit's default activation_function
    loss = ref["loss"]
    for key in ("start_pref_e", "limit_pref_e", "start_pref_f", "limit_pref_f"):
        assert loss[key] == training.loss[key]
    assert not training.loss.intensive_ener_virial  # DeePMD-kit's default normalisation
    assert ref["learning_rate"]["start_lr"] == training.lr.start_lr
    assert ref["training"]["training_data"]["batch_size"] == cfg.data.batch_size
    assert [Path(s).name for s in ref["training"]["training_data"]["systems"]] == list(cfg.data.split.train)
