"""RMSE tables from the run store (results/runs): one per study × model × data, and a summary.

Every number is mean ± sample std over seeds of the test-split RMSE; Δ% compares a row's mean
with the fixed base activation of the same study (negative = TAAFS lower error).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from taafs_exp.analysis.collect import Run

DISCLAIMER = (
    "Measured by this project (taafs-exp) on this machine's budget; these are not the values "
    "of the TAAFS paper (arXiv 2412.14655)."
)


@dataclass(frozen=True)
class Row:
    """One activation configuration of a study, aggregated over its seeds."""

    label: str
    runs: tuple[Run, ...]

    def values(self, key: str) -> list[float]:
        return [float(r.metrics["test"][key]) for r in self.runs]

    def mean(self, key: str) -> float:
        return statistics.fmean(self.values(key))

    def std(self, key: str) -> float:
        values = self.values(key)
        return statistics.stdev(values) if len(values) > 1 else math.nan

    @property
    def first(self) -> Run:
        return self.runs[0]


def group_rows(runs: Sequence[Run]) -> list[Row]:
    """Runs of one study grouped by configuration; fixed activations first, then by basis and K."""
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.config_label].append(run)
    rows = [Row(label, tuple(sorted(g, key=lambda r: r.seed))) for label, g in groups.items()]
    return sorted(
        rows,
        key=lambda r: (not r.first.is_fixed, r.first.activation, r.first.num_basis or 0, r.label),
    )


def baseline(rows: Sequence[Row]) -> Row | None:
    """The fixed activation the model is published with (else the first fixed row)."""
    fixed = [r for r in rows if r.first.is_fixed and r.first.placement == "all"]
    if not fixed:
        return None
    published = fixed[0].first.metrics.get("base_activation")
    return next((r for r in fixed if r.first.activation == published), fixed[0])


def delta_percent(value: float, base: float | None) -> float | None:
    return None if base is None else 100.0 * (value - base) / base


def fmt_pm(mean: float, std: float, digits: int) -> str:
    """``mean ± std`` to ``digits`` decimals (std n/a when NaN: a single seed)."""
    return f"{mean:.{digits}f} ± {'n/a' if math.isnan(std) else f'{std:.{digits}f}'}"


def _pm_values(values: Sequence[float], digits: int = 1) -> str:
    """``mean ± sample std`` of ``values`` (std n/a for one value; n/a for none)."""
    if not values:
        return "n/a"
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return fmt_pm(statistics.fmean(values), std, digits)


def _fmt_delta(delta: float | None) -> str:
    return "—" if delta is None else f"{delta:+.1f}%"


COLUMNS = (
    "activation",
    "E RMSE (meV/atom)",
    "ΔE",
    "F RMSE (meV/Å)",
    "ΔF",
    "extra params",
    "params",
    "step (ms)",
    "steps",
    "seeds",
)
KEY_E, KEY_F = "rmse_e_per_atom_meV", "rmse_f_meV_per_A"
#: Studies whose best TAAFS row the summary compares with the base (basis_dp, basis_ani2, ...).
BASIS_PREFIX = "basis_"
#: Seeds per row below which the summary states no verdict (the project's rule for a claim).
MIN_SEEDS = 3
#: Standard errors of the difference of means that a summary claim needs (either direction).
CLAIM_STANDARD_ERRORS = 2.0


def provenance(runs: Sequence[Run]) -> str:
    """The header line naming what ``runs`` rest on: each code version (commit, 12 hex digits;
    ``+dirty``: with uncommitted changes) and each torch thread count, with its number of runs
    (``×n``); runs whose metrics.json predates the field count as "not recorded"."""

    def tally(values: Sequence[str | int | None]) -> str:
        counts = Counter(values)
        parts = [f"`{v}` ×{counts[v]}" for v in sorted(v for v in counts if v is not None)]
        if None in counts:
            parts.append(f"not recorded ×{counts[None]}")
        return ", ".join(parts)

    versions = []
    for run in runs:
        version = run.metrics.get("code_version")
        # 40 hex digits, then "+dirty" or nothing
        versions.append(None if version is None else version[:12] + version[40:])
    threads = [run.metrics.get("torch_threads") for run in runs]
    return f"- Runs by code version: {tally(versions)}; by torch threads: {tally(threads)}."


def study_rows(runs: Sequence[Run], all_runs: Sequence[Run] = ()) -> tuple[list[Row], Row | None]:
    """The rows of one study × model × data and its base row (None when there is none).

    A study without a fixed-activation row (e.g. knots_dp) is compared with the fixed rows of
    another study of the same model, data, budget and step count (the ``basis_*`` one when
    there are several, so no seed counts twice): that base row is borrowed and put first.
    """
    rows = group_rows(runs)
    base = baseline(rows)
    if base is None:
        first = rows[0].first
        same_budget = [
            r
            for r in all_runs
            if r.is_fixed
            and (r.model, r.data, r.budget) == (first.model, first.data, first.budget)
            and r.metrics["steps"] == first.metrics["steps"]
        ]
        donors = sorted({r.experiment for r in same_budget}, key=lambda e: (not e.startswith("basis_"), e))
        same_budget = [r for r in same_budget if donors and r.experiment == donors[0]]
        base = baseline(group_rows(same_budget)) if same_budget else None
        if base is not None:
            rows.insert(0, base)
    return rows, base


def study_table(
    runs: Sequence[Run], all_runs: Sequence[Run] = ()
) -> tuple[list[str], list[list[str]]]:
    """Header lines and table cells (markdown-ready) of one study × model × data, its base row
    borrowed from another study when it has none (``study_rows``)."""
    first = runs[0]  # the header is the study's (every run of it shares these fields)
    rows, base = study_rows(runs, all_runs)
    base_e = base.mean(KEY_E) if base else None
    base_f = base.mean(KEY_F) if base else None
    best_e = min(r.mean(KEY_E) for r in rows)
    best_f = min(r.mean(KEY_F) for r in rows)
    cells = []
    for row in rows:
        e, f = row.mean(KEY_E), row.mean(KEY_F)
        step_times = [r.metrics.get("step_time_s") for r in row.runs]
        step_ms = (
            f"{1000 * statistics.fmean(step_times):.0f}" if all(step_times) else "n/a"
        )
        e_cell = fmt_pm(e, row.std(KEY_E), 3)
        f_cell = fmt_pm(f, row.std(KEY_F), 1)
        cells.append(
            [
                row.label + (f" (base, {row.first.experiment})" if row is base else ""),
                f"**{e_cell}**" if e == best_e else e_cell,
                _fmt_delta(None if row is base else delta_percent(e, base_e)),
                f"**{f_cell}**" if f == best_f else f_cell,
                _fmt_delta(None if row is base else delta_percent(f, base_f)),
                str(row.first.metrics["n_extra_params"]),
                str(row.first.metrics["n_params"]),
                step_ms,
                "/".join(sorted({str(r.metrics["steps"]) for r in row.runs})),
                str(len(row.runs)),
            ]
        )
    reused = [r.metrics["reused_from"] for r in runs if r.metrics.get("reused_from")]
    sources = sorted({path.split("/")[0] for path in reused})
    header = [
        f"# {first.experiment}: {first.model} on {first.data}",
        "",
        DISCLAIMER,
        "",
        f"- Budget: `{first.budget}`, {first.metrics['steps']} training steps per run, "
        "equal for every row.",
        f"- Test split: {first.metrics['test']['split']}; energy RMSE per atom, force RMSE over "
        "all components.",
        "- Mean ± sample std over seeds; Δ vs the base activation's mean (negative = lower "
        "error); best mean per column in bold.",
        "- step (ms): each run's median training step, averaged over the row's runs, on the "
        "machine and under the load each run had (this project's 2-core CPU is shared by the "
        "sweeps).",
        provenance([run for row in rows for run in row.runs]),
        *(
            [f"- {len(reused)} run(s) trained exactly as a run of {', '.join(sources)} and reuse "
             "its results (`reused_from` in metrics.json; CPU training here is deterministic)."]
            if reused else []
        ),
        "- Regenerate with `make tables` (reads `results/runs/` only, no training).",
        "",
    ]
    return header, cells


def markdown(header: Sequence[str], columns: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    lines = list(header)
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def write_table(path_stem: Path, header, columns, cells) -> None:
    """``<stem>.md`` and ``<stem>.csv`` (bold markers stripped in the CSV)."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    path_stem.with_suffix(".md").write_text(markdown(header, columns, cells))
    with path_stem.with_suffix(".csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows([[c.replace("**", "") for c in row] for row in cells])


def summary_cells(runs: Sequence[Run]) -> list[list[str]]:
    """Per model and data, the best TAAFS row of its ``basis_*`` study against its base."""
    by_study: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        if run.experiment.startswith(BASIS_PREFIX):
            by_study[(run.model, run.data, run.experiment)].append(run)
    cells = []
    for (model, data, _), study_runs in sorted(by_study.items()):
        rows = group_rows(study_runs)
        base = baseline(rows)
        taafs = [r for r in rows if not r.first.is_fixed]
        if base is None or not taafs:
            continue
        best = min(taafs, key=lambda r: r.mean(KEY_F))
        de = delta_percent(best.mean(KEY_E), base.mean(KEY_E))
        df = delta_percent(best.mean(KEY_F), base.mean(KEY_F))
        seeds = min(len(base.runs), len(best.runs))
        gap = standard_errors_apart(base, best, KEY_F)
        cells.append(
            [
                model,
                data,
                base.label,
                best.label,
                _fmt_delta(de),
                _fmt_delta(df),
                str(best.first.metrics["n_extra_params"]),
                str(seeds),
                "n/a" if math.isnan(gap) else f"{gap:+.1f}",
                verdict(seeds, gap),
            ]
        )
    return cells


def standard_errors_apart(base: Row, other: Row, key: str) -> float:
    """How many standard errors ``other``'s mean of ``key`` lies below ``base``'s (Welch)."""
    return welch_gap(base.values(key), other.values(key))


def welch_gap(base: Sequence[float], other: Sequence[float]) -> float:
    """(mean base − mean other) / √(s_b²/n_b + s_o²/n_o): Welch's t, how many standard errors
    ``other`` lies below ``base`` (NaN with fewer than two values on a side)."""
    if min(len(base), len(other)) < 2:
        return math.nan
    error = math.sqrt(statistics.variance(base) / len(base) + statistics.variance(other) / len(other))
    gap = statistics.fmean(base) - statistics.fmean(other)
    return math.copysign(math.inf, gap) if error == 0 else gap / error


def verdict(seeds: int, gap: float) -> str:
    """The summary's plain words on forces: a claim needs ``MIN_SEEDS`` seeds and a gap of at
    least ``CLAIM_STANDARD_ERRORS`` standard errors; anything less is seed noise."""
    if seeds < MIN_SEEDS:
        return f"no claim yet: {seeds} seed(s), a claim needs {MIN_SEEDS}"
    if gap >= CLAIM_STANDARD_ERRORS:
        return "TAAFS helped (forces)"
    if gap <= -CLAIM_STANDARD_ERRORS:
        return "TAAFS did not help: worse (forces)"
    return "TAAFS did not help: within seed noise (forces)"


SUMMARY_COLUMNS = (
    "model",
    "data",
    "base",
    "best TAAFS (by force RMSE)",
    "ΔE",
    "ΔF",
    "extra params",
    "seeds",
    "ΔF / SE",
    "verdict",
)


#: Studies of the equal-time view: the base and TAAFS at equal steps with timed validation
#: curves, and TAAFS retrained with a complete schedule of the base's training time.
EQUAL_TIME, EQUAL_TIME_FULL = "equal_time_dp", "equal_time_full_dp"


def value_at_time(curve: Sequence[dict], seconds: float) -> dict | None:
    """The last validation point of ``curve`` reached within ``seconds`` of training time."""
    reached = [p for p in curve if p.get("train_s") is not None and p["train_s"] <= seconds]
    return reached[-1] if reached else None


def _final_val_f(run: Run) -> float:
    return float(run.metrics["val_curve"][-1][KEY_F])


def equal_time_table(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]] | None:
    """The equal-wall-time view of :data:`EQUAL_TIME` (+ :data:`EQUAL_TIME_FULL`), or None.

    Per seed: the base's training time T and final validation/test force RMSE; TAAFS's
    validation force RMSE at T (its last point within T, on the same validation batches); and
    the test force RMSE of TAAFS trained with a complete schedule sized to T. Training time is
    the sum of step times (validation excluded); seeds of both rows ran side by side.
    """
    study = [r for r in runs if r.experiment == EQUAL_TIME]
    full = {r.seed: r for r in runs if r.experiment == EQUAL_TIME_FULL}
    base = {r.seed: r for r in study if r.is_fixed}
    taafs = {r.seed: r for r in study if not r.is_fixed}
    seeds = sorted(set(base) & set(taafs))
    if not seeds:
        return None
    cells, at_time, base_val, full_test, base_test = [], [], [], [], []
    for seed in seeds:
        b, t = base[seed], taafs[seed]
        budget = b.metrics["val_curve"][-1]["train_s"]
        point = value_at_time(t.metrics["val_curve"], budget)
        f = full.get(seed)
        base_val.append(_final_val_f(b))
        base_test.append(float(b.metrics["test"][KEY_F]))
        if point is not None:
            at_time.append(float(point[KEY_F]))
        if f is not None:
            full_test.append(float(f.metrics["test"][KEY_F]))
        cells.append([
            str(seed), f"{budget:.0f}", f"{base_val[-1]:.1f}", f"{base_test[-1]:.1f}",
            f"{t.metrics['val_curve'][-1]['train_s']:.0f}",
            "n/a" if point is None else f"{point[KEY_F]:.1f} (step {point['step']})",
            f"{t.metrics['test'][KEY_F]:.1f}",
            "not run" if f is None else f"{f.metrics['test'][KEY_F]:.1f} ({f.metrics['steps']} steps, "
            f"{f.metrics['val_curve'][-1]['train_s']:.0f} s)",
        ])

    taafs_test = [float(taafs[s].metrics["test"][KEY_F]) for s in seeds]
    cells.append(["mean ± std", "", _pm_values(base_val), _pm_values(base_test), "",
                  _pm_values(at_time), _pm_values(taafs_test), _pm_values(full_test)])
    first_b, first_t = base[seeds[0]], taafs[seeds[0]]
    header = [
        f"# Equal training time: {first_t.config_label} vs {first_b.config_label}, "
        f"{first_b.model} on {first_b.data}",
        "",
        DISCLAIMER,
        "",
        f"Force RMSE in meV/Å. Base and TAAFS trained {first_b.metrics['steps']} steps "
        f"({first_b.budget} budget) side by side, one thread each; T = the base's training time "
        "(sum of step times, validation excluded). Two readings of TAAFS at time T: its "
        "validation error at its last validation point within T (same validation batches as "
        "the base's final one), and the test error of TAAFS retrained with a complete lr "
        f"schedule whose length gives T (`{EQUAL_TIME_FULL}`).",
        "",
        provenance([*study, *full.values()]),
        f"- at T, validation: {_claim(base_val, at_time)}",
        f"- at T, complete schedule (test): {_claim(base_test, full_test)}",
        "",
    ]
    return header, cells


def _claim(base: list[float], other: list[float]) -> str:
    """Δ% of the means and the Welch verdict of :func:`verdict` for two lists of seeds."""
    if len(base) < 2 or len(other) < 2:
        return f"no claim yet: {min(len(base), len(other))} seed(s)"
    gap = welch_gap(base, other)
    delta = delta_percent(statistics.fmean(other), statistics.fmean(base))
    return f"ΔF {_fmt_delta(delta)}, {gap:+.1f} SE: {verdict(min(len(base), len(other)), gap)}"


#: The study of learning-rate schedules: every activation at several (start_lr, stop_lr).
SCHEDULE = "schedule_dp"
SCHEDULE_COLUMNS = (
    "activation", "lr schedule", "val F (meV/Å)", "test F (meV/Å)", "test E (meV/atom)", "seeds",
    "chosen on val",
)


def schedule_table(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]] | None:
    """The :data:`SCHEDULE` study, or None: each activation × schedule (start_lr → stop_lr,
    from ``metrics.json`` ``lr``) with its final validation and its test force RMSE; each
    activation's schedule chosen by the lowest mean validation force RMSE (validation is held
    out from training and disjoint from test); the TAAFS-vs-base claim at every schedule both
    ran and at each one's chosen schedule."""
    study = [r for r in runs if r.experiment == SCHEDULE]
    if not study:
        return None
    groups: dict[tuple[str, tuple[float, float]], list[Run]] = defaultdict(list)
    for run in study:
        groups[(run.config_label, (run.metrics["lr"]["start_lr"], run.metrics["lr"]["stop_lr"]))].append(run)
    base = baseline(group_rows(study))
    labels = sorted({label for label, _ in groups}, key=lambda label: label != base.label)
    val = {key: [_final_val_f(r) for r in g] for key, g in groups.items()}
    test = {key: [float(r.metrics["test"][KEY_F]) for r in g] for key, g in groups.items()}
    chosen = {
        label: min((k for k in groups if k[0] == label), key=lambda k: statistics.fmean(val[k]))
        for label in labels
    }

    def schedule(lr: tuple[float, float]) -> str:
        return f"{lr[0]:g} → {lr[1]:g}"

    cells = [
        [label, schedule(lr), _pm_values(val[(label, lr)]), _pm_values(test[(label, lr)]),
         _pm_values([float(r.metrics["test"][KEY_E]) for r in groups[(label, lr)]], 3),
         str(len(groups[(label, lr)])), "yes" if chosen[label] == (label, lr) else ""]
        for label in labels for lr in sorted({k[1] for k in groups if k[0] == label})
    ]
    first = base.first
    claims = [
        f"- {label} vs {base.label}, both at {schedule(lr)}: {_claim(test[(base.label, lr)], test[(label, lr)])}"
        for label in labels[1:] for lr in sorted({k[1] for k in groups})
        if (label, lr) in groups and (base.label, lr) in groups
    ] + [
        f"- each at its chosen schedule, {label} ({schedule(chosen[label][1])}) vs {base.label} "
        f"({schedule(chosen[base.label][1])}): {_claim(test[chosen[base.label]], test[chosen[label]])}"
        for label in labels[1:]
    ]
    header = [
        f"# Learning-rate schedules: {first.model} on {first.data}, {first.metrics['steps']} steps",
        "",
        DISCLAIMER,
        "",
        f"Exponential decay from start_lr to stop_lr over the run ({first.budget} budget's step "
        f"count; the loss prefactors follow the lr as in DeePMD-kit). Splits: "
        f"{first.metrics['val_split']}; {first.metrics['test']['split']}. Mean ± std over "
        "seeds; a schedule is chosen "
        "per activation by its mean final validation force RMSE only.",
        "",
        provenance(study),
        *claims,
        "",
    ]
    return header, cells


EQUAL_TIME_COLUMNS = (
    "seed", "T (s)", "base val F (final)", "base test F", "TAAFS time (s)", "TAAFS val F at T",
    "TAAFS test F (all steps)", "TAAFS complete schedule at T: test F",
)


def build_tables(runs: Sequence[Run], out_dir: Path) -> list[Path]:
    """Write every study table and the summary; returns the markdown paths written."""
    studies: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        studies[(run.experiment, run.model, run.data)].append(run)
    written = []
    for (experiment, model, data), study_runs in sorted(studies.items()):
        if experiment == SCHEDULE:  # rows are activation × schedule: schedule_table below
            continue
        header, cells = study_table(study_runs, runs)
        stem = out_dir / f"{experiment}__{model}__{data}"
        write_table(stem, header, COLUMNS, cells)
        written.append(stem.with_suffix(".md"))
    summary_header = [
        "# Summary: best TAAFS basis per backbone vs its base activation",
        "",
        DISCLAIMER,
        "",
        "From the `basis_<model>` studies: the TAAFS row with the lowest mean test force RMSE, "
        "Δ in % of the base activation's mean (negative = lower error). See the study tables "
        "for std over seeds and budgets.",
        "",
        f"- ΔF / SE: the base's mean force RMSE minus the best row's, in standard errors of that "
        f"difference (Welch); the verdict needs ≥ {MIN_SEEDS} seeds and |ΔF / SE| ≥ "
        f"{CLAIM_STANDARD_ERRORS:g}.",
        "- The best basis is picked on the same test split it is scored on, out of several "
        "bases: that selection favours it, and the verdict does not correct for it.",
        provenance([run for run in runs if run.experiment.startswith(BASIS_PREFIX)]),
        "",
    ]
    stem = out_dir / "summary"
    write_table(stem, summary_header, SUMMARY_COLUMNS, summary_cells(runs))
    written.append(stem.with_suffix(".md"))
    views = (  # (study read, table name, builder, columns): tables across a study's rows
        (SCHEDULE, SCHEDULE, schedule_table, SCHEDULE_COLUMNS),
        (EQUAL_TIME, "equal_time", equal_time_table, EQUAL_TIME_COLUMNS),
    )
    for experiment, name, build, columns in views:
        view = build(runs)
        if view is None:
            continue
        first = next(r for r in runs if r.experiment == experiment)
        stem = out_dir / f"{name}__{first.model}__{first.data}"
        write_table(stem, view[0], columns, view[1])
        written.append(stem.with_suffix(".md"))
    return written
