"""Draw every figure from the run store (results/runs), without training.

    python scripts/make_figures.py [--runs results/runs] [--out results/figures]
"""

from taafs_exp.analysis.cli import run_store_main
from taafs_exp.analysis.figures import build_figures

if __name__ == "__main__":
    run_store_main(__doc__.splitlines()[0], build_figures, "figures")
