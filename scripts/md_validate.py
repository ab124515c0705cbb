"""MD validation of a trained checkpoint on the 64-molecule water box (conf/md.yaml).

    python scripts/md_validate.py checkpoint=outputs/md/dp_tanh/checkpoints/best.ckpt

NVE (velocity Verlet) and NVT (Langevin) from a DFT frame of the data; NVE energy drift and
fluctuation, NVT O-O/O-H/H-H RDFs against every DFT frame of the data, stability checks and
speed. Writes results/md/<name>/{report.md, report.json, energy.png, rdf.png, *.traj} and
rebuilds results/md/summary.md over every run there.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

import hydra  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from ase.calculators.mixing import SumCalculator  # noqa: E402
from ase.data import chemical_symbols  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from taafs_exp.data import load_dataset  # noqa: E402
from taafs_exp.md import (  # noqa: E402
    StabilityLimits,
    TAAFSCalculator,
    activation_names,
    frame_atoms,
    make_dynamics,
    radial_distribution,
    run_md,
)
from taafs_exp.md.repulsion import ZBLRepulsion  # noqa: E402
from taafs_exp.md.scan import scan_report  # noqa: E402
from taafs_exp.md.report import (  # noqa: E402
    equilibrated_temperature,
    md_goals,
    nve_analysis,
    rdf_analysis,
    rdf_curves,
    run_summary,
    write_run_report,
    write_summary,
)

#: The water pairs whose RDFs are compared (atomic numbers).
PAIRS = [(8, 8), (8, 1), (1, 1)]


def training_summary(checkpoint: Path) -> dict[str, Any] | None:
    """Budget and test RMSEs from the run's metrics.json (``<run>/checkpoints/x.ckpt``), if any."""
    metrics = checkpoint.resolve().parent.parent / "metrics.json"
    if not metrics.is_file():
        return None
    m = json.loads(metrics.read_text())
    keys = ("rmse_e_per_atom_meV", "rmse_f_meV_per_A", "split")
    return {"steps": m["steps"], "budget": m.get("budget"), **{k: m["test"].get(k) for k in keys}}


@hydra.main(version_base="1.3", config_path="../conf", config_name="md")
def main(cfg: DictConfig) -> None:
    torch.set_num_threads(int(cfg.threads))
    checkpoint = Path(cfg.checkpoint)
    name = cfg.name or checkpoint.resolve().parent.parent.name
    out_dir = Path(cfg.results_dir) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    model_calc = TAAFSCalculator.from_checkpoint(checkpoint, device=cfg.device)
    frames = load_dataset(cfg.data_path, cfg.data_format)
    start = frames[int(cfg.frame_index)]
    if any(not torch.equal(f.numbers, start.numbers) for f in frames):
        raise ValueError(f"{cfg.data_path}: frames differ in atoms; the RDF needs one composition")
    calc, floor = model_calc, None
    if cfg.repulsion is not None:
        floor = ZBLRepulsion.below_frames(frames, cfg.repulsion.width_A)
        calc = SumCalculator([model_calc, floor])
    limits = StabilityLimits(**cfg.stability)
    short_range = scan_report(frame_atoms(start), calc, cfg.scan_distances_A)

    runs = {}
    for ensemble in ("nve", "nvt"):
        settings = cfg[ensemble]
        atoms = frame_atoms(start)
        atoms.calc = calc
        dyn = make_dynamics(
            atoms,
            ensemble,
            settings.timestep_fs,
            settings.temperature_K,
            friction_per_fs=settings.get("friction_per_fs", 0.0),
            seed=int(cfg.seed),
        )
        runs[ensemble] = run_md(
            dyn,
            ensemble,
            int(settings.steps),
            log_interval=int(cfg.log_interval),
            snapshot_interval=int(cfg.snapshot_interval),
            limits=limits,
            trajectory=out_dir / f"{ensemble}.traj" if cfg.write_trajectory else None,
        )
        summary = run_summary(runs[ensemble])
        print(f"[{name}] {ensemble}: {summary}", flush=True)

    nve, nvt = runs["nve"], runs["nvt"]
    numbers = start.numbers.numpy()
    reference = radial_distribution(
        np.stack([f.positions.numpy() for f in frames]),
        np.stack([f.cell.numpy() for f in frames]),
        numbers,
        PAIRS,
        cfg.rdf.r_max,
        cfg.rdf.num_bins,
    )
    nvt_summary = {
        **run_summary(nvt),
        "temperature_K_equilibrated": equilibrated_temperature(nvt, cfg.nvt.equilibration_steps),
    }
    sampled = [
        p for s, p in zip(nvt.snapshot_steps, nvt.snapshots) if s >= cfg.nvt.equilibration_steps
    ]
    model_rdf = (
        radial_distribution(
            np.stack(sampled), start.cell.numpy(), numbers, PAIRS, cfg.rdf.r_max, cfg.rdf.num_bins
        )
        if sampled
        else None
    )
    report = {
        "name": name,
        "checkpoint": str(checkpoint),
        "model": {
            "target": model_calc.model_config["_target_"],
            "activation": "/".join(activation_names(model_calc.model_config)),
            "n_params": sum(p.numel() for p in model_calc.model.parameters()),
        },
        "repulsion": None
        if floor is None
        else {
            "kind": "zbl",
            "width_A": floor.width_A,
            "r_off_A": {
                "-".join(chemical_symbols[z] for z in pair): d for pair, d in floor.r_off.items()
            },
        },
        "training": training_summary(checkpoint),
        "start": {
            "data_path": os.path.relpath(cfg.data_path, cfg.paths.root),
            "frame_index": int(cfg.frame_index),
            "source": start.source,
            "num_atoms": start.num_atoms,
        },
        "seed": int(cfg.seed),
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared), torch "
        f"{torch.__version__}, {cfg.threads} thread(s), {cfg.device}",
        "stability": OmegaConf.to_container(cfg.stability),
        "log_interval": int(cfg.log_interval),
        "nvt_settings": OmegaConf.to_container(cfg.nvt),
        "reference_frames": len(frames),
        "nve": {**run_summary(nve), "energy": nve_analysis(nve)},
        "nvt": {
            **nvt_summary,
            "rdf_snapshots": len(sampled),
            "rdf": rdf_analysis(model_rdf, reference) if model_rdf else None,
        },
        "short_range": short_range,
        "rdf_curves": rdf_curves(model_rdf) if model_rdf else None,
        "reference_rdf": rdf_curves(reference),
    }
    report["goals"] = {
        "criteria": OmegaConf.to_container(cfg.goals),
        "met": md_goals(report, cfg.goals),
    }
    write_run_report(out_dir, report, nve, nvt)
    print(write_summary(Path(cfg.results_dir)), flush=True)
    print(f"report: {out_dir / 'report.md'}", flush=True)


if __name__ == "__main__":
    main()
