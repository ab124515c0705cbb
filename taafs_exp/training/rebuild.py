"""Rebuild models from configs, including configs read back from files, through an allow-list.

A checkpoint stores the model config it was trained with (``hyper_parameters.model``). Handing
such a config to ``hydra.utils.instantiate`` would run whatever callable the file names (Hydra
resolves any attribute path, e.g. ``taafs_exp.training.run_store.shutil.copyfile``). Here nothing
is imported by a path read from a file: the backbone's ``_target_`` must be one of
:data:`POTENTIALS`, every nested ``_target_`` the activation factory (built by registry name
with :func:`taafs_exp.activations.build_activation`), the optimizer one of :data:`OPTIMIZERS`,
and every option a plain value (int, float, str, bool, None, lists and dicts of those).
Anything else is one :class:`~taafs_exp.training.errors.CheckpointError`, raised before any
object is built. The same builder serves training, Lightning's checkpoint loading, resuming
and the MD calculator.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from taafs_exp.training.errors import CheckpointError

#: Backbone targets and the (module, class) each one names; nothing else is ever built.
POTENTIALS: dict[str, tuple[str, str]] = {
    "taafs_exp.models.dp.DeepPotSeA": ("taafs_exp.models.dp", "DeepPotSeA"),
    "taafs_exp.models.ani2.ANI2x": ("taafs_exp.models.ani2", "ANI2x"),
    "taafs_exp.models.painn.PaiNN": ("taafs_exp.models.painn", "PaiNN"),
    "taafs_exp.models.chgnet.CHGNet": ("taafs_exp.models.chgnet", "CHGNet"),
}
#: The one nested target a model config may hold: a ``_partial_`` activation factory.
ACTIVATION_FACTORY = "taafs_exp.activations.build_activation"
#: Optimizers ``training.optimizer._target_`` may name.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    f"torch.optim.{cls.__name__}": cls
    for cls in (
        torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD, torch.optim.RAdam,
        torch.optim.NAdam, torch.optim.Adamax, torch.optim.RMSprop, torch.optim.Adagrad,
    )
}
PLAIN_SCALARS = (bool, int, float, str, type(None))


def check_plain(node: Any, where: str) -> None:
    """CheckpointError unless ``node`` is built of plain scalars, lists and str-keyed dicts."""
    if isinstance(node, PLAIN_SCALARS):
        return
    if isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_plain(value, f"{where}[{i}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{where}: key {key!r} is a {type(key).__name__}, expected str")
            check_plain(value, f"{where}.{key}")
    else:
        raise CheckpointError(
            f"{where}: a {type(node).__name__} is not a plain config value (expected int, float, "
            "str, bool, None, or lists and dicts of those)"
        )


def _reject_targets(node: Any, where: str) -> None:
    """CheckpointError for any ``_``-prefixed Hydra key (``_target_``, ``_args_``...) in ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("_"):
                raise CheckpointError(
                    f"{where}.{key}={value!r}: not allowed here (only the backbone and its "
                    f"activation factories name a _target_: {sorted(POTENTIALS)}, "
                    f"{ACTIVATION_FACTORY})"
                )
            _reject_targets(value, f"{where}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _reject_targets(value, f"{where}[{i}]")


def potential_class(target: Any, where: str = "model._target_") -> type:
    """The backbone class an allow-listed ``_target_`` names; CheckpointError for any other."""
    if target not in POTENTIALS:
        raise CheckpointError(
            f"{where}={target!r}: not a taafs-exp backbone; expected one of {sorted(POTENTIALS)}"
        )
    module, name = POTENTIALS[target]
    return getattr(importlib.import_module(module), name)


def activation_factory(node: dict[str, Any], where: str) -> functools.partial:
    """``build_activation`` with the node's options (a ``_partial_`` activation config)."""
    from taafs_exp.activations import available_activations, build_activation

    if node.get("_target_") != ACTIVATION_FACTORY or node.get("_partial_") is not True:
        raise CheckpointError(
            f"{where}: _target_={node.get('_target_')!r}, _partial_={node.get('_partial_')!r}; "
            f"expected _target_: {ACTIVATION_FACTORY} with _partial_: true"
        )
    options = {k: v for k, v in node.items() if k not in ("_target_", "_partial_")}
    _reject_targets(options, where)
    if options.get("name") not in available_activations():
        raise CheckpointError(
            f"{where}.name={options.get('name')!r}: expected one of {available_activations()}"
        )
    return functools.partial(build_activation, **options)


def potential_spec(cfg: dict[str, Any], where: str = "model") -> tuple[type, dict[str, Any]]:
    """Check a model config and return its class and constructor arguments (nothing built)."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{where}: a {type(cfg).__name__}, expected a model config dict")
    check_plain(cfg, where)
    cls = potential_class(cfg.get("_target_"), f"{where}._target_")
    kwargs: dict[str, Any] = {}
    for key, value in cfg.items():
        if key == "_target_":
            continue
        if key.startswith("_"):
            _reject_targets({key: value}, where)
        if isinstance(value, dict) and "_target_" in value:
            kwargs[key] = activation_factory(value, f"{where}.{key}")
        else:
            _reject_targets(value, f"{where}.{key}")
            kwargs[key] = value
    return cls, kwargs


def build_potential(cfg: dict[str, Any], where: str = "model") -> Any:
    """The backbone a model config describes, built only through the allow-list."""
    cls, kwargs = potential_spec(cfg, where)
    return cls(**kwargs)


def build_optimizer(
    cfg: dict[str, Any] | None, params: Iterable[torch.nn.Parameter], lr: float
) -> torch.optim.Optimizer:
    """The optimizer ``training.optimizer`` names (Adam when None), at learning rate ``lr``."""
    cfg = dict(cfg or {"_target_": "torch.optim.Adam"})
    where = "training.optimizer"
    check_plain(cfg, where)
    target = cfg.pop("_target_", None)
    if target not in OPTIMIZERS:
        raise CheckpointError(f"{where}._target_={target!r}: expected one of {sorted(OPTIMIZERS)}")
    cfg.pop("_partial_", None)
    cfg.pop("lr", None)  # the schedule sets it
    _reject_targets(cfg, where)
    return OPTIMIZERS[target](params, lr=lr, **cfg)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A PotentialModule checkpoint read with ``torch.load(weights_only=True)`` and checked:
    plain hyper-parameters, an allow-listed model config (nothing is built or run).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: unreadable, not a taafs-exp checkpoint, or a config outside the
            allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        raise CheckpointError(
            f"{path}: cannot be read with torch.load(weights_only=True) (not a checkpoint, or "
            f"it holds objects beyond tensors and primitives): {err}"
        ) from err
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or not isinstance(hparams.get("model"), dict) or (
        "state_dict" not in ckpt
    ):
        raise CheckpointError(
            f"{path}: not a taafs-exp checkpoint (expected hyper_parameters.model with a "
            "_target_ and a state_dict, as PotentialModule saves them)"
        )
    check_plain(hparams, f"{path}: hyper_parameters")
    potential_spec(hparams["model"], f"{path}: hyper_parameters.model")
    return ckpt


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def read_json(path: str | Path) -> dict[str, Any]:
    """A run file (``metrics.json``, ``activations.json``) as strict JSON of plain values;
    CheckpointError for bare NaN/Infinity, invalid JSON or a non-object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(), parse_constant=_reject_constant)
    except ValueError as err:
        raise CheckpointError(f"{path}: not strict JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: a JSON {type(data).__name__}, expected an object")
    check_plain(data, str(path))
    return data


def read_saved_config(path: str | Path) -> DictConfig:
    """A run's saved ``.hydra/config.yaml`` (YAML safe loader), plain values only. It is only
    compared with other configs, never instantiated."""
    path = Path(path)
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # yaml and omegaconf errors
        raise CheckpointError(f"{path}: unreadable config ({err})") from None
    check_plain(OmegaConf.to_container(cfg, resolve=False), str(path))
    return cfg

