"""Time taafs_exp.data.neighbor_list against ase.neighborlist.neighbor_list.

The first frame of data/water/data_0 (192 atoms, 12.44 Å cubic box) is replicated to 192,
1 536 and 12 288 atoms; both build the full (i, j, shift) list at r_c = 6 Å. Reports the
median wall time of ``--repeats`` builds (after one warm-up) and writes a markdown table.

    .venv/bin/python scripts/bench_neighbors.py [--repeats 5] [--out results/bench/neighbors.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import ase
import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from taafs_exp.data import load_dataset, neighbor_list  # noqa: E402
from taafs_exp.machine import cpu_name

REPLICAS = [(1, 1, 1), (2, 2, 2), (4, 4, 4)]
CUTOFF = 6.0


def median_time(build: Callable[[], object], repeats: int) -> float:
    """Median wall time (s) of ``repeats`` calls, after one untimed warm-up."""
    build()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        build()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command() -> str:
    """The command line that ran this script, with the interpreter relative to the repo."""
    python = Path(sys.executable)
    if python.is_relative_to(ROOT):
        python = python.relative_to(ROOT)
    return " ".join([str(python), *sys.argv])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "neighbors.md")
    args = parser.parse_args()

    frame = load_dataset(ROOT / "data" / "water" / "data_0")[0]
    water = Atoms(
        numbers=frame.numbers.numpy(),
        positions=frame.positions.numpy(),
        cell=frame.cell.numpy(),
        pbc=True,
    )
    default_threads = torch.get_num_threads()
    load = os.getloadavg()
    rows = []
    for replica in REPLICAS:
        atoms = water.repeat(replica)
        positions, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
        pairs = len(ase_neighbor_list("i", atoms, CUTOFF))
        ours_pairs = neighbor_list(positions, CUTOFF, cell)[0].shape[1]
        assert ours_pairs == pairs, f"{len(atoms)} atoms: {ours_pairs} pairs, ASE {pairs}"
        t_ase = median_time(lambda: ase_neighbor_list("ijS", atoms, CUTOFF), args.repeats)
        timings = {}
        for threads in sorted({default_threads, 1}, reverse=True):
            torch.set_num_threads(threads)
            timings[threads] = median_time(
                lambda: neighbor_list(positions, CUTOFF, cell), args.repeats
            )
        torch.set_num_threads(default_threads)
        rows.append((len(atoms), pairs, t_ase, timings))
        print(f"{len(atoms):>6} atoms  {pairs:>9} pairs  ASE {t_ase:.4f} s  ours {timings}")

    thread_cols = sorted(rows[0][3], reverse=True)
    names = {t: f"ours, {t} thread{'s' * (t > 1)}" for t in thread_cols}
    header = (
        "| atoms | pairs | ASE (s) | "
        + " | ".join(f"{names[t]} (s)" for t in thread_cols)
        + " | "
        + " | ".join(f"ASE / {names[t]}" for t in thread_cols)
        + " |"
    )
    lines = [
        "# Neighbour-list build time: `taafs_exp.data.neighbor_list` vs ASE",
        "",
        "Water box (first frame of `data/water/data_0`, 192 atoms, 12.44 Å cubic cell) "
        f"replicated, full periodic list (every ordered pair and image) at r_c = {CUTOFF} Å, "
        f"float64. Median wall time of {args.repeats} builds after one warm-up; ASE is "
        "`ase.neighborlist.neighbor_list('ijS', atoms, 6.0)`. Both lists have the same "
        "number of pairs (checked).",
        "",
        header,
        "|" + "---|" * (3 + 2 * len(thread_cols)),
    ]
    for atoms, pairs, t_ase, timings in rows:
        times = " | ".join(f"{timings[t]:.4f}" for t in thread_cols)
        ratios = " | ".join(f"{t_ase / timings[t]:.2f}×" for t in thread_cols)
        lines.append(f"| {atoms} | {pairs} | {t_ase:.4f} | {times} | {ratios} |")
    lines += ["", "Goal, not slower than ASE from 1 536 atoms on:"]
    for t in thread_cols:
        slower = [
            f"{a} atoms" for a, _, t_ase, timings in rows if a >= 1536 and timings[t] > t_ase
        ]
        lines.append(f"- {names[t]}: " + (f"missed at {', '.join(slower)}." if slower else "met."))
    load_end = os.getloadavg()[0]
    lines += [
        "",
        f"- Machine: {cpu_name()}, {os.cpu_count()} logical cores, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, torch {torch.__version__} "
        f"(default {default_threads} threads), ASE {ase.__version__}, numpy {np.__version__}.",
        f"- Load average {load[0]:.1f} before and {load_end:.1f} after the run on "
        f"{os.cpu_count()} cores"
        + (
            ": the cores were shared with other engineers' jobs, so absolute times are "
            "inflated and noisy. Under such oversubscription torch's OpenMP threads wait at "
            "every parallel region for a descheduled partner thread, which makes the "
            "multi-thread column much slower than the single-thread one; ASE (numpy) is "
            "single-threaded. `torch.set_num_threads(1)` (or OMP_NUM_THREADS=1) avoids it."
            if max(load[0], load_end) > 1.0
            else "."
        ),
        f"- Command: `{command()}` (or `make bench-neighbors`).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
