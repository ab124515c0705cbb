"""DeePMD-kit's ener loss: energy term ΔE²/N by default, (ΔE/N)² with intensive_ener_virial."""

import pytest
import torch

from taafs_exp.data import keys as K
from taafs_exp.training.module import PotentialModule

MODEL = {
    "_target_": "taafs_exp.models.dp.DeepPotSeA", "type_map": ["O", "H"], "rcut": 3.0,
    "rcut_smth": 2.5, "sel": [8, 16], "neuron": [4], "axis_neuron": 2, "fitting_neuron": [4],
}


def training(**loss):
    prefs = {"start_pref_e": 2.0, "limit_pref_e": 2.0, "start_pref_f": 3.0, "limit_pref_f": 3.0}
    return {"lr": {"start_lr": 1e-3, "stop_lr": 1e-3, "decay_steps": 1}, "num_steps": 10,
            "loss": {**prefs, **loss}}


@pytest.mark.parametrize("intensive, power", [(False, 1), (True, 2)])
def test_energy_term_is_normalised_like_deepmd_kit(intensive, power):
    module = PotentialModule(MODEL, training(intensive_ener_virial=intensive))
    natoms = torch.tensor([3, 6])
    batch = {K.ENERGY: torch.tensor([1.0, -2.0], dtype=torch.float64), K.NUM_ATOMS: natoms,
             K.FORCES: torch.zeros(9, 3, dtype=torch.float64)}
    pred = {K.ENERGY: torch.tensor([1.6, -0.2], dtype=torch.float64),
            K.FORCES: torch.full((9, 3), 0.1, dtype=torch.float64)}
    d_e = torch.tensor([0.6, 1.8], dtype=torch.float64)
    expected = 2.0 * torch.mean(d_e**2 / natoms.double() ** power) + 3.0 * 0.01
    assert module.loss(batch, pred, step=0).item() == pytest.approx(expected.item(), rel=1e-12)
