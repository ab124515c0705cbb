"""Report helpers: the NVE energy analysis stops before a blow-up; empty runs still report."""

from __future__ import annotations

import numpy as np
import pytest

from taafs_exp.md import MDRun
from taafs_exp.md.report import nve_analysis, plot_energy, run_summary


def _run(blew_up: bool) -> MDRun:
    """Five samples 5 fs apart with E_total rising 1 meV/atom/ps, then a 1 eV/atom jump."""
    n = 10
    run = MDRun("nve", 0.5, 100, n, steps_done=50)
    run.time_fs = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    run.potential_energy = [n * 1e-6 * t for t in run.time_fs[:-1]] + [n * 1.0]
    run.kinetic_energy = [0.0] * 6
    if blew_up:
        run.blew_up, run.failed_step, run.reason = True, 50, "atoms 0.2 Å apart"
    return run


def test_nve_analysis_stops_before_the_blow_up():
    out = nve_analysis(_run(blew_up=True))
    assert out["samples"] == 5
    assert out["drift_meV_per_atom_per_ps"] == pytest.approx(1.0)
    assert out["fluctuation_meV_per_atom"] == pytest.approx(0.0, abs=1e-9)


def test_nve_analysis_uses_every_sample_of_a_stable_run():
    out = nve_analysis(_run(blew_up=False))
    assert out["samples"] == 6
    assert out["max_deviation_meV_per_atom"] == pytest.approx(1000.0)
    assert np.isfinite(out["drift_meV_per_atom_per_ps"])


def test_a_run_refused_at_the_start_still_reports(tmp_path):
    """SelOverflowError on the start frame: no sample at all, yet summary and plot work."""
    empty = MDRun("nve", 0.5, 100, 10, blew_up=True, failed_step=0, reason="model refused")
    summary = run_summary(empty)
    assert summary["stable"] is False and summary["temperature_K_mean"] is None
    assert nve_analysis(empty) is None
    plot_energy(empty, empty, tmp_path / "energy.png")
    assert (tmp_path / "energy.png").stat().st_size > 0
