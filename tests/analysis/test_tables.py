"""Tables from a fixture run store: mean ± std, Δ%, best marks, summary verdict."""

import json
import statistics

import pytest

from taafs_exp.analysis.collect import collect_runs
from taafs_exp.analysis.tables import build_tables, study_rows


def write_run(root, activation, seed, rmse_e, rmse_f, num_basis=None, extra=0, residual=False):
    act = {"name": activation}
    if num_basis:
        act.update(num_basis=num_basis, share="layer", residual=residual)
    folder = root / "basis_dp" / "dp" / "water" / f"{activation}-{num_basis or 0}-{residual}-s{seed}"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(
        json.dumps(
            {
                "experiment": "basis_dp",
                "budget": "cpu",
                "model": "dp",
                "data": "water",
                "placement": "all",
                "base_activation": "tanh",
                "activation": act,
                "seed": seed,
                "n_params": 1000 + extra,
                "n_extra_params": extra,
                "steps": 100,
                "step_time_s": 0.01,
                "test": {
                    "rmse_e_per_atom_meV": rmse_e,
                    "rmse_f_meV_per_A": rmse_f,
                    "split": "test: data_3 (100 frames)",
                },
            }
        )
    )
    return folder


@pytest.fixture
def store(tmp_path):
    runs = tmp_path / "runs"
    for seed, (e, f) in enumerate([(1.0, 100.0), (1.2, 110.0), (1.1, 90.0)]):
        write_run(runs, "tanh", seed, e, f)
    for seed, (e, f) in enumerate([(0.9, 80.0), (1.0, 85.0), (0.8, 75.0)]):
        write_run(runs, "chebyshev", seed, e, f, num_basis=8, extra=64)
    # a half-written run: folder and checkpoint, but no metrics.json -> never counted
    half = runs / "basis_dp" / "dp" / "water" / "bspline-8-s0"
    half.mkdir(parents=True)
    (half / "last.ckpt").write_bytes(b"partial")
    return runs


def test_collect_ignores_unfinished_and_untested_runs(store):
    untested = write_run(store, "fourier", 0, None, None, num_basis=8, extra=64)  # test=false
    assert json.loads((untested / "metrics.json").read_text())["test"]["rmse_f_meV_per_A"] is None
    runs = collect_runs(store)
    assert len(runs) == 6
    assert {r.activation for r in runs} == {"tanh", "chebyshev"}


def test_study_table_numbers(store, tmp_path):
    out = tmp_path / "tables"
    build_tables(collect_runs(store), out)
    md = (out / "basis_dp__dp__water.md").read_text()
    f_mean, f_std = statistics.fmean([80.0, 85.0, 75.0]), statistics.stdev([80.0, 85.0, 75.0])
    assert f"**{f_mean:.1f} ± {f_std:.1f}**" in md  # best force row in bold
    delta_f = 100 * (f_mean - 100.0) / 100.0
    assert f"{delta_f:+.1f}%" in md
    e_base = statistics.fmean([1.0, 1.2, 1.1])
    delta_e = 100 * (statistics.fmean([0.9, 1.0, 0.8]) - e_base) / e_base
    assert f"{delta_e:+.1f}%" in md
    assert "tanh (base, basis_dp)" in md and "chebyshev K=8 layer" in md
    assert "not the values of the TAAFS paper" in md
    assert "test: data_3 (100 frames)" in md
    csv_text = (out / "basis_dp__dp__water.csv").read_text()
    assert "**" not in csv_text and "chebyshev K=8 layer" in csv_text


def test_summary_says_where_taafs_did_not_help(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(3):
        write_run(runs, "tanh", seed, 1.0, 50.0 + seed)
        write_run(runs, "fourier", seed, 1.1, 60.0 + seed, num_basis=8, extra=48)
    build_tables(collect_runs(runs), tmp_path / "tables")
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert "fourier K=8 layer" in summary
    assert "TAAFS did not help: worse (forces)" in summary
    assert "+19.6%" in summary  # (61 - 51) / 51 on forces
    assert "| -12.2 |" in summary  # (51 - 61) / sqrt(1/3 + 1/3) standard errors


def test_summary_calls_a_gap_inside_the_seed_spread_noise(tmp_path):
    runs = tmp_path / "runs"
    for seed, f in enumerate([40.0, 50.0, 60.0]):
        write_run(runs, "tanh", seed, 1.0, f)
        write_run(runs, "chebyshev", seed, 1.0, f - 2.0, num_basis=8, extra=48)
    build_tables(collect_runs(runs), tmp_path / "tables")
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert "-4.0%" in summary and "| +0.2 |" in summary  # 2 / sqrt(100/3 + 100/3)
    assert "TAAFS did not help: within seed noise (forces)" in summary


def test_summary_claims_a_gap_beyond_two_standard_errors(store, tmp_path):
    build_tables(collect_runs(store), tmp_path / "tables")
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert "| +3.1 |" in summary  # (100 - 80) / sqrt(10²/3 + 5²/3)
    assert "TAAFS helped (forces)" in summary


def test_study_without_baseline_borrows_the_same_budget_baseline(store, tmp_path):
    for seed, f in enumerate([70.0, 72.0, 74.0]):
        folder = write_run(store, "bspline", seed, 0.9, f, num_basis=16, extra=128)
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["experiment"] = "knots_dp"
        if seed == 0:  # as if identical to a basis_dp run (train() copies such a run)
            metrics["reused_from"] = "basis_dp/dp/water/bspline-16-s0"
        (folder / "metrics.json").write_text(json.dumps(metrics))
    for seed in range(2):  # another study's tanh rows at the same budget are not pooled in
        folder = write_run(store, "tanh", seed + 10, 1.0, 500.0)
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["experiment"] = "another_dp"
        (folder / "metrics.json").write_text(json.dumps(metrics))
    runs = collect_runs(store)
    rows, base = study_rows([r for r in runs if r.experiment == "knots_dp"], runs)
    assert rows[0] is base and (base.label, base.first.experiment) == ("tanh", "basis_dp")
    assert len(base.runs) == 3
    assert [row.label for row in rows[1:]] == ["bspline K=16 layer"]
    build_tables(runs, tmp_path / "tables")
    md = (tmp_path / "tables" / "knots_dp__dp__water.md").read_text()
    assert md.startswith("# knots_dp: dp on water")  # the study's, not the borrowed row's
    assert "tanh (base, basis_dp)" in md
    assert "-28.0%" in md  # (72 - 100) / 100 on forces
    assert "1 run(s) trained exactly as a run of basis_dp and reuse its results" in md
    basis = (tmp_path / "tables" / "basis_dp__dp__water.md").read_text()
    assert "reuse" not in basis


def test_tables_count_runs_by_code_version_and_thread_count(store, tmp_path):
    """The 6 fixture runs recorded neither field (metrics.json from before they existed)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    provenance = [(commit, 1), (commit + "+dirty", 1), (commit, 2)]
    for seed, (version, threads) in enumerate(provenance):
        folder = write_run(store, "bspline", seed, 0.9, 80.0, num_basis=8, extra=64)
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics.update(code_version=version, torch_threads=threads)
        (folder / "metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "tables"
    build_tables(collect_runs(store), out)
    line = ("- Runs by code version: `0123456789ab` ×2, `0123456789ab+dirty` ×1, "
            "not recorded ×6; by torch threads: `1` ×2, `2` ×1, not recorded ×6.")
    assert line in (out / "basis_dp__dp__water.md").read_text().splitlines()
    assert line in (out / "summary.md").read_text().splitlines()


def test_summary_makes_no_claim_from_fewer_than_three_seeds(tmp_path):
    runs = tmp_path / "runs"
    for seed in range(2):
        write_run(runs, "tanh", seed, 1.0, 50.0)
        write_run(runs, "fourier", seed, 1.0, 40.0, num_basis=8, extra=48)
    build_tables(collect_runs(runs), tmp_path / "tables")
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert "no claim yet: 2 seed(s), a claim needs 3" in summary
    assert "helped" not in summary


def test_residual_curves_get_rows_of_their_own(store, tmp_path):
    for seed in range(3):
        write_run(store, "chebyshev", seed, 0.9, 95.0, num_basis=8, extra=64, residual=True)
    build_tables(collect_runs(store), tmp_path / "tables")
    md = (tmp_path / "tables" / "basis_dp__dp__water.md").read_text()
    assert "| chebyshev K=8 layer residual | " in md and "| chebyshev K=8 layer | " in md
    assert "| 95.0 ± 0.0 | -5.0% |" in md


def _timed_run(root, experiment, activation, seed, test_f, curve, steps=100):
    """A run of ``experiment`` whose validation curve is ``[(step, train_s, val F)]``."""
    folder = write_run(root, activation, seed, 1.0, test_f, num_basis=None if activation == "tanh" else 8)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics.update(experiment=experiment, steps=steps, val_curve=[
        {"step": s, "train_s": t, "rmse_e_per_atom_meV": 1.0, "rmse_f_meV_per_A": f} for s, t, f in curve
    ])
    target = root / experiment / "dp" / "water" / folder.name
    target.parent.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    folder.rename(target)


def test_equal_time_table_reads_taafs_at_the_base_training_time(tmp_path):
    """TAAFS's validation error is read at its last point within the base's training time T,
    and the complete-schedule rerun is compared on the test split."""
    runs = tmp_path / "runs"
    for seed, (base_f, at_t, full_f) in enumerate([(200.0, 150.0, 140.0), (210.0, 160.0, 150.0), (190.0, 140.0, 130.0)]):
        _timed_run(runs, "equal_time_dp", "tanh", seed, base_f + 5, [(50, 10.0, 250.0), (100, 20.0, base_f)])
        _timed_run(runs, "equal_time_dp", "chebyshev", seed, 120.0,
                   [(50, 12.0, 300.0), (80, 19.9, at_t), (100, 24.0, 100.0)])
        _timed_run(runs, "equal_time_full_dp", "chebyshev", seed, full_f, [(83, 20.1, 1.0)], steps=83)
    build_tables(collect_runs(runs), tmp_path / "tables")
    md = (tmp_path / "tables" / "equal_time__dp__water.md").read_text()
    assert "| 0 | 20 | 200.0 | 205.0 | 24 | 150.0 (step 80) | 120.0 | 140.0 (83 steps, 20 s) |" in md
    assert "| mean ± std |  | 200.0 ± 10.0 | 205.0 ± 10.0 |  | 150.0 ± 10.0 | 120.0 ± 0.0 | 140.0 ± 10.0 |" in md
    assert "at T, validation: ΔF -25.0%, +6.1 SE: TAAFS helped (forces)" in md  # 50 / sqrt(2·100/3)
    assert "at T, complete schedule (test): ΔF -31.7%" in md


def test_schedule_table_chooses_each_schedule_on_validation(tmp_path):
    """tanh validates best at 1e-3 → 1e-5, Chebyshev at 3e-3 → 1e-5: each is chosen on its
    validation error (not test), one table row per activation × schedule, and the claim is
    made both at each shared schedule and at the chosen ones."""
    runs = tmp_path / "runs"
    val = {("tanh", 1e-3): 200.0, ("tanh", 3e-3): 210.0,
           ("chebyshev", 1e-3): 150.0, ("chebyshev", 3e-3): 120.0}
    test = {("tanh", 1e-3): 205.0, ("tanh", 3e-3): 190.0,  # tanh's best test is NOT chosen
            ("chebyshev", 1e-3): 160.0, ("chebyshev", 3e-3): 130.0}
    for (activation, start), v in val.items():
        for seed, noise in enumerate((-10.0, 0.0, 10.0)):
            folder = write_run(runs, activation, seed, 1.0, test[(activation, start)] + noise,
                               num_basis=None if activation == "tanh" else 8)
            metrics = json.loads((folder / "metrics.json").read_text())
            metrics.update(experiment="schedule_dp", lr={"start_lr": start, "stop_lr": 1e-5},
                           val_split="val: data_2 (80 frames)",
                           val_curve=[{"step": 100, "rmse_f_meV_per_A": v + noise}])
            target = runs / "schedule_dp" / "dp" / "water" / f"{folder.name}-{start}"
            target.parent.mkdir(parents=True, exist_ok=True)
            (folder / "metrics.json").write_text(json.dumps(metrics))
            folder.rename(target)
    written = build_tables(collect_runs(runs), tmp_path / "tables")
    md = (tmp_path / "tables" / "schedule_dp__dp__water.md").read_text()
    assert [p.name for p in written if p.name.startswith("schedule_dp")] == ["schedule_dp__dp__water.md"]
    assert "| tanh | 0.001 → 1e-05 | 200.0 ± 10.0 | 205.0 ± 10.0 | 1.000 ± 0.000 | 3 | yes |" in md
    assert "| tanh | 0.003 → 1e-05 | 210.0 ± 10.0 | 190.0 ± 10.0 | 1.000 ± 0.000 | 3 |  |" in md
    assert "| chebyshev K=8 layer | 0.003 → 1e-05 | 120.0 ± 10.0 | 130.0 ± 10.0 |" in md
    assert "both at 0.001 → 1e-05: ΔF -22.0%" in md  # 160 vs 205
    assert "both at 0.003 → 1e-05: ΔF -31.6%" in md  # 130 vs 190
    # chosen: tanh at 1e-3 (test 205), Chebyshev at 3e-3 (test 130): -36.6 %, 75 / sqrt(200/3) SE
    assert "chebyshev K=8 layer (0.003 → 1e-05) vs tanh (0.001 → 1e-05): ΔF -36.6%, +9.2 SE" in md
    assert "Splits: val: data_2 (80 frames); test: data_3 (100 frames)" in md
