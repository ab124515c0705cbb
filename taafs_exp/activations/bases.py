"""The linear TAAFS families: one small class per basis, all on the reference interval t ∈ [-1, 1].

Measured init errors (max |a(x) - base(x)| on x ∈ [-4, 4], float64, default options, residual off)
are stated in each docstring; ``tests/activations`` checks them. With ``residual=True`` the
series starts at zero and the init is exact for every base.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from taafs_exp.activations.core import BasisActivation


def _dot(w: Tensor, p: Tensor, channels: int | None) -> Tensor:
    """``Σ_n w_n p_n`` per channel (last dim) or over everything (layer sharing)."""
    if channels is None:
        return torch.dot(w.reshape(-1), p.reshape(-1))
    return (w * p).reshape(-1, channels).sum(0)


class SpectralActivation(BasisActivation):
    """A basis closed under d/dt: ``φ_k' = Σ_l D[k, l] φ_l`` on a padded size ``K_pad ≥ K``.

    Derivatives are series in the same basis (``c ↦ c @ D``), so the fused path needs one
    Clenshaw sum (:meth:`clenshaw`) and one running projection (:meth:`project0`), O(N) memory.
    """

    def __init__(self, num_basis: int = 8, **options) -> None:
        super().__init__(num_basis, **options)
        self.derivative = self.derivative_matrix()  # float64, cast per use (exact for any dtype)
        self.padded = self.derivative.shape[0]
        self._powers: dict[tuple, Tensor] = {}

    def derivative_matrix(self) -> Tensor:
        """``D`` with ``φ_k' = Σ_l D[k, l] φ_l`` (float64, K_pad × K_pad)."""
        raise NotImplementedError

    def basis0(self, t: Tensor) -> Tensor:
        """``(..., K_pad)`` values of the padded basis (autograd-safe)."""
        raise NotImplementedError

    def clenshaw(self, t: Tensor, coeff: Tensor) -> Tensor:
        """``Σ_k c_k φ_k(t)`` for padded coefficients ``(..., K_pad)``, without the basis tensor."""
        raise NotImplementedError

    def project0(self, t: Tensor, w: Tensor) -> Tensor:
        """``Σ_n w_n φ_k(t_n)`` for all padded k, ``(K_pad,)`` or ``(C, K_pad)``."""
        raise NotImplementedError

    def _power(self, order: int, like: Tensor) -> Tensor:
        """``D^order`` in like's dtype and device (cached)."""
        key = (order, like.dtype, like.device)
        if key not in self._powers:
            self._powers[key] = torch.linalg.matrix_power(self.derivative, order).to(like)
        return self._powers[key]

    def basis(self, t: Tensor, order: int = 0) -> Tensor:
        return (self.basis0(t) @ self._power(order, t).T)[..., : self.num_basis]

    def series(self, t: Tensor, coeff: Tensor, order: int) -> Tensor:
        if self.padded > self.num_basis:
            coeff = torch.nn.functional.pad(coeff, (0, self.padded - self.num_basis))
        return self.clenshaw(t, coeff @ self._power(order, t) if order else coeff)

    def project(self, t: Tensor, w: Tensor, order: int) -> Tensor:
        return (self.project0(t, w) @ self._power(order, t).T)[..., : self.num_basis]


class ThreeTermActivation(SpectralActivation):
    """Orthogonal polynomials ``φ_0 = 1, φ_1 = t, φ_{k+1} = a_k t φ_k - b_k φ_{k-1}``."""

    def recurrence(self, k: int) -> tuple[float, float]:
        """``(a_k, b_k)`` for k ≥ 1."""
        raise NotImplementedError

    def basis0(self, t: Tensor) -> Tensor:
        phi = [torch.ones_like(t), t][: self.padded]
        for k in range(1, self.padded - 1):
            a, b = self.recurrence(k)
            phi.append(a * t * phi[k] - b * phi[k - 1])
        return torch.stack(phi, -1)

    def clenshaw(self, t: Tensor, coeff: Tensor) -> Tensor:
        c = coeff.unbind(-1)
        if len(c) == 1:
            return torch.zeros_like(t) + c[0]
        b1, b2 = c[-1], None  # b_k = c_k + a_k t b_{k+1} - b_{k+1} b_{k+2}; b_K = 0
        for k in range(len(c) - 2, 0, -1):
            nxt = torch.addcmul(c[k], t, b1, value=self.recurrence(k)[0])
            b1, b2 = (nxt if b2 is None else nxt.sub_(b2, alpha=self.recurrence(k + 1)[1])), b1
        out = torch.addcmul(c[0], t, b1)
        return out if b2 is None else out.sub_(b2, alpha=self.recurrence(1)[1])

    def project0(self, t: Tensor, w: Tensor) -> Tensor:
        total = w.sum() if self.num_channels is None else w.reshape(-1, self.num_channels).sum(0)
        out = [total, _dot(w, t, self.num_channels)]
        prev, cur = None, t
        for k in range(1, self.padded - 1):
            a, b = self.recurrence(k)
            nxt = (t * cur).mul_(a).sub_(b) if prev is None else torch.addcmul(-b * prev, t, cur, value=a)
            prev, cur = cur, nxt
            out.append(_dot(w, cur, self.num_channels))
        return torch.stack(out[: self.padded], -1)


class Chebyshev(ThreeTermActivation):
    """Chebyshev series ``Σ c_k T_k(t)``, T by ``T_{k+1} = 2t T_k - T_{k-1}`` (never cos(k·acos t)).

    Init error (K = 8, tanh map): base tanh 1e-15 (tanh(x) = T_1(t) with scale 1),
    base silu 2.0e-3 (scale 4), gelu 1.3e-2, softplus 3.4e-3, celu (ANI's, α = 0.1: a kink no
    smooth K = 8 curve follows) 0.10.
    """

    def __init__(self, num_basis: int = 8, **options) -> None:
        super().__init__(num_basis, **options)
        self.init_coefficients()

    def recurrence(self, k: int) -> tuple[float, float]:
        return 2.0, 1.0

    def derivative_matrix(self) -> Tensor:
        # T_n' = n Σ_{k<n, n-k odd} (2 - δ_k0) T_k
        k = self.num_basis
        d = torch.zeros(k, k, dtype=torch.float64)
        for n in range(1, k):
            for j in range(n - 1, -1, -2):
                d[n, j] = n * (1.0 if j == 0 else 2.0)
        return d


class Legendre(ThreeTermActivation):
    """Legendre series ``Σ c_k P_k(t)``, ``(k+1) P_{k+1} = (2k+1) t P_k - k P_{k-1}``.

    Init error (K = 8, tanh map): base tanh 1e-15, base silu 2.0e-3, celu 0.10 (same span as
    Chebyshev).
    """

    def __init__(self, num_basis: int = 8, **options) -> None:
        super().__init__(num_basis, **options)
        self.init_coefficients()

    def recurrence(self, k: int) -> tuple[float, float]:
        return (2 * k + 1) / (k + 1), k / (k + 1)

    def derivative_matrix(self) -> Tensor:
        # P_n' = Σ_{k<n, n-k odd} (2k + 1) P_k
        k = self.num_basis
        d = torch.zeros(k, k, dtype=torch.float64)
        for n in range(1, k):
            for j in range(n - 1, -1, -2):
                d[n, j] = 2 * j + 1
        return d


class Fourier(SpectralActivation):
    """``c_0 + Σ_h a_h cos(hωt) + b_h sin(hωt)``, ω = 2π / period, period > 2 (the domain's image).

    Ordered ``[1, cos ωt, sin ωt, cos 2ωt, ...]`` and cut at K; the default period 6 leaves
    [1, 5] free, so the periodic extension has no jump at t = ±1 (period 4: 3e-3 tanh error).
    Init error (K = 8, tanh map): base tanh 2.3e-4, base silu 8.9e-3, celu 0.075.
    """

    def __init__(self, num_basis: int = 8, period: float = 6.0, **options) -> None:
        if not period > 2:
            raise ValueError(f"Fourier: period={period!r} must exceed 2, the width of [-1, 1]")
        self.omega = 2 * math.pi / period
        super().__init__(num_basis, **options)
        self.init_coefficients()

    def derivative_matrix(self) -> Tensor:
        pad = self.num_basis + (1 - self.num_basis % 2)  # full cos/sin pairs
        d = torch.zeros(pad, pad, dtype=torch.float64)
        for h in range(1, pad // 2 + 1):
            d[2 * h - 1, 2 * h] = -h * self.omega  # cos' = -hω sin
            d[2 * h, 2 * h - 1] = h * self.omega  # sin' = hω cos
        return d

    def basis0(self, t: Tensor) -> Tensor:
        h = torch.arange(1, self.padded // 2 + 1, dtype=t.dtype, device=t.device)
        angle = (self.omega * t)[..., None] * h
        pairs = torch.stack([torch.cos(angle), torch.sin(angle)], -1).flatten(-2)
        return torch.cat([torch.ones_like(t)[..., None], pairs], -1)

    def clenshaw(self, t: Tensor, coeff: Tensor) -> Tensor:
        theta = self.omega * t
        cos, sin = torch.cos(theta), torch.sin(theta)
        two_cos = 2 * cos
        out = torch.zeros_like(t) + coeff[..., 0]
        for part, trig in ((1, cos), (2, sin)):  # u_h = c_h + 2cos u_{h+1} - u_{h+2}
            c = coeff[..., part::2].unbind(-1)
            u1, u2 = torch.zeros_like(t) + c[-1], torch.zeros_like(t)
            for h in range(len(c) - 2, -1, -1):
                u1, u2 = torch.addcmul(c[h], two_cos, u1).sub_(u2), u1
            # Σ a_h cos hθ = u_1 cos θ - u_2;  Σ b_h sin hθ = u_1 sin θ
            out = out.addcmul_(u1, trig).sub_(u2) if part == 1 else out.addcmul_(u1, trig)
        return out

    def project0(self, t: Tensor, w: Tensor) -> Tensor:
        theta = self.omega * t
        cos1, sin1 = torch.cos(theta), torch.sin(theta)
        two_cos = 2 * cos1
        out = [_dot(w, torch.ones_like(t), self.num_channels)]
        c_prev, s_prev, c_cur, s_cur = torch.ones_like(t), torch.zeros_like(t), cos1, sin1
        for _ in range(self.padded // 2):
            out += [_dot(w, c_cur, self.num_channels), _dot(w, s_cur, self.num_channels)]
            c_prev, c_cur = c_cur, torch.addcmul(-c_prev, two_cos, c_cur)
            s_prev, s_cur = s_cur, torch.addcmul(-s_prev, two_cos, s_cur)
        return torch.stack(out, -1)


class Gaussian(BasisActivation):
    """Radial basis ``φ_k = exp(-z²/2)``, ``z = (t - μ_k)/σ``, K centres μ uniform on [-1, 1],
    σ = ``width`` × their spacing 2/(K-1). Derivatives: ``φ^(j) = (-1)^j He_j(z) φ / σ^j``.

    ``width`` 1.5: init error 3.9e-3 with coefficients ≤ 9 (width 1: 2.3e-2; width 2: 6.6e-4
    but cancelling coefficients ~70). Init error (K = 8, tanh map): base tanh 3.9e-3,
    base silu 2.1e-2, celu 0.081.
    """

    def __init__(self, num_basis: int = 8, width: float = 1.5, **options) -> None:
        if not width > 0:
            raise ValueError(f"Gaussian: width={width!r} must be > 0 (multiples of the spacing)")
        super().__init__(num_basis, **options)
        k = self.num_basis
        self.sigma = width * (2.0 / (k - 1) if k > 1 else 1.0)
        self.register_buffer("centres", torch.linspace(-1.0, 1.0, k) if k > 1 else torch.zeros(1), persistent=False)
        self.init_coefficients()

    def basis(self, t: Tensor, order: int = 0) -> Tensor:
        z = (t[..., None] - self.centres.to(t.dtype)) / self.sigma
        he_prev, he = torch.zeros_like(z), torch.ones_like(z)
        for n in range(order):  # He_{n+1} = z He_n - n He_{n-1}
            he_prev, he = he, z * he - n * he_prev
        return he * torch.exp(-0.5 * z * z) * ((-1 / self.sigma) ** order)


class BSpline(BasisActivation):
    """Uniform B-splines of ``degree`` (3) on K - degree equal intervals of [-1, 1].

    Local support: each t touches ``degree + 1`` functions, evaluated in closed form from the
    local coordinate u ∈ [0, 1] of its interval and gathered/scattered by interval index.
    Outside [-1, 1] (only reachable with input_map affine/none) the curve continues linearly
    with the value and slope it has at the boundary (C¹; higher derivatives are 0 there).
    Init error (K = 8, tanh map): base tanh 2e-15 (t itself is a cubic spline), base silu 7.0e-3,
    celu 0.14.
    """

    def __init__(self, num_basis: int = 8, degree: int = 3, **options) -> None:
        if degree < 0 or num_basis < degree + 1:
            raise ValueError(
                f"BSpline: num_basis={num_basis} needs degree={degree} >= 0 and num_basis >= degree + 1"
            )
        super().__init__(num_basis, **options)
        self.degree = degree
        self.intervals = self.num_basis - degree
        self.width = 2.0 / self.intervals
        self.init_coefficients()

    def _local(self, u: Tensor, order: int) -> list[Tensor]:
        """The degree+1 non-zero order-th derivatives on the interval at local coordinate u."""
        p = self.degree
        if order > p:
            return [torch.zeros_like(u)] * (p + 1)
        vals = [torch.ones_like(u)]
        for e in range(1, p - order + 1):  # N_r = ((u+e-r) N_{r-1} + (r+1-u) N_r) / e
            vals = [
                ((u + e - r) * vals[r - 1] if r > 0 else 0) + ((r + 1 - u) * vals[r] if r < e else 0)
                for r in range(e + 1)
            ]
            vals = [v / e for v in vals]
        for _ in range(order):  # d/dt of degree e: (N_{r-1} - N_r) / width
            e = len(vals)
            vals = [
                ((vals[r - 1] if r > 0 else 0) - (vals[r] if r < e else 0)) / self.width
                for r in range(e + 1)
            ]
        return vals

    def locate(self, t: Tensor, order: int) -> tuple[Tensor, list[Tensor]]:
        """Interval index ``i`` (long, t's shape) and the non-zero values for ``φ_{i..i+degree}``."""
        z = (t + 1) / self.width
        zc = z.clamp(0, self.intervals)
        index = zc.detach().floor().clamp(max=self.intervals - 1)
        u = zc - index
        vals = self._local(u, order)
        outside = z != zc
        if bool(outside.any()):
            if order == 0:
                vals = [v + (z - zc) * self.width * d for v, d in zip(vals, self._local(u, 1))]
            elif order > 1:
                vals = [v * (~outside) for v in vals]
        return index.long(), vals

    def basis(self, t: Tensor, order: int = 0) -> Tensor:
        index, vals = self.locate(t, order)
        cols = index[..., None] + torch.arange(self.degree + 1, device=t.device)
        return torch.zeros(*t.shape, self.num_basis, dtype=t.dtype, device=t.device).scatter(
            -1, cols, torch.stack(vals, -1)
        )

    def _flat_index(self, index: Tensor) -> Tensor:
        if self.num_channels is not None:
            index = index + self.num_basis * torch.arange(self.num_channels, device=index.device)
        return index.reshape(-1)

    def series(self, t: Tensor, coeff: Tensor, order: int) -> Tensor:
        index, vals = self.locate(t, order)
        flat, c = self._flat_index(index), coeff.reshape(-1)
        out = torch.zeros_like(t)
        for r, v in enumerate(vals):  # gather c[i + r]
            out.addcmul_(c[r:].index_select(0, flat).view_as(t), v)
        return out

    def project(self, t: Tensor, w: Tensor, order: int) -> Tensor:
        index, vals = self.locate(t, order)
        flat = self._flat_index(index)
        out = torch.zeros(self.coefficient_shape, dtype=t.dtype, device=t.device).reshape(-1)
        for r, v in enumerate(vals):  # scatter-add into c[i + r]
            out[r:].index_add_(0, flat, (w * v).reshape(-1))
        return out.view(self.coefficient_shape)
