"""DeePMD-kit's exponential decay and prefactor rule."""

import math

import pytest

from taafs_exp.training.schedule import ExponentialDecay, prefactor


def test_decay_reaches_stop_lr_at_num_steps():
    s = ExponentialDecay(start_lr=1e-3, stop_lr=3.51e-8, decay_steps=5000, num_steps=1_000_000)
    assert s.lr(0) == pytest.approx(1e-3)
    assert s.lr(1_000_000) == pytest.approx(3.51e-8, rel=1e-9)
    # staircase: constant inside a decay window, one factor of r between windows
    assert s.lr(4999) == s.lr(0)
    assert s.lr(5000) / s.lr(4999) == pytest.approx(s.decay_rate)


def test_short_run_uses_deepmd_default_decay_steps_and_never_undershoots():
    s = ExponentialDecay(start_lr=1e-3, stop_lr=1e-5, decay_steps=5000, num_steps=400)
    assert s.effective_decay_steps == 400 // 100 + 1
    assert min(s.lr(t) for t in range(0, 2000, 7)) >= 1e-5 * (1 - 1e-12)


def test_prefactor_follows_lr():
    assert prefactor(1000.0, 1.0, lr=1e-3, start_lr=1e-3) == 1000.0
    assert prefactor(1000.0, 1.0, lr=0.0, start_lr=1e-3) == 1.0
    assert prefactor(0.02, 1.0, lr=5e-4, start_lr=1e-3) == pytest.approx(0.51)


@pytest.mark.parametrize(
    "kwargs", [dict(start_lr=1e-3, stop_lr=1e-2), dict(start_lr=1e-3, stop_lr=0.0)]
)
def test_bad_learning_rates_raise(kwargs):
    with pytest.raises(ValueError, match="stop_lr"):
        ExponentialDecay(decay_steps=10, num_steps=100, **kwargs)


def test_factor_is_ratio():
    s = ExponentialDecay(start_lr=2e-3, stop_lr=1e-6, decay_steps=10, num_steps=1000)
    assert math.isclose(s.factor(123) * s.start_lr, s.lr(123))


def test_activation_lr_scale_puts_the_coefficients_in_their_own_group():
    """training.activation_lr_scale = 0.1: the TAAFS coefficients (and only they) train at a
    tenth of the lr, and the schedule decays both groups by the same factor."""
    from taafs_exp.activations import taafs_parameters
    from taafs_exp.training.module import PotentialModule
    from test_loss import MODEL, training

    activation = {"_target_": "taafs_exp.activations.build_activation", "_partial_": True,
                  "name": "chebyshev", "num_basis": 4}
    model = {**MODEL, "embedding_activation": activation, "fitting_activation": activation}
    lr = {"start_lr": 1e-3, "stop_lr": 1e-5, "decay_steps": 10}
    settings = {**training(), "lr": lr, "num_steps": 100}
    module = PotentialModule(model, {**settings, "activation_lr_scale": 0.1})
    config = module.configure_optimizers()
    rest, coefficients = config["optimizer"].param_groups
    assert [id(p) for p in coefficients["params"]] == [id(p) for p in taafs_parameters(module.model)]
    assert len(coefficients["params"]) > 0
    assert len(rest["params"]) + len(coefficients["params"]) == len(list(module.parameters()))
    assert (rest["lr"], coefficients["lr"]) == pytest.approx((1e-3, 1e-4))
    for _ in range(50):
        config["optimizer"].step()
        config["lr_scheduler"]["scheduler"].step()
    assert coefficients["lr"] / rest["lr"] == pytest.approx(0.1)
    assert rest["lr"] == pytest.approx(module.schedule.lr(50))
    single = PotentialModule(model, settings).configure_optimizers()
    assert len(single["optimizer"].param_groups) == 1
