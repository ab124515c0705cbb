"""Initialisation reproduces the base activation within the error each docstring states."""

from __future__ import annotations

import pytest
import torch

from act_helpers import TRAINABLE, make
from taafs_exp.activations import BASE_FUNCTIONS

#: Stated max |a(x) - base(x)| on x ∈ [-4, 4] at default options (see the class docstrings).
STATED = {
    "tanh": {"bspline": 1e-6, "chebyshev": 1e-6, "legendre": 1e-6, "fourier": 3e-4,
             "gaussian": 4e-3, "rational": 5e-5},
    "silu": {"bspline": 7e-3, "chebyshev": 2.5e-3, "legendre": 2.5e-3, "fourier": 9e-3,
             "gaussian": 2.2e-2, "rational": 5e-5},
    # ANI's CELU(α = 0.1): its kink at 0 is ~0.1 wide, finer than any smooth K = 8 curve
    "celu": {"bspline": 0.14, "chebyshev": 0.105, "legendre": 0.105, "fourier": 0.076,
             "gaussian": 0.082, "rational": 0.03},
}
GRID = torch.linspace(-4, 4, 8001, dtype=torch.float64)


def test_every_family_has_a_stated_error() -> None:
    assert all(set(v) == set(TRAINABLE) for v in STATED.values())


@pytest.mark.parametrize("base", list(STATED))
@pytest.mark.parametrize("name", TRAINABLE)
def test_init_reproduces_base(name: str, base: str) -> None:
    act = make(name, base=base)
    with torch.no_grad():
        err = (act(GRID) - BASE_FUNCTIONS[base](GRID)).abs().max().item()
    assert err <= STATED[base][name]
    assert act.init_error <= STATED[base][name]
    if base == "tanh" and name in ("bspline", "chebyshev", "legendre"):
        assert err <= 1e-3  # the bar


@pytest.mark.parametrize("name", TRAINABLE)
@pytest.mark.parametrize("share", ["layer", "channel"])
def test_residual_init_is_exact_and_trains(name: str, share: str) -> None:
    act = make(name, share, base="silu", residual=True)
    x = torch.randn(64, 3, dtype=torch.float64) * 3
    assert torch.count_nonzero(act.coefficients) == 0
    torch.testing.assert_close(act(x), BASE_FUNCTIONS["silu"](x), rtol=0, atol=1e-12)
    act(x).pow(2).sum().backward()
    assert act.coefficients.grad.abs().sum() > 0


@pytest.mark.parametrize("map_", ["affine", "none"])
def test_other_input_maps_report_their_fit(map_: str) -> None:
    """Affine/none maps fit tanh on the domain as well as a degree-7 polynomial can (6e-2 on
    [-4, 4]: why tanh squashing is the default); ``init_error`` is what the module computes."""
    domain = (-1.0, 1.0) if map_ == "none" else (-4.0, 4.0)
    act = make("chebyshev", input_map=map_, domain=domain)
    x = torch.linspace(*domain, 2001, dtype=torch.float64)
    with torch.no_grad():
        err = (act(x) - torch.tanh(x)).abs().max().item()
    assert abs(err - act.init_error) < 1e-6
    assert err < (1e-4 if map_ == "none" else 0.07)
