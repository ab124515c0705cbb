"""Short-range pair scans: does the model's energy rise as two atoms are pushed together?

An MD run that collapses (two atoms < 0.5 Å apart) has found a region where the learned energy
falls as a pair closes: a "hole" below the shortest distances of the training data. A scan
places one atom (or a rigid group, e.g. a whole molecule) at distance r from another along their
current direction, every other atom fixed, and records E(r) (eV); a physical surface rises
steeply as r → 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator


def _group(moving: int | Sequence[int]) -> list[int]:
    """The moved atoms, led by the one whose distance is scanned."""
    return [moving] if isinstance(moving, int) else list(moving)


def pair_scan(
    atoms: Atoms,
    calc: Calculator,
    fixed: int,
    moving: int | Sequence[int],
    distances: Sequence[float],
) -> np.ndarray:
    """E(r) in eV with atom ``moving`` (or the rigid group ``moving``, led by its first atom) at
    each distance r (Å) from atom ``fixed`` along their minimum-image direction; the other atoms
    stay where they are."""
    group = _group(moving)
    direction = atoms.get_distance(fixed, group[0], mic=True, vector=True)
    r0 = np.linalg.norm(direction)
    direction = direction / r0
    start = atoms.get_positions()
    energies = []
    for r in distances:
        probe = atoms.copy()
        positions = start.copy()
        positions[group] += (r - r0) * direction
        probe.set_positions(positions)
        probe.calc = calc
        energies.append(probe.get_potential_energy())
    return np.asarray(energies)


def water_pairs(atoms: Atoms) -> dict[str, tuple[int, int | list[int]]]:
    """Three probes of a water frame from its first O: its own (nearest) H, ``O-H bond``; the
    nearest H of another molecule, ``O-H intermolecular`` (its H-bond partner); and the nearest
    other O with its two H moved as a rigid molecule, ``O-O molecule``."""
    oxygens = np.flatnonzero(atoms.numbers == 8)
    hydrogens = np.flatnonzero(atoms.numbers == 1)
    oxygen = int(oxygens[0])
    order = hydrogens[np.argsort(atoms.get_distances(oxygen, hydrogens, mic=True))]
    # the two nearest H are the molecule's own; the third nearest belongs to another molecule
    others = oxygens[1:]
    partner = int(others[np.argmin(atoms.get_distances(oxygen, others, mic=True))])
    partner_h = hydrogens[np.argsort(atoms.get_distances(partner, hydrogens, mic=True))[:2]]
    return {
        "O-H bond": (oxygen, int(order[0])),
        "O-H intermolecular": (oxygen, int(order[2])),
        "O-O molecule": (oxygen, [partner, *map(int, partner_h)]),
    }


def largest_drop_when_closing(distances: Sequence[float], energy: Sequence[float]) -> float:
    """max over r_i < r_j of E(r_j) − E(r_i), eV (0 when E never falls as the pair closes):
    how far the energy drops somewhere on the way in. ``distances`` ascending."""
    e = np.asarray(energy, dtype=np.float64)
    return float(max(0.0, max(e[j] - e[:j].min() for j in range(1, e.size)))) if e.size > 1 else 0.0


def scan_report(
    atoms: Atoms, calc: Calculator, distances: Sequence[float]
) -> dict[str, dict[str, object]]:
    """Per :func:`water_pairs` pair, over ``distances`` below r_0 − 0.01 Å and the pair's own
    distance r_0 in the frame: ``r_A``, ``energy_eV`` (relative to E(r_0)),
    ``largest_drop_when_closing_eV`` (:func:`largest_drop_when_closing`; > 0 is a hole) and
    ``wall_eV``, the highest E on the way in: what a pair must climb before any hole."""
    out = {}
    for name, (fixed, moving) in water_pairs(atoms).items():
        r0 = float(atoms.get_distance(fixed, _group(moving)[0], mic=True))
        # distances within 0.01 Å of r_0 would print as r_0 again
        r = sorted({float(d) for d in distances if d < r0 - 0.01} | {r0})
        energy = pair_scan(atoms, calc, fixed, moving, r)
        energy = energy - energy[-1]
        out[name] = {
            "r_A": r,
            "energy_eV": energy.tolist(),
            "largest_drop_when_closing_eV": largest_drop_when_closing(r, energy),
            "wall_eV": float(energy.max()),
        }
    return out
