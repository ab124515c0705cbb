"""An ASE calculator for any trained taafs-exp potential, loaded safely from a checkpoint.

Energies, forces and stresses come from :func:`taafs_exp.training.module.predict`, the same
autograd path training uses: E (eV), F = −∂E/∂R (eV/Å) and, for periodic cells, the virial
W = −∂E/∂ε (eV), from which ASE's stress σ = (1/V) ∂E/∂ε = −W/V (eV/Å³, Voigt order
xx, yy, zz, yz, xz, xy; positive = tensile, the system wants to shrink).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from taafs_exp.data import keys as K
from taafs_exp.data.collate import batch_frames
from taafs_exp.data.frame import Frame
from taafs_exp.models.base import Potential
from taafs_exp.training.module import predict

#: A checkpoint's ``_target_`` entries may only name callables of this package: instantiating
#: the stored config must not be a way to run arbitrary code (``os.system`` and the like).
TRUSTED_TARGET_PREFIX = "taafs_exp."
#: Prefix of the backbone's weights in a PotentialModule state dict.
MODEL_PREFIX = "model."


class CheckpointError(ValueError):
    """A file that cannot be turned into a taafs-exp potential (says which file and why)."""


def _check_targets(node: Any, path: str) -> None:
    """Raise CheckpointError if any ``_target_`` below ``node`` lies outside the package."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and not str(target).startswith(TRUSTED_TARGET_PREFIX):
            raise CheckpointError(
                f"{path}: config names _target_ {target!r}; only {TRUSTED_TARGET_PREFIX}* "
                "callables are instantiated from a checkpoint"
            )
        for value in node.values():
            _check_targets(value, path)
    elif isinstance(node, list):
        for value in node:
            _check_targets(value, path)


def load_potential(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[Potential, dict[str, Any]]:
    """Rebuild the backbone stored in a PotentialModule checkpoint (eval mode, frozen) and
    return it with its resolved model config.

    Reads only ``hyper_parameters["model"]`` (the resolved model config) and the ``model.``
    weights of ``state_dict``, with ``torch.load(weights_only=True)``: no pickled object of
    the file is ever constructed.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a taafs-exp checkpoint, an untrusted ``_target_``, or weights
            that do not fit the rebuilt architecture (missing/unexpected/mis-shaped keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        raise CheckpointError(
            f"{path}: cannot be read with torch.load(weights_only=True) (not a checkpoint, or "
            f"it holds objects beyond tensors and primitives): {err}"
        ) from err
    model_cfg = ckpt.get("hyper_parameters", {}).get("model") if isinstance(ckpt, dict) else None
    if not isinstance(model_cfg, dict) or "_target_" not in model_cfg or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path}: not a taafs-exp checkpoint (expected hyper_parameters.model with a "
            "_target_ and a state_dict, as PotentialModule saves them)"
        )
    _check_targets(model_cfg, str(path))
    model: Potential = hydra.utils.instantiate(model_cfg)
    weights = {
        k.removeprefix(MODEL_PREFIX): v
        for k, v in ckpt["state_dict"].items()
        if k.startswith(MODEL_PREFIX)
    }
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    )
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path}: weights do not fit the architecture rebuilt from its config "
            f"({model_cfg['_target_']}): missing {missing}, unexpected {unexpected}, "
            f"shape mismatch (checkpoint vs model) {shapes}"
        )
    model.load_state_dict(weights)
    model.to(device).eval().requires_grad_(False)
    return model, model_cfg


def activation_names(model_cfg: dict[str, Any]) -> list[str]:
    """Distinct activation names in a model config (its ``build_activation`` nodes), in order;
    the ``base_activation`` when the config names none."""
    names: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("_target_") == "taafs_exp.activations.build_activation":
                names.append(str(node.get("name")))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(model_cfg)
    names = list(dict.fromkeys(names))
    return names or [str(model_cfg.get("base_activation"))]


def atoms_to_frame(atoms: Atoms, dtype: torch.dtype) -> Frame:
    """An unlabelled :class:`Frame` of ``atoms`` (Å); no cell when nothing is periodic."""
    n = len(atoms)
    periodic = bool(atoms.pbc.any())
    return Frame(
        positions=torch.as_tensor(atoms.positions, dtype=dtype),
        numbers=torch.as_tensor(atoms.numbers, dtype=torch.long),
        cell=torch.as_tensor(atoms.cell.array, dtype=dtype) if periodic else None,
        pbc=torch.as_tensor(atoms.pbc, dtype=torch.bool),
        energy=torch.zeros((), dtype=dtype),
        forces=torch.zeros(n, 3, dtype=dtype),
    )


class TAAFSCalculator(Calculator):
    """ASE calculator around a taafs-exp :class:`Potential` (any backbone).

    Energy (eV) and forces (eV/Å) always; stress (eV/Å³, ASE convention, see module docstring)
    when every direction is periodic. The computation runs in the model's dtype (DP: float64).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self,
        model: Potential,
        device: str | torch.device = "cpu",
        model_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        #: the checkpoint's resolved model config (None when built from a model object)
        self.model_config = model_config
        self.device = torch.device(device)
        self.dtype = next(model.parameters()).dtype

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", **kwargs: Any
    ) -> TAAFSCalculator:
        """Load with :func:`load_potential` (safe ``weights_only`` path, clear errors)."""
        model, model_config = load_potential(path, device)
        return cls(model, device=device, model_config=model_config, **kwargs)

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        properties = properties or ["energy"]
        super().calculate(atoms, properties, system_changes)
        stress = "stress" in properties
        if stress and not self.atoms.pbc.all():
            raise PropertyNotImplementedError(
                f"stress needs a cell periodic in every direction, got pbc={self.atoms.pbc}"
            )
        frame = atoms_to_frame(self.atoms, self.dtype)
        batch = batch_frames([frame], self.model.cutoff)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        out = predict(self.model, batch, create_graph=False, virial=stress)
        energy = float(out[K.ENERGY].detach()[0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out[K.FORCES].detach().cpu().numpy().astype(np.float64),
        }
        if stress:
            virial = out[K.VIRIAL][0].detach().cpu().numpy().astype(np.float64)
            self.results["stress"] = full_3x3_to_voigt_6_stress(-virial / self.atoms.get_volume())
