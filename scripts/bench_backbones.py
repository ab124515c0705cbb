"""Training-step time of every backbone with its base activation and with each TAAFS basis.

Writes ``results/bench/backbones.md`` and ``.csv``. Run: ``make bench-backbones``. A step is what
training does per batch: energy, forces −∂E/∂R with the graph kept, DeePMD-kit's loss, backward
through the forces, one Adam step; on one water frame (192 atoms, the training batch). Each
TAAFS step is timed right after a base-activation step of the same backbone, and the ratio is the
median of those pairs, which cancels most of the drift of a shared machine.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections.abc import Callable
from pathlib import Path

import hydra
import torch
from hydra import compose, initialize_config_dir

from taafs_exp.activations import FIXED_ACTIVATIONS, available_activations
from taafs_exp.data import Frame, load_dataset
from taafs_exp.md import TAAFSCalculator, frame_atoms, make_dynamics
from taafs_exp.machine import cpu_name, load_average, paired_timing
from taafs_exp.training.module import PotentialModule, cast_floats
from taafs_exp.training.train import build_module

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))  # conf/paths resolves the data folder from it
#: Goal for TAAFS step / base step per backbone (issue 13; DP's aim is 1.15).
GOALS = {"dp_cpu": 1.3, "dp": 1.3, "chgnet": 1.3, "ani2": 1.1, "painn": 1.1}


def step_function(module: PotentialModule, batch: dict) -> Callable[[], None]:
    """One training step of ``module`` on ``batch`` (see module docstring)."""
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    batch = cast_floats(batch, module.model_dtype)

    def step() -> None:
        optimizer.zero_grad()
        loss = module.loss(batch, module(batch, create_graph=True), step=0)
        loss.backward()
        optimizer.step()

    return step


def md_step_function(module: PotentialModule, frame: Frame) -> Callable[[], None]:
    """One velocity-Verlet step (neighbour list, energy, forces) from ``frame``, as ``make md``
    runs it."""
    atoms = frame_atoms(frame)
    atoms.calc = TAAFSCalculator(module.model)
    dynamics = make_dynamics(atoms, "nve", timestep_fs=0.5, temperature_K=300.0)
    return lambda: dynamics.run(1)


def bench_model(model: str, base: str, taafs: list[str], repeats: int, md: bool = False) -> list[dict]:
    """Rows of ``model`` with ``base`` and with each of ``taafs`` (its curves start from base)."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        configs = {a: compose("config", overrides=[f"model={model}", f"activation={a}", "logger=none"])
                   for a in [base, *taafs]}
    datamodule = hydra.utils.instantiate(configs[base].data)
    modules = {}
    for name, cfg in configs.items():
        torch.manual_seed(0)
        modules[name] = build_module(cfg, datamodule)
    batch = next(iter(datamodule.train_dataloader()))
    steps = {name: step_function(module, batch) for name, module in modules.items()}
    water = load_dataset(ROOT / "data" / "water", "deepmd")[0] if md else None  # 64 molecules, 192 atoms
    rows = []
    for name in [base, *taafs]:
        first = time.perf_counter()
        steps[name]()  # the first step compiles the TAAFS kernels
        first_s = time.perf_counter() - first
        step_ms, ratio = paired_timing(steps[name], steps[base], repeats)
        module = modules[name]
        rows.append({
            "model": model, "activation": name, "params": module.n_params(),
            "extra_params": module.n_extra_params(), "step_ms": step_ms, "ratio": ratio,
            "first_step_s": first_s, "md_speed": None,
        })
        if md:  # steps per second of the TAAFS calculator over the base one's
            _, md_ratio = paired_timing(md_step_function(module, water), md_step_function(modules[base], water), repeats)
            rows[-1]["md_speed"] = 1 / md_ratio
        print(f"{model:8s} {name:10s} {rows[-1]['step_ms']:8.1f} ms  x{rows[-1]['ratio']:.2f}", flush=True)
    return rows


def report(rows: list[dict], args: argparse.Namespace, load: dict) -> str:
    lines = [
        "# Training-step time per backbone: base activation vs TAAFS (K = 8, share=layer)",
        "",
        f"`make bench-backbones` (`scripts/bench_backbones.py --repeats {args.repeats} --threads "
        f"{args.threads} --models {' '.join(args.models)}`) on {cpu_name()}, {args.threads} torch "
        f"thread(s), torch {torch.__version__}; load average (1/5/15 min) before "
        f"{load['before']}, after {load['after']}. One water frame (192 atoms) per step: "
        "energy, forces with create_graph, DeePMD-kit loss, backward, Adam. Median over paired "
        "repeats; ratio = TAAFS step / base step timed just before it, in one process. TAAFS runs "
        "the compiled one-pass kernels; `first step` includes their compilation. Goals: "
        + ", ".join(f"{m} ≤ {g}" for m, g in GOALS.items()) + ".",
        "",
        "`MD speed` (models in `--md-models`): steps per second of an NVE velocity-Verlet step "
        "with the TAAFS calculator over the base calculator's (neighbour list, energy, forces; "
        "192-atom water frame; paired); goal ≥ 0.8.",
        "",
        "| model | activation | params | extra | step (ms) | × base | goal met | first step (s) | MD speed (× base) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fixed = r["activation"] in FIXED_ACTIVATIONS
        goal = GOALS.get(r["model"])
        met = "—" if fixed or goal is None else ("yes" if r["ratio"] <= goal else "no")
        lines.append(
            f"| {r['model']} | {r['activation']}{' (base)' if fixed else ''} | {r['params']} | "
            f"{r['extra_params']} | {r['step_ms']:.1f} | {r['ratio']:.2f} | {met} | {r['first_step_s']:.1f} | "
            + ("|" if r["md_speed"] is None else f"{r['md_speed']:.2f} |")
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dp_cpu", "dp", "ani2", "painn", "chgnet"])
    taafs = [a for a in available_activations() if a not in FIXED_ACTIVATIONS]
    parser.add_argument("--taafs", nargs="+", default=taafs, help="bases timed against each base")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--md-models", nargs="*", default=["dp_cpu"], help="models whose MD step is timed too")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "backbones.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = {"before": load_average()}
    rows = []
    for model in args.models:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            base = compose("config", overrides=[f"model={model}"]).model.base_activation
        rows += bench_model(model, base, args.taafs, args.repeats, md=model in args.md_models)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    load["after"] = load_average()
    args.out.write_text(report(rows, args, load))
    with args.out.with_suffix(".csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
