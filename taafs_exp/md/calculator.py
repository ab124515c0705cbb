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

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from taafs_exp.data import keys as K
from taafs_exp.data.collate import batch_frames
from taafs_exp.data.frame import Frame
from taafs_exp.models.base import Potential
from taafs_exp.training.errors import CheckpointError
from taafs_exp.training.module import predict
from taafs_exp.training.rebuild import ACTIVATION_FACTORY, build_potential, load_checkpoint

#: Prefix of the backbone's weights in a PotentialModule state dict.
MODEL_PREFIX = "model."


def load_potential(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[Potential, dict[str, Any]]:
    """Rebuild the backbone stored in a PotentialModule checkpoint (eval mode, frozen) and
    return it with its resolved model config.

    Reads only ``hyper_parameters["model"]`` (the resolved model config) and the ``model.``
    weights of ``state_dict``, with ``torch.load(weights_only=True)``: no pickled object of
    the file is ever constructed, and the model is rebuilt through the allow-list of
    :mod:`taafs_exp.training.rebuild` (nothing the file names is imported or called).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a taafs-exp checkpoint, a config outside the allow-list or with
            non-plain values, or weights that do not fit the rebuilt architecture
            (missing/unexpected/mis-shaped keys).
    """
    ckpt = load_checkpoint(path, map_location=device)
    model_cfg = ckpt["hyper_parameters"]["model"]
    model: Potential = build_potential(model_cfg, f"{path}: hyper_parameters.model")
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
            if node.get("_target_") == ACTIVATION_FACTORY:
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
