"""``train(cfg)``: data → model → Lightning fit → test → ``metrics.json``."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from taafs_exp.data.datamodule import AtomsDataModule
from taafs_exp.machine import code_version
from taafs_exp.models.base import Potential
from taafs_exp.training.module import METRIC_NAMES, PotentialModule, as_plain_dict
from taafs_exp.training.callbacks import CHECKPOINT_DIR, LAST_CHECKPOINT, AtomicCheckpointIO
from taafs_exp.training.console import StepProgressBar, quiet_third_party
from taafs_exp.training.errors import ConfigError
from taafs_exp.training.rebuild import (
    ACTIVATION_FACTORY,
    load_checkpoint,
    potential_class,
    read_json,
)
from taafs_exp.training.run_store import (
    METRICS_FILE,
    check_same_training,
    differing_keys,
    find_identical_run,
    reuse_run,
    write_json_atomic,
)

log = logging.getLogger(__name__)


def build_module(
    cfg: DictConfig, datamodule: AtomsDataModule, resume: Path | None = None
) -> PotentialModule:
    """The one handshake between data and model: the backbone of ``cfg.model`` takes what it
    needs from the training split.

    The options the config leaves to the data (``type_map: null``, DP's ``sel: auto``) are
    resolved on the training frames (:meth:`Potential.resolve_hparams`) and the module is built;
    every split is checked for elements outside its type map (a DataError naming the frame,
    before training); the neighbour lists take its cutoff; its data-dependent buffers (energy
    shift, input normalisation) are fitted on the training split (:meth:`Potential.fit_statistics`)
    unless resuming: then the checkpoint ``resume`` must hold this model (:func:`check_resumable`)
    and brings its own buffers.
    """
    datamodule.setup()
    model_cfg = as_plain_dict(cfg.model)
    model_cls: type[Potential] = potential_class(model_cfg.get("_target_"))
    model_cfg = model_cls.resolve_hparams(model_cfg, datamodule.frames["train"])
    module = PotentialModule(model=model_cfg, training=as_plain_dict(cfg.training))
    model = module.model
    datamodule.check_elements(model.type_map, type(model).__name__)
    datamodule.set_cutoff(model.cutoff)
    if resume is not None:
        check_resumable(resume, module)
    else:
        model.fit_statistics(datamodule.statistics(), datamodule.train_batches())
    return module


def instantiate_logger(cfg: DictConfig) -> Any:
    """The configured Lightning logger, or False for ``logger=none``."""
    node = cfg.get("logger")
    if not node or "_target_" not in node:
        return False
    if "Wandb" in node["_target_"]:
        os.environ.setdefault("WANDB_SILENT", "true")
    logger = hydra.utils.instantiate(node)
    if isinstance(logger, WandbLogger):  # Lightning passes anonymous=None, on which wandb>=0.19
        logger._wandb_init.pop("anonymous", None)  # warns "has no effect" (we never set it)
    return logger


def test_checkpoint(cfg: DictConfig, trainer: pl.Trainer) -> str | None:
    """Weights to test: ``test_ckpt=last`` the final ones (None: the module as trained), ``best``
    the checkpoint with the lowest validation force RMSE (``check_test_ckpt`` made sure a
    checkpoint callback keeps one)."""
    if cfg.get("test_ckpt", "last") == "last":
        return None
    best = trainer.checkpoint_callback.best_model_path
    if not best:
        raise ConfigError("test_ckpt=best: no best checkpoint was saved (no validation ran); "
                         "expected at least one validation, or test_ckpt=last")
    return best


def check_test_ckpt(cfg: DictConfig, callbacks: list[Any]) -> None:
    """ConfigError before training when ``test_ckpt`` is not last/best, or is best with no
    checkpoint callback to keep the best weights."""
    choice = cfg.get("test_ckpt", "last")
    if choice not in ("last", "best"):
        raise ConfigError(f"test_ckpt={choice!r} is not valid; choose 'last' or 'best'")
    if choice == "best" and not any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in callbacks):
        raise ConfigError("test_ckpt=best needs a checkpoint callback (callbacks=default keeps the "
                         "best validation force RMSE); this config has none: use test_ckpt=last")


#: Seeds Lightning (numpy) accepts.
SEED_RANGE = (0, 2**32 - 1)


def check_activation(node: dict[str, Any], where: str) -> None:
    """ConfigError naming ``<where>.<option>`` when an activation config cannot build (e.g.
    ``num_basis=abc``): each option is tried alone on the named activation to find the bad one."""
    from taafs_exp.activations import build_activation

    options = {k: v for k, v in node.items() if not k.startswith("_")}
    name = options.pop("name", None)
    try:
        build_activation(name, num_channels=4, **options)
    except (TypeError, ValueError) as err:
        for key, value in options.items():
            try:
                build_activation(name, num_channels=4, **{key: value})
            except (TypeError, ValueError) as single:
                raise ConfigError(f"{where}.{key}={value!r}: {single}") from None
        raise ConfigError(f"{where} (name={name!r}): {err}") from None


def check_strategy(cfg: DictConfig) -> None:
    """ConfigError for trainer.strategy=ddp* in a sweep (-m): Lightning starts ranks > 0 by
    rerunning the command line, which would rerun the whole sweep in each of them."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    strategy = str(cfg.trainer.get("strategy", "auto"))
    if (strategy.startswith("ddp") and "spawn" not in strategy and "fork" not in strategy
            and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN):
        raise ConfigError(f"trainer.strategy={strategy} in a sweep (-m): Lightning reruns the "
                          "command once per rank; expected one training per command (no -m)")


def check_config(cfg: DictConfig) -> None:
    """ConfigError for options that cannot train, before any data is read: the seed, every
    activation of the model config, a DDP strategy in a sweep."""
    check_strategy(cfg)
    seed = cfg.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or not (
        SEED_RANGE[0] <= seed <= SEED_RANGE[1]
    ):
        raise ConfigError(f"seed={seed!r}: expected an integer from {SEED_RANGE[0]} to {SEED_RANGE[1]}")
    for key, node in as_plain_dict(cfg.model).items():
        if isinstance(node, dict) and node.get("_target_") == ACTIVATION_FACTORY:
            check_activation(node, "activation" if node == as_plain_dict(cfg.activation) else
                             f"model.{key}")


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> Path | None:
    """The checkpoint to resume from, checked before data or model are built: ``ckpt_path``
    when given (ConfigError when the file is missing), else the run folder's own
    ``checkpoints/last.ckpt`` when a killed run left one (what a restarted sweep expects), else
    None (train from scratch). CheckpointError when it fails the allow-list of
    :func:`~taafs_exp.training.rebuild.load_checkpoint`."""
    given = cfg.get("ckpt_path")
    path = Path(given) if given else output_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    if given and not path.is_file():
        raise ConfigError(f"ckpt_path={given}: no such checkpoint file")
    if not path.is_file():
        return None
    load_checkpoint(path)
    return path


def clear_stale_checkpoints(output_dir: Path) -> None:
    """Delete the checkpoints a run killed before its first ``last.ckpt`` left in its folder:
    a run that starts from scratch keeps one generation of checkpoints, its own."""
    for stale in sorted((output_dir / CHECKPOINT_DIR).glob("*.ckpt*")):
        log.warning("removing %s of an earlier attempt (no last.ckpt to resume from)", stale)
        stale.unlink()


def check_resumable(path: Path, module: PotentialModule) -> None:
    """ConfigError when the checkpoint at ``path`` holds another model than this config builds
    (its weights would not fit, or would silently train another architecture)."""
    saved = load_checkpoint(path)["hyper_parameters"]["model"]
    differ = differing_keys(saved, module.hparams["model"])
    if differ:
        raise ConfigError(
            f"{path}: a checkpoint of another model (model.{', model.'.join(differ[:6])} differ); "
            "resume with the config that trained it, or train in another folder"
        )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train one model as configured; returns the content of ``metrics.json``.

    A run folder that already holds ``metrics.json`` (written last, atomically) is a finished
    run: it is skipped, so a killed sweep restarts where it stopped (a ConfigError if its saved
    config trains another model). A folder without it resumes from its own
    ``checkpoints/last.ckpt`` (``ckpt_path`` names another), or trains from scratch. With
    ``reuse_identical_runs`` (the studies), a run identical to a finished run of another study
    under ``paths.registry_dir`` takes its results instead (``taafs_exp.training.run_store``).
    """
    start = time.perf_counter()
    quiet_third_party()
    check_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    finished = output_dir / METRICS_FILE
    if finished.exists() and not cfg.get("ckpt_path"):
        check_same_training(cfg, output_dir)
        log.info("skipping finished run %s", output_dir)
        print(f"finished already, skipped: {finished}", flush=True)
        return read_json(finished)
    if cfg.get("reuse_identical_runs") and not cfg.get("ckpt_path"):
        store = Path(cfg.paths.registry_dir)
        twin = find_identical_run(cfg, store, output_dir)
        if twin is not None:
            print(f"identical to a finished run, reused: {twin}", flush=True)
            return reuse_run(twin, output_dir, cfg.get("experiment_name", "single"), store)
    ckpt_path = resume_checkpoint(cfg, output_dir)
    # under DDP this function runs once per rank (Lightning starts ranks > 0 in trainer.fit, while
    # rank 0 waits for them): files are deleted and written, lines printed, by rank 0 alone
    rank_zero = rank_zero_only.rank == 0
    if ckpt_path is None and rank_zero:
        clear_stale_checkpoints(output_dir)
    elif ckpt_path is not None and rank_zero:
        print(f"resuming from {ckpt_path}", flush=True)
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    output_dir.mkdir(parents=True, exist_ok=True)

    datamodule: AtomsDataModule = hydra.utils.instantiate(cfg.data)
    module = build_module(cfg, datamodule, ckpt_path)

    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    check_test_ckpt(cfg, callbacks)
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(StepProgressBar())
    logger = instantiate_logger(cfg)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=logger, plugins=[AtomicCheckpointIO()]
    )
    if logger:  # the run's own config (a composed config may also carry the hydra node)
        run_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        logger.log_hyperparams(OmegaConf.to_container(run_cfg, resolve=True))
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    fit_s = time.perf_counter() - start

    test_metrics: dict[str, float] = {}
    if cfg.get("test", True):
        results = trainer.test(  # not verbose: summary_table prints the test RMSEs
            module, datamodule=datamodule, ckpt_path=test_checkpoint(cfg, trainer),
            weights_only=True, verbose=False,
        )
        test_metrics = {k.removeprefix("test/"): float(v) for k, v in results[0].items()}

    step_time = module.median_step_time()
    metrics = {
        "experiment": cfg.get("experiment_name", "single"),
        "budget": cfg.get("budget_name"),
        "model": cfg.get("model_name"),
        "activation": as_plain_dict(cfg.activation),
        "data": cfg.get("data_name"),
        "placement": cfg.get("placement_name") or "all",
        "base_activation": module.hparams["model"].get("base_activation"),
        "seed": int(cfg.seed),
        "n_params": module.n_params(),
        "n_extra_params": module.n_extra_params(),
        "steps": int(trainer.global_step),
        "lr": as_plain_dict(cfg.training.lr),  # start_lr, stop_lr, decay_steps
        "val_split": datamodule.describe_split("val"),
        "wall_s": round(time.perf_counter() - start, 2),
        "fit_s": round(fit_s, 2),
        "step_time_s": None if step_time is None else round(step_time, 5),
        "test_ckpt": cfg.get("test_ckpt", "last"),
        "torch_threads": torch.get_num_threads(),
        "code_version": code_version(),
        "test": {
            **{k: test_metrics.get(k) for k in METRIC_NAMES},
            "split": datamodule.describe_split("test"),
        },
        "val_curve": module.val_curve,
    }
    if rank_zero:
        write_json_atomic(output_dir / METRICS_FILE, metrics)
        print(summary_table(metrics), flush=True)
    return metrics


def optimized_value(metrics: dict[str, Any], name: str) -> float | None:
    """What run.py returns to a sweeper: for ``val/<key>`` the last validation's value, for
    ``test/<key>`` the test split's (tuning on val keeps the test split held out)."""
    stage, key = name.split("/", 1)
    if stage == "test":
        return metrics["test"].get(key)
    curve = metrics.get("val_curve") or []
    return curve[-1].get(key) if curve else None


def summary_table(metrics: dict[str, Any]) -> str:
    """A few lines for the terminal: the test RMSEs and the parameter counts."""
    t = metrics["test"]

    def fmt(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    act = metrics["activation"]
    act_name = act.get("name", "?") if isinstance(act, dict) else str(act)
    rows = [
        f"model {metrics['model']}  activation {act_name}  data {metrics['data']}  "
        f"seed {metrics['seed']}  steps {metrics['steps']}  wall {metrics['wall_s']:.0f} s",
        f"  params {metrics['n_params']}  (TAAFS extra {metrics['n_extra_params']})",
        f"  held-out split {t['split']}",
        f"  energy RMSE {fmt(t['rmse_e_per_atom_meV'], 3)} meV/atom   "
        f"MAE {fmt(t['mae_e_per_atom_meV'], 3)} meV/atom",
        f"  force  RMSE {fmt(t['rmse_f_meV_per_A'], 2)} meV/Å      "
        f"MAE {fmt(t['mae_f_meV_per_A'], 2)} meV/Å",
    ]
    return "\n".join(rows)
