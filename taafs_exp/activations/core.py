"""Shared machinery of the TAAFS activations.

A TAAFS activation is ``a(x) = Σ_k c_k φ_k(t) (+ base(x) when residual)``, ``t = g(x)``, where
``g`` maps the pre-activation ``x`` (same units as the layer output, dimensionless) onto the
bases' reference interval ``[-1, 1]``. Coefficients ``c`` are the only trainable parameters:
``(K,)`` with ``share="layer"`` or ``(C, K)`` with ``share="channel"`` (``C`` = last input dim).

Derivatives. Forces need ``∂a/∂x`` inside the graph and training differentiates it again. The
``compiled`` and ``eager`` kernels (:mod:`taafs_exp.activations.kernels`) evaluate a and a' in
one pass and each backward in one more, from hand-derived derivatives; the ``naive`` path lets
autograd differentiate the dense ``(N, K)`` basis tensor and is the reference the tests compare
the kernels with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taafs_exp.activations import kernels

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

    @property
    def map_constants(self) -> tuple[str, float, float]:
        """``(kind, mid, scale)`` of g for :func:`kernels.input_map` (``none`` is affine 0, 1)."""
        if self.input_map == "tanh":
            return "tanh", self.mid, self.scale
        if self.input_map == "affine":
            return "affine", self.mid, self.half
        return "affine", 0.0, 1.0

    def map(self, x: Tensor) -> Tensor:
        """``t = g(x)`` with differentiable torch ops."""
        return kernels.input_map(x, *self.map_constants)

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

    Subclasses name their basis in :data:`kernels.BASES` (``basis_name``) and give its constants
    (:meth:`basis_constants`). Init: c is the least-squares fit (``torch.linalg.lstsq``,
    float64) of the base on :data:`FIT_POINTS` points of the domain, or zero when ``residual``.
    ``init_error`` holds the max abs fit residual on that grid.

    Args:
        kernel: ``"compiled"`` (default: the one-pass kernels through ``torch.compile``; eager,
            with one warning, where no C++ compiler is found), ``"eager"`` (the same kernels
            uncompiled) or ``"naive"`` (autograd through the dense basis; the slow reference).
        **options: see :class:`TAAFS`.
    """

    basis_name = ""

    def __init__(self, num_basis: int = 8, *, kernel: str = "compiled", **options) -> None:
        super().__init__(num_basis, **options)
        check_choice("kernel", kernel, kernels.KERNELS)
        self.kernel = kernel

    def basis_constants(self) -> tuple[float, ...]:
        """The basis' own constants, as the kernels take them (none by default)."""
        return ()

    @property
    def spec(self) -> kernels.KernelSpec:
        """Everything the kernels need to know of this activation."""
        kind, mid, scale = self.map_constants
        return kernels.KernelSpec(
            self.basis_name, self.num_basis, kind, mid, scale, self.basis_constants(), self.kernel
        )

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
        """``(..., K)``: the order-th t-derivative of every basis function at t (autograd-safe)."""
        return kernels.dense_basis(self.spec, t, order)

    def forward(self, x: Tensor) -> Tensor:
        self.check_channels(x)
        coeff = self.coefficients.to(x.dtype)
        if self.kernel == "naive":
            y = (self.basis(self.map(x), 0) * coeff).sum(-1)
        else:
            y = kernels.series(x, coeff.reshape(-1, self.num_basis), self.spec)
        return y + self.base_function(x) if self.residual else y

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel={self.kernel}"
