"""Report helpers: the NVE energy analysis stops before a blow-up; empty runs still report;
the MD-grade goals and the table over seeds."""

from __future__ import annotations

import numpy as np
import pytest

from taafs_exp.md import MDRun
from taafs_exp.md.integrate import REFUSED
from taafs_exp.md.report import (
    failure_kind,
    md_goals,
    nve_analysis,
    plot_energy,
    run_summary,
    seed_table,
)


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
    empty = MDRun("nve", 0.5, 100, 10, blew_up=True, failed_step=0, reason=REFUSED)
    summary = run_summary(empty)
    assert summary["stable"] is False and summary["temperature_K_mean"] is None
    assert nve_analysis(empty) is None
    plot_energy(empty, empty, tmp_path / "energy.png")
    assert (tmp_path / "energy.png").stat().st_size > 0


@pytest.mark.parametrize(
    "reason, kind",
    [(f"{REFUSED}: 21 O neighbours, more than sel[0]=20", "STOPPED"),
     ("atoms 0.2 Å apart", "BLEW UP")],
)
def test_a_refused_configuration_reads_stopped_not_blown_up(reason, kind):
    run = MDRun("nve", 0.5, 100, 10, blew_up=True, failed_step=40, reason=reason)
    assert failure_kind(run_summary(run)) == kind


GOALS = {"temperature_tolerance_K": 50, "max_abs_drift_meV_per_atom_per_ps": 0.5,
         "rdf_peak_shift_A": 0.05, "rdf_peak_height_rel": 0.10}


def _report(name="md_dp/tanh-na-fixed-s0", t_eq=340.0, drift=-0.4, peak_r=2.84, peak_g=2.7,
            stable=True, steps=16000, rmse_f=100.0):
    """A report.json as md_validate writes it; the DFT O-O first peak is at 2.80 Å, g 3.0."""
    rdf = {"O-O": {"distance_A": 0.1, "peak_r_A": peak_r, "peak_g": peak_g,
                   "ref_peak_r_A": 2.80, "ref_peak_g": 3.0},
           "total_distance_A": 0.1}
    return {
        "name": name,
        "model": {"activation": "tanh"},
        "training": {"steps": steps, "rmse_f_meV_per_A": rmse_f},
        "nvt_settings": {"temperature_K": 300},
        "nve": {"stable": True, "energy": {"drift_meV_per_atom_per_ps": drift}},
        "nvt": {"stable": stable, "rdf": rdf,
                "temperature_K_equilibrated": {"mean": t_eq, "std": 20.0, "samples": 10}},
    }


@pytest.mark.parametrize(
    "change, failed",
    [({}, None), ({"t_eq": 351.0}, "temperature"), ({"drift": 0.6}, "drift"),
     ({"peak_r": 2.86}, "rdf O-O"), ({"peak_g": 2.6}, "rdf O-O"),
     ({"stable": False}, "stable")],
)
def test_md_goals_grade_each_criterion(change, failed):
    met = md_goals(_report(**change), GOALS)
    assert met["all"] is (failed is None)
    assert [k for k, ok in met.items() if not ok and k != "all"] == (
        [] if failed is None
        else ["stable", "temperature", "rdf O-O"] if failed == "stable" else [failed]
    )


def test_seed_table_groups_seeds_with_mean_and_std():
    reports = [_report(f"md_dp/tanh-na-fixed-s{s}", rmse_f=f, t_eq=t)
               for s, f, t in ((0, 100.0, 300.0), (1, 120.0, 320.0))]
    reports.append(_report("md_dp/chebyshev-8-layer-s0", stable=False))
    for r in reports:
        r["goals"] = {"met": md_goals(r, GOALS)}
    rows = seed_table(reports)[2:]
    assert len(rows) == 2
    cells = [c.strip() for c in rows[0].split("|")[1:-1]]
    assert cells[:8] == ["md_dp/tanh-na-fixed", "tanh", "2", "16000 ± 0", "110.0 ± 14.1",
                         "2 of 2", "2 of 2", "-0.400 ± 0.000"]
    assert cells[8] == "310 ± 14"
    assert cells[9] == "2.840 ± 0.000 (2.800)"
    cheb = [c.strip() for c in rows[1].split("|")[1:-1]]
    assert cheb[5:7] == ["0 of 1", "0 of 1"] and cheb[7] == "n/a"
