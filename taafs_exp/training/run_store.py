"""The run store, results/runs/: files written atomically, finished runs left alone, identical
runs reused across studies.

A run folder is finished when it holds ``metrics.json`` (``METRICS_FILE``, written last). A
restarted sweep skips it (``train``) and Hydra does not overwrite its saved config
(``subdir_unless_finished``, the resolver of ``hydra.output_subdir``).

A study run whose training is identical to a finished run of another
study (e.g. Chebyshev K = 8, share=layer, seed 0 is a row of basis_dp, knots_dp and sharing_dp)
takes that run's results instead of training the same model again.

Identical means: the same composed config once the keys that only name a study or place its
output are dropped (``STUDY_KEYS``), and the same model, data and placement choices. CPU training
is deterministic here, so such a rerun would reproduce the numbers bit for bit at the same
thread count (checked on basis_dp / knots_dp / sharing_dp seed 0 before this existed). The thread
count changes the order of float sums, so a run is reused only at the thread count this run will
train with (``torch_threads`` in its metrics.json); one that recorded none is never reused.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from taafs_exp.training.errors import ConfigError
from taafs_exp.training.rebuild import read_json, read_saved_config

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
# the TAAFS curves of a run (written by callbacks.ActivationSnapshot, drawn by analysis.figures)
SNAPSHOT_FILE = "activations.json"
# config keys that name a study, place its output or only change how fast it runs
STUDY_KEYS = frozenset(
    {"experiment_name", "tags", "task_name", "torch_threads", "ckpt_path", "logger",
     "reuse_identical_runs", "hydra"}
)
# callbacks that only decide where and how often checkpoints are written (not the trained model)
CHECKPOINT_CALLBACKS = frozenset({"model_checkpoint", "run_checkpoint"})
# the files a reused run takes from its twin (checkpoints stay with the original run)
RESULT_FILES = (SNAPSHOT_FILE,)


def subdir_unless_finished(output_dir: str, subdir: str) -> str | None:
    """``subdir`` (where Hydra saves a job's config), or None, which makes Hydra save nothing,
    when ``output_dir`` holds a finished run: a restart must not overwrite the config that
    trained it."""
    return None if (Path(output_dir) / METRICS_FILE).exists() else subdir


def register_resolvers() -> None:
    """The resolvers the configs use (``conf/hydra/default.yaml``)."""
    OmegaConf.register_new_resolver("subdir_unless_finished", subdir_unless_finished, replace=True)


def write_json_atomic(path: Path, payload: dict[str, Any], indent: int | None = 2) -> None:
    """Write strict JSON (ValueError for NaN/inf: no bare NaN in a results file) through a
    temporary file and a rename: never a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    text = json.dumps(
        payload, indent=indent, separators=None if indent else (",", ":"), allow_nan=False
    )
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def training_identity(cfg: DictConfig) -> dict[str, Any]:
    """The unresolved config without ``STUDY_KEYS``, output paths and checkpoint callbacks:
    what decides the trained model and its test numbers."""
    container = OmegaConf.to_container(cfg, resolve=False)
    identity = {k: v for k, v in container.items() if k not in STUDY_KEYS}
    paths = container.get("paths") or {}
    identity["paths"] = {"data_dir": paths.get("data_dir")}
    if isinstance(identity.get("callbacks"), dict):
        identity["callbacks"] = {
            k: v for k, v in identity["callbacks"].items() if k not in CHECKPOINT_CALLBACKS
        }
    if isinstance(identity.get("trainer"), dict):  # what the console shows, not what trains
        identity["trainer"] = {
            k: v for k, v in identity["trainer"].items() if k != "enable_progress_bar"
        }
    return identity


def differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys at which two nested config containers differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            key
            for k in sorted(set(a) | set(b), key=str)
            for key in differing_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        ]
    return [] if a == b else [prefix.rstrip(".") or "<root>"]


def check_same_training(cfg: DictConfig, output_dir: Path) -> None:
    """ConfigError when the finished run in ``output_dir`` was trained with another config than
    ``cfg`` (its folder name holds only activation, K, sharing and seed, so e.g. a restart with
    another budget would otherwise silently return the old numbers)."""
    saved = output_dir / ".hydra" / "config.yaml"
    if not saved.exists():
        return
    differ = differing_keys(training_identity(cfg), training_identity(read_saved_config(saved)))
    if differ:
        shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6 else "")
        raise ConfigError(
            f"{output_dir}: holds a finished run trained with another config ({shown} differ, "
            f"see {saved}); expected the same config to skip it. Give this run another folder "
            "(e.g. experiment_name=<new study>) or move the old run away"
        )


def run_choices(cfg: DictConfig) -> dict[str, str]:
    """The model, data and placement names this run records in metrics.json."""
    return {
        "model": cfg.get("model_name"),
        "data": cfg.get("data_name"),
        "placement": cfg.get("placement_name") or "all",
    }


def run_threads(cfg: DictConfig) -> int:
    """The torch intra-op thread count ``cfg`` trains with: ``torch_threads``, else torch's
    default in this process."""
    return int(cfg.torch_threads) if cfg.get("torch_threads") else torch.get_num_threads()


def find_identical_run(cfg: DictConfig, store: Path, output_dir: Path) -> Path | None:
    """A finished, trained (not itself reused) run under ``store`` whose training equals
    ``cfg``'s at the same thread count (:func:`run_threads`), or None. Runs are
    ``<store>/<study>/<model>/<data>/<run>/``."""
    identity, choices, threads = training_identity(cfg), run_choices(cfg), run_threads(cfg)
    for config_file in sorted(store.glob("*/*/*/*/.hydra/config.yaml")):
        run_dir = config_file.parent.parent
        metrics_file = run_dir / METRICS_FILE
        if run_dir.resolve() == output_dir.resolve() or not metrics_file.exists():
            continue
        metrics = read_json(metrics_file)
        if metrics.get("reused_from") or any(
            (metrics.get(k) or "all") != v for k, v in choices.items()
        ):
            continue
        if training_identity(read_saved_config(config_file)) != identity:
            continue
        recorded = metrics.get("torch_threads")
        if recorded == threads:
            return run_dir
        why = "no thread count recorded" if recorded is None else f"{recorded} torch threads"
        log.info("not reusing identical run %s: %s, this run trains with %d (bit-identical "
                 "results need the same count)", run_dir, why, threads)
    return None


def reuse_run(twin: Path, output_dir: Path, experiment: str, store: Path) -> dict[str, Any]:
    """Copy ``twin``'s results into ``output_dir`` as a run of ``experiment``; ``metrics.json``
    names its source (``reused_from``, relative to the store) and is written last."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in RESULT_FILES:
        if (twin / name).exists():
            shutil.copyfile(twin / name, output_dir / name)
    metrics = read_json(twin / METRICS_FILE)
    metrics["experiment"] = experiment
    metrics["reused_from"] = str(twin.resolve().relative_to(store.resolve()))
    write_json_atomic(output_dir / METRICS_FILE, metrics)
    return metrics
