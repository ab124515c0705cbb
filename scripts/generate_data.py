"""Generate a reference data set into an extxyz file (energies eV, forces eV/Å).

    .venv/bin/python scripts/generate_data.py xtb_organic --num-frames 3000 --seed 0
    .venv/bin/python scripts/generate_data.py emt_alloy --out data/generated/emt_alloy.extxyz

``xtb_organic``: GFN2-xTB (tblite) Langevin MD of small H C N O F S Cl molecules.
``emt_alloy``: ASE EMT Langevin MD of strained, substituted fcc Cu–Ag–Au cells (plus stress and
virial). Same seed, same file. The output is replaced atomically, never left half-written.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ase.io

from taafs_exp.data import generate

ROOT = Path(__file__).resolve().parents[1]
GENERATORS = {"xtb_organic": generate.xtb_organic, "emt_alloy": generate.emt_alloy}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(GENERATORS))
    parser.add_argument("--out", type=Path, help="default: data/generated/<dataset>.extxyz")
    parser.add_argument("--num-frames", type=int, help="default: the generator's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)

    out = args.out or ROOT / "data" / "generated" / f"{args.dataset}.extxyz"
    options = {} if args.num_frames is None else {"num_frames": args.num_frames}
    start = time.perf_counter()
    path = GENERATORS[args.dataset](out, seed=args.seed, progress=not args.no_progress, **options)
    seconds = time.perf_counter() - start
    frames = ase.io.read(path, ":", format="extxyz")
    atoms = sum(len(f) for f in frames)
    elements = sorted({s for f in frames for s in f.get_chemical_symbols()})
    print(
        f"wrote {path}: {len(frames)} frames, {atoms} atoms, elements {' '.join(elements)}, "
        f"{seconds:.1f} s ({len(frames) / seconds:.1f} frames/s)"
    )


if __name__ == "__main__":
    main()
