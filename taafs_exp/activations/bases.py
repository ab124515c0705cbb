"""The linear TAAFS families: one small class per basis, all on the reference interval t ∈ [-1, 1].

Each class names its basis in :data:`taafs_exp.activations.kernels.BASES`, where the basis and
its t-derivatives are evaluated (recurrences for the polynomials and Fourier, closed forms for
Gaussian and B-spline). Measured init errors (max |a(x) - base(x)| on x ∈ [-4, 4], float64,
default options, residual off) are stated in each docstring; ``tests/activations`` checks them.
With ``residual=True`` the series starts at zero and the init is exact for every base.
"""

from __future__ import annotations

import math

from taafs_exp.activations.core import BasisActivation


class Chebyshev(BasisActivation):
    """Chebyshev series ``Σ c_k T_k(t)``, T by ``T_{k+1} = 2t T_k - T_{k-1}`` (never cos(k·acos t)).

    Init error (K = 8, tanh map): base tanh 1e-15 (tanh(x) = T_1(t) with scale 1),
    base silu 2.0e-3 (scale 4), gelu 1.3e-2, softplus 3.4e-3, celu (ANI's, α = 0.1: a kink no
    smooth K = 8 curve follows) 0.10.
    """

    basis_name = "chebyshev"

    def __init__(self, num_basis: int = 8, **options) -> None:
        super().__init__(num_basis, **options)
        self.init_coefficients()


class Legendre(BasisActivation):
    """Legendre series ``Σ c_k P_k(t)``, ``(k+1) P_{k+1} = (2k+1) t P_k - k P_{k-1}``.

    Init error (K = 8, tanh map): base tanh 1e-15, base silu 2.0e-3, celu 0.10 (same span as
    Chebyshev).
    """

    basis_name = "legendre"

    def __init__(self, num_basis: int = 8, **options) -> None:
        super().__init__(num_basis, **options)
        self.init_coefficients()


class Fourier(BasisActivation):
    """``c_0 + Σ_h a_h cos(hωt) + b_h sin(hωt)``, ω = 2π / period, period > 2 (the domain's image).

    Ordered ``[1, cos ωt, sin ωt, cos 2ωt, ...]`` and cut at K; the default period 6 leaves
    [1, 5] free, so the periodic extension has no jump at t = ±1 (period 4: 3e-3 tanh error).
    Init error (K = 8, tanh map): base tanh 2.3e-4, base silu 8.9e-3, celu 0.075.
    """

    basis_name = "fourier"

    def __init__(self, num_basis: int = 8, period: float = 6.0, **options) -> None:
        if not period > 2:
            raise ValueError(f"Fourier: period={period!r} must exceed 2, the width of [-1, 1]")
        self.omega = 2 * math.pi / period
        super().__init__(num_basis, **options)
        self.init_coefficients()

    def basis_constants(self) -> tuple[float, ...]:
        return (self.omega,)


class Gaussian(BasisActivation):
    """Radial basis ``φ_k = exp(-z²/2)``, ``z = (t - μ_k)/σ``, K centres μ uniform on [-1, 1],
    σ = ``width`` × their spacing 2/(K-1). Derivatives: ``φ^(j) = (-1)^j He_j(z) φ / σ^j``.

    Evaluated densely (K exponentials per element): the support is infinite, and a truncated
    one would put jumps into a″ (the force-training gradient) unless tapered; in a compiled
    kernel the K exponentials fuse into the one pass, so locality would save little at K ≤ 16
    (see ``results/bench/activations.md``).

    ``width`` 1.5: init error 3.9e-3 with coefficients ≤ 9 (width 1: 2.3e-2; width 2: 6.6e-4
    but cancelling coefficients ~70). Init error (K = 8, tanh map): base tanh 3.9e-3,
    base silu 2.1e-2, celu 0.081.
    """

    basis_name = "gaussian"

    def __init__(self, num_basis: int = 8, width: float = 1.5, **options) -> None:
        if not width > 0:
            raise ValueError(f"Gaussian: width={width!r} must be > 0 (multiples of the spacing)")
        super().__init__(num_basis, **options)
        self.sigma = width * (2.0 / (self.num_basis - 1) if self.num_basis > 1 else 1.0)
        self.init_coefficients()

    def basis_constants(self) -> tuple[float, ...]:
        return (self.sigma,)


class BSpline(BasisActivation):
    """Uniform B-splines of ``degree`` (3) on K - degree equal intervals of [-1, 1].

    Local support: each t touches ``degree + 1`` functions, evaluated in closed form from the
    local coordinate u ∈ [0, 1] of its interval; the series gathers those degree + 1
    coefficients (cost independent of K), the coefficient gradient reduces into K bins.
    Outside [-1, 1] (only reachable with input_map affine/none) the curve continues linearly
    with the value and slope it has at the boundary (C¹; higher derivatives are 0 there).
    Init error (K = 8, tanh map): base tanh 2e-15 (t itself is a cubic spline), base silu 7.0e-3,
    celu 0.14.
    """

    basis_name = "bspline"

    def __init__(self, num_basis: int = 8, degree: int = 3, **options) -> None:
        if degree < 0 or num_basis < degree + 1:
            raise ValueError(
                f"BSpline: num_basis={num_basis} needs degree={degree} >= 0 and num_basis >= degree + 1"
            )
        super().__init__(num_basis, **options)
        self.degree = degree
        self.init_coefficients()

    def basis_constants(self) -> tuple[float, ...]:
        return (float(self.degree),)
