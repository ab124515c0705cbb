"""The report of a basis search (``conf/hparams_search/select_basis.yaml``): its trials, the
configuration it chose, that configuration retrained on the data's own split and tested
(``experiment=select_basis_<backbone>``), beside the best row of the grid studies at the same
budget, and what the search and the grid cost.

Reads the study's SQLite storage, the trial folders and the run store; trains nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.trial import FrozenTrial, TrialState

from taafs_exp.analysis.collect import Run
from taafs_exp.analysis.tables import (
    DISCLAIMER,
    KEY_E,
    KEY_F,
    Row,
    fmt_pm,
    group_rows,
    markdown,
    provenance,
)
from taafs_exp.data.datamodule import split_members
from taafs_exp.search.study import (
    ATTR_DATA_SPLIT,
    ATTR_OVERRIDES,
    ATTR_PRUNERS,
    ATTR_REPEAT_OF,
    ATTR_SPLIT,
    TRIAL_DIR,
    open_study,
    storage_url,
)
from taafs_exp.training.rebuild import read_json
from taafs_exp.training.run_store import METRICS_FILE

#: The grid studies whose rows the search replaces (basis x K x sharing of DP on water).
GRID_STUDIES = ("basis_dp", "knots_dp", "sharing_dp")


def retrain_study(model: str) -> str:
    """The study that retrains a search's choice for ``model`` on the data's own split:
    ``select_basis_<backbone>`` (conf/experiment/; dp for dp and dp_cpu)."""
    return f"select_basis_{model.split('_')[0]}"


@dataclass(frozen=True)
class Trial:
    """One trial of the search: its stored state and, when it finished, its run's metrics."""

    frozen: FrozenTrial
    metrics: dict[str, Any] | None

    @property
    def value(self) -> float | None:
        """The objective: the last validation force RMSE (meV/Å), reported or returned."""
        if self.frozen.state == TrialState.COMPLETE:
            return self.frozen.value
        values = self.frozen.intermediate_values
        return values[max(values)] if values else None

    @property
    def repeat_of(self) -> int | None:
        """The trial whose parameters and value this one repeats (it was not trained)."""
        return self.frozen.user_attrs.get(ATTR_REPEAT_OF)

    @property
    def steps(self) -> int:
        """Training steps run: the run's count when it finished, else the last reported step."""
        if self.metrics is not None:
            return int(self.metrics["steps"])
        return max(self.frozen.intermediate_values, default=0)

    @property
    def seconds(self) -> float | None:
        """From ask to tell (a killed and resumed trial includes the time it lay dead)."""
        start, end = self.frozen.datetime_start, self.frozen.datetime_complete
        return None if start is None or end is None else (end - start).total_seconds()


def read_trials(folder: Path) -> tuple[optuna.Study, list[Trial]]:
    """The study in ``folder`` (``hydra.sweep.dir`` of a search) and its trials."""
    study = open_study(storage_url(folder))
    trials = []
    for frozen in study.get_trials(deepcopy=False):
        metrics_file = folder / TRIAL_DIR.format(number=frozen.number) / METRICS_FILE
        finished = frozen.state == TrialState.COMPLETE and metrics_file.exists()
        trials.append(Trial(frozen, read_json(metrics_file) if finished else None))
    return study, trials


def chosen_trial(trials: Sequence[Trial]) -> Trial | None:
    """The trained complete trial with the lowest objective (None before any completed)."""
    complete = [t for t in trials if t.frozen.state == TrialState.COMPLETE and t.repeat_of is None]
    return min(complete, key=lambda t: t.frozen.value) if complete else None


def retrain_overrides(study: optuna.Study, trial: Trial) -> list[str]:
    """``run.py -m`` overrides that retrain ``trial``'s configuration on the data's own split:
    the search command's fixed overrides, the trial's parameters and the test study."""
    params = [f"{name}={value}" for name, value in trial.frozen.params.items()]
    return [f"experiment={retrain_study(trial.metrics['model'])}",
            *study.user_attrs[ATTR_OVERRIDES], *params]


def parameter_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """Trial parameters as the values they override (``"[-4.0,4.0]"`` -> [-4.0, 4.0])."""
    parser = OverridesParser.create()
    return {name: parser.parse_override(f"{name}={value}").value()
            for name, value in params.items()}


def trains(run: Run, values: Mapping[str, Any]) -> bool:
    """``run`` trained the activation these parameters choose (``activation`` = its name,
    ``activation.<option>`` its options)."""
    act = run.metrics["activation"]
    for name, value in values.items():
        key = name.split(".", 1)
        if key[0] != "activation":
            continue
        have = act.get("name") if len(key) == 1 else act.get(key[1])
        if have != value:
            return False
    return True


def grid_runs(runs: Sequence[Run], studies: Sequence[str], like: Mapping[str, Any]) -> list[Run]:
    """TAAFS runs of the grid studies with the model, data, budget and steps of ``like`` (a
    metrics.json); a run reused from another grid run appears once."""
    picked = [
        r for r in runs
        if r.experiment in studies and not r.is_fixed and r.placement == "all"
        and (r.model, r.data, r.budget, r.metrics["steps"])
        == (like["model"], like["data"], like["budget"], like["steps"])
    ]
    unique: dict[tuple[str, int], Run] = {}
    for run in sorted(picked, key=lambda r: bool(r.metrics.get("reused_from"))):
        unique.setdefault((run.config_label, run.seed), run)
    return list(unique.values())


def _pm(row: Row | None, key: str, digits: int) -> str:
    return "n/a" if row is None else fmt_pm(row.mean(key), row.std(key), digits)


def _comparison(label: str, row: Row | None, missing: str) -> list[str]:
    """A row of the test comparison: configuration, seeds, RMSEs and TAAFS parameters."""
    if row is None:
        return [label, missing, "0", "n/a", "n/a", "n/a"]
    return [label, row.label, str(len(row.runs)), _pm(row, KEY_F, 1), _pm(row, KEY_E, 3),
            str(row.first.metrics["n_extra_params"])]


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def pruner_text(pruner: Mapping[str, Any]) -> str:
    """``MedianPruner(n_startup_trials=4, ...)`` from a pruner's config."""
    options = ", ".join(f"{k}={v}" for k, v in pruner.items() if k != "_target_")
    return f"{str(pruner['_target_']).rsplit('.', 1)[-1]}({options})"


def cost_cells(label: str, runs: Sequence[Run]) -> list[str]:
    """Runs, steps and wall time of the runs that trained (reused runs cost nothing)."""
    trained = [r for r in runs if not r.metrics.get("reused_from")]
    reused = len(runs) - len(trained)
    return [label, f"{len(trained)}" + (f" (+{reused} reused)" if reused else ""),
            str(sum(int(r.metrics["steps"]) for r in trained)),
            _duration(sum(float(r.metrics["wall_s"]) for r in trained))]


def select_report(folder: Path, runs: Sequence[Run], grid: Sequence[str] = GRID_STUDIES) -> str:
    """The markdown report of the search in ``folder`` (see the module docstring)."""
    study, trials = read_trials(folder)
    best = chosen_trial(trials)
    if best is None:
        raise ValueError(f"{folder}: no trial of {study.study_name!r} completed yet; expected "
                         "at least one (rerun the search to resume it)")
    like = best.metrics
    split, data_split = study.user_attrs[ATTR_SPLIT], study.user_attrs[ATTR_DATA_SPLIT]
    states = [t.frozen.state for t in trials]
    counts = ", ".join(f"{states.count(s)} {s.name.lower()}" for s in TrialState if s in states)
    repeats = sum(t.repeat_of is not None for t in trials)
    if repeats:
        counts += f"; {repeats} of the complete ones repeated an earlier trial, not trained"
    names = list(dict.fromkeys(n for t in trials for n in t.frozen.params))
    values = parameter_values(best.frozen.params)
    interval = like["val_curve"][0]["step"] if like["val_curve"] else None

    holdout = split != data_split
    header = [
        f"# select_basis: automatic basis selection for {like['model']} on {like['data']}",
        "",
        DISCLAIMER,
        "",
        f"- Search: Optuna (TPE) over {', '.join(f'`{n}`' for n in names)}; {len(trials)} "
        f"trials ({counts}); pruned from the validation curve by "
        f"{' then '.join(pruner_text(p) for p in study.user_attrs[ATTR_PRUNERS])} (Optuna: a "
        "median pruner stops a trial whose validation force RMSE is above the median of the "
        "complete trials at the same step).",
        f"- Objective: validation force RMSE (meV/Å) at a trial's last validation, trained on "
        f"{split_members(split, 'train')} and validated on {split_members(split, 'val')}. The "
        f"test split ({split_members(split, 'test')}) is not evaluated by any trial.",
        *([f"- data={like['data']} validates on {split_members(data_split, 'val')}, its test "
           f"split ({split_members(data_split, 'test')}): the search validates on "
           f"{split_members(split, 'val')}, held out from its training systems instead."]
          if holdout else []),
        f"- Per trial: budget `{like['budget']}`, {like['steps']} steps, validation every "
        f"{interval} steps; one seed ({like['seed']}).",
        "",
        "## Trials",
        "",
    ]
    cells = [
        [str(t.frozen.number),
         t.frozen.state.name.lower() + ("" if t.repeat_of is None else f" (= {t.repeat_of})"),
         *(str(t.frozen.params.get(n, "—")) for n in names),
         "n/a" if t.value is None else f"{t.value:.1f}", str(t.steps),
         "n/a" if t.seconds is None else f"{t.seconds:.0f}"]
        for t in trials
    ]
    columns = ["trial", "state", *names, "val F RMSE (meV/Å)", "steps", "time (s)"]
    text = markdown(header, columns, cells)

    retrained = [r for r in runs
                 if r.experiment == retrain_study(like["model"]) and trains(r, values)
                 and (r.model, r.data, r.budget, r.metrics["steps"])
                 == (like["model"], like["data"], like["budget"], like["steps"])]
    mine = group_rows(retrained)[0] if retrained else None
    grid_all = grid_runs(runs, grid, like)
    grid_rows = group_rows(grid_all)
    grid_best = min(grid_rows, key=lambda r: r.mean(KEY_F)) if grid_rows else None
    grid_same = next((r for r in grid_rows if all(trains(x, values) for x in r.runs)), None)
    overrides = " ".join(f"{n}={v}" for n, v in best.frozen.params.items())
    test_split = next((r.first.metrics["test"]["split"] for r in (mine, grid_best) if r),
                      split_members(data_split, "test"))
    lines = [
        "",
        "## Chosen configuration",
        "",
        f"Trial {best.frozen.number}: `{overrides}`, validation force RMSE "
        f"{best.frozen.value:.1f} meV/Å.",
        "",
        "## Test RMSE beside the grid",
        "",
        f"Trained on the data's own split ({split_members(data_split, 'train')}) with the same "
        f"budget, tested on {test_split}; mean ± sample std over seeds. The grid's best row is "
        "the best of the grid studies "
        f"({', '.join(grid)}) by mean test force RMSE: picked on the split it is scored on, "
        "which favours it; the search's choice was picked on validation alone.",
        "",
    ]
    cmp_cells = [
        _comparison("search's choice, retrained" + ("" if mine else " (not yet: `make select`)"),
                    mine, overrides),
        _comparison("grid's best row", grid_best, "no grid run at this budget"),
    ]
    if grid_same is not None and grid_same is not grid_best:
        cmp_cells.append(_comparison("grid's row of the chosen configuration", grid_same, ""))
    text += markdown(lines, ["", "configuration", "seeds", "test F RMSE (meV/Å)",
                             "test E RMSE (meV/atom)", "extra params"], cmp_cells)

    search_s = sum(t.seconds or 0.0 for t in trials)
    search_steps = sum(t.steps for t in trials)
    grid_cost = cost_cells(f"grid ({', '.join(grid)}), TAAFS runs", grid_all)
    cost_lines = [
        "",
        "## Cost",
        "",
        "Training steps count the work independently of the code and the machine; wall times "
        "are as recorded, each under its own code version and machine load. The search's time "
        "runs from a trial's start to its end as Optuna stored them.",
        f"- Grid: {provenance(grid_all)[2:]}" if grid_all else "- Grid: no runs.",
        *([f"- At the search's {search_s / search_steps:.3f} s per step (everything included), "
           "the grid's steps would take about "
           f"{_duration(search_s / search_steps * int(grid_cost[2]))}."]
          if search_steps and grid_all else []),
        "",
    ]
    cost_rows = [
        [f"search ({len(trials)} trials)", str(len(trials)), str(search_steps),
         _duration(search_s)],
        cost_cells("search's choice, retrained", retrained),
        grid_cost,
    ]
    text += markdown(cost_lines, ["", "runs", "training steps", "wall time"], cost_rows)
    return text


def write_select_report(folder: Path, runs: Sequence[Run], out_dir: Path,
                        grid: Sequence[str] = GRID_STUDIES) -> Path:
    """``<out_dir>/select_basis__<model>__<data>.md`` from the search in ``folder``."""
    text = select_report(folder, runs, grid)
    model, data = folder.parent.name, folder.name
    path = out_dir / f"{folder.parent.parent.name}__{model}__{data}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
