"""The README's MD snippet runs as printed, on a checkpoint of a tiny training."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from taafs_exp.md import TAAFSCalculator

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- readme-md-snippet:"
PLACEHOLDER = "outputs/train/<date>/checkpoints/best.ckpt"


def readme_snippet() -> str:
    """The first ```python block after :data:`MARKER` in README.md."""
    text = (ROOT / "README.md").read_text()
    assert text.count(MARKER) == 1, f"README.md: expected one {MARKER} marker"
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.S)
    assert block is not None, "README.md: no ```python block after the MD snippet marker"
    return block.group(1)


def test_readme_md_snippet_runs_on_a_trained_checkpoint(tiny_checkpoint, capsys):
    """The snippet, verbatim but for the checkpoint path, from the project root: 20 velocity
    Verlet steps with the checkpoint's model; the energy it prints is the model's at the final
    positions (a fresh calculator agrees to float64 round-off, eV)."""
    code = readme_snippet()
    assert code.count(PLACEHOLDER) == 1
    code = code.replace(PLACEHOLDER, str(tiny_checkpoint))
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    atoms, dyn = namespace["atoms"], namespace["dyn"]
    assert dyn.nsteps == 20 and len(atoms) == 192
    fresh = atoms.copy()
    fresh.calc = TAAFSCalculator.from_checkpoint(tiny_checkpoint)
    energy = fresh.get_potential_energy()
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.fullmatch(r"E_pot (\S+) eV  T (\d+) K", printed)
    assert match is not None, printed
    assert float(match.group(1)) == round(energy, 3)
    assert abs(atoms.get_potential_energy() - energy) < 1e-9
    assert np.isfinite(atoms.get_temperature()) and int(match.group(2)) > 0
