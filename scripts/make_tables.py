"""Rebuild every RMSE table from the results registry, without training.

    python scripts/make_tables.py [--runs results/runs] [--out results/tables]
"""

from taafs_exp.analysis.cli import registry_main
from taafs_exp.analysis.tables import build_tables

if __name__ == "__main__":
    registry_main(__doc__.splitlines()[0], build_tables, "tables")
