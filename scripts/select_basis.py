"""Retrain the configuration a basis search chose, then write the search's report.

    python scripts/select_basis.py results/search/select_basis/dp_cpu/water [--seeds 0,1,2]

Runs ``run.py -m experiment=select_basis_<backbone> <the search's fixed overrides> <the best
trial's parameters> seed=<seeds>`` (finished runs are skipped: a rerun resumes; ``--seeds ''``
retrains nothing), then writes results/tables/select_basis__<model>__<data>.md from the study,
its trial folders and results/runs (taafs_exp/analysis/select.py).
"""

import argparse
import subprocess
import sys
from pathlib import Path

from taafs_exp.analysis.collect import collect_runs
from taafs_exp.analysis.select import (
    GRID_STUDIES,
    chosen_trial,
    read_trials,
    retrain_overrides,
    write_select_report,
)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("search", type=Path, help="the search folder (holds optuna.db)")
    parser.add_argument("--seeds", default="0,1,2", help="seeds to retrain ('' for none)")
    parser.add_argument("--grid", default=",".join(GRID_STUDIES), help="grid studies to compare")
    parser.add_argument("--runs", type=Path, default=ROOT / "results" / "runs")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "tables")
    args = parser.parse_args()
    study, trials = read_trials(args.search)
    best = chosen_trial(trials)
    if best is None:
        raise SystemExit(f"{args.search}: no trial completed yet; run or resume the search first")
    if args.seeds:
        command = [sys.executable, str(ROOT / "run.py"), "-m",
                   *retrain_overrides(study, best), f"seed={args.seeds}"]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
    path = write_select_report(args.search, collect_runs(args.runs), args.out,
                               tuple(args.grid.split(",")))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
