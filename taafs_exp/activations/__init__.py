"""TAAFS activation library: trainable curves ``a(x) = Σ c_k φ_k(g(x)) (+ base(x))``.

Entry points: :func:`available_activations`, :func:`build_activation`,
:func:`replace_activations`, :func:`extra_parameter_count`, :func:`taafs_parameters`.
"""

from taafs_exp.activations.bases import BSpline, Chebyshev, Fourier, Gaussian, Legendre
from taafs_exp.activations.core import BASE_FUNCTIONS, BasisActivation, TAAFS
from taafs_exp.activations.rational import Rational
from taafs_exp.activations.registry import (
    DEFAULT_TYPES, FIXED_ACTIVATIONS, PerCallActivation, available_activations, build_activation,
    extra_parameter_count, replace_activations, taafs_parameters,
)

__all__ = [
    "BASE_FUNCTIONS", "BSpline", "BasisActivation", "Chebyshev", "DEFAULT_TYPES", "FIXED_ACTIVATIONS", "Fourier",
    "Gaussian", "Legendre", "PerCallActivation", "Rational", "TAAFS", "available_activations", "build_activation", "extra_parameter_count",
    "replace_activations", "taafs_parameters",
]
