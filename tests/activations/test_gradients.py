"""First and second derivatives of every TAAFS family, w.r.t. input and coefficients."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

from act_helpers import TRAINABLE, make

CASES = [(n, s, r) for n in TRAINABLE for s in ("layer", "channel") for r in (False, True)]


def _inputs(act, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x spread over [-5, 5] (beyond the domain) and perturbed coefficients, both float64."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(4, 3, generator=gen, dtype=torch.float64) * 10 - 5).requires_grad_()
    c = act.coefficients.detach() + 0.3 * torch.randn(act.coefficients.shape, generator=gen, dtype=torch.float64)
    return x, c.requires_grad_()


def _as_function(act):
    return lambda x, c: functional_call(act, {"coefficients": c}, (x,))


@pytest.mark.parametrize("name,share,residual", CASES)
def test_gradcheck_and_gradgradcheck(name: str, share: str, residual: bool) -> None:
    act = make(name, share, residual=residual)
    x, c = _inputs(act)
    f = _as_function(act)
    assert gradcheck(f, (x, c))
    assert gradgradcheck(f, (x, c))


@pytest.mark.parametrize("name", ["bspline", "chebyshev"])
def test_gradgradcheck_affine_map_outside_domain(name: str) -> None:
    """Affine map: x in [-5, 5] leaves [-4, 4], so B-spline extrapolation is exercised."""
    act = make(name, "layer", input_map="affine")
    x, c = _inputs(act, seed=1)
    assert (x.abs() > 4).any()
    assert gradgradcheck(_as_function(act), (x, c))


def _force_pattern(act, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_()
    y = act(x)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    loss = (g**2).sum()
    gx, gc = torch.autograd.grad(loss, (x, act.coefficients))
    return y, g, gx, gc


@pytest.mark.parametrize("name", [n for n in TRAINABLE if n != "rational"])
@pytest.mark.parametrize("share", ["layer", "channel"])
def test_fused_path_equals_naive_autograd(name: str, share: str) -> None:
    """The custom Functions give what autograd through ``basis`` gives, to 2nd order."""
    act = make(name, share)
    with torch.no_grad():
        act.coefficients.add_(0.2 * torch.randn_like(act.coefficients))
    x = torch.randn(50, 3, dtype=torch.float64) * 2
    fused = _force_pattern(act, x)
    act.fused = False
    naive = _force_pattern(act, x)
    for a, b in zip(fused, naive):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_third_derivative_is_refused_cleanly() -> None:
    act = make("chebyshev")
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    d = x
    for _ in range(3):
        (d,) = torch.autograd.grad(act(x).sum() if d is x else d.sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="order 4"):
        torch.autograd.grad(d.sum(), x)


@pytest.mark.parametrize("name", [n for n in TRAINABLE if n != "rational"])
def test_custom_functions_directly(name: str) -> None:
    """The a'(x) Function (``_Series`` at order 1, its own backward giving a'' and ∂a'/∂c) and
    ``_Project`` pass gradgradcheck alone (order 0 runs with its companion in the module tests)."""
    from taafs_exp.activations.core import _Project, _Series

    act = make(name, "channel")
    x, c = _inputs(act, seed=2)
    w = torch.randn(x.shape, dtype=torch.float64, requires_grad=True)
    assert gradgradcheck(lambda x, c: _Series.apply(x, act.map(x).detach(), c, act, 1), (x, c))
    for m in (0, 1):
        assert gradgradcheck(lambda x, w: _Project.apply(x, act.map(x).detach(), w, act, m), (x, w))
