"""Activation registry, model surgery and parameter accounting."""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import Tensor, nn

from taafs_exp.activations.bases import BSpline, Chebyshev, Fourier, Gaussian, Legendre
from taafs_exp.activations.core import TAAFS
from taafs_exp.activations.rational import Rational

#: Fixed activations; ``celu`` is ANI's CELU with α = 0.1 (torchani's ``TightCELU``).
_FIXED: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU, "softplus": nn.Softplus,
    "celu": functools.partial(nn.CELU, alpha=0.1),
}
#: Names of the fixed activations (the baselines TAAFS is compared with).
FIXED_ACTIVATIONS: tuple[str, ...] = tuple(_FIXED)
_TRAINABLE: dict[str, type[TAAFS]] = {
    "bspline": BSpline, "chebyshev": Chebyshev, "fourier": Fourier,
    "legendre": Legendre, "gaussian": Gaussian, "rational": Rational,
}
#: Module types :func:`replace_activations` swaps by default.
DEFAULT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Tanh, nn.SiLU, nn.GELU, nn.CELU, nn.ELU, nn.ReLU, nn.Softplus, nn.Mish,
)


def available_activations() -> list[str]:
    """Registry names: fixed activations first, then the TAAFS families."""
    return [*_FIXED, *_TRAINABLE]


def build_activation(name: str, num_channels: int | None = None, **options) -> nn.Module:
    """One activation module by registry name.

    Every name accepts ``num_channels`` so that all factories share one signature (backbones
    call ``factory(num_channels=width)`` without knowing which activation they get); fixed
    activations ignore it and take no other option. TAAFS options: see :class:`TAAFS`.
    """
    if name in _FIXED:
        if options:
            raise ValueError(f"activation {name!r} is fixed and takes no options; got {sorted(options)}")
        return _FIXED[name]()
    if name in _TRAINABLE:
        return _TRAINABLE[name](num_channels=num_channels, **options)
    raise ValueError(f"unknown activation {name!r}; choose one of {available_activations()}")


class PerCallActivation(nn.Module):
    """Gives each of the ``len(sites)`` calls one owner forward makes its own activation.

    For modules that apply one activation attribute at several layers (torchani's
    ``AtomicNetwork``). A forward pre-hook on the owner resets the call counter.
    """

    def __init__(self, sites: list[nn.Module]) -> None:
        super().__init__()
        self.sites = nn.ModuleList(sites)
        self.calls = 0

    def reset(self, *_) -> None:
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        site = self.sites[self.calls % len(self.sites)]
        self.calls += 1
        return site(x)


def _repeated_calls(owner: nn.Module, name: str) -> list[nn.Module] | None:
    """The layers after which ``owner.<name>`` is applied, when it is applied more than once.

    Recognises the torchani ``AtomicNetwork`` pattern: ``for layer in self.layers:
    features = self.activation(layer(features))``.
    """
    layers = getattr(owner, "layers", None)
    if name == "activation" and isinstance(layers, nn.ModuleList) and hasattr(owner, "final_layer"):
        return list(layers)
    return None


def _width(module: nn.Module | None) -> int | None:
    return getattr(module, "out_features", None)


def replace_activations(
    model: nn.Module,
    factory: Callable[..., nn.Module],
    types: tuple[type[nn.Module], ...] = DEFAULT_TYPES,
) -> int:
    """Swap every activation module of ``types`` in ``model`` for ``factory(num_channels=...)``.

    Each place a module is registered (a call site) gets a fresh instance, also when one object
    was registered at several places; an activation attribute applied at every layer of a
    torchani ``AtomicNetwork`` becomes a :class:`PerCallActivation` with one instance per layer.
    ``num_channels`` is the ``out_features`` of the preceding Linear when it can be read (previous
    entry of an ``nn.Sequential``, or the AtomicNetwork layer), else None. Functional calls
    (``F.silu(x)`` inside a forward) are not modules and cannot be swapped this way.

    Returns:
        the number of parameters added to the model.
    """
    before = sum(p.numel() for p in model.parameters())
    for owner in list(model.modules()):
        children = list(owner._modules.items())  # named_children() would skip repeats
        for pos, (name, child) in enumerate(children):
            if not isinstance(child, types) or isinstance(child, TAAFS):
                continue
            layers = _repeated_calls(owner, name)
            if layers is not None:
                new = PerCallActivation([factory(num_channels=_width(layer)) for layer in layers])
                owner.register_forward_pre_hook(new.reset)
            else:
                prev = children[pos - 1][1] if isinstance(owner, nn.Sequential) and pos else None
                new = factory(num_channels=_width(prev))
            setattr(owner, name, new)
    return sum(p.numel() for p in model.parameters()) - before


def taafs_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters inside TAAFS activations (their coefficients), in module order."""
    return [p for m in model.modules() if isinstance(m, TAAFS) for p in m.parameters()]


def extra_parameter_count(model: nn.Module) -> int:
    """Parameters inside TAAFS activations: what TAAFS adds over the same model with the base."""
    return sum(p.numel() for p in taafs_parameters(model))
