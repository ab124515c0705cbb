"""Molecular dynamics with trained potentials: ASE calculator, watched NVE/NVT runs and
observables (energy drift, RDFs)."""

from taafs_exp.md.calculator import (
    CheckpointError,
    TAAFSCalculator,
    activation_names,
    load_potential,
)
from taafs_exp.md.integrate import MDRun, StabilityLimits, frame_atoms, make_dynamics, run_md
from taafs_exp.md.observables import (
    RDF,
    energy_drift,
    first_peak,
    radial_distribution,
    rdf_distance,
)

__all__ = [
    "RDF",
    "CheckpointError",
    "MDRun",
    "StabilityLimits",
    "TAAFSCalculator",
    "activation_names",
    "energy_drift",
    "frame_atoms",
    "load_potential",
    "make_dynamics",
    "first_peak",
    "radial_distribution",
    "rdf_distance",
    "run_md",
]
