"""Read the run store (results/runs): every finished run's ``metrics.json`` as one flat record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taafs_exp.activations.registry import FIXED_ACTIVATIONS
from taafs_exp.training.rebuild import read_json
from taafs_exp.training.run_store import METRICS_FILE



@dataclass(frozen=True)
class Run:
    """One finished training run (one seed of one configuration)."""

    path: Path
    experiment: str
    budget: str
    model: str
    data: str
    activation: str
    num_basis: int | None
    share: str | None
    placement: str
    residual: bool
    seed: int
    metrics: dict[str, Any]

    @property
    def is_fixed(self) -> bool:
        return self.activation in FIXED_ACTIVATIONS

    @property
    def config_label(self) -> str:
        """The row name of a table: activation, K and sharing (+ residual, and placement when
        partial)."""
        if self.is_fixed:
            label = self.activation
        elif self.num_basis is None:  # e.g. rational: sized by its degrees, not by K
            label = f"{self.activation} {self.share}"
        else:
            label = f"{self.activation} K={self.num_basis} {self.share}"
        if self.residual:
            label += " residual"
        return label if self.placement == "all" else f"{label} [{self.placement}]"


def load_run(path: Path) -> Run:
    """A run from its ``metrics.json`` (only a finished run has one: it is written last)."""
    m = read_json(path)
    act = m["activation"]
    return Run(
        path=path.parent,
        experiment=m.get("experiment") or "single",
        budget=m.get("budget") or "unspecified",
        model=m["model"],
        data=m["data"],
        activation=act["name"],
        num_basis=act.get("num_basis"),
        share=act.get("share"),
        placement=m.get("placement") or "all",
        residual=bool(act.get("residual", False)),
        seed=int(m["seed"]),
        metrics=m,
    )


def collect_runs(root: str | Path) -> list[Run]:
    """Every finished, tested run under ``root``, sorted by path (half-written runs have no
    metrics.json; runs made with ``test=false`` have no test RMSE to tabulate)."""
    runs = [load_run(p) for p in sorted(Path(root).rglob(METRICS_FILE))]
    return [r for r in runs if r.metrics["test"].get("rmse_f_meV_per_A") is not None]
