"""Rebuild every RMSE table from the run store (results/runs), without training.

    python scripts/make_tables.py [--runs results/runs] [--out results/tables]
"""

from taafs_exp.analysis.cli import run_store_main
from taafs_exp.analysis.tables import build_tables

if __name__ == "__main__":
    run_store_main(__doc__.splitlines()[0], build_tables, "tables")
