"""The compiled kernels as a deployable form: bounded recompiles, export, fallback without a compiler."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from act_helpers import make
from taafs_exp.activations import build_activation, kernels


def _force_pattern(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(act(x).sum(), x, create_graph=True)
    (g**2).sum().backward()
    return g.detach()


@pytest.mark.parametrize("share", ["layer", "channel"])
def test_new_row_counts_do_not_recompile(share: str) -> None:
    """Atom and neighbour counts change every frame: after the first size, no new graph."""
    act = make("legendre", share)  # 3 channels: the graphs of the gradient tests
    _force_pattern(act, torch.randn(37, 3, dtype=torch.float64))
    before = counters["stats"]["unique_graphs"]
    for rows in (2, 64, 301, 1000):
        _force_pattern(act, torch.randn(rows, 3, dtype=torch.float64))
    assert counters["stats"]["unique_graphs"] == before


def test_export_keeps_one_op_per_activation() -> None:
    """``torch.export`` carries the activation as one ``taafs`` op that computes the same."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), build_activation("bspline"), nn.Linear(4, 1))
    x = torch.randn(6, 3)
    with torch.no_grad():
        program = torch.export.export(model, (x,))
        expected = model(x)
    ops = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert sum(op.startswith("taafs.") for op in ops) == 1, ops
    torch.testing.assert_close(program.module()(x), expected)


def test_compiled_model_calls_the_ops() -> None:
    """A ``torch.compile``d model with a TAAFS activation equals the eager model."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), build_activation("chebyshev"), nn.Linear(4, 1))
    x = torch.randn(6, 3)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(x), model(x))


def test_no_compiler_falls_back_to_eager_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    monkeypatch.setattr(kernels, "_FALLBACK", [])
    act = make("fourier", "channel", kernel="compiled")
    x = torch.randn(20, 3, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = _force_pattern(act, x)
        _force_pattern(act, x)
    messages = [str(w.message) for w in caught if "TAAFS" in str(w.message)]
    assert len(messages) == 1 and "no C++ compiler" in messages[0] and "eager" in messages[0]
    assert not kernels.compiled_kernels_available()
    act.kernel = "eager"
    torch.testing.assert_close(fast, _force_pattern(act, x), rtol=0, atol=0)


def test_force_evaluation_skips_the_coefficient_projection(monkeypatch: pytest.MonkeyPatch) -> None:
    """``grad(E, x)`` (forces, MD) runs no projection; ``backward()`` (training) does."""
    calls = []
    original = kernels.project_kernel
    monkeypatch.setattr(kernels, "project_kernel", lambda *a: calls.append(1) or original(*a))
    act = make("chebyshev", kernel="eager")
    x = torch.randn(10, dtype=torch.float64, requires_grad=True)
    torch.autograd.grad(act(x).sum(), x)
    assert calls == []
    act(x).sum().backward()
    assert calls == [1] and act.coefficients.grad is not None
