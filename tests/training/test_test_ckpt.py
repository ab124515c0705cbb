"""test_ckpt is checked before training: best needs a checkpoint callback to keep the weights."""

import lightning.pytorch as pl
import pytest
from omegaconf import OmegaConf

from taafs_exp.training.train import check_test_ckpt


def test_best_needs_a_checkpoint_callback():
    best = OmegaConf.create({"test_ckpt": "best"})
    with pytest.raises(ValueError, match="test_ckpt=best needs a checkpoint callback"):
        check_test_ckpt(best, [])
    check_test_ckpt(best, [pl.callbacks.ModelCheckpoint(monitor="val/rmse_f_meV_per_A")])
    check_test_ckpt(OmegaConf.create({"test_ckpt": "last"}), [])


def test_unknown_choice_is_refused():
    with pytest.raises(ValueError, match="test_ckpt='final' is not valid; choose 'last' or 'best'"):
        check_test_ckpt(OmegaConf.create({"test_ckpt": "final"}), [])
