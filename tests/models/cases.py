"""The backbones under the shared suite: a new backbone joins by adding one ModelCase.

Each case is built from ``conf/model/<config>.yaml`` with ``overrides`` (tiny sizes, float64)
and the ``${activation}`` node of every family in :data:`ACTIVATIONS`, through the same path as
training: ``resolve_hparams`` on the test frames, ``hydra.utils.instantiate``, then
``fit_statistics`` on the test frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelCase:
    """One backbone configuration.

    Attributes:
        config: name of the file in ``conf/model/`` (without ``.yaml``).
        overrides: merged into that config; must make the model small and float64.
        id: test id; defaults to ``config``.
    """

    config: str
    overrides: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    @property
    def name(self) -> str:
        return self.id or self.config


_TINY_DP = {
    "type_map": None,
    "rcut": 3.5,
    "rcut_smth": 1.0,
    "sel": "auto",
    "neuron": [4, 8],
    "axis_neuron": 2,
    "fitting_neuron": [8, 8],
    "precision": "float64",
}

_TINY_PAINN = {
    "type_map": None,
    "cutoff": 3.5,
    "num_features": 8,
    "num_interactions": 2,
    "num_radial": 6,
    "output_hidden": [8],
    "zero_init_output": False,  # a random readout: non-zero forces before any training
    "precision": "float64",
}

_TINY_CHGNET = {
    "type_map": None,
    "cutoff": 4.0,
    "threebody_cutoff": 3.0,
    "max_n": 5,
    "max_f": 2,
    "dim_atom_embedding": 6,
    "dim_bond_embedding": 6,
    "dim_angle_embedding": 6,
    "num_blocks": 3,
    "atom_conv_hidden_dims": [6],
    "bond_conv_hidden_dims": [6],
    "final_hidden_dims": [6, 6],
    "precision": "float64",
}

_TINY_ANI2 = {"type_map": None, "default_hidden_dims": [6, 5, 4], "precision": "float64"}

MODEL_CASES: list[ModelCase] = [
    ModelCase("dp", _TINY_DP),
    ModelCase("dp", {**_TINY_DP, "type_one_side": False, "resnet_dt": True}, id="dp_two_side"),
    ModelCase("painn", _TINY_PAINN),
    ModelCase("chgnet", _TINY_CHGNET),
    ModelCase("ani2", _TINY_ANI2),
]

#: ``${activation}`` nodes: the base activations and two TAAFS families (one spectral, one local).
ACTIVATIONS: dict[str, dict[str, Any]] = {
    "tanh": {"name": "tanh"},
    "silu": {"name": "silu"},
    "chebyshev": {"name": "chebyshev", "num_basis": 6},
    "bspline": {"name": "bspline", "num_basis": 6},
}
