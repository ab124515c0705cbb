"""Checkpoints and stored configs never run what they name: the model is rebuilt from an
allow-list, every option must be a plain value, anything else is one CheckpointError."""

from __future__ import annotations

import json
from pathlib import Path

import lightning
import pytest
import torch

from taafs_exp.md import CheckpointError, TAAFSCalculator, load_potential
from taafs_exp.training.module import PotentialModule
from taafs_exp.training.rebuild import build_optimizer, build_potential, read_json

TRAINING = {
    "num_steps": 10,
    "lr": {"start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 5},
    "loss": {"start_pref_e": 1.0, "limit_pref_e": 1.0, "start_pref_f": 1.0, "limit_pref_f": 1.0},
}
TINY_DP = {
    "_target_": "taafs_exp.models.dp.DeepPotSeA",
    "type_map": ["O", "H"],
    "rcut": 3.0,
    "rcut_smth": 2.5,
    "sel": [8, 16],
    "neuron": [4, 8],
    "axis_neuron": 2,
    "fitting_neuron": [8, 8],
    "precision": "float64",
}


def payloads(src: Path, dst: Path) -> dict[str, dict]:
    """Model configs that would write or overwrite ``dst`` if anything they name were called."""
    copy = {"_target_": "taafs_exp.training.run_store.shutil.copyfile", "_args_": [str(src), str(dst)]}
    nested_option = {**TINY_DP, "embedding_activation": {
        "_target_": "taafs_exp.activations.build_activation", "_partial_": True, "name": "chebyshev",
        "num_basis": 4, "base": copy}}
    return {
        "copyfile": copy,
        "write_json": {"_target_": "taafs_exp.training.run_store.write_json_atomic",
                       "path": str(dst), "payload": {"pwned": True}},
        "os_system": {"_target_": "taafs_exp.training.run_store.os.system",
                      "_args_": [f"touch {dst}"]},
        "subprocess": {"_target_": "taafs_exp.machine.subprocess.run",
                       "_args_": [["touch", str(dst)]]},
        "nested_in_activation_options": nested_option,
        "activation_factory_replaced": {**TINY_DP, "fitting_activation": {
            **copy, "_partial_": True}},
        "hydra_keys_on_the_backbone": {**TINY_DP, "_args_": [str(dst)]},
        "non_plain_option": {**TINY_DP, "neuron": torch.tensor([4, 8])},
    }


@pytest.mark.parametrize("name", list(payloads(Path("s"), Path("d"))))
def test_checkpoint_payloads_are_refused_without_side_effect(tmp_path, name):
    """Through the MD calculator, Lightning's loader and the module itself: CheckpointError,
    and the file the payload targets is neither created nor overwritten."""
    src, dst = tmp_path / "src.txt", tmp_path / "dst.txt"
    src.write_text("attacker")
    dst.write_text("precious")
    model_cfg = payloads(src, dst)[name]
    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"model": model_cfg, "training": TRAINING},
                "state_dict": {}, "pytorch-lightning_version": lightning.__version__}, path)
    with pytest.raises(CheckpointError):
        load_potential(path)
    with pytest.raises(CheckpointError):
        TAAFSCalculator.from_checkpoint(path)
    with pytest.raises(CheckpointError):
        PotentialModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    with pytest.raises(CheckpointError):
        PotentialModule(model=model_cfg, training=TRAINING)
    assert dst.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.txt", "evil.ckpt", "src.txt"]


def test_allow_listed_config_builds_the_model():
    activation = {"_target_": "taafs_exp.activations.build_activation", "_partial_": True,
                  "name": "chebyshev", "num_basis": 4, "share": "layer", "domain": [-4.0, 4.0]}
    model = build_potential({**TINY_DP, "embedding_activation": activation})
    assert type(model).__name__ == "DeepPotSeA"
    assert any(type(m).__name__ == "Chebyshev" for m in model.modules())


def test_optimizer_outside_the_allow_list_is_refused():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(build_optimizer({"_target_": "torch.optim.AdamW"}, params, 1e-3),
                      torch.optim.AdamW)
    with pytest.raises(CheckpointError, match="os.system"):
        build_optimizer({"_target_": "os.system", "_args_": ["true"]}, params, 1e-3)


def test_run_files_must_be_strict_json(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"test": {"rmse_f_meV_per_A": NaN}}')
    with pytest.raises(CheckpointError, match="not strict JSON"):
        read_json(path)
    path.write_text(json.dumps({"test": {"rmse_f_meV_per_A": 1.5}}))
    assert read_json(path)["test"]["rmse_f_meV_per_A"] == 1.5


def test_resume_from_an_untrusted_checkpoint_is_refused_before_training(tmp_path):
    """``ckpt_path=`` goes through the same allow-list, before data or model are built."""
    from helpers import compose_config
    from taafs_exp.training.train import train

    src, dst = tmp_path / "src.txt", tmp_path / "dst.txt"
    src.write_text("attacker")
    path = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"model": payloads(src, dst)["copyfile"], "training": TRAINING},
                "state_dict": {}, "pytorch-lightning_version": lightning.__version__}, path)
    cfg = compose_config(["logger=none", f"ckpt_path={path}"], tmp_path / "run")
    with pytest.raises(CheckpointError, match="not a taafs-exp backbone"):
        train(cfg)
    assert not dst.exists() and not (tmp_path / "run").exists()
