"""Time neighbour lists on one thread: ASE vs vesin vs our torch search.

The first frame of data/water/data_0 (192 atoms, 12.44 Å cubic box) is replicated to 192,
1 536 and 12 288 atoms; every engine builds the full (i, j, shift) list at r_c = 6 Å:
``ase.neighborlist.neighbor_list('ijS')``, ``neighbor_list(method="vesin")`` (the default on
the CPU: vesin plus our canonical sort and shifts), ``neighbor_list(method="cells")`` (the
hand-written torch search), and the bare ``vesin.NeighborList.compute`` call for reference.
Ratios are paired (:func:`taafs_exp.machine.paired_timing`): the median over repeats of the
slower engine's time over vesin's, timed back to back.

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
import vesin
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from taafs_exp.data import load_dataset, neighbor_list  # noqa: E402
from taafs_exp.machine import cpu_name, paired_timing  # noqa: E402

REPLICAS = [(1, 1, 1), (2, 2, 2), (4, 4, 4)]
CUTOFF = 6.0
THREADS = 1


def recorded(fn: Callable[[], object], seconds: list[float]) -> Callable[[], None]:
    """``fn`` that appends the wall time (s) of every call to ``seconds``."""

    def call() -> None:
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)

    return call


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
    torch.set_num_threads(THREADS)  # vesin gets torch.get_num_threads() threads too
    load = os.getloadavg()
    rows = []
    for replica in REPLICAS:
        atoms = water.repeat(replica)
        positions, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
        bare = vesin.NeighborList(cutoff=CUTOFF, full_list=True, n_threads=THREADS)
        engines = {
            "ase": lambda: ase_neighbor_list("ijS", atoms, CUTOFF),
            "vesin": lambda: neighbor_list(positions, CUTOFF, cell, method="vesin"),
            "ours": lambda: neighbor_list(positions, CUTOFF, cell, method="cells"),
            "bare": lambda: bare.compute(atoms.positions, atoms.cell.array, True, "ijS"),
        }
        pairs = {name: len(build()[-1]) for name, build in engines.items()}  # shifts; warm-up
        assert len(set(pairs.values())) == 1, f"{len(atoms)} atoms: pair counts {pairs}"
        vesin_s: list[float] = []
        ref = recorded(engines["vesin"], vesin_s)
        ase_ms, ase_ratio = paired_timing(engines["ase"], ref, args.repeats)
        ours_ms, ours_ratio = paired_timing(engines["ours"], ref, args.repeats)
        bare_ms, bare_ratio = paired_timing(engines["bare"], ref, args.repeats)
        vesin_ms = 1e3 * statistics.median(vesin_s)
        rows.append(
            (len(atoms), pairs["ase"], ase_ms, vesin_ms, ours_ms, bare_ms, ase_ratio, ours_ratio,
             bare_ratio)
        )  # fmt: skip
        print(
            f"{len(atoms):>6} atoms {pairs['ase']:>8} pairs  ASE {ase_ms:.1f} ms  vesin "
            f"{vesin_ms:.1f} ms  ours {ours_ms:.1f} ms  bare vesin {bare_ms:.1f} ms  "
            f"ASE/vesin {ase_ratio:.2f}  ours/vesin {ours_ratio:.2f}"
        )
    load_end = os.getloadavg()

    lines = [
        "# Neighbour-list build time on one thread: ASE vs vesin vs our torch search",
        "",
        "Water box (first frame of `data/water/data_0`, 192 atoms, 12.44 Å cubic cell) "
        f"replicated, full periodic list (every ordered pair and image) at r_c = {CUTOFF} Å, "
        "float64. ASE: `ase.neighborlist.neighbor_list('ijS', atoms, 6.0)`; vesin: "
        "`neighbor_list(..., method='vesin')`, the default on the CPU (vesin "
        f"{vesin.__version__} plus our canonical (i, j, n) sort and shifts); ours: "
        "`neighbor_list(..., method='cells')`, the hand-written torch search; bare vesin: "
        "`vesin.NeighborList(...).compute(..., 'ijS')` alone. Every engine lists the same "
        "number of pairs (checked). Times are medians over "
        f"{args.repeats} paired repeats after a warm-up (ms); each ratio is the median, over "
        "repeats, of that engine's time over the vesin build timed just before it "
        "(`taafs_exp.machine.paired_timing`), so > 1 means vesin is faster.",
        "",
        "| atoms | pairs | ASE (ms) | vesin (ms) | ours (ms) | bare vesin (ms) "
        "| ASE / vesin | ours / vesin | bare / vesin |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for atoms, pairs, ase_ms, vesin_ms, ours_ms, bare_ms, *ratios in rows:
        lines.append(
            f"| {atoms} | {pairs} | {ase_ms:.1f} | {vesin_ms:.1f} | {ours_ms:.1f} | "
            f"{bare_ms:.1f} | " + " | ".join(f"{r:.2f}×" for r in ratios) + " |"
        )
    lines += [
        "",
        f"- Threads: torch.set_num_threads({THREADS}); vesin n_threads={THREADS} (our wrapper "
        "passes `torch.get_num_threads()`); ASE is single-threaded numpy.",
        f"- Load average (1 min) {load[0]:.2f} before and {load_end[0]:.2f} after the run on "
        f"{os.cpu_count()} logical cores"
        + (
            ": the cores were shared with other jobs, so absolute times are inflated and "
            "noisy; the paired ratios cancel most of that."
            if max(load[0], load_end[0]) > 1.0
            else "."
        ),
        f"- Machine: {cpu_name()}, {platform.system()} {platform.release()}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, vesin {vesin.__version__}, "
        f"ASE {ase.__version__}, numpy {np.__version__}.",
        f"- Command: `{command()}` (or `make bench-neighbors`).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
