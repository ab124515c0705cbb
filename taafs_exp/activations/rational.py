"""Padé activation unit (PAU): the rational TAAFS family."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from taafs_exp.activations.core import TAAFS

_FITS: dict[tuple, Tensor] = {}


class Rational(TAAFS):
    """``a(x) = P(t) / (1 + |Q(t)|_ε)`` (PAU), ``P = Σ_{i≤m} p_i t^i``, ``Q = Σ_{1≤j≤n} q_j t^j``.

    The coefficient vector is ``[p_0..p_m, q_1..q_n]`` (K = m + n + 1; 10 for degrees 5/4).
    ``|q|_ε = sqrt(q² + ε²)`` replaces PAU's ``|q|``, whose second derivative is a delta at
    q = 0 (double backward would be wrong there); ε = 1e-3 by default. Default map ``none``
    (t = x, as in PAU): the curve grows like ``(p_m/|q_n|)·x`` beyond the domain.
    Init: linearised least squares ``P - base·Q = base`` then L-BFGS on the true form (float64,
    cached per configuration). Init error (degrees 5/4, map none, domain [-4, 4]):
    base tanh 3.5e-5, base silu 2.7e-5, gelu 2.4e-3, softplus 6.8e-4, celu 2.9e-2.
    """

    def __init__(
        self,
        numerator_degree: int = 5,
        denominator_degree: int = 4,
        *,
        epsilon: float = 1e-3,
        input_map: str = "none",
        num_basis: int | None = None,
        **options,
    ) -> None:
        if num_basis is not None:
            raise ValueError(
                f"Rational: num_basis={num_basis} is not an option of rational; "
                "set numerator_degree / denominator_degree (K = m + n + 1)"
            )
        if numerator_degree < 0 or denominator_degree < 1:
            raise ValueError(
                f"Rational: numerator_degree={numerator_degree} must be >= 0 and "
                f"denominator_degree={denominator_degree} >= 1"
            )
        super().__init__(numerator_degree + denominator_degree + 1, input_map=input_map, **options)
        self.m, self.n, self.epsilon = numerator_degree, denominator_degree, float(epsilon)
        if self.residual:
            coeff, self.init_error = torch.zeros(self.num_basis, dtype=torch.float64), 0.0
        else:
            coeff = self._fit()
            x = self.fit_grid()
            self.init_error = (self.rational(self.map(x), coeff) - self.base_function(x)).abs().max().item()
        coeff = coeff.to(torch.get_default_dtype()).expand(self.coefficient_shape).clone()
        self.coefficients = nn.Parameter(coeff)

    def rational(self, t: Tensor, coeff: Tensor) -> Tensor:
        """``P(t) / (1 + sqrt(Q(t)² + ε²))`` by Horner (coeff ``(K,)`` or ``(C, K)``)."""
        p, q = coeff[..., : self.m + 1].unbind(-1), coeff[..., self.m + 1 :].unbind(-1)
        num = torch.zeros_like(t) + p[-1]
        for a in reversed(p[:-1]):
            num = num * t + a
        den = torch.zeros_like(t) + q[-1]
        for b in reversed(q[:-1]):
            den = den * t + b
        den = den * t
        return num / (1 + torch.sqrt(den * den + self.epsilon**2))

    def _fit(self) -> Tensor:
        key = (self.m, self.n, self.epsilon, self.base, self.domain, self.input_map, self.scale)
        if key not in _FITS:
            x = self.fit_grid()
            t, y = self.map(x), self.base_function(x)
            powers = t[:, None] ** torch.arange(max(self.m, self.n) + 1, dtype=t.dtype)
            design = torch.cat([powers[:, : self.m + 1], -y[:, None] * powers[:, 1 : self.n + 1]], 1)
            coeff = torch.linalg.lstsq(design, y[:, None], driver="gelsd").solution[:, 0]
            coeff.requires_grad_(True)
            opt = torch.optim.LBFGS([coeff], max_iter=500, line_search_fn="strong_wolfe")

            def closure() -> Tensor:
                opt.zero_grad()
                loss = (self.rational(t, coeff) - y).pow(2).mean()
                loss.backward()
                return loss

            with torch.enable_grad():
                opt.step(closure)
            _FITS[key] = coeff.detach()
        return _FITS[key].clone()

    def forward(self, x: Tensor) -> Tensor:
        self.check_channels(x)
        y = self.rational(self.map(x), self.coefficients.to(x.dtype))
        return y + self.base_function(x) if self.residual else y
