"""Hydra plugin package of the select sweeper (``hydra/sweeper=select_optuna``)."""
