"""Time every activation beside tanh: forward, forward+backward and the force-training pattern.

Writes ``results/bench/activations.md`` and ``.csv``. Run: ``make bench-activations``
(``.venv/bin/python scripts/bench_activations.py``). Times are medians over ``--repeats`` runs
after one warm-up (which compiles), in ms, for ``--size`` elements; each ratio is the median of
time / time of a tanh run made just before it, in the same dtype and process.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from taafs_exp.activations import TAAFS, BasisActivation, available_activations, build_activation
from taafs_exp.machine import cpu_name, load_average, paired_timing

ROOT = Path(__file__).resolve().parents[1]
MODES = ("forward", "forward+backward", "force")
#: The previous implementation's table (custom Functions, several kernels per stage), commit d412c85.
BEFORE = ROOT / "results" / "bench" / "activations_before_kernels.csv"


def _step(act: nn.Module, x: torch.Tensor, mode: str) -> Callable[[], None]:
    """One timed call of ``mode`` (see module docstring)."""

    def forward() -> None:
        with torch.no_grad():
            act(x)

    def forward_backward() -> None:
        xx = x.detach().requires_grad_()
        act(xx).sum().backward()

    def force() -> None:
        xx = x.detach().requires_grad_()
        (g,) = torch.autograd.grad(act(xx).sum(), xx, create_graph=True)
        (g**2).sum().backward()

    return {"forward": forward, "forward+backward": forward_backward, "force": force}[mode]


def _configs(naive: bool, other_k: bool) -> list[tuple[str, int | None, str, nn.Module]]:
    """(name, K, path, module): tanh, every linear basis compiled at K = 8 (and 4, 16 with
    ``other_k``) and eager (and naive) at K = 8; rational (degrees 5/4, K = 10) through autograd."""
    out: list[tuple[str, int | None, str, nn.Module]] = [("tanh", None, "torch", nn.Tanh())]
    for name in available_activations():
        act = build_activation(name)
        if not isinstance(act, TAAFS):
            continue
        if not isinstance(act, BasisActivation):
            out.append((name, act.num_basis, "autograd", act))
            continue
        for k in (4, 8, 16) if other_k else (8,):
            paths = ("compiled", "eager", "naive") if k == 8 and naive else ("compiled", "eager") if k == 8 else ("compiled",)
            out += [(name, k, path, build_activation(name, num_basis=k, kernel=path)) for path in paths]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--no-naive", action="store_true", help="skip the slow naive reference rows")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "activations")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows: list[dict] = []
    load = {"before": load_average()}
    start = time.perf_counter()
    tanh = nn.Tanh()
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(args.size, dtype=dtype) * 2
        for name, k, path, act in _configs(not args.no_naive, other_k=dtype == torch.float32):
            act = act.to(dtype)
            first = time.perf_counter()
            _step(act, x, "force")()  # compiles the kernels the force pattern needs
            compile_s = time.perf_counter() - first
            for mode in MODES:
                ms, ratio = paired_timing(_step(act, x, mode), _step(tanh, x, mode), args.repeats)
                rows.append(dict(activation=name, num_basis=k or "", path=path, dtype=str(dtype)[6:],
                                 mode=mode, ms=round(ms, 3), ratio_to_tanh=round(ratio, 2),
                                 first_call_s=round(compile_s, 1)))
            print(f"{str(dtype)[6:]:8s} {name:10s} K={k or '-':>2} {path:8s} "
                  + " ".join(f"{r['mode']}={r['ms']:.1f}ms({r['ratio_to_tanh']}x)" for r in rows[-3:]), flush=True)
            load["after"] = load_average()
            _write(args, rows, time.perf_counter() - start, load)  # after every row: partial runs keep data


def _write(args: argparse.Namespace, rows: list[dict], elapsed: float, load: dict) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    args.out.with_suffix(".md").write_text(_markdown(args, rows, elapsed, load))


def _before() -> dict[tuple[str, str, str, str], float]:
    """Force-pattern ratios of the previous implementation by (dtype, activation, K, mode)."""
    if not BEFORE.exists():
        return {}
    with BEFORE.open() as fh:
        return {(r["dtype"], r["activation"], r["num_basis"], r["mode"]): float(r["ratio_to_tanh"])
                for r in csv.DictReader(fh) if r["path"] in ("fused", "autograd", "torch")}


def _markdown(args: argparse.Namespace, rows: list[dict], elapsed: float, load: dict) -> str:
    table: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        table.setdefault((r["dtype"], r["activation"], r["num_basis"], r["path"]), {})[r["mode"]] = r
    before = _before()
    lines = [
        "# Activation speed",
        "",
        f"Command: `.venv/bin/python scripts/bench_activations.py --size {args.size} --repeats "
        f"{args.repeats} --threads {args.threads}{' --no-naive' if args.no_naive else ''}` "
        f"(`make bench-activations` runs the defaults), {elapsed:.0f} s.",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s), CPU. Load average (1/5/15 min) before "
        f"{load['before']}, after {load.get('after', load['before'])}. Times are medians over "
        "repeats after a warm-up; each ratio is the median over repeats of time / time of a tanh "
        "run made just before it, in the same process; the tanh row (tanh against itself) shows "
        "the noise of the run.",
        "",
        f"{args.size:,} elements. `force` = `y = act(x); g, = grad(y.sum(), x, create_graph=True); "
        "(g**2).sum().backward()`; `forward` runs under no_grad; `forward+backward` = "
        "`act(x).sum().backward()` (coefficient gradients included). Default options (tanh base, "
        "tanh input map, layer sharing). Paths: `compiled` = the one-pass kernels through "
        "torch.compile (`taafs_exp/activations/kernels.py`), `eager` = the same kernels uncompiled, "
        "`naive` = autograd through the (N, K) basis tensor, `autograd` = plain torch ops "
        "(rational). `first call` = the first force-pattern call, compilation included (s). "
        "`before` = the force ratio of the previous implementation (custom autograd Functions, "
        "about 190 kernels per step; commit d412c85, `activations_before_kernels.csv`, another "
        "session and load). K = 4 and 16 are timed in float32 only.",
        "",
        "| dtype | activation | K | path | forward ms (×tanh) | fwd+bwd ms (×tanh) | force ms (×tanh) | before (×tanh) | first call (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (dtype, name, k, path), modes in table.items():
        cells = [f"{modes[m]['ms']:.1f} ({modes[m]['ratio_to_tanh']:.2f})" for m in MODES if m in modes]
        old = before.get((dtype, name, str(k), "force")) if path in ("compiled", "autograd", "torch") else None
        first = modes["force"]["first_call_s"] if "force" in modes else ""
        lines.append(f"| {dtype} | {name} | {k} | {path} | " + " | ".join(cells)
                     + f" | {'' if old is None else f'{old:.2f}'} | {first} |")
    goal = [
        f"{r['activation']} {r['dtype']} {r['ratio_to_tanh']:.2f}×"
        for r in rows
        if r["mode"] == "force" and r["path"] in ("compiled", "autograd") and r["num_basis"] in (8, 10)
    ]
    lines += [
        "",
        "Goal for `force` at K = 8, one thread: ≤ 2× tanh for Chebyshev, Legendre, B-spline and "
        "Fourier, ≤ 3× for rational (degrees 5/4, K = 10; no goal for Gaussian). Measured: "
        + (", ".join(goal) or "no rows yet") + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
