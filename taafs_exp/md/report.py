"""MD validation outputs: per-run report (json, markdown, plots) and the table across runs.

Layout: ``<results_dir>/<name>/{report.json, report.md, energy.png, rdf.png}`` per checkpoint,
and ``<results_dir>/summary.md`` + ``rdf_comparison.png`` over every run found there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from ase.data import chemical_symbols  # noqa: E402

from taafs_exp.md.integrate import MDRun  # noqa: E402
from taafs_exp.md.observables import RDF, energy_drift, ns_per_day, rdf_distance  # noqa: E402

#: Said wherever an RDF comes from an NVT run that blew up.
BLOWN_UP_RDF = (
    "the NVT run blew up, so its RDF samples the way to the blow-up, not water at the set "
    "temperature"
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


def rdf_analysis(
    model: dict[tuple[int, int], RDF], reference: dict[tuple[int, int], RDF]
) -> dict[str, Any]:
    """Per pair: ∫(g − g_ref)² dr (Å) and the highest-peak position (Å) and height of both."""
    out: dict[str, Any] = {}
    for pair, ref in reference.items():
        mine = model[pair]
        out[pair_label(pair)] = {
            "distance_A": rdf_distance(mine, ref),
            "peak_r_A": float(mine.r[np.argmax(mine.g)]),
            "peak_g": float(mine.g.max()),
            "ref_peak_r_A": float(ref.r[np.argmax(ref.g)]),
            "ref_peak_g": float(ref.g.max()),
        }
    out["total_distance_A"] = sum(v["distance_A"] for v in out.values())
    return out


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


def _verdict(run: dict[str, Any]) -> str:
    if run["stable"]:
        return f"stable, {run['steps_done']} steps ({run['simulated_ps']:.2f} ps)"
    time_fs = run["failed_step"] * run["timestep_fs"]
    return f"**BLEW UP** at step {run['failed_step']} ({time_fs:.1f} fs): {run['reason']}"


def run_markdown(report: dict[str, Any]) -> str:
    """The human-readable report of one checkpoint."""
    m, tr, nve, nvt = report["model"], report["training"], report["nve"], report["nvt"]
    lines = [
        f"# MD validation: {report['name']}",
        "",
        f"Checkpoint `{report['checkpoint']}`: {m['target']}, activation **{m['activation']}**, "
        f"{m['n_params']} parameters.",
    ]
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
        f"T = {_fmt(nvt['temperature_K_mean'], 0)} ± {_fmt(nvt['temperature_K_std'], 0)} K, "
        f"{nvt['steps_per_s']:.2f} steps/s ({nvt['ns_per_day']:.3f} ns/day). "
        f"RDF from {nvt['rdf_snapshots']} snapshots after step "
        f"{report['nvt_settings']['equilibration_steps']}, against {report['reference_frames']} "
        "DFT frames of the data.",
        "",
    ]
    if not nvt["stable"] and nvt["rdf"] is not None:
        lines += [f"*{BLOWN_UP_RDF}*", ""]
    rdf = nvt["rdf"]
    if rdf is None:
        lines.append("No RDF: the run stopped before any snapshot after equilibration.")
    else:
        lines += [
            "| pair | ∫(g−g_DFT)² dr, Å | highest peak r Å (DFT) | highest peak g (DFT) |",
            "|---|---|---|---|",
        ]
        for pair, v in rdf.items():
            if pair != "total_distance_A":
                lines.append(
                    f"| {pair} | {v['distance_A']:.4f} | "
                    f"{v['peak_r_A']:.3f} ({v['ref_peak_r_A']:.3f}) "
                    f"| {v['peak_g']:.2f} ({v['ref_peak_g']:.2f}) |"
                )
        lines.append(f"| total | {rdf['total_distance_A']:.4f} | | |")
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


def write_summary(results_dir: Path) -> str:
    """``summary.md`` table and ``rdf_comparison.png`` over every ``*/report.json``; returns the
    markdown."""
    reports = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*/report.json"))]
    lines = [
        "# MD validation: 64-molecule water box",
        "",
        "Made by `scripts/md_validate.py` (one folder per checkpoint, `report.md` there has the "
        "details). NVE: velocity Verlet; NVT: Langevin; both from a DFT frame of the data with "
        "Maxwell–Boltzmann velocities. Drift and fluctuation of E_total/N: before the blow-up "
        "where there was one. RDF distance: ∫(g − g_DFT)² dr in Å per pair and summed. Speeds "
        "(NVE) on the machine named in each report.",
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
                else f"BLEW UP step {v['failed_step']}"
            )
            for k, v in (("nve", nve), ("nvt", nvt))
        }
        dist = [_fmt(rdf.get(p, {}).get("distance_A"), 4) for p in ("O-O", "O-H", "H-H")]
        dist.append(_fmt(rdf.get("total_distance_A"), 4))
        if rdf and not nvt["stable"]:
            dist = [f"({d})" for d in dist]
        lines.append(
            f"| {r['name']} | {r['model']['activation']} | {tr.get('steps', 'n/a')} | "
            f"{_fmt(tr.get('rmse_f_meV_per_A'), 1)} | {verdict['nve']} | "
            f"{_energy_cells(e)} | "
            f"{verdict['nvt']} | {_fmt(nvt['temperature_K_mean'], 0)} | {' | '.join(dist)} | "
            f"{nve['steps_per_s']:.2f} | "
            f"{nve['ns_per_day']:.3f} |"
        )
    lines += [
        "",
        f"RDF distances in parentheses: {BLOWN_UP_RDF}",
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
