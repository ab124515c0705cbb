"""Splits, collation and training-split statistics of the DataModule."""

import pytest
import torch

from taafs_exp.data import keys as K
from taafs_exp.data.collate import batch_frames, collate_graphs, frame_to_graph
from taafs_exp.data.datamodule import (
    AtomsDataModule,
    compute_statistics,
    split_indices,
    split_members,
)
from taafs_exp.data.errors import DataError
from taafs_exp.data.frame import Frame

ROOT_WATER = __import__("pathlib").Path(__file__).resolve().parents[2] / "data" / "water"


def molecule(numbers, energy, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(numbers)
    return Frame(
        positions=torch.rand(n, 3, generator=g, dtype=torch.float64) * 4.0,
        numbers=torch.tensor(numbers),
        cell=None,
        pbc=torch.zeros(3, dtype=torch.bool),
        energy=torch.tensor(float(energy), dtype=torch.float64),
        forces=torch.randn(n, 3, generator=g, dtype=torch.float64),
    )


def test_random_split_is_seeded_disjoint_and_complete():
    systems = ["a"] * 50
    first = split_indices(systems, {"fractions": [0.8, 0.1, 0.1]}, seed=3, source="x")
    again = split_indices(systems, {"fractions": [0.8, 0.1, 0.1]}, seed=3, source="x")
    other = split_indices(systems, {"fractions": [0.8, 0.1, 0.1]}, seed=4, source="x")
    assert first == again and first != other
    assert [len(first[s]) for s in ("train", "val", "test")] == [40, 5, 5]
    assert sorted(sum(first.values(), [])) == list(range(50))


def test_split_by_system_holds_out_whole_systems():
    """20 systems of 3 frames: 16/2/2 whole systems, seeded; no system in two splits."""
    systems = [f"run-{i:02d}" for i in range(20) for _ in range(3)]
    split = {"fractions": [0.8, 0.1, 0.1], "by": "system"}
    parts = split_indices(systems, split, seed=1, source="x")
    assert parts == split_indices(systems, split, seed=1, source="x")
    assert parts != split_indices(systems, split, seed=2, source="x")
    names = {stage: {systems[i] for i in idx} for stage, idx in parts.items()}
    assert [len(names[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert [len(parts[s]) for s in ("train", "val", "test")] == [48, 6, 6]
    assert not names["train"] & (names["val"] | names["test"]) and not names["val"] & names["test"]
    with pytest.raises(DataError, match="'frame' \\(default\\) or 'system'"):
        split_indices(systems, {"fractions": [0.8, 0.1, 0.1], "by": "molecule"}, 0, "x")


@pytest.mark.parametrize(
    "split, stage, text",
    [
        (None, "test", "random 10%"),
        ({"fractions": [0.7, 0.2, 0.1]}, "val", "random 20%"),
        ({"fractions": [0.8, 0.1, 0.1], "by": "system"}, "train", "random 80% of systems"),
        ({"train": ["data_0", "data_1"], "val": ["data_2"], "test": []}, "train",
         "data_0, data_1"),
    ],
)
def test_split_members_names_systems_or_share(split, stage, text):
    assert split_members(split, stage) == text


def test_named_split_and_its_errors():
    systems = ["data_0"] * 3 + ["data_1"] * 2
    parts = split_indices(
        systems, {"train": ["data_0"], "val": ["data_1"], "test": ["data_1"]}, 0, "water"
    )
    assert parts == {"train": [0, 1, 2], "val": [3, 4], "test": [3, 4]}
    with pytest.raises(DataError, match=r"water: data.split.train names systems \['data_9'\]"):
        split_indices(systems, {"train": ["data_9"], "val": ["data_1"], "test": []}, 0, "water")
    with pytest.raises(DataError, match="test split is empty"):
        split_indices(systems, {"train": ["data_0"], "val": ["data_1"], "test": []}, 0, "water")
    with pytest.raises(DataError, match="sum to 1"):
        split_indices(systems, {"fractions": [0.5, 0.1, 0.1]}, 0, "water")
    with pytest.raises(DataError, match=r"water: data.split.train shares systems \['data_1'\]"):
        split_indices(systems, {"train": ["data_0", "data_1"], "val": ["data_1"],
                                "test": ["data_1"]}, 0, "water")


def test_energy_shift_recovers_per_element_energies():
    true = {1: -13.6, 6: -1029.0, 8: -2040.0}
    compositions = [[1, 1, 8], [6, 1, 1, 1, 1], [6, 8, 8], [1, 1, 6, 8], [8, 8]]
    frames = [
        molecule(c, sum(true[z] for z in c), seed=i) for i, c in enumerate(compositions)
    ]
    # neighbours from a subset (all pairs within 100 Å): (3·2 + 5·4) / (3 + 5)
    stats = compute_statistics(frames, [frame_to_graph(f, 100.0) for f in frames[:2]])
    assert stats.avg_num_neighbors == pytest.approx(26 / 8)
    assert stats.elements == [1, 6, 8]
    for z, value in true.items():
        assert stats.energy_shift[z] == pytest.approx(value, abs=1e-8)
    assert stats.energy_per_atom_std == pytest.approx(0.0, abs=1e-9)
    forces = torch.cat([f.forces for f in frames])
    assert stats.force_rms == pytest.approx(float(forces.pow(2).mean().sqrt()))


def test_collate_offsets_pairs_and_frames():
    frames = [molecule([1, 8, 1], -1.0, 0), molecule([6, 1], -2.0, 1)]
    single = [frame_to_graph(f, 10.0) for f in frames]
    batch = collate_graphs(single)
    assert batch[K.BATCH].tolist() == [0, 0, 0, 1, 1]
    assert batch[K.NUM_ATOMS].tolist() == [3, 2]
    assert batch[K.EDGE_INDEX].shape[1] == 3 * 2 + 2 * 1  # all ordered pairs within 10 Å
    # no pair crosses frames
    frame_of = batch[K.BATCH][batch[K.EDGE_INDEX]]
    assert torch.equal(frame_of[0], frame_of[1])
    assert torch.equal(batch_frames(frames, 10.0)[K.EDGE_INDEX], batch[K.EDGE_INDEX])


def test_water_datamodule_uses_deepmd_split_and_train_statistics():
    dm = AtomsDataModule(
        path=str(ROOT_WATER),
        format="deepmd",
        split={"train": ["data_0", "data_1", "data_2"], "val": ["data_3"], "test": ["data_3"]},
    )
    dm.setup()
    assert len(dm.frames["val"]) == len(dm.frames["test"]) > 0
    assert len(dm.frames["train"]) + len(dm.frames["val"]) == 400
    assert dm.elements() == [1, 8]
    with pytest.raises(RuntimeError, match="set_cutoff"):
        dm.statistics()
    dm.set_cutoff(6.0)
    batch = next(iter(dm.train_dataloader()))
    assert batch[K.POSITIONS].shape == (192, 3)
    assert batch[K.EDGE_INDEX].shape[1] > 192 * 50  # liquid water: ~80-90 neighbours in 6 Å


def test_element_outside_the_type_map_is_named_with_its_frame(tmp_path):
    """An element only the test split holds is caught before training, with file and frame."""
    from taafs_exp.data import write_deepmd

    water = [molecule([8, 1, 1], -10.0, seed=s) for s in range(4)]
    water_dimer = [molecule([8, 1, 1, 8, 1, 1], -20.0, seed=s) for s in range(2)]
    methane = [molecule([6, 1, 1, 1, 1], -15.0, seed=s) for s in range(2)]
    write_deepmd(water + water_dimer + methane, tmp_path / "mols")
    dm = AtomsDataModule(
        path=tmp_path / "mols", format="deepmd",
        split={"train": ["system_000"], "val": ["system_001"], "test": ["system_002"]},
    )
    dm.check_elements(["H", "C", "O"], "DeepPotSeA")  # every element covered: no error
    with pytest.raises(DataError, match=r"system_002.*:0: test frame with element\(s\) \['C'\] "
                                        r"not in DeepPotSeA's type_map \['O', 'H'\]"):
        dm.check_elements(["O", "H"], "DeepPotSeA")
