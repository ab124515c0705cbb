"""DeepPotSeA beyond the shared suite: DeePMD-kit's conventions, sizes and errors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list
from backbone_suite import build_model
from cases import ModelCase
from helpers import compose_config
from water_frames import make_frame
from omegaconf import OmegaConf

from taafs_exp.data import keys as K
from taafs_exp.data import load_dataset
from taafs_exp.data.collate import batch_frames
from taafs_exp.data.frame import Frame
from taafs_exp.data.stats import DatasetStatistics
from taafs_exp.models.dp import DeepPotSeA, SelOverflowError, auto_sel

WATER = Path(__file__).resolve().parents[2] / "data" / "water"
TINY = {"rcut": 3.5, "rcut_smth": 1.0, "neuron": [4, 8], "axis_neuron": 2, "fitting_neuron": [8]}


def statistics(shift: dict[int, float]) -> DatasetStatistics:
    return DatasetStatistics(
        energy_shift=shift, force_rms=1.0, avg_num_neighbors=1.0, energy_per_atom_std=1.0
    )


def mlp_size(n_in: int, widths: list[int], resnet_dt: bool) -> int:
    """Weights + biases of DeePMD-kit's ResNet MLP, + idt on the layers with a skip."""
    total = 0
    for width in widths:
        total += n_in * width + width + (width if resnet_dt and width in (n_in, 2 * n_in) else 0)
        n_in = width
    return total


def test_water_parameter_count():
    """DeePMD-kit's water se_e2_a with tanh: 2 embedding nets (1→25→50→100) and 2 fitting nets
    (1600→240→240→240→1, idt on the 240→240 layers): 12 900 + 1 001 282 = 1 014 182. model=dp
    on data=water (its type_map and sel: conf/data_model/water_dp.yaml)."""
    cfg = compose_config(["model=dp", "activation=tanh"]).model
    cfg.embedding_activation = cfg.fitting_activation = None
    assert (list(cfg.type_map), list(cfg.sel)) == (["O", "H"], [46, 92])
    model = DeepPotSeA(**{k: v for k, v in OmegaConf.to_container(cfg).items() if k != "_target_"})
    ntypes, neuron = len(cfg.type_map), list(cfg.neuron)
    d_in = neuron[-1] * cfg.axis_neuron
    embedding = ntypes * mlp_size(1, neuron, cfg.resnet_dt)
    fitting = ntypes * (
        mlp_size(d_in, list(cfg.fitting_neuron), cfg.fitting_resnet_dt)
        + cfg.fitting_neuron[-1]
        + 1
    )
    assert sum(p.numel() for p in model.parameters()) == embedding + fitting == 1_014_182
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_sel_overflow_is_an_error(periodic_water: Frame):
    model = DeepPotSeA(["O", "H"], sel=[2, 2], **TINY)
    with pytest.raises(
        SelOverflowError,
        match=r"has (\d+) [OH] neighbours within rcut=3.5 Å, more than sel\[\d\]=2",
    ) as err:
        model(batch_frames([periodic_water], model.cutoff))
    assert int(re.search(r"has (\d+)", str(err.value)).group(1)) > 2


def test_unknown_element_is_an_error(periodic_water: Frame):
    model = DeepPotSeA(["O", "H"], sel=[20, 40], **TINY)
    frame = make_frame(periodic_water.positions, periodic_water.cell)
    frame.numbers = frame.numbers.clone()
    frame.numbers[0] = 6
    with pytest.raises(
        ValueError, match=re.escape("['C'] not in the model's type_map ['O', 'H']")
    ):
        model(batch_frames([frame], model.cutoff))
    with pytest.raises(
        ValueError, match=re.escape("['C'] not in the model's type_map ['O', 'H']")
    ):
        model.fit_statistics(statistics({1: 0.0, 6: 0.0, 8: 0.0}), [])
    with pytest.raises(ValueError, match=re.escape("unknown element symbol(s) ['Xx']")):
        DeepPotSeA(["O", "Xx"], sel=[1, 1], **TINY)


def test_auto_sel_on_water():
    """DeePMD-kit's rule on bundled water frames, against ASE's neighbour counts."""
    dataset = load_dataset(WATER / "data_0")
    frames = [dataset[i] for i in range(0, len(dataset), 20)]
    largest = np.zeros(2, dtype=int)
    for f in frames:
        atoms = Atoms(
            numbers=f.numbers.numpy(), positions=f.positions.numpy(), cell=f.cell.numpy(), pbc=True
        )
        i, j = ase_neighbor_list("ij", atoms, 6.0)
        is_h = (f.numbers.numpy()[j] == 1).astype(int)
        counts = np.zeros((len(atoms), 2), dtype=int)
        np.add.at(counts, (i, is_h), 1)
        largest = np.maximum(largest, counts.max(0))
    expected = [4 * math.ceil(int(n * 1.1) / 4) for n in largest]
    sel = auto_sel(frames, ["O", "H"], 6.0)
    assert sel == expected
    assert all(
        s <= d for s, d in zip(sel, [46, 92], strict=True)
    )  # the example's sel holds for its data
    assert auto_sel(frames, ["O", "H"], 6.0, ratio=1.5) == [
        4 * math.ceil(int(n * 1.5) / 4) for n in largest
    ]


def test_resolve_hparams(frames: list[Frame]):
    """type_map null → data elements by Z; 'auto' / 'auto:<ratio>' → auto_sel."""
    hparams = DeepPotSeA.resolve_hparams(
        {"type_map": None, "sel": "auto:2.0", "rcut": 3.5}, frames
    )
    assert hparams["type_map"] == ["H", "O"]
    assert hparams["sel"] == auto_sel(frames, ["H", "O"], 3.5, ratio=2.0)
    with pytest.raises(ValueError, match="'auto' or 'auto:<ratio>'"):
        DeepPotSeA.resolve_hparams({"type_map": ["O", "H"], "sel": "max"}, frames)


def switch(r: np.ndarray, rs: float, rc: float) -> np.ndarray:
    """DeePMD-kit's s(r) (``compute_smooth_weight``/r), written out independently."""
    u = np.clip((r - rs) / (rc - rs), 0.0, 1.0)
    return (u**3 * (-6 * u**2 + 15 * u - 10) + 1) / r


def test_fit_statistics_follow_deepmd():
    """EnvMatStatSe on one molecule, sel [2, 4, 2] for (O, H, C): every slot counts (empty = 0),
    angular columns pooled with mean 0, C absent → davg 0, dstd 0.1; bias = energy shift."""
    rs, rc = 0.5, 3.0
    pos = np.array([[0.0, 0.0, 0.0], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0]])
    model = DeepPotSeA(
        ["O", "H", "C"],
        rcut=rc,
        rcut_smth=rs,
        sel=[2, 4, 2],
        neuron=[4],
        axis_neuron=2,
        fitting_neuron=[4],
    )
    frame = make_frame(torch.tensor(pos), None)
    model.fit_statistics(statistics({8: -2.5, 1: -0.25}), [batch_frames([frame], rc)])
    # (neighbour, slot) of each atom: O slots 0-1, H slots 2-5, C slots 6-7
    neighbours = {0: [(1, 2), (2, 3)], 1: [(0, 0), (2, 2)], 2: [(0, 0), (1, 2)]}
    rows = {0: [], 1: []}  # centre type -> its atoms' (8, 4) environment matrices
    for i, t in enumerate([0, 1, 1]):
        env = np.zeros((8, 4))
        for j, slot in neighbours[i]:
            d = pos[j] - pos[i]
            r = np.linalg.norm(d)
            env[slot] = switch(r, rs, rc) * np.array([1.0, *(d / r)])
        rows[t].append(env)
    for t, envs in rows.items():
        envs = np.stack(envs)
        expected_std = [
            envs[..., 0].std(),
            *[np.sqrt((envs[..., 1:] ** 2).mean() - envs[..., 1:].mean() ** 2)] * 3,
        ]
        np.testing.assert_allclose(
            model.davg[t].numpy(), [envs[..., 0].mean(), 0, 0, 0], rtol=1e-12
        )
        np.testing.assert_allclose(model.dstd[t].numpy(), expected_std, rtol=1e-12)
    assert model.davg[2].tolist() == [0.0] * 4 and model.dstd[2].tolist() == [0.1] * 4
    assert model.bias_atom_e.tolist() == [-2.5, -0.25, 0.0]


@pytest.mark.parametrize("type_one_side", [True, False])
def test_matches_a_naive_per_atom_implementation(periodic_water: Frame, type_one_side: bool):
    """E = Σ_i ℱ_{c_i}(D_i) + b_{c_i}, D_i = Tᵀ T^<, T = Σ_slots R̃ᵀ 𝒢(R̃_0) / N_c, evaluated one
    atom and one slot at a time (empty slots: R̃ = −davg/dstd), with the model's own nets."""
    case = ModelCase(
        "dp", {**TINY, "type_map": ["O", "H"], "sel": [8, 16], "type_one_side": type_one_side}
    )
    model = build_model(case, "tanh", [periodic_water])
    batch = batch_frames([periodic_water], model.cutoff)
    _, filled, types = model.environment(batch)
    assert (~filled).any(), "the frame should leave empty slots"
    i, j = batch[K.EDGE_INDEX]
    vec = periodic_water.positions[j] - periodic_water.positions[i] + batch[K.SHIFTS]
    total = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for a in range(len(types)):
            c = int(types[a])
            t_mat = torch.zeros(4, 8, dtype=torch.float64)
            for t in range(2):
                mine = [
                    e
                    for e in range(len(i))
                    if i[e] == a and types[j[e]] == t and vec[e].norm() < model.rcut
                ]
                rows = [
                    float(switch(float(r), model.rcut_smth, model.rcut))
                    * torch.cat([torch.ones(1, dtype=torch.float64), vec[e] / r])
                    for e in mine
                    for r in [vec[e].norm()]
                ]
                rows += [torch.zeros(4, dtype=torch.float64)] * (model.sel[t] - len(mine))
                net = model.filter_layers[t if type_one_side else t * 2 + c]
                for row in rows:
                    row = (row - model.davg[c]) / model.dstd[c]
                    t_mat += row[:, None] * net(row[:1])[None, :]
            t_mat /= sum(model.sel)
            d = (t_mat.T @ t_mat[:, : model.axis_neuron]).flatten()
            total += model.fitting_nets[c](d)[0] + model.bias_atom_e[c]
        torch.testing.assert_close(model(batch)[0], total, rtol=1e-12, atol=1e-12)


def test_float32_precision(frames: list[Frame]):
    """precision float32: parameters, buffers and energies float32, within 1e-5 of float64."""
    case = ModelCase("dp", {**TINY, "type_map": ["O", "H"], "sel": [16, 32]})
    model64 = build_model(case, "tanh", frames)
    model32 = build_model(
        ModelCase("dp", {**case.overrides, "precision": "float32"}), "tanh", frames
    )
    assert all(
        t.dtype == torch.float32 for t in [*model32.parameters(), model32.davg, model32.dstd]
    )
    model32.load_state_dict(model64.state_dict())
    batch = batch_frames(frames, model64.cutoff)
    energy32 = model32(batch)
    assert energy32.dtype == torch.float32
    torch.testing.assert_close(energy32.double(), model64(batch), rtol=1e-5, atol=1e-5)
    assert model64.to(torch.float32)(batch).dtype == torch.float32  # .to() moves the computation
