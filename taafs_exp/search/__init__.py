"""Automatic basis selection: an Optuna search over the activation registry
(``conf/hparams_search/``), its pruning callback and its report."""
