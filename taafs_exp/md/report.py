"""MD validation outputs: per-run report (json, markdown, plots) and the table across runs.

Layout: ``<results_dir>/<name>/{report.json, report.md, energy.png, rdf.png}`` per checkpoint,
and ``<results_dir>/summary.md`` + ``rdf_comparison.png`` over every run found there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase.data import chemical_symbols  # noqa: E402

from taafs_exp.md.integrate import REFUSED, MDRun  # noqa: E402
from taafs_exp.md.observables import (  # noqa: E402
    RDF,
    energy_drift,
    first_peak,
    ns_per_day,
    rdf_distance,
)

#: Said wherever an RDF comes from an NVT run that blew up or stopped.
FAILED_RUN_RDF = (
    "the NVT run blew up or stopped, so its RDF samples the way to the failure, not water at "
    "the set temperature"
)


def pair_label(pair: tuple[int, int]) -> str:
    """``(8, 1)`` → ``"O-H"``."""
    return "-".join(chemical_symbols[z] for z in pair)


def run_summary(run: MDRun) -> dict[str, Any]:
    """Verdict, speed and temperature of one run (the energy/RDF analysis is added by callers)."""
    temperature = np.asarray(run.temperature_K)
    return {
        "ensemble": run.ensemble,
        "timestep_fs": run.timestep_fs,
        "steps_requested": run.steps_requested,
        "steps_done": run.steps_done,
        "simulated_ps": run.steps_done * run.timestep_fs / 1000.0,
        "stable": not run.blew_up,
        "failed_step": run.failed_step,
        "reason": run.reason,
        "wall_s": round(run.wall_s, 2),
        "steps_per_s": run.steps_per_s,
        "ns_per_day": ns_per_day(run.steps_per_s, run.timestep_fs),
        # None when nothing was recorded (the model refused the start configuration)
        "temperature_K_mean": float(temperature.mean()) if temperature.size else None,
        "temperature_K_std": float(temperature.std()) if temperature.size else None,
        "min_distance_A": float(np.min(run.min_distance)) if run.min_distance else None,
    }


def nve_analysis(run: MDRun) -> dict[str, float] | None:
    """Energy drift and fluctuation (meV/atom/ps, meV/atom) of the recorded NVE samples; of
    those before the failure when the run blew up (the blow-up itself is reported apart: at
    a collapse the integrator's error explodes and would swamp the numbers), with
    ``samples`` the count used. None with fewer than 2 samples."""
    time_fs = np.asarray(run.time_fs)
    keep = time_fs < run.failed_step * run.timestep_fs if run.blew_up else time_fs >= 0
    if keep.sum() < 2:
        return None
    out = energy_drift(time_fs[keep] / 1000.0, run.total_energy[keep], run.num_atoms)
    return {**out, "samples": int(keep.sum())}


def equilibrated_temperature(run: MDRun, equilibration_steps: int) -> dict[str, float] | None:
    """Mean and std (K) of the temperatures recorded from ``equilibration_steps`` on, with the
    sample count; None when none was recorded there."""
    steps = np.asarray(run.time_fs) / run.timestep_fs
    temperature = np.asarray(run.temperature_K)[steps >= equilibration_steps]
    if temperature.size == 0:
        return None
    return {"mean": float(temperature.mean()), "std": float(temperature.std()),
            "samples": int(temperature.size)}


def rdf_analysis(
    model: dict[tuple[int, int], RDF], reference: dict[tuple[int, int], RDF]
) -> dict[str, Any]:
    """Per pair: ∫(g − g_ref)² dr (Å) and the first-peak position (Å) and height of both
    (:func:`~taafs_exp.md.observables.first_peak`; None where g never exceeds 1)."""
    out: dict[str, Any] = {}
    for pair, ref in reference.items():
        mine = model[pair]
        peak = first_peak(mine) if (mine.g > 1.0).any() else (None, None)
        ref_peak = first_peak(ref)
        out[pair_label(pair)] = {
            "distance_A": rdf_distance(mine, ref),
            "peak_r_A": peak[0],
            "peak_g": peak[1],
            "ref_peak_r_A": ref_peak[0],
            "ref_peak_g": ref_peak[1],
        }
    out["total_distance_A"] = sum(v["distance_A"] for v in out.values())
    return out


def md_goals(report: dict[str, Any], goals: Mapping[str, float]) -> dict[str, bool]:
    """Issue 16's MD-grade criteria for one run, each True or False, and ``all``.

    ``stable``: NVE and NVT ran every step within the stability limits; ``temperature``: NVT
    mean temperature after equilibration within ``temperature_tolerance_K`` of the target;
    ``drift``: |NVE drift| ≤ ``max_abs_drift_meV_per_atom_per_ps`` over a stable run; ``rdf
    <pair>``: first peak of the stable NVT run within ``rdf_peak_shift_A`` (Å) of the DFT
    frames' and its height within ``rdf_peak_height_rel`` (relative) of theirs.
    """
    nve, nvt = report["nve"], report["nvt"]
    target = report["nvt_settings"]["temperature_K"]
    equilibrated = nvt.get("temperature_K_equilibrated")
    drift = (nve["energy"] or {}).get("drift_meV_per_atom_per_ps")
    met = {
        "stable": nve["stable"] and nvt["stable"],
        "temperature": nvt["stable"] and equilibrated is not None
        and abs(equilibrated["mean"] - target) <= goals["temperature_tolerance_K"],
        "drift": nve["stable"] and drift is not None
        and abs(drift) <= goals["max_abs_drift_meV_per_atom_per_ps"],
    }
    for pair, v in (nvt["rdf"] or {}).items():
        if pair == "total_distance_A":
            continue
        met[f"rdf {pair}"] = (
            nvt["stable"] and v["peak_r_A"] is not None
            and abs(v["peak_r_A"] - v["ref_peak_r_A"]) <= goals["rdf_peak_shift_A"]
            and abs(v["peak_g"] / v["ref_peak_g"] - 1.0) <= goals["rdf_peak_height_rel"]
        )
    met["all"] = all(met.values()) and nvt["rdf"] is not None
    return {k: bool(v) for k, v in met.items()}


def rdf_curves(rdfs: dict[tuple[int, int], RDF]) -> dict[str, list[float]]:
    """Bin centres and g(r) per pair, for the json (the comparison plot reads them back)."""
    first = next(iter(rdfs.values()))
    return {"r": first.r.tolist(), **{pair_label(p): v.g.tolist() for p, v in rdfs.items()}}


def plot_energy(nve: MDRun, nvt: MDRun, path: Path) -> None:
    """NVE energies per atom relative to the start (meV/atom) and both temperatures vs time."""
    fig, (ax_e, ax_t) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    t = np.asarray(nve.time_fs) / 1000.0
    n = nve.num_atoms
    for label, series in [
        ("total", nve.total_energy),
        ("potential", np.asarray(nve.potential_energy)),
        ("kinetic", np.asarray(nve.kinetic_energy)),
    ]:
        ax_e.plot(t, 1000.0 * (series - series[:1]) / n, label=label)
    ax_e.set_ylabel("E − E(0), meV/atom (NVE)")
    ax_e.legend()
    for run in (nve, nvt):
        ax_t.plot(np.asarray(run.time_fs) / 1000.0, run.temperature_K, label=run.ensemble.upper())
    for run in (nve, nvt):
        if run.blew_up:
            ax_t.axvline(run.failed_step * run.timestep_fs / 1000.0, color="red", ls="--")
    ax_t.set_xlabel("time, ps")
    ax_t.set_ylabel("temperature, K")
    ax_t.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_rdfs(
    curves: dict[str, dict[str, list[float]]], reference: dict[str, list[float]], path: Path
) -> None:
    """One panel per pair: each named run's g(r) against the DFT reference."""
    pairs = [k for k in reference if k != "r"]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6))
    for ax, pair in zip(np.atleast_1d(axes), pairs):
        ax.plot(reference["r"], reference[pair], "k-", lw=2, label="DFT frames")
        for name, curve in curves.items():
            ax.plot(curve["r"], curve[pair], lw=1.2, label=name)
        ax.set_title(f"g(r) {pair}")
        ax.set_xlabel("r, Å")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _energy_cells(energy: dict[str, float]) -> str:
    """``drift | fluctuation`` table cells of an NVE energy analysis (n/a when missing)."""
    drift = _fmt(energy.get("drift_meV_per_atom_per_ps"), 3)
    return f"{drift} | {_fmt(energy.get('fluctuation_meV_per_atom'), 3)}"


def _equilibrated(nvt: dict[str, Any]) -> str:
    """``mean ± std K`` of the NVT temperature after equilibration, or n/a."""
    t = nvt.get("temperature_K_equilibrated")
    return "n/a" if t is None else f"{t['mean']:.0f} ± {t['std']:.0f} K"


def failure_kind(run: dict[str, Any]) -> str:
    """``STOPPED`` when the model refused a configuration, ``BLEW UP`` for a physical failure."""
    return "STOPPED" if run["reason"].startswith(REFUSED) else "BLEW UP"


def _verdict(run: dict[str, Any]) -> str:
    if run["stable"]:
        return f"stable, {run['steps_done']} steps ({run['simulated_ps']:.2f} ps)"
    time_fs = run["failed_step"] * run["timestep_fs"]
    return (
        f"**{failure_kind(run)}** at step {run['failed_step']} ({time_fs:.1f} fs): "
        f"{run['reason']}"
    )


def model_label(report: dict[str, Any]) -> str:
    """The activation, with `` + ZBL floor`` when the MD added one (taafs_exp/md/repulsion.py)."""
    floor = " + ZBL floor" if report.get("repulsion") else ""
    return f"{report['model']['activation']}{floor}"


def run_markdown(report: dict[str, Any]) -> str:
    """The human-readable report of one checkpoint."""
    m, tr, nve, nvt = report["model"], report["training"], report["nve"], report["nvt"]
    lines = [
        f"# MD validation: {report['name']}",
        "",
        f"Checkpoint `{report['checkpoint']}`: {m['target']}, activation **{m['activation']}**, "
        f"{m['n_params']} parameters.",
    ]
    if report.get("repulsion"):
        rep = report["repulsion"]
        ends = ", ".join(f"{pair} {d:.3f} Å" for pair, d in rep["r_off_A"].items())
        lines.append(
            f"MD on model + ZBL floor (taafs_exp/md/repulsion.py): switched off from r_off − "
            f"{rep['width_A']} Å to r_off, the shortest distance of each pair in the data "
            f"frames ({ends}); zero on every data frame."
        )
    if tr:
        lines.append(
            f"Training budget: {tr['steps']} steps; test RMSE E {_fmt(tr['rmse_e_per_atom_meV'])} "
            f"meV/atom, F {_fmt(tr['rmse_f_meV_per_A'], 1)} meV/Å ({tr['split']})."
        )
    lines += [
        f"Start: frame {report['start']['frame_index']} of `{report['start']['data_path']}` "
        f"({report['start']['source']}), {report['start']['num_atoms']} atoms, "
        f"Maxwell–Boltzmann velocities, seed {report['seed']}.",
        f"Machine: {report['machine']}.",
        "",
        "## Stability",
        "",
        f"Limits: no pair closer than {report['stability']['min_distance']} Å, temperature below "
        f"{report['stability']['max_temperature_K']} K, finite energy, model accepts the "
        f"configuration; checked every {report['log_interval']} steps.",
        "",
        f"- NVE: {_verdict(nve)}; closest pair {_fmt(nve['min_distance_A'], 3)} Å",
        f"- NVT: {_verdict(nvt)}; closest pair {_fmt(nvt['min_distance_A'], 3)} Å",
        "",
        "## NVE (velocity Verlet)",
        "",
        "| timestep fs | steps | drift meV/atom/ps | fluctuation meV/atom "
        "| max abs(E−E0) meV/atom "
        "| T mean K | steps/s | ns/day |",
        "|---|---|---|---|---|---|---|---|",
    ]
    e = nve["energy"] or {}
    lines += [
        f"| {nve['timestep_fs']} | {nve['steps_done']} | "
        f"{_energy_cells(e)} | {_fmt(e.get('max_deviation_meV_per_atom'), 3)} | "
        f"{_fmt(nve['temperature_K_mean'], 0)} | "
        f"{nve['steps_per_s']:.2f} | {nve['ns_per_day']:.3f} |",
        "",
        "Drift: slope of a linear fit to E_total/N; fluctuation: std of E_total/N about that "
        f"line; over {e.get('samples', 0)} samples every {report['log_interval']} steps"
        + (", before the blow-up." if not nve["stable"] else "."),
        "",
        f"## NVT (Langevin, {report['nvt_settings']['temperature_K']} K, "
        f"γ = {report['nvt_settings']['friction_per_fs']} fs⁻¹)",
        "",
        f"T = {_fmt(nvt['temperature_K_mean'], 0)} ± {_fmt(nvt['temperature_K_std'], 0)} K "
        f"(after equilibration: {_equilibrated(nvt)}), "
        f"{nvt['steps_per_s']:.2f} steps/s ({nvt['ns_per_day']:.3f} ns/day). "
        f"RDF from {nvt['rdf_snapshots']} snapshots after step "
        f"{report['nvt_settings']['equilibration_steps']}, against {report['reference_frames']} "
        "DFT frames of the data.",
        "",
    ]
    if not nvt["stable"] and nvt["rdf"] is not None:
        lines += [f"*{FAILED_RUN_RDF}*", ""]
    rdf = nvt["rdf"]
    if rdf is None:
        lines.append("No RDF: the run stopped before any snapshot after equilibration.")
    else:
        lines += [
            "| pair | ∫(g−g_DFT)² dr, Å | first peak r Å (DFT) | first peak g (DFT) |",
            "|---|---|---|---|",
        ]
        for pair, v in rdf.items():
            if pair != "total_distance_A":
                lines.append(
                    f"| {pair} | {v['distance_A']:.4f} | "
                    f"{_fmt(v['peak_r_A'], 3)} ({v['ref_peak_r_A']:.3f}) "
                    f"| {_fmt(v['peak_g'])} ({v['ref_peak_g']:.2f}) |"
                )
        lines.append(f"| total | {rdf['total_distance_A']:.4f} | | |")
    if report.get("short_range"):
        lines += [
            "",
            "## Short-range scans (start frame)",
            "",
            "An H (its own, then another molecule's) or a whole neighbour molecule (O-O) moved "
            "along its line to an O, every other atom fixed; E relative to the pair's own "
            "distance r₀ (eV). A physical surface rises as the pair closes; a positive largest "
            "drop is a hole the dynamics can fall into.",
            "",
            "| pair | r Å → E eV | wall (highest E), eV | largest drop when closing, eV |",
            "|---|---|---|---|",
            *[
                f"| {pair} | "
                + ", ".join(f"{r:.2f}: {e:+.2f}" for r, e in zip(v["r_A"], v["energy_eV"]))
                + f" | {_fmt(v.get('wall_eV'))} | {v['largest_drop_when_closing_eV']:.2f} |"
                for pair, v in report["short_range"].items()
            ],
        ]
    if report.get("goals"):
        criteria, met = report["goals"]["criteria"], report["goals"]["met"]
        lines += [
            "",
            "## MD-grade goals (issue 16)",
            "",
            f"Stable in both runs; NVT mean T after equilibration within ±"
            f"{criteria['temperature_tolerance_K']:g} K of the target; |NVE drift| ≤ "
            f"{criteria['max_abs_drift_meV_per_atom_per_ps']:g} meV/atom/ps; each first RDF peak "
            f"within {criteria['rdf_peak_shift_A']:g} Å and "
            f"{100 * criteria['rdf_peak_height_rel']:g} % of the DFT frames'.",
            "",
            "| goal | met |",
            "|---|---|",
            *[f"| {goal} | {'yes' if ok else '**no**'} |" for goal, ok in met.items()],
        ]
    lines += ["", "![energy](energy.png)", "", "![rdf](rdf.png)", ""]
    return "\n".join(lines)


def write_run_report(out_dir: Path, report: dict[str, Any], nve: MDRun, nvt: MDRun) -> None:
    """``report.json`` (with the RDF curves), ``report.md``, ``energy.png``, ``rdf.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / "report.md").write_text(run_markdown(report))
    plot_energy(nve, nvt, out_dir / "energy.png")
    curves = {report["name"]: report["rdf_curves"]} if report["rdf_curves"] else {}
    plot_rdfs(curves, report["reference_rdf"], out_dir / "rdf.png")


#: A run's seed suffix in its name (``md_dp/tanh-na-fixed-s1``): runs that differ only there
#: form one row of the seed table.
SEED_SUFFIX = re.compile(r"-s\d+$")


def _mean_std(values: list[float | None], digits: int) -> str:
    """``mean ± std`` (sample std) of the values present, ``(k of n)`` when some are missing."""
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    std = f" ± {np.std(present, ddof=1):.{digits}f}" if len(present) > 1 else ""
    missing = f" ({len(present)} of {len(values)})" if len(present) < len(values) else ""
    return f"{np.mean(present):.{digits}f}{std}{missing}"


def seed_table(reports: list[dict[str, Any]]) -> list[str]:
    """Markdown rows over the runs that differ only in the training seed (:data:`SEED_SUFFIX`):
    counts of stable runs and of runs meeting every goal, and mean ± std of the numbers."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in reports:
        groups.setdefault(SEED_SUFFIX.sub("", r["name"]), []).append(r)
    lines = [
        "| runs | activation | n | train steps | test F RMSE meV/Å | stable | all goals met | "
        "NVE drift meV/atom/ps | NVT T after eq. K | O-O peak r Å (DFT) | O-O peak g (DFT) | "
        "RDF dist. total |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in groups.items():
        stable = [r for r in runs if r["nve"]["stable"] and r["nvt"]["stable"]]
        ok_rdf = [(r["nvt"]["rdf"] or {}).get("O-O") or {} for r in stable]
        met = sum(bool((r.get("goals") or {}).get("met", {}).get("all")) for r in runs)
        graded = any(r.get("goals") for r in runs)
        t_eq = [(r["nvt"].get("temperature_K_equilibrated") or {}).get("mean") for r in stable]
        ref = next((v["ref_peak_r_A"], v["ref_peak_g"]) for v in ok_rdf) if ok_rdf else None
        lines.append(
            f"| {name} | {model_label(runs[0])} | {len(runs)} | "
            f"{_mean_std([(r['training'] or {}).get('steps') for r in runs], 0)} | "
            f"{_mean_std([(r['training'] or {}).get('rmse_f_meV_per_A') for r in runs], 1)} | "
            f"{len(stable)} of {len(runs)} | {f'{met} of {len(runs)}' if graded else 'n/a'} | "
            f"{_mean_std([(r['nve']['energy'] or {}).get('drift_meV_per_atom_per_ps') for r in stable], 3)} | "
            f"{_mean_std(t_eq, 0)} | "
            f"{_mean_std([v.get('peak_r_A') for v in ok_rdf], 3)}"
            f"{f' ({ref[0]:.3f})' if ref else ''} | "
            f"{_mean_std([v.get('peak_g') for v in ok_rdf], 2)}{f' ({ref[1]:.2f})' if ref else ''} | "
            f"{_mean_std([(r['nvt']['rdf'] or {}).get('total_distance_A') for r in stable], 3)} |"
        )
    return lines


def write_summary(results_dir: Path) -> str:
    """``summary.md`` (a row per run and a row per group of seeds) and ``rdf_comparison.png``
    over every ``report.json`` below ``results_dir``; returns the markdown."""
    reports = [json.loads(p.read_text()) for p in sorted(results_dir.rglob("report.json"))]
    lines = [
        "# MD validation: 64-molecule water box",
        "",
        "Made by `scripts/md_validate.py` (one folder per checkpoint, `report.md` there has the "
        "details). NVE: velocity Verlet; NVT: Langevin; both from a DFT frame of the data with "
        "Maxwell–Boltzmann velocities. Drift and fluctuation of E_total/N: before the blow-up "
        "where there was one. RDF distance: ∫(g − g_DFT)² dr in Å per pair and summed. Speeds "
        "(NVE) on the machine named in each report.",
        "",
        "## Over training seeds",
        "",
        "Runs that differ only in the training seed (`-s<seed>`), mean ± sample std; drift, "
        "temperature and RDF numbers over the stable runs only. Goals: issue 16's MD-grade "
        "criteria (`goals` in `conf/md.yaml`; each run's `report.md` lists them and which it "
        "met); n/a for runs made before the goals were graded.",
        "",
        *seed_table(reports),
        "",
        "## Every run",
        "",
        "| run | activation | train steps | test F RMSE meV/Å | NVE | drift meV/atom/ps | "
        "fluct. meV/atom | NVT | T K | RDF dist. O-O | O-H | H-H | total | steps/s | ns/day |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        nve, nvt, tr = r["nve"], r["nvt"], r["training"] or {}
        e, rdf = nve["energy"] or {}, nvt["rdf"] or {}
        verdict = {
            k: (
                f"stable {v['simulated_ps']:.2f} ps"
                if v["stable"]
                else f"{failure_kind(v)} step {v['failed_step']}"
            )
            for k, v in (("nve", nve), ("nvt", nvt))
        }
        dist = [_fmt(rdf.get(p, {}).get("distance_A"), 4) for p in ("O-O", "O-H", "H-H")]
        dist.append(_fmt(rdf.get("total_distance_A"), 4))
        if rdf and not nvt["stable"]:
            dist = [f"({d})" for d in dist]
        lines.append(
            f"| {r['name']} | {model_label(r)} | {tr.get('steps', 'n/a')} | "
            f"{_fmt(tr.get('rmse_f_meV_per_A'), 1)} | {verdict['nve']} | "
            f"{_energy_cells(e)} | "
            f"{verdict['nvt']} | {_fmt(nvt['temperature_K_mean'], 0)} | {' | '.join(dist)} | "
            f"{nve['steps_per_s']:.2f} | "
            f"{nve['ns_per_day']:.3f} |"
        )
    lines += [
        "",
        f"RDF distances in parentheses: {FAILED_RUN_RDF}",
        "",
        "![RDFs of every run against the DFT frames](rdf_comparison.png)",
        "",
    ]
    text = "\n".join(lines)
    if reports:
        curves = {r["name"]: r["rdf_curves"] for r in reports if r["rdf_curves"]}
        plot_rdfs(curves, reports[0]["reference_rdf"], results_dir / "rdf_comparison.png")
    (results_dir / "summary.md").write_text(text)
    return text
