"""Shared machinery of the TAAFS activations.

A TAAFS activation is ``a(x) = Σ_k c_k φ_k(t) (+ base(x) when residual)``, ``t = g(x)``, where
``g`` maps the pre-activation ``x`` (same units as the layer output, dimensionless) onto the
bases' reference interval ``[-1, 1]``. Coefficients ``c`` are the only trainable parameters:
``(K,)`` with ``share="layer"`` or ``(C, K)`` with ``share="channel"`` (``C`` = last input dim).

Derivatives. Forces need ``∂a/∂x`` inside the graph and training differentiates it again, so the
fused path wraps the m-th x-derivative ``ψ^(m)(x)·c`` of the series in :class:`_Series` and its
coefficient gradient ``Σ_n w_n ψ^(m)(x_n)`` in :class:`_Project`. Each Function's backward is
expressed with the other two at order ``m`` or ``m + 1``, so they are differentiable to any order
the basis supports (``m ≤ 3`` here: the chain rule below stops there), and no N×K tensor is
built when the basis overrides :meth:`BasisActivation.series` / :meth:`BasisActivation.project`.
The naive path (``fused=False``) lets autograd differentiate :meth:`BasisActivation.basis`; it is
the reference the tests compare the fused path with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Activations a TAAFS curve can start as (``base``), by name.
BASE_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "silu": F.silu,
    "gelu": F.gelu,
    "softplus": F.softplus,
    "relu": F.relu,
    "celu": functools.partial(F.celu, alpha=0.1),  # ANI's CELU
}
SHARES = ("layer", "channel")
INPUT_MAPS = ("tanh", "affine", "none")
#: Points of the least-squares grid on the domain used to fit the base at construction.
FIT_POINTS = 2001


def check_choice(option: str, value: object, valid: Sequence[object]) -> None:
    """Raise ValueError naming ``option=value`` and the valid values when ``value`` is not one."""
    if value not in valid:
        raise ValueError(f"{option}={value!r} is not valid; choose one of {list(valid)}")


def chain_terms(order: int, dg: Sequence[Tensor | float]) -> list[tuple[int, Tensor | float]]:
    """Faà di Bruno: ``d^m/dx^m f(g(x)) = Σ_j factor_j · f^(j)(g(x))`` as ``[(j, factor_j)]``.

    ``dg = [g', g'', g''']`` evaluated at x; terms whose factor is the float 0 are dropped.
    """
    if order == 0:
        return [(0, 1.0)]
    if order > 3:
        raise NotImplementedError(f"derivative order {order} > 3 of a TAAFS activation")
    g1, g2, g3 = dg
    terms = {1: [(1, g1)], 2: [(2, g1 * g1), (1, g2)], 3: [(3, g1**3), (2, 3 * g1 * g2), (1, g3)]}
    return [(j, f) for j, f in terms[order] if not (isinstance(f, float) and f == 0.0)]


class TAAFS(nn.Module):
    """Base of every trainable activation: options, input map ``g``, base function, residual.

    Args:
        num_basis: number K of basis functions (coefficients per curve).
        share: ``"layer"`` (one curve per instance) or ``"channel"`` (one per feature of the
            last input dimension; needs ``num_channels``).
        num_channels: width C of the last input dimension; used by ``share="channel"``.
        base: activation the curve starts as (a key of :data:`BASE_FUNCTIONS`).
        domain: ``(lo, hi)``, the working range of x: the base is fitted there and the
            reference interval ``[-1, 1]`` of the bases is its image under ``affine``.
        input_map: ``g``. ``"tanh"``: ``t = tanh((x - mid) / scale)`` (bounded, every x lands
            in (-1, 1)); ``"affine"``: ``t = (x - mid) / half_width``; ``"none"``: ``t = x``.
        scale: tanh-map scale; default 1 for ``base="tanh"`` (then ``tanh(x)`` is the basis
            coordinate itself and polynomial/spline bases fit it exactly) else ``half_width``.
        residual: ``a(x) = base(x) + Σ c φ(g(x))`` with c = 0 at init (exact start).
    """

    def __init__(
        self,
        num_basis: int,
        share: str = "layer",
        num_channels: int | None = None,
        base: str = "tanh",
        domain: Sequence[float] = (-4.0, 4.0),
        input_map: str = "tanh",
        scale: float | None = None,
        residual: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if int(num_basis) != num_basis or num_basis < 1:
            raise ValueError(f"{name}: num_basis={num_basis!r} must be an integer >= 1")
        check_choice("share", share, SHARES)
        check_choice("base", base, list(BASE_FUNCTIONS))
        check_choice("input_map", input_map, INPUT_MAPS)
        if share == "channel" and (num_channels is None or num_channels < 1):
            raise ValueError(
                f"{name}: share='channel' needs num_channels >= 1 (got {num_channels!r}); "
                "pass num_channels=<layer width> or use share='layer'"
            )
        lo, hi = (float(v) for v in domain)
        if not lo < hi:
            raise ValueError(f"{name}: domain=({lo}, {hi}) needs lo < hi")
        if scale is not None and not scale > 0:
            raise ValueError(f"{name}: scale={scale!r} must be > 0")
        self.num_basis, self.share, self.base, self.input_map = int(num_basis), share, base, input_map
        self.num_channels = int(num_channels) if share == "channel" else None
        self.domain, self.residual = (lo, hi), bool(residual)
        self.mid, self.half = (lo + hi) / 2, (hi - lo) / 2
        default_scale = 1.0 if base == "tanh" else self.half
        self.scale = float(scale) if scale is not None else default_scale

    @property
    def coefficient_shape(self) -> tuple[int, ...]:
        """``(K,)`` for layer sharing, ``(C, K)`` for channel sharing."""
        k = self.num_basis
        return (k,) if self.num_channels is None else (self.num_channels, k)

    def map(self, x: Tensor) -> Tensor:
        """``t = g(x)`` with differentiable torch ops."""
        if self.input_map == "tanh":
            return torch.tanh((x - self.mid) / self.scale)
        if self.input_map == "affine":
            return (x - self.mid) / self.half
        return x

    def map_derivatives(self, t: Tensor) -> list[Tensor | float]:
        """``[g', g'', g''']`` at the points whose image is ``t`` (x-units^-1, -2, -3)."""
        if self.input_map == "tanh":
            s, q = self.scale, 1 - t * t
            return [q / s, -2 * t * q / s**2, q * (6 * t * t - 2) / s**3]
        return [1.0 / self.half if self.input_map == "affine" else 1.0, 0.0, 0.0]

    def base_function(self, x: Tensor) -> Tensor:
        """The base activation at x."""
        return BASE_FUNCTIONS[self.base](x)

    def check_channels(self, x: Tensor) -> None:
        """Channel sharing needs the last input dimension to equal ``num_channels``."""
        if self.num_channels is not None and (x.dim() == 0 or x.shape[-1] != self.num_channels):
            raise ValueError(
                f"{type(self).__name__}(share='channel', num_channels={self.num_channels}) got "
                f"input of shape {tuple(x.shape)}; the channel dimension must be the last one"
            )

    def fit_grid(self) -> Tensor:
        """The float64 x-grid on the domain used for the init fit."""
        return torch.linspace(*self.domain, FIT_POINTS, dtype=torch.float64)

    def extra_repr(self) -> str:
        opts = dict(
            num_basis=self.num_basis, share=self.share, base=self.base, domain=self.domain,
            input_map=self.input_map, scale=self.scale, residual=self.residual,
        )
        if self.num_channels is not None:
            opts["num_channels"] = self.num_channels
        return ", ".join(f"{k}={v}" for k, v in opts.items())


class BasisActivation(TAAFS):
    """``a(x) = Σ_k c_k φ_k(g(x)) (+ base(x))``, linear in the coefficients c.

    Subclasses implement :meth:`basis`; they may override :meth:`series` and :meth:`project`
    with evaluations that avoid the N×K basis tensor. Init: c is the least-squares fit
    (``torch.linalg.lstsq``, float64) of the base on :data:`FIT_POINTS` points of the domain, or
    zero when ``residual``. ``init_error`` holds the max abs fit residual on that grid.

    Args:
        fused: evaluate through the custom autograd Functions (default) instead of letting
            autograd differentiate :meth:`basis` (the slower reference path).
        **options: see :class:`TAAFS`.
    """

    def __init__(self, num_basis: int = 8, *, fused: bool = True, **options) -> None:
        super().__init__(num_basis, **options)
        self.fused = bool(fused)

    def init_coefficients(self) -> None:
        """Create ``coefficients`` from the fit of the base (call at the end of __init__)."""
        x = self.fit_grid()
        target = self.base_function(x)
        if self.residual:
            coeff, self.init_error = torch.zeros(self.num_basis, dtype=torch.float64), 0.0
        else:
            design = self.basis(self.map(x), 0)
            coeff = torch.linalg.lstsq(design, target[:, None], driver="gelsd").solution[:, 0]
            self.init_error = (design @ coeff - target).abs().max().item()
        coeff = coeff.to(torch.get_default_dtype()).expand(self.coefficient_shape).clone()
        self.coefficients = nn.Parameter(coeff)

    def basis(self, t: Tensor, order: int = 0) -> Tensor:
        """``(..., K)``: the order-th t-derivative of every basis function at t."""
        raise NotImplementedError

    def dense_series(self, t: Tensor, coeff: Tensor, order: int) -> Tensor:
        """``Σ_k c_k φ_k^(order)(t)`` through the ``(..., K)`` basis tensor (autograd-safe)."""
        return (self.basis(t, order) * coeff).sum(-1)

    def series(self, t: Tensor, coeff: Tensor, order: int) -> Tensor:
        """``Σ_k c_k φ_k^(order)(t)``, shape of t (coeff ``(K,)`` or ``(C, K)``); no grad needed."""
        return self.dense_series(t, coeff, order)

    def project(self, t: Tensor, w: Tensor, order: int) -> Tensor:
        """``Σ_n w_n φ_k^(order)(t_n)`` over all but the channel dim, shape of coefficients."""
        phi = self.basis(t, order)
        c = self.num_channels or 1
        return torch.einsum("nck,nc->ck", phi.reshape(-1, c, self.num_basis), w.reshape(-1, c)).reshape(
            self.coefficient_shape
        )

    def series_x(self, t: Tensor, coeff: Tensor, order: int) -> Tensor:
        """``d^order/dx^order Σ c φ(g(x))`` given ``t = g(x)`` (chain rule of :func:`chain_terms`)."""
        terms = chain_terms(order, self.map_derivatives(t) if order else [])
        out = None
        for j, factor in terms:
            s = self.series(t, coeff, j) * factor
            out = s if out is None else out + s
        return out if out is not None else torch.zeros_like(t)

    def project_x(self, t: Tensor, w: Tensor, order: int) -> Tensor:
        """``Σ_n w_n ∂^order/∂x^order φ_k(g(x_n))``: the coefficient gradient of :meth:`series_x`."""
        terms = chain_terms(order, self.map_derivatives(t) if order else [])
        out = torch.zeros(self.coefficient_shape, dtype=t.dtype, device=t.device)
        for j, factor in terms:
            out = out + self.project(t, w * factor, j)
        return out

    def forward(self, x: Tensor) -> Tensor:
        self.check_channels(x)
        coeff = self.coefficients.to(x.dtype)
        if self.fused:
            with torch.no_grad():
                t = self.map(x)
            y = _Series.apply(x, t, coeff, self, 0, False) + _CoefficientGradient.apply(coeff, t, self, x)
        else:
            y = self.dense_series(self.map(x), coeff, 0)
        return y + self.base_function(x) if self.residual else y


class _CoefficientGradient(torch.autograd.Function):
    """Zero-valued term that carries ``∂y/∂c`` of the order-0 series on a branch of its own.

    Its backward returns only the coefficient gradient, ``_Project`` of the incoming gradient;
    ``x`` is passed so that, with create_graph, that gradient stays connected to x. The module's
    ``_Series`` is applied with ``coeff_grad=False``, so the x-gradient comes from ``_Series``
    alone. (A force evaluation, ``grad(y.sum(), x)``, still runs this backward: x and t are
    inputs of the node.)
    """

    @staticmethod
    def forward(ctx, coeff: Tensor, t: Tensor, act: BasisActivation, x: Tensor) -> Tensor:
        ctx.save_for_backward(t)
        ctx.act, ctx.x = act, x
        return t.new_zeros(()).expand_as(t)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (t,) = ctx.saved_tensors
        return _Project.apply(ctx.x, t, grad, ctx.act, 0), None, None, None


class _Series(torch.autograd.Function):
    """``y = ∂^m/∂x^m Σ_k c_k φ_k(g(x))`` elementwise; ``t = g(x)`` is a cache (gets no gradient).

    ``coeff_grad=False`` (the module's own call) leaves the coefficient gradient to
    :class:`_CoefficientGradient`.
    """

    @staticmethod
    def forward(
        ctx, x: Tensor, t: Tensor, coeff: Tensor, act: BasisActivation, m: int, coeff_grad: bool = True
    ) -> Tensor:
        ctx.save_for_backward(x, t, coeff)
        ctx.act, ctx.m, ctx.coeff_grad = act, m, coeff_grad
        return act.series_x(t, coeff, m)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, t, coeff = ctx.saved_tensors
        gx = gc = None
        if ctx.needs_input_grad[0]:
            gx = grad * _Series.apply(x, t, coeff, ctx.act, ctx.m + 1)
        if ctx.needs_input_grad[2] and ctx.coeff_grad:
            gc = _Project.apply(x, t, grad, ctx.act, ctx.m)
        return gx, None, gc, None, None, None


class _Project(torch.autograd.Function):
    """``p = Σ_n w_n ∂^m/∂x^m φ(g(x_n))`` (coefficient shape): the coefficient gradient of _Series."""

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, w: Tensor, act: BasisActivation, m: int) -> Tensor:
        ctx.save_for_backward(x, t, w)
        ctx.act, ctx.m = act, m
        return act.project_x(t, w, m)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, t, w = ctx.saved_tensors
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = w * _Series.apply(x, t, grad, ctx.act, ctx.m + 1)
        if ctx.needs_input_grad[2]:
            gw = _Series.apply(x, t, grad, ctx.act, ctx.m)
        return gx, None, gw, None, None
