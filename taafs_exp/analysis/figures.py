"""Figures from the run store, results/runs (matplotlib): each function returns a Figure.

- :func:`plot_activation_curves` — every learned curve of a run beside its base activation, over
  the histogram of the inputs the layer sees (the paper's Fig. 1);
- :func:`plot_convergence` — validation energy/force RMSE vs step, mean and min–max band over
  seeds, one line per activation configuration (Fig. 3);
- :func:`plot_spline_vs_cubic` — a learned curve and its least-squares cubic on the same range,
  with the residual (Fig. 4);
- :func:`plot_evolution` — the first curve of a run at the start and after every epoch (Fig. 5).

Curves and histograms come from a run's ``activations.json``
(:class:`~taafs_exp.training.callbacks.ActivationSnapshot`), curves of RMSE from ``metrics.json``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from taafs_exp.analysis.collect import Run  # noqa: E402
from taafs_exp.analysis.tables import KEY_F, Row, study_rows  # noqa: E402
from taafs_exp.training.rebuild import read_json  # noqa: E402
from taafs_exp.training.run_store import SNAPSHOT_FILE  # noqa: E402


def _short(name: str) -> str:
    """A layer's module path without the trailing ``.activation``, for panel titles."""
    return name.removesuffix(".activation")


def plot_activation_curves(snapshot: Mapping[str, Any], title: str = "") -> Figure:
    """One panel per TAAFS layer: learned a(x) (solid), base (dashed), input histogram (grey)."""
    layers = snapshot["layers"]
    cols = min(3, len(layers))
    rows = math.ceil(len(layers) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        x = np.asarray(layer["x"])
        hist = layer["inputs"]
        edges, counts = np.asarray(hist["edges"]), np.asarray(hist["counts"])
        twin = ax.twinx()
        if counts.sum() > 0:
            twin.bar(edges[:-1], counts / counts.sum(), width=np.diff(edges), align="edge",
                     color="0.85", zorder=0)
        twin.set_yticks([])
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        for i, y in enumerate(layer["y"]):
            ax.plot(x, y, color=f"C{i}", lw=1.6, label="learned" if i == 0 else None)
        ax.plot(x, layer["y_base"], "k--", lw=1.0, label=f"base ({layer['base']})")
        lo, hi = layer["domain"]
        ax.axvspan(lo, hi, color="C0", alpha=0.04)
        outside = hist["below"] + hist["above"]
        seen = counts.sum() + outside
        note = f", {100 * outside / seen:.1f}% inputs off-range" if seen and outside else ""
        ax.set_title(f"{_short(layer['name'])}{note}", fontsize=8)
        ax.set_xlabel("pre-activation x")
    for ax in axes.flat[len(layers):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="upper left")
    key = "solid: learned; dashed: base; grey: histogram of the inputs on the validation split"
    fig.suptitle(f"{title}\n{key}" if title else key, fontsize=10)
    fig.tight_layout()
    return fig


def plot_convergence(rows: Sequence[Row], title: str = "") -> Figure:
    """Validation RMSE vs step per configuration: mean line, min–max band over seeds."""
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(10, 3.8))
    quantities = ((ax_e, "rmse_e_per_atom_meV", "energy RMSE (meV/atom)"),
                  (ax_f, "rmse_f_meV_per_A", "force RMSE (meV/Å)"))
    for i, row in enumerate(rows):
        curves = [r.metrics.get("val_curve") or [] for r in row.runs]
        length = min(len(c) for c in curves)
        if length == 0:
            continue
        steps = np.asarray([p["step"] for p in curves[0][:length]])
        colour = "k" if row.first.is_fixed else f"C{i}"
        name = f"{row.label} (base, {row.first.experiment})" if row.first.is_fixed else row.label
        for ax, key, _ in quantities:
            values = np.asarray([[p[key] for p in c[:length]] for c in curves])
            ax.plot(steps, values.mean(0), color=colour, lw=1.4, label=f"{name}, n={len(curves)}")
            ax.fill_between(steps, values.min(0), values.max(0), alpha=0.15, color=colour)
    for ax, _, label in quantities:
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"validation {label}")
    ax_f.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def cubic_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Values on x of the least-squares cubic polynomial through (x, y)."""
    return np.polynomial.Polynomial.fit(x, y, 3)(x)


def plot_spline_vs_cubic(layer: Mapping[str, Any], title: str = "") -> Figure:
    """A learned curve over its fit domain, its best cubic, and the difference between them."""
    x = np.asarray(layer["x"])
    lo, hi = layer["domain"]
    inside = (x >= lo) & (x <= hi)
    x, y = x[inside], np.asarray(layer["y"][0])[inside]
    cubic = cubic_fit(x, y)
    fig, (ax, res) = plt.subplots(2, 1, figsize=(5, 5), sharex=True,
                                  gridspec_kw={"height_ratios": [2, 1]})
    ax.plot(x, y, lw=2, label=f"learned {layer['kind']}")
    ax.plot(x, cubic, "--", lw=1.4, label="least-squares cubic")
    ax.plot(x, np.asarray(layer["y_base"])[inside], "k:", lw=1, label=f"base ({layer['base']})")
    ax.legend(fontsize=8)
    ax.set_title(title or _short(layer["name"]), fontsize=9)
    res.plot(x, y - cubic, color="C3")
    res.axhline(0, color="k", lw=0.5)
    res.set_ylabel("learned − cubic")
    res.set_xlabel("pre-activation x")
    fig.tight_layout()
    return fig


def plot_evolution(snapshot: Mapping[str, Any], title: str = "") -> Figure:
    """The first TAAFS curve of a run at each saved point of training, coloured by step."""
    x = np.asarray(snapshot["x_first"])
    evolution = snapshot["evolution"]
    colours = plt.cm.viridis(np.linspace(0, 1, max(len(evolution), 2)))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for colour, point in zip(colours, evolution):
        ax.plot(x, point["y"], color=colour, lw=1.4, label=f"{point['label']} (step {point['step']})")
    ax.set_xlabel("pre-activation x")
    ax.set_ylabel("a(x)")
    ax.legend(fontsize=7)
    ax.set_title(title or _short(snapshot["first_layer"]), fontsize=9)
    fig.tight_layout()
    return fig


def _snapshot(run: Run) -> dict[str, Any] | None:
    """The run's ``activations.json`` (None for a fixed activation or an older run)."""
    path = run.path / SNAPSHOT_FILE
    return read_json(path) if path.exists() else None


def _first_with_snapshot(row: Row) -> tuple[Run, dict[str, Any]] | None:
    for run in row.runs:  # sorted by seed
        snapshot = _snapshot(run)
        if snapshot is not None:
            return run, snapshot
    return None


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_figures(runs: Sequence[Run], out_dir: Path) -> list[Path]:
    """Every figure of every study × model × data; returns the PNG paths written.

    Convergence for each study; for ``basis_*`` studies also the curves and evolution of the
    best TAAFS row (lowest mean test force RMSE, its lowest seed) and the spline-vs-cubic
    figure of the first B-spline layer.
    """
    studies: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        studies[(run.experiment, run.model, run.data)].append(run)
    written = []
    for (experiment, model, data), study_runs in sorted(studies.items()):
        stem = f"{experiment}__{model}__{data}"
        rows, _ = study_rows(study_runs, runs)  # knots_*/sharing_* borrow their base row
        budget = f"{rows[0].first.budget} budget, {rows[0].first.metrics['steps']} steps"
        fig = plot_convergence(rows, f"{experiment}: {model} on {data} ({budget}); band: min–max over seeds")
        written.append(_save(fig, out_dir / f"{stem}__convergence.png"))
        if not experiment.startswith("basis_"):
            continue
        taafs = [r for r in rows if not r.first.is_fixed]
        if taafs:
            best = min(taafs, key=lambda r: r.mean(KEY_F))
            found = _first_with_snapshot(best)
            if found:
                run, snapshot = found
                label = f"{model} on {data}, {best.label}, seed {run.seed}"
                written.append(_save(plot_activation_curves(snapshot, f"learned activations: {label}"),
                                     out_dir / f"{stem}__activations.png"))
                written.append(_save(plot_evolution(snapshot, f"first-layer curve during training: {label}"),
                                     out_dir / f"{stem}__evolution.png"))
        splines = [r for r in taafs if r.first.activation == "bspline"]
        found = _first_with_snapshot(splines[0]) if splines else None
        if found:
            run, snapshot = found
            layer = snapshot["layers"][0]
            title = f"{model} on {data}, {splines[0].label}, seed {run.seed}: {_short(layer['name'])}"
            written.append(_save(plot_spline_vs_cubic(layer, title), out_dir / f"{stem}__spline_vs_cubic.png"))
    return written
