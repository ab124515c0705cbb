"""Reuse of identical runs (taafs_exp.training.run_store): only at the same torch thread count."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import compose_config
from taafs_exp.training.run_store import find_identical_run


def finished_run(store: Path, cfg, threads: int | None) -> Path:
    """A finished basis_dp run of ``cfg`` (saved config + metrics.json) trained with
    ``threads`` torch threads (None: metrics.json from before the count was recorded)."""
    run = store / "basis_dp" / "dp_cpu" / "water" / "chebyshev-8-layer-s0"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                   run / ".hydra" / "config.yaml")
    metrics = {"model": cfg.model_name, "data": cfg.data_name, "placement": cfg.placement_name}
    if threads is not None:
        metrics["torch_threads"] = threads
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.mark.parametrize("recorded, why", [
    (1, None),
    (2, "2 torch threads, this run trains with 1"),
    (None, "no thread count recorded, this run trains with 1"),
])
def test_reuse_needs_the_same_thread_count(recorded, why, tmp_path, caplog):
    store = tmp_path / "runs"
    cfg = compose_config(["logger=none", "torch_threads=1"], tmp_path / "new")
    twin = finished_run(store, cfg, recorded)
    with caplog.at_level(logging.INFO, logger="taafs_exp.training.run_store"):
        found = find_identical_run(cfg, store, tmp_path / "new")
    assert found == (twin if why is None else None)
    assert [r.getMessage() for r in caplog.records] == (
        [] if why is None else [f"not reusing identical run {twin}: {why} (bit-identical "
                                "results need the same count)"]
    )
