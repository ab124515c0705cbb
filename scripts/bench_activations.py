"""Time every activation beside tanh: forward, forward+backward and the force-training pattern.

Writes ``results/bench/activations.md`` and ``.csv``. Run: ``make bench-activations``
(``.venv/bin/python scripts/bench_activations.py``). Times are medians over ``--repeats`` runs
after one warm-up, in ms, for ``--size`` elements; ratios are to tanh in the same dtype.
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
from taafs_exp.machine import cpu_name, paired_timing

ROOT = Path(__file__).resolve().parents[1]
MODES = ("forward", "forward+backward", "force")


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


def _configs() -> list[tuple[str, int | None, str, nn.Module]]:
    """(name, K, path, module) for tanh and every TAAFS family at K = 4, 8, 16 (rational: 5/4)."""
    out: list[tuple[str, int | None, str, nn.Module]] = [("tanh", None, "torch", nn.Tanh())]
    for name in available_activations():
        act = build_activation(name)
        if not isinstance(act, TAAFS):
            continue
        if not isinstance(act, BasisActivation):
            out.append((name, act.num_basis, "autograd", act))
            continue
        for k in (4, 8, 16):  # the slow naive reference only at K = 8, to keep the run short
            for fused in (True, False) if k == 8 else (True,):
                act = build_activation(name, num_basis=k, fused=fused)
                out.append((name, k, "fused" if fused else "naive", act))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 keeps torch's default")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "activations")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = []
    start = time.perf_counter()
    tanh = nn.Tanh()
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(args.size, dtype=dtype) * 2
        for name, k, path, act in _configs():
            act = act.to(dtype)
            reps = args.naive_repeats if path == "naive" else args.repeats
            for mode in MODES:
                ms, ratio = paired_timing(_step(act, x, mode), _step(tanh, x, mode), reps)
                rows.append(dict(activation=name, num_basis=k or "", path=path, dtype=str(dtype)[6:],
                                 mode=mode, ms=round(ms, 3), ratio_to_tanh=round(ratio, 2)))
            print(f"{str(dtype)[6:]:8s} {name:10s} K={k or '-':>2} {path:8s} "
                  + " ".join(f"{r['mode']}={r['ms']:.1f}ms({r['ratio_to_tanh']}x)" for r in rows[-3:]), flush=True)
            _write(args, rows, time.perf_counter() - start)  # after every row: partial runs keep data


def _write(args: argparse.Namespace, rows: list[dict], elapsed: float) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _write_markdown(args, rows, elapsed)


def _write_markdown(args: argparse.Namespace, rows: list[dict], elapsed: float) -> None:
    table: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        table.setdefault((r["dtype"], r["activation"], r["num_basis"], r["path"]), {})[r["mode"]] = r
    lines = [
        "# Activation speed",
        "",
        f"Command: `.venv/bin/python scripts/bench_activations.py --size {args.size} --repeats "
        f"{args.repeats} --naive-repeats {args.naive_repeats} --threads {args.threads}` "
        f"(`make bench-activations` runs the defaults), {elapsed:.0f} s.",
        "",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, CPU. The cores were shared with other jobs, so the "
        "machine may have been loaded; times are medians over repeats after a warm-up, and each "
        "ratio is the median over repeats of time / time of a tanh run made just before it; the "
        "tanh row (tanh against itself) shows the noise of the run.",
        "",
        f"{args.size:,} elements. `force` = `y = act(x); g, = grad(y.sum(), x, create_graph=True); "
        "(g**2).sum().backward()`. `forward` runs under no_grad; `forward+backward` = "
        "`act(x).sum().backward()` (coefficient gradients included). Default options (tanh base, "
        "tanh input map, layer sharing). Paths: `fused` = custom autograd Functions "
        "(`_Series`/`_Project`), `naive` = autograd through the (N, K) basis tensor, `autograd` = "
        "plain torch ops (rational).",
        "",
        "| dtype | activation | K | path | forward ms (×tanh) | fwd+bwd ms (×tanh) | force ms (×tanh) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (dtype, name, k, path), modes in table.items():
        cells = [f"{modes[m]['ms']:.1f} ({modes[m]['ratio_to_tanh']:.2f})" for m in MODES]
        lines.append(f"| {dtype} | {name} | {k} | {path} | " + " | ".join(cells) + " |")
    goal = [
        f"{r['activation']} {r['dtype']} {r['ratio_to_tanh']:.1f}×"
        for r in rows
        if r["mode"] == "force" and r["path"] in ("fused", "autograd") and r["num_basis"] in (8, 10)
    ]
    lines += [
        "",
        "Goal ≤ 2× tanh for `force` at K = 8 (fused path; rational 5/4 has K = 10): "
        + (", ".join(goal) or "no rows yet") + ".",
        "",
        "Why eager stays above the goal: each basis step is one or two full-size elementwise "
        "kernels (Clenshaw / recurrence / chain rule), about 100 kernel launches for the force "
        "pattern at K = 8 against about 10 for tanh; the custom Functions remove the N×K tensors "
        "and the projection of the first backward, not the launches. A fused kernel per order "
        "(one pass computing a, a', a'' and the K projections) is the remaining route.",
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
