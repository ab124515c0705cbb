"""A restarted study skips its finished runs: the committed runs' saved overrides compose, with
today's conf/, to the config each run was trained with (``training_identity``, what
``check_same_training`` compares before skipping a finished run)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import compose_config
from taafs_exp.training.rebuild import read_saved_config
from taafs_exp.training.run_store import METRICS_FILE, differing_keys, training_identity

RUNS = Path(__file__).resolve().parents[1] / "results" / "runs"
STUDIES = ("basis_dp", "knots_dp", "basis_ani2", "residual_ani2", "long_dp", "equal_time_dp")
#: Runs checked per study: the first, a middle and the last finished one.
SAMPLE = 3


def finished_runs(study: str) -> list[Path]:
    """Run folders of ``study`` with a saved config and ``metrics.json``, sorted."""
    configs = sorted((RUNS / study).glob("*/*/*/.hydra/config.yaml"))
    return [c.parent.parent for c in configs if (c.parent.parent / METRICS_FILE).exists()]


@pytest.mark.parametrize("study", STUDIES)
def test_committed_runs_compose_to_their_saved_config(study: str):
    runs = finished_runs(study)
    assert len(runs) >= SAMPLE, f"expected finished runs of {study} under {RUNS}"
    for run in (runs[0], runs[len(runs) // 2], runs[-1]):
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        saved = read_saved_config(run / ".hydra" / "config.yaml")
        composed = compose_config(overrides)
        assert differing_keys(training_identity(composed), training_identity(saved)) == [], run
