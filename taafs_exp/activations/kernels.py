"""One-pass kernels of the linear TAAFS families and the autograd that ties them together.

The curve is ``a(x) = S(x) = Σ_k c_k φ_k(t)``, ``t = g(x)``, for x of shape ``(N, C)`` and
coefficients c of shape ``(C, K)`` (layer sharing is C = 1). Write ``S_m = ∂^m S / ∂x^m`` and
``P_m(w)_{ck} = Σ_n w_nc ∂^m φ_k(g(x_nc)) / ∂x^m`` (its coefficient gradient). Force training
needs, per activation and step:

* forward: ``(S_0, S_1)`` and ``t`` in one pass (:func:`forward_kernel`); the first backward
  (forces) is then one multiply, ``∂x = grad · S_1``, and runs no ``P`` unless the engine will
  use ∂c (a force evaluation ``grad(E, R)`` does not);
* double backward: ``∂x = g0 · S_1 + g1 · S_2`` and ``∂c = P_0(g0) + P_1(g1)`` in one pass
  (:func:`backward_kernel`).

Each kernel is a plain function of tensors (the ``eager`` path) that ``torch.compile`` fuses into
one loop per call (the ``compiled`` path: C++/OpenMP on a CPU, Triton on a GPU, from this one
source; the row count is dynamic, so new atom or neighbour counts do not recompile). The entry
points are registered as ``torch.library`` ops (``taafs::forward`` …) with fake implementations,
so ``torch.compile`` and ``torch.export`` carry them as single nodes (:class:`_Op`). The eager
kernels are the fallback where no C++ compiler is found: correct, but many full-size tensors per
step (``results/bench/activations.md``). :class:`_Series` and
:class:`_Project` give them autograd: each backward is written with the other at order ``m`` or
``m + 1``, so every path is differentiable to the order the chain rule supports (x-derivatives
up to 3).

Bases evaluate ``φ_k^(j)(t)``, the j-th t-derivative, as nested lists ``[j][k]`` of tensors (or
Python floats where the value is a constant): recurrences unrolled at trace time, so a compiled
kernel keeps everything in registers. The same functions give the dense ``(…, K)`` basis
(:func:`dense_basis`) used for the init fit and the ``naive`` reference path.
"""

from __future__ import annotations

import functools
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

Value = Union[Tensor, float]
#: ``phi[j][k]``: the j-th t-derivative of basis function k.
Derivatives = list[list[Value]]
KERNELS = ("compiled", "eager", "naive")
MAX_ORDER = 3


@dataclass(frozen=True)
class KernelSpec:
    """What a kernel needs to know of an activation: basis, input map and their constants.

    ``input_map`` is ``"tanh"`` (``t = tanh((x - mid) / scale)``) or ``"affine"``
    (``t = (x - mid) / scale``; the map ``none`` is affine with mid 0, scale 1). ``extra`` holds
    the basis' own constants (Fourier ω, Gaussian σ, B-spline degree).
    """

    basis: str
    num_basis: int
    input_map: str
    mid: float
    scale: float
    extra: tuple[float, ...] = ()
    kernel: str = "compiled"

    def args(self) -> tuple[str, str, list[float], str]:
        """The spec as torch.library op arguments ``(basis, input_map, params, kernel)``."""
        return self.basis, self.input_map, [float(self.num_basis), self.mid, self.scale, *self.extra], self.kernel

    @staticmethod
    def from_args(basis: str, input_map: str, params: Sequence[float], kernel: str) -> "KernelSpec":
        return KernelSpec(basis, int(params[0]), input_map, float(params[1]), float(params[2]),
                          tuple(float(p) for p in params[3:]), kernel)


# ---------------------------------------------------------------------------- input map, chain rule


def input_map(x: Tensor, kind: str, mid: float, scale: float) -> Tensor:
    """``t = g(x)``: ``tanh((x - mid) / scale)`` or ``(x - mid) / scale`` (differentiable)."""
    z = (x - mid) / scale
    return torch.tanh(z) if kind == "tanh" else z


def map_derivatives(t: Tensor, kind: str, scale: float, order: int) -> list[Value]:
    """``[g', g'', g''']`` (x-units^-1, -2, -3) at the points whose image is t, up to ``order``."""
    if kind != "tanh":
        return [1.0 / scale, 0.0, 0.0][:order]
    q = 1 - t * t
    return [q / scale, -2 * t * q / scale**2, q * (6 * t * t - 2) / scale**3][:order]


def chain_terms(order: int, dg: Sequence[Value]) -> list[tuple[int, Value]]:
    """Faà di Bruno: ``d^m/dx^m f(g(x)) = Σ_j factor_j · f^(j)(g(x))`` as ``[(j, factor_j)]``.

    ``dg = [g', g'', g''']`` (at least ``order`` entries); float-zero factors are dropped.
    """
    if order == 0:
        return [(0, 1.0)]
    if order > MAX_ORDER:
        raise NotImplementedError(f"derivative order {order} > {MAX_ORDER} of a TAAFS activation")
    g1, g2, g3 = (list(dg) + [0.0, 0.0, 0.0])[:3]
    terms = {1: [(1, g1)], 2: [(2, g1 * g1), (1, g2)], 3: [(3, g1**3), (2, 3 * g1 * g2), (1, g3)]}
    return [(j, f) for j, f in terms[order] if not (isinstance(f, float) and f == 0.0)]


def _axpy(a: float, x: Value, y: Value) -> Value:
    """``a·x + y`` that keeps Python floats when both are constants (no full-size zeros)."""
    if isinstance(x, float) and x == 0.0:
        return y
    if isinstance(y, float) and y == 0.0:
        return a * x
    return a * x + y


# ---------------------------------------------------------------------------- bases


def _three_term(t: Tensor, order: int, num_basis: int, recurrence: Callable[[int], tuple[float, float]]) -> Derivatives:
    """``φ_0 = 1, φ_1 = t, φ_{k+1} = a_k t φ_k - b_k φ_{k-1}``; differentiating j times:
    ``φ_{k+1}^(j) = a_k (t φ_k^(j) + j φ_k^(j-1)) - b_k φ_{k-1}^(j)``."""
    phi: Derivatives = [[1.0 if j == 0 else 0.0] for j in range(order + 1)]
    if num_basis > 1:
        for j in range(order + 1):
            phi[j].append(t if j == 0 else (1.0 if j == 1 else 0.0))
    for k in range(1, num_basis - 1):
        a, b = recurrence(k)
        for j in range(order + 1):
            prod = phi[j][k] * t if isinstance(phi[j][k], Tensor) or phi[j][k] != 0.0 else 0.0
            lower = phi[j - 1][k] if j else 0.0
            phi[j].append(_axpy(-b, phi[j][k - 1], _axpy(a * j, lower, _axpy(a, prod, 0.0))))
    return phi


def chebyshev(t: Tensor, order: int, spec: KernelSpec) -> Derivatives:
    """Chebyshev polynomials ``T_{k+1} = 2t T_k - T_{k-1}``."""
    return _three_term(t, order, spec.num_basis, lambda k: (2.0, 1.0))


def legendre(t: Tensor, order: int, spec: KernelSpec) -> Derivatives:
    """Legendre polynomials ``(k+1) P_{k+1} = (2k+1) t P_k - k P_{k-1}``."""
    return _three_term(t, order, spec.num_basis, lambda k: ((2 * k + 1) / (k + 1), k / (k + 1)))


def fourier(t: Tensor, order: int, spec: KernelSpec) -> Derivatives:
    """``[1, cos ωt, sin ωt, cos 2ωt, …][:K]``; ``cos hθ, sin hθ`` by angle addition from θ = ωt,
    and ``d^j/dt^j cos(hωt) = (hω)^j cos(hωt + jπ/2)`` (likewise sin)."""
    (omega,), num_basis = spec.extra, spec.num_basis
    theta = omega * t
    cos1, sin1 = torch.cos(theta), torch.sin(theta)
    phi: Derivatives = [[1.0 if j == 0 else 0.0] for j in range(order + 1)]
    cos_h, sin_h = cos1, sin1
    for h in range(1, num_basis // 2 + 1):
        if h > 1:
            cos_h, sin_h = cos_h * cos1 - sin_h * sin1, sin_h * cos1 + cos_h * sin1
        f = 1.0
        for j in range(order + 1):  # f = (hω)^j (products: ω may be a symbolic float when compiled)
            cyc_cos = (cos_h, -sin_h, -cos_h, sin_h)[j % 4]  # j-th derivative of cos, in units of f
            cyc_sin = (sin_h, cos_h, -sin_h, -cos_h)[j % 4]
            phi[j] += [f * cyc_cos, f * cyc_sin]
            f = f * (h * omega)
    return [row[:num_basis] for row in phi]


def gaussian(t: Tensor, order: int, spec: KernelSpec) -> Derivatives:
    """``φ_k = exp(-z²/2)``, ``z = (t - μ_k)/σ``, μ_k uniform on [-1, 1];
    ``φ_k^(j) = (-1/σ)^j He_j(z) φ_k`` (probabilists' Hermite ``He_{n+1} = z He_n - n He_{n-1}``)."""
    (sigma,), num_basis = spec.extra, spec.num_basis
    centres = [-1.0 + 2.0 * k / (num_basis - 1) for k in range(num_basis)] if num_basis > 1 else [0.0]
    phi: Derivatives = [[] for _ in range(order + 1)]
    for mu in centres:
        z = (t - mu) / sigma
        e = torch.exp(-0.5 * z * z)
        he_prev, he, f = 0.0, 1.0, 1.0
        for j in range(order + 1):  # f = (-1/σ)^j
            phi[j].append(f * he * e)
            he_prev, he, f = he, z * he - j * he_prev, -f / sigma
    return phi


def bspline_local(t: Tensor, order: int, spec: KernelSpec) -> tuple[Tensor, Derivatives]:
    """Uniform B-splines of degree p on ``L = K - p`` intervals of [-1, 1], width ``h = 2/L``.

    Returns the interval index ``i`` (long, t's shape) and ``vals[j][r]``, the j-th t-derivative of
    ``φ_{i+r}`` at t (r = 0..p): Cox–de Boor on the local coordinate ``u ∈ [0, 1]`` and, for
    derivatives, differences of the lower-degree values divided by h. Outside [-1, 1] the curve
    continues linearly with its boundary value and slope (C¹; derivatives of order ≥ 2 are 0);
    the tanh map never leaves [-1, 1], so it skips that.
    """
    p = int(spec.extra[0])
    intervals = spec.num_basis - p
    width = 2.0 / intervals
    z = (t + 1) / width
    zc = z.clamp(0, intervals)
    index = zc.floor().clamp(max=intervals - 1)
    u = zc - index
    if spec.input_map == "tanh":
        return index.long(), [_bspline_pieces(u, p, j, width) for j in range(order + 1)]
    vals = [_bspline_pieces(u, p, j, width) for j in range(max(order, 1) + 1)]
    outside = z != zc
    vals[0] = [v + (z - zc) * width * d for v, d in zip(vals[0], vals[1])]
    for j in range(2, order + 1):
        vals[j] = [torch.where(outside, 0.0, v) if isinstance(v, Tensor) else v for v in vals[j]]
    return index.long(), vals[: order + 1]


def _bspline_pieces(u: Tensor, degree: int, order: int, width: float) -> list[Value]:
    """The degree+1 order-th t-derivatives of the B-splines non-zero on an interval, at u."""
    if order > degree:
        return [0.0] * (degree + 1)
    vals: list[Value] = [1.0]
    for e in range(1, degree - order + 1):  # N_r = ((u+e-r) N_{r-1} + (r+1-u) N_r) / e
        vals = [
            (((u + e - r) * vals[r - 1]) if r > 0 else 0.0) + (((r + 1 - u) * vals[r]) if r < e else 0.0)
            for r in range(e + 1)
        ]
        vals = [v / e for v in vals]
    for _ in range(order):  # d/dt of degree e: (N_{r-1} - N_r) / width
        e = len(vals)
        vals = [((vals[r - 1] if r > 0 else 0.0) - (vals[r] if r < e else 0.0)) / width for r in range(e + 1)]
    return vals


def bspline(t: Tensor, order: int, spec: KernelSpec) -> Derivatives:
    """Dense B-spline derivatives: ``φ_k^(j) = Σ_r [i = k - r] · vals[j][r]`` (see :func:`bspline_local`)."""
    index, vals = bspline_local(t, order, spec)
    p, num_basis = int(spec.extra[0]), spec.num_basis
    phi: Derivatives = [[] for _ in range(order + 1)]
    for j in range(order + 1):
        for k in range(num_basis):
            acc: Value = 0.0
            for r in range(p + 1):
                v = vals[j][r]
                if 0 <= k - r < num_basis - p and isinstance(v, Tensor):
                    acc = acc + torch.where(index == k - r, v, 0.0)
            phi[j].append(acc)
    return phi


#: Basis name → ``(t, order, spec) -> phi[j][k]``.
BASES: dict[str, Callable[[Tensor, int, KernelSpec], Derivatives]] = {
    "chebyshev": chebyshev, "legendre": legendre, "fourier": fourier, "gaussian": gaussian,
    "bspline": bspline,
}


def dense_basis(spec: KernelSpec, t: Tensor, order: int = 0) -> Tensor:
    """``(..., K)``: the order-th t-derivative of every basis function at t (autograd-safe)."""
    phi = BASES[spec.basis](t, order, spec)[order]
    return torch.stack([v if isinstance(v, Tensor) else torch.full_like(t, v) for v in phi], -1)


# ---------------------------------------------------------------------------- kernels


def _t_series(spec: KernelSpec, t: Tensor, c: Tensor, order: int) -> list[Tensor]:
    """``T_j = Σ_k c_k φ_k^(j)(t)`` for j = 0..order (t ``(N, C)``, c ``(C, K)``).

    B-spline picks its degree + 1 coefficients ``c_{i+r}`` per element by a select chain over
    its intervals (vector selects; faster than a gather on a CPU) and sums only those terms.
    """
    if spec.basis == "bspline":
        index, vals = bspline_local(t, order, spec)
        p = len(vals[0]) - 1
        local = []
        for r in range(p + 1):
            acc = c[:, r].expand_as(t)
            for interval in range(1, spec.num_basis - p):
                acc = torch.where(index == interval, c[:, interval + r], acc)
            local.append(acc)
        rows = [[(local[r], v) for r, v in enumerate(row)] for row in vals]
    else:
        phi = BASES[spec.basis](t, order, spec)
        rows = [[(c[:, k], v) for k, v in enumerate(row)] for row in phi]
    return [torch.zeros_like(t) + _combine(pairs) for pairs in rows]


def _x_series(order: int, dg: Sequence[Value], series: list[Tensor]) -> Tensor:
    """``S_order = Σ_j factor_j T_j`` (chain rule of :func:`chain_terms`)."""
    out = None
    for j, f in chain_terms(order, dg):
        term = series[j] * f
        out = term if out is None else out + term
    return out if out is not None else torch.zeros_like(series[0])


def _project(spec: KernelSpec, t: Tensor, weights: dict[int, Tensor]) -> Tensor:
    """``Σ_n Σ_j W_j(n) φ_k^(j)(t_n)`` per channel: ``(C, K)``.

    B-spline first combines its degree + 1 local values, ``a_r = Σ_j W_j vals[j][r]``, then
    bins them by ``k = i + r``; every basis ends in K plain reductions (no scatter, so no
    atomics on a GPU).
    """
    order = max(weights)
    if spec.basis == "bspline":
        index, vals = bspline_local(t, order, spec)
        local = [_combine([(w, vals[j][r]) for j, w in weights.items()]) for r in range(len(vals[0]))]
        p = len(local) - 1
        terms = [
            [(torch.where(index == k - r, 1.0, 0.0), local[r]) for r in range(p + 1) if 0 <= k - r < spec.num_basis - p]
            for k in range(spec.num_basis)
        ]
    else:
        phi = BASES[spec.basis](t, order, spec)
        terms = [[(w, phi[j][k]) for j, w in weights.items()] for k in range(spec.num_basis)]
    cols = [_combine(pairs) for pairs in terms]
    return torch.stack([v.sum(0) if isinstance(v, Tensor) else t.new_zeros(t.shape[1]) for v in cols], -1)


def _combine(pairs: list[tuple[Value, Value]]) -> Value:
    """``Σ a·b`` over pairs, skipping float-zero factors."""
    acc: Value = 0.0
    for a, b in pairs:
        if not any(isinstance(v, float) and v == 0.0 for v in (a, b)):
            acc = acc + a * b
    return acc


def _weights(terms: list[tuple[Tensor | None, int]], dg: Sequence[Value]) -> dict[int, Tensor]:
    """``W_j = Σ_(w, m) w · factor_j(m)``: per-element weights of ``φ^(j)`` in ``Σ P_m(w)``."""
    out: dict[int, Tensor] = {}
    for w, m in terms:
        if w is None:
            continue
        for j, f in chain_terms(m, dg):
            out[j] = w * f if j not in out else out[j] + w * f
    return out


def value_kernel(x: Tensor, c: Tensor, spec: KernelSpec) -> Tensor:
    """``S_0`` alone (no-grad evaluation)."""
    t = input_map(x, spec.input_map, spec.mid, spec.scale)
    return _t_series(spec, t, c, 0)[0]


def forward_kernel(x: Tensor, c: Tensor, spec: KernelSpec) -> tuple[Tensor, Tensor, Tensor]:
    """``(S_0, S_1, t)`` in one pass; t is kept so that no backward maps x again."""
    t = input_map(x, spec.input_map, spec.mid, spec.scale)
    return (*series_kernel(t, c, spec, 0), t)


def series_kernel(t: Tensor, c: Tensor, spec: KernelSpec, order: int) -> tuple[Tensor, Tensor]:
    """``(S_order, S_order+1)`` at ``t = g(x)`` in one pass."""
    dg = map_derivatives(t, spec.input_map, spec.scale, order + 1)
    series = _t_series(spec, t, c, order + 1)
    return _x_series(order, dg, series), _x_series(order + 1, dg, series)


def project_kernel(t: Tensor, w: Tensor, spec: KernelSpec, order: int) -> Tensor:
    """``P_order(w)`` at ``t = g(x)``, shape ``(C, K)``."""
    dg = map_derivatives(t, spec.input_map, spec.scale, order)
    return _project(spec, t, _weights([(w, order)], dg))


def backward_kernel(
    t: Tensor, c: Tensor, g0: Tensor | None, g1: Tensor, spec: KernelSpec, order: int
) -> tuple[Tensor, Tensor]:
    """The gradients of ``(S_m, S_m+1)`` for incoming ``(g0, g1)`` at ``t = g(x)``, one pass:
    ``∂x = g0 S_m+1 + g1 S_m+2`` and ``∂c = P_m(g0) + P_m+1(g1)``."""
    dg = map_derivatives(t, spec.input_map, spec.scale, order + 2)
    series = _t_series(spec, t, c, order + 2)
    gx = g1 * _x_series(order + 2, dg, series)
    if g0 is not None:
        gx = gx + g0 * _x_series(order + 1, dg, series)
    return gx, _project(spec, t, _weights([(g0, order), (g1, order + 1)], dg))


# ---------------------------------------------------------------------------- compiled / eager


_COMPILED: dict[tuple[Callable, bool], Callable] = {}
#: B-spline: keep intermediates in registers. Inductor's CPU defaults write an intermediate read by
#: several reductions to memory and reduce it in a loop of its own (2x slower B-spline backward).
#: Not for the recurrences of the other bases: inlining them grows the IR exponentially in K.
_BSPLINE_OPTIONS = {
    "realize_reads_threshold": 64, "realize_cpu_opcount_threshold": 4000, "realize_cpu_acc_reads_threshold": 64,
}
_COMPILE_ERRORS = (
    torch._dynamo.exc.BackendCompilerFailed, torch._inductor.exc.InductorError,
    torch._inductor.exc.CppCompileError, OSError,
)
_FALLBACK: list[str] = []  # why compiled kernels are unavailable in this process (empty: they are)


@functools.lru_cache(maxsize=None)
def _compiler_missing(device_type: str, cxx: str | None) -> str | None:
    """A reason torch.compile cannot build CPU kernels here (no C++ compiler), else None."""
    if device_type != "cpu":
        return None
    names = [cxx] if cxx else ["g++", "c++", "clang++"]
    return None if any(shutil.which(n) for n in names) else f"no C++ compiler ({', '.join(names)}) on PATH"


def _run(kernel: Callable, spec: KernelSpec, device: torch.device, *args) -> object:
    """``kernel(*args)`` through ``torch.compile`` (dynamic shapes) or eagerly.

    Compiled kernels fall back to eager, with one warning per process, when no C++ compiler is
    found or compilation fails.
    """
    if spec.kernel == "compiled" and not _FALLBACK:
        reason = _compiler_missing(device.type, os.environ.get("CXX"))
        if reason is None:
            key = (kernel, spec.basis == "bspline")
            if key not in _COMPILED:
                options = _BSPLINE_OPTIONS if key[1] else {}
                _COMPILED[key] = torch.compile(kernel, dynamic=False, options=options)
            for a in args:  # rows vary frame to frame: one kernel for every N
                if isinstance(a, Tensor) and a.shape == args[0].shape:
                    torch._dynamo.maybe_mark_dynamic(a, 0)
            try:
                return _COMPILED[key](*args)
            except _COMPILE_ERRORS as err:
                reason = f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        _FALLBACK.append(reason)
        warnings.warn(f"TAAFS: {reason}; using the eager one-pass kernels (slower, same results)", stacklevel=3)
    return kernel(*args)


def compiled_kernels_available() -> bool:
    """False once this process fell back to eager kernels (see :func:`_run`)."""
    return not _FALLBACK


# Every activation configuration is one specialisation of the same four kernel functions; allow
# enough of them (dynamo's default of 8 per function would silently fall back to eager).
torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 4096)


def _check_order(order: int) -> None:
    """Refuse x-derivatives beyond :data:`MAX_ORDER` before any kernel is traced."""
    if order > MAX_ORDER:
        raise NotImplementedError(f"derivative order {order} > {MAX_ORDER} of a TAAFS activation")


def _value_impl(x: Tensor, c: Tensor, basis: str, input_map: str, params: list[float], kernel: str) -> Tensor:
    spec = KernelSpec.from_args(basis, input_map, params, kernel)
    return _run(value_kernel, spec, x.device, x, c, spec)


def _forward_impl(
    x: Tensor, c: Tensor, basis: str, input_map: str, params: list[float], kernel: str
) -> tuple[Tensor, Tensor, Tensor]:
    spec = KernelSpec.from_args(basis, input_map, params, kernel)
    return _run(forward_kernel, spec, x.device, x, c, spec)


def _series_impl(
    t: Tensor, c: Tensor, basis: str, input_map: str, params: list[float], kernel: str, order: int
) -> tuple[Tensor, Tensor]:
    _check_order(order + 1)
    spec = KernelSpec.from_args(basis, input_map, params, kernel)
    return _run(series_kernel, spec, t.device, t, c, spec, order)


def _project_impl(t: Tensor, w: Tensor, basis: str, input_map: str, params: list[float], kernel: str, order: int) -> Tensor:
    _check_order(order)
    spec = KernelSpec.from_args(basis, input_map, params, kernel)
    return _run(project_kernel, spec, t.device, t, w, spec, order)


def _backward_impl(
    t: Tensor, c: Tensor, g0: Tensor | None, g1: Tensor, basis: str, input_map: str, params: list[float],
    kernel: str, order: int,
) -> tuple[Tensor, Tensor]:
    _check_order(order + 2)
    spec = KernelSpec.from_args(basis, input_map, params, kernel)
    return _run(backward_kernel, spec, t.device, t, c, g0, g1, spec, order)


class _Op:
    """A kernel entry point, registered as the torch.library op ``taafs::<name>`` (with a fake
    implementation for shape propagation). ``torch.compile`` and ``torch.export`` trace it as
    that one node; an eager call skips the dispatcher (about 0.1 ms a call)."""

    def __init__(self, name: str, impl: Callable, fake: Callable) -> None:
        self.impl = impl
        self.op = torch.library.custom_op(f"taafs::{name}", impl, mutates_args=())
        self.op.register_fake(fake)

    def __call__(self, *args):
        return (self.op if torch.compiler.is_compiling() else self.impl)(*args)


_value_op = _Op("value", _value_impl, lambda x, c, *_: torch.empty_like(x))
_forward_op = _Op("forward", _forward_impl, lambda x, c, *_: (torch.empty_like(x),) * 3)
_series_op = _Op("series", _series_impl, lambda t, c, *_: (torch.empty_like(t),) * 2)
_project_op = _Op("project", _project_impl, lambda t, w, b, m, params, *_: t.new_empty(t.shape[1], int(params[0])))
_backward_op = _Op("series_backward", _backward_impl, lambda t, c, *_: (torch.empty_like(t), torch.empty_like(c)))


# ---------------------------------------------------------------------------- autograd


def _gradient_node(c: Tensor) -> object | None:
    """The autograd node that receives c's gradient (None when c needs none)."""
    if not (c.requires_grad and torch.is_grad_enabled()):
        return None
    return torch.autograd.graph.get_gradient_edge(c).node


def _engine_needs(node: object | None) -> bool:
    """Whether the running backward pass will use the gradient sent to ``node``.

    ``autograd.grad(E, positions)`` (a force evaluation) does not reach the coefficients, so the
    coefficient projection is skipped; ``loss.backward()`` does.
    """
    if node is None:
        return False
    try:
        return bool(torch._C._will_engine_execute_node(node))
    except (AttributeError, RuntimeError):  # not inside a backward of the engine: be safe
        return True


class _Series(torch.autograd.Function):
    """``(S_m, S_m+1)`` of x ``(N, C)`` and c ``(C, K)``, differentiable in both.

    ``t = g(x)`` is a cache (no gradient flows through it): None at order 0, where the forward
    kernel maps x itself and keeps t for every backward.
    """

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor | None, c: Tensor, spec: KernelSpec, order: int, node: object | None):
        ctx.set_materialize_grads(False)
        if t is None:
            s0, s1, t = _forward_op(x, c, *spec.args())
        else:
            s0, s1 = _series_op(t, c, *spec.args(), order)
        ctx.save_for_backward(x, t, c, s1)
        ctx.spec, ctx.order, ctx.node = spec, order, node
        return s0, s1

    @staticmethod
    def backward(ctx, g0: Tensor | None, g1: Tensor | None):
        x, t, c, s1 = ctx.saved_tensors
        spec, m = ctx.spec, ctx.order
        need_x = ctx.needs_input_grad[0]
        need_c = ctx.needs_input_grad[2] and _engine_needs(ctx.node)
        gx = gc = None
        if g0 is None and g1 is None:
            return None, None, None, None, None, None
        if torch.is_grad_enabled():  # create_graph: compose ops that are differentiable again
            if need_x:
                gx = g0 * s1 if g0 is not None else None
                if g1 is not None:
                    s2 = _Series.apply(x, t, c, spec, m + 1, _gradient_node(c))[1]
                    gx = g1 * s2 if gx is None else gx + g1 * s2
            if need_c:
                for w, order in ((g0, m), (g1, m + 1)):
                    if w is not None:
                        p = _Project.apply(x, t, w, spec, order)
                        gc = p if gc is None else gc + p
        elif g1 is None:  # a force evaluation: ∂x is one multiply
            gx = g0 * s1 if need_x else None
            gc = _project_op(t, g0, *spec.args(), m) if need_c else None
        elif need_c:  # the double backward of force training: one pass for ∂x and ∂c
            gx, gc = _backward_op(t, c, g0, g1, *spec.args(), m)
        elif need_x:
            gx = g1 * _series_op(t, c, *spec.args(), m + 1)[1]
            if g0 is not None:
                gx = gx + g0 * s1
        return gx, None, gc, None, None, None


class _Project(torch.autograd.Function):
    """``P_m(w)`` of x, w ``(N, C)``: ``(C, K)``, differentiable in x and w (t = g(x) a cache)."""

    @staticmethod
    def forward(ctx, x: Tensor, t: Tensor, w: Tensor, spec: KernelSpec, order: int):
        ctx.save_for_backward(x, t, w)
        ctx.spec, ctx.order = spec, order
        return _project_op(t, w, *spec.args(), order)

    @staticmethod
    def backward(ctx, grad: Tensor):
        # ∂/∂w_n = Σ_k grad_k ∂^m φ_k(x_n) = S_m[grad]; ∂/∂x_n = w_n S_m+1[grad]
        x, t, w = ctx.saved_tensors
        if torch.is_grad_enabled():
            s0, s1 = _Series.apply(x, t, grad, ctx.spec, ctx.order, _gradient_node(grad))
        else:
            s0, s1 = _series_op(t, grad, *ctx.spec.args(), ctx.order)
        gx = w * s1 if ctx.needs_input_grad[0] else None
        gw = s0 if ctx.needs_input_grad[2] else None
        return gx, None, gw, None, None


def series(x: Tensor, c: Tensor, spec: KernelSpec) -> Tensor:
    """``a(x) = Σ_k c_k φ_k(g(x))`` for x ``(..., C)`` and c ``(C, K)`` (C = 1: any shape)."""
    flat = x.reshape(-1, c.shape[0])
    if torch.is_grad_enabled() and (x.requires_grad or c.requires_grad):
        y = _Series.apply(flat, None, c, spec, 0, _gradient_node(c))[0]
    else:
        y = _value_op(flat, c, *spec.args())
    return y.view(x.shape)


def series_derivative(x: Tensor, c: Tensor, spec: KernelSpec, order: int) -> Tensor:
    """``∂^order a / ∂x^order`` (shapes as in :func:`series`), differentiable in x and c."""
    flat = x.reshape(-1, c.shape[0])
    t = input_map(flat, spec.input_map, spec.mid, spec.scale).detach()
    return _Series.apply(flat, t, c, spec, order, _gradient_node(c))[0].view(x.shape)


def project(x: Tensor, w: Tensor, channels: int, spec: KernelSpec, order: int) -> Tensor:
    """``P_order(w)``: the coefficient gradient of ``Σ w ∂^order a/∂x^order``, ``(channels, K)``,
    differentiable in x and w (both ``(..., channels)``)."""
    flat = x.reshape(-1, channels)
    t = input_map(flat, spec.input_map, spec.mid, spec.scale).detach()
    return _Project.apply(flat, t, w.reshape(-1, channels), spec, order)
