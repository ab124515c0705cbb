"""Draw every figure from the results registry, without training.

    python scripts/make_figures.py [--runs results/runs] [--out results/figures]
"""

import argparse
from pathlib import Path

from taafs_exp.analysis.collect import collect_runs
from taafs_exp.analysis.figures import build_figures

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "results" / "runs")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "figures")
    args = parser.parse_args()
    runs = collect_runs(args.runs)
    if not runs:
        raise SystemExit(f"{args.runs}: no finished run (no metrics.json); run a study first")
    for path in build_figures(runs, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
