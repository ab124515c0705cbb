"""Registry, options, configs, parameter counts, dtype/device, state_dict, model surgery."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from act_helpers import FIXED, TRAINABLE, make
from taafs_exp.activations import (
    TAAFS, PerCallActivation, available_activations, build_activation, extra_parameter_count,
    replace_activations,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "activation"
K_DEFAULT = {"rational": 10}  # numerator 5 + 1, denominator 4


def test_registry_names() -> None:
    assert FIXED == ["tanh", "silu", "gelu", "relu", "softplus", "celu"]
    assert TRAINABLE == ["bspline", "chebyshev", "fourier", "legendre", "gaussian", "rational"]


#: What each fixed activation computes (celu is ANI's, α = 0.1).
REFERENCE = {"tanh": torch.tanh, "silu": F.silu, "gelu": F.gelu, "relu": F.relu, "softplus": F.softplus,
             "celu": lambda x: F.celu(x, alpha=0.1)}


@pytest.mark.parametrize("name", available_activations())
def test_every_factory_takes_num_channels(name: str) -> None:
    """Every factory accepts num_channels; a fixed activation computes its function, a TAAFS
    curve starts as its base (tanh by default) within its stated init error."""
    act = build_activation(name, num_channels=7)
    x = torch.randn(5, 7)
    y = act(x)
    assert y.shape == (5, 7)
    expected = REFERENCE[name](x) if name in REFERENCE else torch.tanh(x)
    torch.testing.assert_close(y, expected, atol=getattr(act, "init_error", 0.0) + 1e-6, rtol=0)


def test_yaml_stems_match_registry() -> None:
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(available_activations())


@pytest.mark.parametrize("name", available_activations())
def test_yaml_instantiates(name: str) -> None:
    act = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))()
    assert isinstance(act, nn.Module)
    assert isinstance(act, TAAFS) == (name in TRAINABLE)
    x = torch.linspace(-3, 3, 11)
    # a TAAFS yaml starts from the model's base, tanh outside a model config
    expected = torch.tanh(x) if isinstance(act, TAAFS) else REFERENCE[name](x)
    torch.testing.assert_close(act(x), expected, atol=5e-3, rtol=0)


def test_hydra_style_overrides_reach_the_module() -> None:
    root = OmegaConf.create({"activation": OmegaConf.load(CONF / "chebyshev.yaml")})
    root = OmegaConf.merge(root, OmegaConf.from_dotlist(["activation.num_basis=16", "activation.share=channel"]))
    act = instantiate(root.activation)(num_channels=5)
    assert act.coefficients.shape == (5, 16)


@pytest.mark.parametrize("name", TRAINABLE)
def test_parameter_counts(name: str) -> None:
    k = K_DEFAULT.get(name, 8)
    layer, channel = build_activation(name), build_activation(name, share="channel", num_channels=6)
    assert sum(p.numel() for p in layer.parameters()) == k == extra_parameter_count(layer)
    assert sum(p.numel() for p in channel.parameters()) == 6 * k == extra_parameter_count(channel)
    if name != "rational":
        assert build_activation(name, num_basis=5).coefficients.numel() == 5


@pytest.mark.parametrize(
    "call,bad,valid",
    [
        (lambda: build_activation("swish"), "'swish'", "chebyshev"),
        (lambda: build_activation("chebyshev", num_basis=0), "num_basis=0", ">= 1"),
        (lambda: build_activation("bspline", domain=(1.0, 1.0)), "domain=(1.0, 1.0)", "lo < hi"),
        (lambda: build_activation("legendre", share="channel"), "num_channels", "share='layer'"),
        (lambda: build_activation("fourier", share="atom"), "'atom'", "'channel'"),
        (lambda: build_activation("gaussian", input_map="log"), "'log'", "'affine'"),
        (lambda: build_activation("chebyshev", base="swish"), "'swish'", "'silu'"),
        (lambda: build_activation("bspline", num_basis=3), "num_basis=3", "degree + 1"),
        (lambda: build_activation("rational", num_basis=8), "num_basis=8", "numerator_degree"),
        (lambda: build_activation("tanh", num_basis=8), "num_basis", "no options"),
    ],
)
def test_errors_name_the_bad_value_and_the_fix(call, bad: str, valid: str) -> None:
    with pytest.raises(ValueError) as err:
        call()
    assert bad in str(err.value) and valid in str(err.value)


def test_channel_mismatch_is_reported() -> None:
    with pytest.raises(ValueError, match="last one"):
        build_activation("chebyshev", share="channel", num_channels=4)(torch.randn(4, 3))


@pytest.mark.parametrize("name", TRAINABLE)
def test_state_dict_round_trip(name: str) -> None:
    a, b = build_activation(name, share="channel", num_channels=3), build_activation(name, share="channel", num_channels=3)
    with torch.no_grad():
        a.coefficients.add_(torch.randn_like(a.coefficients) * 0.1)
    x = torch.randn(8, 3)
    assert not torch.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x), b(x))
    assert list(a.state_dict()) == ["coefficients"]


@pytest.mark.parametrize("name", TRAINABLE)
def test_float32_force_pattern_matches_float64(name: str) -> None:
    act = build_activation(name)
    x = torch.randn(1000) * 2

    def force(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        act.to(dtype).zero_grad()
        xx = x.to(dtype).requires_grad_()
        (g,) = torch.autograd.grad(act(xx).sum(), xx, create_graph=True)
        (g**2).sum().backward()
        return g.detach().double(), act.coefficients.grad.double()

    g32, c32 = force(torch.float32)
    assert g32.dtype == torch.float64 and act.coefficients.dtype == torch.float32
    g64, c64 = force(torch.float64)
    torch.testing.assert_close(g32, g64, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(c32, c64, rtol=1e-3, atol=1e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", TRAINABLE)
def test_cuda_matches_cpu(name: str) -> None:
    """Forces and the force-training gradients (x and coefficients) on CUDA equal the CPU's."""
    act = make(name, "channel")
    x = torch.randn(32, 3, dtype=torch.float64)

    def force_pattern() -> tuple[torch.Tensor, ...]:
        act.zero_grad()
        xx = x.to(act.coefficients.device).requires_grad_()
        (g,) = torch.autograd.grad(act(xx).sum(), xx, create_graph=True)
        (gx,) = torch.autograd.grad((g**2).sum(), xx, retain_graph=True)
        (g**2).sum().backward()
        return g.detach().cpu(), gx.cpu(), act.coefficients.grad.cpu()

    cpu = force_pattern()
    act.cuda()
    for a, b in zip(force_pattern(), cpu):
        torch.testing.assert_close(a, b)


def _mlp() -> nn.Sequential:
    shared = nn.Tanh()  # one object at two call sites
    return nn.Sequential(nn.Linear(3, 16), shared, nn.Linear(16, 16), shared, nn.Linear(16, 1))


@pytest.mark.parametrize("share,added", [("layer", 2 * 8), ("channel", 2 * 16 * 8)])
def test_replace_activations_in_mlp(share: str, added: int) -> None:
    torch.manual_seed(0)
    model, x = _mlp(), torch.randn(20, 3)
    before, n_before = model(x), sum(p.numel() for p in model.parameters())
    # model surgery, not kernels: the eager ones (no float32 graphs compiled for 16 channels)
    count = replace_activations(
        model, lambda **kw: build_activation("chebyshev", share=share, kernel="eager", **kw)
    )
    assert count == added == sum(p.numel() for p in model.parameters()) - n_before
    assert count == extra_parameter_count(model)
    assert model[1] is not model[3] and isinstance(model[1], TAAFS)
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=0)


def test_replace_activations_in_torchani_atomic_network() -> None:
    from torchani.nn import AtomicNetwork

    torch.manual_seed(0)
    net, x = AtomicNetwork((8, 16, 12, 1), activation=nn.Tanh()), torch.randn(30, 8)
    before, n_before = net(x), sum(p.numel() for p in net.parameters())
    count = replace_activations(  # eager kernels: the test is the surgery, not the kernels
        net, lambda **kw: build_activation("bspline", share="channel", kernel="eager", **kw)
    )
    assert isinstance(net.activation, PerCallActivation)
    assert [site.num_channels for site in net.activation.sites] == [16, 12]  # one per layer
    assert count == (16 + 12) * 8 == sum(p.numel() for p in net.parameters()) - n_before
    for _ in range(2):  # the call counter resets on every forward
        out = net(x)
        torch.testing.assert_close(out, before, atol=1e-5, rtol=0)
    out.sum().backward()
    assert all(site.coefficients.grad.abs().sum() > 0 for site in net.activation.sites)
