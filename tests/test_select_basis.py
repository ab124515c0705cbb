"""The basis search (conf/hparams_search/select_basis.yaml): it composes, validates on systems
the test split never sees, resumes a killed search from its stored study, records pruned trials
as pruned (no metrics.json), and its report puts the retrained choice beside the grid."""

import importlib.util
import json
import sys
from pathlib import Path

import hydra
import pytest
from hydra.core.global_hydra import GlobalHydra
from optuna.trial import TrialState

from helpers import compose_config
from taafs_exp.analysis.collect import Run, collect_runs
from taafs_exp.analysis.select import (
    GRID_STUDIES,
    chosen_trial,
    cost_cells,
    grid_runs,
    parameter_values,
    read_trials,
    retrain_overrides,
    trains,
    write_select_report,
)
from taafs_exp.search.study import TRIAL_DIR, check_held_out, open_study, storage_url
from taafs_exp.search.sweeper import check_objective, present_keys
from taafs_exp.training.errors import ConfigError
from taafs_exp.training.rebuild import read_saved_config
from taafs_exp.training.train import optimized_value
from test_run import TINY_DP

ROOT = Path(__file__).resolve().parents[1]
# 2-step trials of a tiny DP over two bases (the compiled kernels would compile per basis)
TINY_SEARCH = [
    "hparams_search=select_basis", "model=dp_cpu", "data=water", "activation=chebyshev,legendre",
    "+activation.kernel=eager", "trainer.max_steps=2", "trainer.val_check_interval=1",
    "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "torch_threads=1",
    *TINY_DP,
]


def hydra_main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``python run.py <argv>`` in this process (imports once for every search of the test)."""
    spec = importlib.util.spec_from_file_location("run", ROOT / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    main = hydra.main(config_path=str(ROOT / "conf"), config_name="config",
                      version_base="1.3")(run.main.__wrapped__)
    monkeypatch.setattr(sys, "argv", ["run.py", *argv])
    try:
        main()
    finally:
        GlobalHydra.instance().clear()


def test_search_config_composes_with_a_held_out_validation_split():
    """The search composes; water's own split validates on its test system, which the search
    config replaces by a held-out training system (the sweeper refuses a shared one)."""
    cfg = compose_config(["hparams_search=select_basis", "model=dp_cpu", "data=water"])
    assert cfg.hydra.sweeper._target_.endswith("SelectSweeper")
    assert cfg.hydra.sweeper.n_trials == 24 and cfg.test is False
    assert cfg.optimized_metric == "val/rmse_f_meV_per_A"
    assert cfg.callbacks.optuna_pruning.pruner._target_ == "optuna.pruners.MedianPruner"
    assert cfg.hydra.sweeper.params["activation.num_basis"] == "choice(4, 8, 16, 32)"
    own = cfg.data.split
    assert set(own.val) & set(own.test) == {"data_3"}
    with pytest.raises(ConfigError, match=r"validation shares \['data_3'\] with the test split"):
        check_held_out(own, "data=water: data.split")
    held_out = cfg.hydra.sweeper.splits.water
    assert not set(held_out.val) & set(held_out.test)
    assert not set(held_out.train) & (set(held_out.val) | set(held_out.test))
    check_held_out(held_out, "search split")


def test_options_a_basis_lacks_are_not_searched():
    """K is searched for the series bases, not for rational (sized by its degrees)."""
    options = ["activation.num_basis", "activation.share", "activation.domain"]
    rational = compose_config(["hparams_search=select_basis", "activation=rational"])
    assert present_keys(rational, options) == ["activation.share", "activation.domain"]
    chebyshev = compose_config(["hparams_search=select_basis", "activation=chebyshev"])
    assert present_keys(chebyshev, options) == options


def test_objective_reads_validation_only():
    """The sweeper refuses a test metric; what run.py returns for val/ is the last validation
    value, whatever the test numbers are."""
    with pytest.raises(ConfigError, match="never on test"):
        check_objective("test/rmse_f_meV_per_A")
    check_objective("val/rmse_f_meV_per_A")
    metrics = {"test": {"rmse_f_meV_per_A": 1.0},
               "val_curve": [{"step": 1, "rmse_f_meV_per_A": 30.0},
                             {"step": 2, "rmse_f_meV_per_A": 20.0}]}
    assert optimized_value(metrics, "val/rmse_f_meV_per_A") == 20.0


def test_search_resumes_prunes_and_reports(tmp_path, monkeypatch, capsys):
    """One trial; a second trial left RUNNING as a killed search leaves it; a rerun with
    n_trials=2 trains that trial again in its own folder (2 trials in the study, not 3) and, with
    a pruner that prunes any positive RMSE, records it as PRUNED without metrics.json; a rerun
    with another training config is refused. The report lists both trials and the choice
    retrained on water's own split."""
    where = [f"paths.root={tmp_path}", f"paths.data_dir={ROOT / 'data'}"]
    hydra_main(["-m", *TINY_SEARCH, *where, "hydra.sweeper.n_trials=1"], monkeypatch)
    folder = tmp_path / "results" / "search" / "select_basis" / "dp_cpu" / "water"
    study = open_study(storage_url(folder))
    [first] = study.get_trials()
    assert first.state == TrialState.COMPLETE
    assert first.params["activation"] in ("chebyshev", "legendre")
    metrics = json.loads((folder / TRIAL_DIR.format(number=0) / "metrics.json").read_text())
    assert first.value == metrics["val_curve"][-1]["rmse_f_meV_per_A"]
    assert metrics["test"]["rmse_f_meV_per_A"] is None  # test=false: the test split is not read
    saved = folder / TRIAL_DIR.format(number=0) / ".hydra" / "config.yaml"
    split = read_saved_config(saved).data.split
    assert (list(split.train), list(split.val), list(split.test)) == (
        ["data_0", "data_1"], ["data_2"], ["data_3"])

    killed = study.ask(first.distributions)  # RUNNING, as a killed search leaves its trial
    prune_all = ["callbacks.optuna_pruning.pruner._target_=optuna.pruners.ThresholdPruner",
                 "~callbacks.optuna_pruning.pruner.n_startup_trials",
                 "+callbacks.optuna_pruning.pruner.upper=0.0"]  # prunes any positive RMSE
    hydra_main(["-m", *TINY_SEARCH, *where, "hydra.sweeper.n_trials=2", *prune_all], monkeypatch)
    trials = open_study(storage_url(folder)).get_trials()
    assert [(t.number, t.state) for t in trials] == [(0, TrialState.COMPLETE),
                                                    (1, TrialState.PRUNED)]
    assert trials[1].params == killed.params
    assert list(trials[1].intermediate_values) == [1]  # pruned at its first validation
    pruned = folder / TRIAL_DIR.format(number=1)
    assert (pruned / ".hydra" / "config.yaml").exists() and not (pruned / "metrics.json").exists()
    assert collect_runs(tmp_path) == []  # no trial is a finished, tested run of the run store
    with pytest.raises(SystemExit) as refused:  # a rerun that would train other trials
        hydra_main(["-m", *TINY_SEARCH, *where, "hydra.sweeper.n_trials=3", "trainer.max_steps=3"],
                   monkeypatch)
    assert refused.value.code == 2
    assert "holds trials of another config (trainer.max_steps differ)" in capsys.readouterr().err
    assert len(open_study(storage_url(folder)).get_trials()) == 2

    study, read = read_trials(folder)
    overrides = retrain_overrides(study, read[0])
    assert overrides[0] == "experiment=select_basis_dp"
    assert not any(o.startswith(("hparams_search=", "data.split=")) for o in overrides)
    hydra_main(["-m", *overrides, "seed=0"], monkeypatch)
    path = write_select_report(folder, collect_runs(tmp_path / "results" / "runs"),
                               tmp_path / "tables")
    text = path.read_text()
    assert path.name == "select_basis__dp_cpu__water.md"
    assert "2 trials (1 complete, 1 pruned)" in text
    assert ("MedianPruner(n_startup_trials=4, n_warmup_steps=1) then "
            "ThresholdPruner(n_warmup_steps=1, upper=0.0)") in text
    assert "validated on data_2" in text
    assert "data=water validates on data_3, its test split" in text
    assert f"| 1 | pruned | {trials[1].params['activation']} |" in text
    retrained = collect_runs(tmp_path / "results" / "runs")
    assert [r.experiment for r in retrained] == ["select_basis_dp"]
    assert f"{retrained[0].metrics['test']['rmse_f_meV_per_A']:.1f} ± n/a" in text
    assert retrained[0].metrics["test"]["split"].startswith("test: data_3")


def test_a_repeated_configuration_is_not_trained_again(tmp_path, monkeypatch):
    """Nothing searched (one activation, no sweeper params): the second trial repeats the first,
    is told its value without training (no folder), and the choice is the trained one."""
    where = [f"paths.root={tmp_path}", f"paths.data_dir={ROOT / 'data'}"]
    search = [a for a in TINY_SEARCH if not a.startswith("activation=")]
    hydra_main(["-m", *search, "activation=chebyshev", "~hydra.sweeper.params", *where,
                "hydra.sweeper.n_trials=2"], monkeypatch)
    folder = tmp_path / "results" / "search" / "select_basis" / "dp_cpu" / "water"
    first, second = open_study(storage_url(folder)).get_trials()
    assert (first.state, second.state) == (TrialState.COMPLETE, TrialState.COMPLETE)
    assert second.value == first.value and second.user_attrs == {"repeat_of": 0}
    assert (folder / TRIAL_DIR.format(number=0) / "metrics.json").exists()
    assert not (folder / TRIAL_DIR.format(number=1)).exists()
    _, trials = read_trials(folder)
    assert chosen_trial(trials).frozen.number == 0 and trials[1].steps == 0


def grid_run(experiment: str, name: str, k: int | None, seed: int, f: float, steps: int = 1000,
             reused: str | None = None) -> Run:
    """A finished run as collect_runs reads it from metrics.json."""
    options = {"num_basis": k, "share": "layer", "domain": [-4.0, 4.0]} if k else {}
    act = {"name": name, **options}
    metrics = {"experiment": experiment, "budget": "cpu", "model": "dp_cpu", "data": "water",
               "activation": act, "steps": steps, "wall_s": 60.0, "seed": seed,
               "test": {"rmse_f_meV_per_A": f, "rmse_e_per_atom_meV": 2.0,
                        "split": "test: data_3"},
               **({"reused_from": reused} if reused else {})}
    return Run(path=Path(experiment), experiment=experiment, budget="cpu", model="dp_cpu",
               data="water", activation=name, num_basis=k, share="layer" if k else None,
               placement="all", residual=False, seed=seed, metrics=metrics)


def test_grid_rows_count_each_trained_run_once():
    """The grid: TAAFS runs of the grid studies at the trials' model, data, budget and steps; a
    run reused by another grid study counts once (as its original) and costs nothing."""
    k8 = grid_run("basis_dp", "chebyshev", 8, 0, 240.0)
    k8_reused = grid_run("knots_dp", "chebyshev", 8, 0, 240.0, reused="basis_dp/dp_cpu/water/x")
    k32 = grid_run("knots_dp", "chebyshev", 32, 0, 140.0)
    others = [grid_run("basis_dp", "tanh", None, 0, 350.0),             # base, not a candidate
              grid_run("long_dp", "chebyshev", 32, 0, 100.0),           # not a grid study
              grid_run("knots_dp", "chebyshev", 16, 0, 150.0, steps=4000)]  # other budget
    like = {"model": "dp_cpu", "data": "water", "budget": "cpu", "steps": 1000}
    picked = grid_runs([k8_reused, k8, k32, *others], GRID_STUDIES, like)
    assert sorted((r.experiment, r.num_basis) for r in picked) == [
        ("basis_dp", 8), ("knots_dp", 32)]
    assert cost_cells("grid", [*picked, k8_reused]) == ["grid", "2 (+1 reused)", "2000", "2.0 min"]
    chosen = parameter_values({"activation": "chebyshev", "activation.num_basis": 32,
                               "activation.domain": "[-4.0,4.0]"})
    assert chosen["activation.domain"] == [-4.0, 4.0]
    assert [trains(r, chosen) for r in (k8, k32)] == [False, True]
