"""Train DeePMD-kit's se_e2_a water model and ours with the same recipe; compare on data_3.

    make deepmd                                    # DeePMD-kit 3.2.0 into .deepmd/ (once)
    python scripts/compare_deepmd.py --steps 1000  # -> results/bench/dp_vs_deepmd.md

Both sides: DeePMD-kit's examples/water/se_e2_a/input.json architecture (rcut 6 Å, sel [46, 92],
embedding [25, 50, 100], axis 16, fitting [240, 240, 240] with resnet_dt, tanh, float64), training
systems data_0..2, batch size 1, Adam, exponential LR decay start_lr → stop_lr every
decay_steps, DeePMD-kit's energy/force prefactor schedule, the same number of steps and the
same threads. Both are tested with their final weights on all 80 frames of data_3: DeePMD-kit by
``dp --pt test`` (its own RMSE), ours by ``run.py`` (``test_ckpt=last``). Each recipe (steps, decay,
stop lr, display frequency, seed) trains in its own folder under ``--work``; a second call with
the same recipe reuses both trainings and only tests and reports again.

DeePMD-kit runs from ``--deepmd-path`` (a ``pip install --target`` folder, put first on
PYTHONPATH) on this project's torch, with its compiled custom operators disabled: they are built
for another torch version, and se_e2_a training does not use them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WATER = ROOT / "data" / "water"

#: Python that replaces DeePMD-kit's custom-operator module by a stub (see docstring).
STUB_CXX_OP = (
    "import sys, types; m = types.ModuleType('deepmd.pt.cxx_op'); m.ENABLE_CUSTOMIZED_OP = False; "
    "sys.modules['deepmd.pt.cxx_op'] = m\n"
)
#: Start DeePMD-kit's CLI behind the stub.
LAUNCH = STUB_CXX_OP + "from deepmd.main import main; sys.argv[0] = 'dp'; sys.exit(main())"


def deepmd_input(steps: int, decay_steps: int, stop_lr: float, disp_freq: int) -> dict:
    """DeePMD-kit's water se_e2_a example with our step budget and schedule."""
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {
                "type": "se_e2_a", "sel": [46, 92], "rcut_smth": 0.5, "rcut": 6.0,
                "neuron": [25, 50, 100], "resnet_dt": False, "axis_neuron": 16,
                "type_one_side": True, "precision": "float64", "seed": 1,
            },
            "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "precision": "float64", "seed": 1},
        },
        "learning_rate": {"type": "exp", "decay_steps": decay_steps, "start_lr": 1e-3, "stop_lr": stop_lr},
        "loss": {
            "type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000,
            "limit_pref_f": 1, "start_pref_v": 0, "limit_pref_v": 0,
        },
        "training": {
            "training_data": {"systems": [str(WATER / f"data_{i}") for i in range(3)], "batch_size": 1},
            "validation_data": {"systems": [str(WATER / "data_3")], "batch_size": 1, "numb_btch": 1},
            "numb_steps": steps, "seed": 10, "disp_file": "lcurve.out", "disp_freq": disp_freq,
            "save_freq": steps,
        },
    }


def run_logged(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> str:
    """Run ``cmd``, tee its output to ``log``; raise with the log's tail when it fails."""
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    text = log.read_text()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}); see {log}:\n{text[-3000:]}")
    return text


def run_deepmd(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    (work / "input.json").write_text(
        json.dumps(deepmd_input(args.steps, args.decay_steps, args.stop_lr, args.disp_freq), indent=2)
    )
    env = {**env, "PYTHONPATH": str(args.deepmd_path.resolve())}
    dp = [sys.executable, "-c", LAUNCH]
    ckpt = work / f"model.ckpt-{args.steps}.pt"
    if ckpt.exists():  # trained already (the folder is the recipe's): test it again
        log = (work / "train.log").read_text()
    else:
        log = run_logged(dp + ["--pt", "train", "input.json"], work, env, work / "train.log")
    intervals = [float(t) for t in re.findall(r"total wall time = ([0-9.]+) s", log)]
    test = run_logged(
        dp + ["--pt", "test", "-m", str(ckpt), "-s", str(WATER / "data_3"), "-n", "80"],
        work, env, work / "test.log",
    )
    e_rmse = float(re.search(r"Energy RMSE/Natoms\s*:\s*([-0-9.e+]+) eV", test).group(1))
    f_rmse = float(re.search(r"Force\s+RMSE\s*:\s*([-0-9.e+]+) eV/(?:A|Å)", test).group(1))
    return {
        "rmse_e_per_atom_meV": 1000 * e_rmse,
        "rmse_f_meV_per_A": 1000 * f_rmse,
        # each display interval includes one validation batch; the first holds the warm-up
        "step_time_s": statistics.median(intervals[1:] or intervals) / args.disp_freq,
        "n_params": count_deepmd_parameters(ckpt, env),
    }


def count_deepmd_parameters(ckpt: Path, env: dict[str, str]) -> int:
    """Trainable parameters of a DeePMD-kit checkpoint (its model's ``requires_grad`` tensors)."""
    code = STUB_CXX_OP + (
        "import torch\n"
        "from deepmd.pt.model.model import get_model\n"
        f"state = torch.load({str(ckpt)!r}, map_location='cpu', weights_only=True)['model']\n"
        "params = state['_extra_state']['model_params']\n"
        "model = get_model(params)\n"
        "model.load_state_dict({k.removeprefix('model.Default.'): v for k, v in state.items() "
        "if k.startswith('model.Default.')})\n"
        "print(sum(p.numel() for p in model.parameters() if p.requires_grad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"counting DeePMD-kit parameters failed:\n{out.stderr[-3000:]}")
    return int(out.stdout.strip().splitlines()[-1])


def run_ours(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict:
    cmd = [
        sys.executable, str(ROOT / "run.py"), "model=dp", "activation=tanh", "logger=none",
        "callbacks=none", "test_ckpt=last", f"trainer.max_steps={args.steps}",
        f"trainer.val_check_interval={args.steps}", "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false", f"training.lr.decay_steps={args.decay_steps}",
        f"training.lr.stop_lr={args.stop_lr}", f"seed={args.seed}", f"hydra.run.dir={work}",
    ]
    run_logged(cmd, ROOT, env, work.parent / "ours.log")
    metrics = json.loads((work / "metrics.json").read_text())
    return {
        "rmse_e_per_atom_meV": metrics["test"]["rmse_e_per_atom_meV"],
        "rmse_f_meV_per_A": metrics["test"]["rmse_f_meV_per_A"],
        "step_time_s": metrics["step_time_s"],
        "n_params": metrics["n_params"],
    }


def report(args: argparse.Namespace, ours: dict, ref: dict) -> str:
    from taafs_exp.machine import cpu_name

    def row(name: str, r: dict) -> str:
        return (
            f"| {name} | {r['rmse_e_per_atom_meV']:.2f} | {r['rmse_f_meV_per_A']:.1f} | "
            f"{r['n_params']} | {1000 * r['step_time_s']:.0f} |"
        )

    force_ratio = ours["rmse_f_meV_per_A"] / ref["rmse_f_meV_per_A"]
    time_ratio = ours["step_time_s"] / ref["step_time_s"]
    return "\n".join(
        [
            "# DP (taafs-exp) vs DeePMD-kit 3.2.0 on water, same recipe",
            "",
            f"Measured by `python scripts/compare_deepmd.py --steps {args.steps} --decay-steps "
            f"{args.decay_steps} --stop-lr {args.stop_lr} --threads {args.threads}` on {cpu_name()}, "
            f"{args.threads} torch thread(s) each, the two trainings one after the other.",
            "",
            "Model: DeePMD-kit's `examples/water/se_e2_a` (rcut 6 Å, rcut_smth 0.5, sel [46, 92], "
            "embedding [25, 50, 100], axis 16, fitting [240, 240, 240] resnet_dt, tanh, float64). "
            f"Training: data_0–2, batch 1, Adam, lr 1e-3 → {args.stop_lr} (decay every "
            f"{args.decay_steps} steps), prefactors e 0.02 → 1, f 1000 → 1, {args.steps} steps. "
            "Test: final weights on all 80 frames of data_3 (DeePMD-kit: `dp --pt test`).",
            "",
            "| code | test E RMSE (meV/atom) | test F RMSE (meV/Å) | params | step (ms) |",
            "|---|---|---|---|---|",
            row("taafs-exp `model=dp activation=tanh`", ours),
            row("DeePMD-kit 3.2.0 `dp --pt train`", ref),
            "",
            f"- Force RMSE ratio ours / DeePMD-kit: {force_ratio:.3f} (goal ≤ 1.10).",
            f"- Step time ratio ours / DeePMD-kit: {time_ratio:.2f} (goal ≤ 1).",
            f"- Parameters identical: {'yes' if ours['n_params'] == ref['n_params'] else 'NO'}.",
            "- Step time: ours is the median training step (forward, forces, loss, backward, Adam); "
            "DeePMD-kit's is the median display interval divided by its length "
            f"({args.disp_freq} steps, each interval also evaluates one validation frame).",
            "- One seed each: initial weights and frame order differ between the codes, so a few "
            "percent of difference at this budget may be seed noise rather than a systematic gap.",
            *([f"- Conditions: {args.note}"] if args.note else []),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--decay-steps", type=int, default=100)
    parser.add_argument("--stop-lr", type=float, default=1e-5)
    parser.add_argument("--disp-freq", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="measurement conditions, added to the report")
    parser.add_argument("--deepmd-path", type=Path, default=ROOT / ".deepmd")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "compare_deepmd")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "dp_vs_deepmd.md")
    args = parser.parse_args()
    if not (args.deepmd_path / "deepmd").is_dir():
        raise SystemExit(f"{args.deepmd_path}: no DeePMD-kit there; run `make deepmd` first")
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "DP_INTRA_OP_PARALLELISM_THREADS": threads, "DP_INTER_OP_PARALLELISM_THREADS": "1"}
    # one folder per training recipe: a rerun with the same recipe tests the trained models again
    work = args.work / (f"steps{args.steps}-decay{args.decay_steps}-stoplr{args.stop_lr:g}-"
                        f"disp{args.disp_freq}-seed{args.seed}")
    ref = run_deepmd(args, work / "deepmd", env)
    print("deepmd-kit:", ref, flush=True)
    ours = run_ours(args, work / "ours", env)
    print("ours:", ours, flush=True)
    text = report(args, ours, ref)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps({"ours": ours, "deepmd": ref, "args": {
        k: str(v) for k, v in vars(args).items()}}, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
