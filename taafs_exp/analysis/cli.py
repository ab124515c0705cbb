"""The command line shared by ``scripts/make_tables.py`` and ``scripts/make_figures.py``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from taafs_exp.analysis.collect import Run, collect_runs

ROOT = Path(__file__).resolve().parents[2]


def run_store_main(
    description: str, build: Callable[[Sequence[Run], Path], list[Path]], out_name: str
) -> None:
    """Parse ``--runs`` (default results/runs) and ``--out`` (results/<out_name>), build, list."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=Path, default=ROOT / "results" / "runs")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / out_name)
    args = parser.parse_args()
    runs = collect_runs(args.runs)
    if not runs:
        raise SystemExit(f"{args.runs}: no finished run (no metrics.json); run a study first")
    for path in build(runs, args.out):
        print(f"wrote {path}")
