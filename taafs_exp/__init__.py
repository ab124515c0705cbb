"""TAAFS experiment suite: trainable adaptive activations for neural force fields."""

from taafs_exp.training.run_store import register_resolvers

__version__ = "0.1.0"

register_resolvers()  # before Hydra resolves the configs (run.py, scripts, tests)
