"""First and second derivatives of every TAAFS family, w.r.t. input and coefficients."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

from act_helpers import TRAINABLE, make
from taafs_exp.activations import kernels

#: Every kernel path a linear basis can take; rational has one (plain autograd, no option).
PATHS = ("compiled", "eager")
#: residual adds base(x) outside the kernels (TAAFS.forward), so it is checked on one path
CASES = [
    (n, s, r, k) for n in TRAINABLE for s in ("layer", "channel") for r in (False, True)
    for k in ((None,) if n == "rational" else ("eager",) if r else PATHS)
]


def _inputs(act, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x spread over [-5, 5] (beyond the domain) and perturbed coefficients, both float64."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(4, 3, generator=gen, dtype=torch.float64) * 10 - 5).requires_grad_()
    c = act.coefficients.detach() + 0.3 * torch.randn(act.coefficients.shape, generator=gen, dtype=torch.float64)
    return x, c.requires_grad_()


def _as_function(act):
    return lambda x, c: functional_call(act, {"coefficients": c}, (x,))


@pytest.mark.parametrize("name,share,residual,kernel", CASES)
def test_gradcheck_and_gradgradcheck(name: str, share: str, residual: bool, kernel: str | None) -> None:
    act = make(name, share, residual=residual, **({"kernel": kernel} if kernel else {}))
    x, c = _inputs(act)
    f = _as_function(act)
    assert gradcheck(f, (x, c))
    assert gradgradcheck(f, (x, c))


@pytest.mark.parametrize("kernel", PATHS)
@pytest.mark.parametrize("name", ["bspline", "chebyshev"])
def test_gradgradcheck_affine_map_outside_domain(name: str, kernel: str) -> None:
    """Affine map: x in [-5, 5] leaves [-4, 4], so B-spline extrapolation is exercised."""
    act = make(name, "layer", input_map="affine", kernel=kernel)
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


LINEAR = [n for n in TRAINABLE if n != "rational"]


@pytest.mark.parametrize("kernel", ["compiled", "eager"])
@pytest.mark.parametrize("name", LINEAR)
@pytest.mark.parametrize("share", ["layer", "channel"])
def test_kernels_equal_naive_autograd(name: str, share: str, kernel: str) -> None:
    """The one-pass kernels give what autograd through ``basis`` gives, to 2nd order (float64)."""
    act = make(name, share)
    with torch.no_grad():
        act.coefficients.add_(0.2 * torch.randn_like(act.coefficients))
    x = torch.randn(50, 3, dtype=torch.float64) * 2
    act.kernel = kernel
    fast = _force_pattern(act, x)
    act.kernel = "naive"
    naive = _force_pattern(act, x)
    for a, b in zip(fast, naive):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", LINEAR)
def test_compiled_equals_eager_in_float32(name: str) -> None:
    """Compiled kernels equal the eager ones in float32 to 1e-5 relative (float64: both equal
    the naive path to 1e-9, :func:`test_kernels_equal_naive_autograd`). One curve per layer:
    the float32 graphs test_api's float32 test compiles."""
    act = make(name, "layer").float()
    with torch.no_grad():
        act.coefficients.add_(0.2 * torch.randn_like(act.coefficients))
    x = torch.randn(300, 3) * 2
    act.kernel = "compiled"
    compiled = _force_pattern(act, x)
    act.kernel = "eager"
    eager = _force_pattern(act, x)
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * b.abs().max().item())


def test_third_derivative_is_refused_cleanly() -> None:
    act = make("chebyshev")
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    d = x
    for _ in range(3):
        (d,) = torch.autograd.grad(act(x).sum() if d is x else d.sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="order 4"):
        torch.autograd.grad(d.sum(), x)


@pytest.mark.parametrize("kernel", ["compiled", "eager"])
@pytest.mark.parametrize("name", LINEAR)
def test_autograd_functions_directly(name: str, kernel: str) -> None:
    """a'(x) (``_Series`` at order 1: its backward gives a'' and ∂a'/∂c) and the coefficient
    projections ``_Project`` at orders 0 and 1 pass gradgradcheck alone (order 0 of ``_Series``
    runs in the module tests)."""
    act = make(name, "channel", kernel=kernel)
    x, c = _inputs(act, seed=2)
    w = torch.randn(x.shape, dtype=torch.float64, requires_grad=True)
    spec = act.spec
    assert gradgradcheck(lambda x, c: kernels.series_derivative(x, c, spec, 1), (x, c))
    for m in (0, 1):
        assert gradgradcheck(lambda x, w: kernels.project(x, w, 3, spec, m), (x, w))
