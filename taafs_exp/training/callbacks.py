"""Training callbacks: what the learned activations look like, saved from the real run, and a
``last.ckpt`` that is always the latest state.

:class:`ActivationSnapshot` writes ``activations.json`` in the run folder: every TAAFS curve at the
end of training beside its base activation, the histogram of the inputs each one sees on the
validation split, and the first curve at the start and after every epoch (the "evolution"
figure). ``scripts/make_figures.py`` draws the figures from these files alone.

:class:`RunCheckpoint` keeps ``checkpoints/last.ckpt`` current between validations (every N
minutes, after the last step, on SIGINT/SIGTERM); :class:`AtomicCheckpointIO` writes every checkpoint
through a temporary file and a rename, so a killed run never leaves a truncated one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import Tensor, nn

from taafs_exp.activations.core import TAAFS
from taafs_exp.training.errors import RunInterrupted
from taafs_exp.training.module import cast_floats
from taafs_exp.training.run_store import SNAPSHOT_FILE, write_json_atomic

#: The run folder's checkpoints and the one a rerun resumes from.
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
#: Signals that save ``last.ckpt`` and stop training.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves each checkpoint to ``<name>.tmp`` beside it, flushed to disk, then renames it over
    ``<name>``: a checkpoint on disk is always complete (a kill mid-write leaves the old one)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            torch.save(checkpoint, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def last_step(trainer: pl.Trainer) -> bool:
    """In ``on_train_batch_end``: training stops after this step (``max_steps`` reached, the last
    batch of the last epoch, or a stop requested)."""
    if trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps:
        return True
    epoch_ends = (trainer.fit_loop.epoch_loop.batch_progress.current.ready
                  >= trainer.num_training_batches)
    max_epochs = trainer.max_epochs
    last_epoch = max_epochs not in (None, -1) and trainer.current_epoch + 1 >= max_epochs
    return (epoch_ends and last_epoch) or trainer.should_stop


def finite_weights(module: nn.Module) -> bool:
    """Every floating-point parameter of ``module`` is finite (no NaN, no inf)."""
    return all(bool(torch.isfinite(p).all()) for p in module.parameters() if p.is_floating_point())


class RunCheckpoint(pl.Callback):
    """Keeps ``<dirpath>/last.ckpt`` the latest training state.

    Saved every ``every_minutes`` of training wall time (None: never on a timer), after the last
    training step, and on SIGINT/SIGTERM: the signal is noted and, once the running step is
    complete, ``last.ckpt`` is saved and training stops with :class:`RunInterrupted` (rerunning
    the same command resumes from it). ModelCheckpoint still saves best/last at each validation.

    Every save happens in ``on_train_batch_end``, a state Lightning resumes mid-epoch (the next
    batch of the same epoch, the same logger steps). The end state is not saved in
    ``on_train_end``: by then the fit loop has counted an epoch stopped by ``max_steps`` as
    complete, so a run resumed from it with more steps would start a new epoch (other batches)
    and skip a logger step. A step whose weights are not finite is never saved (the module stops
    the run with one line right after this hook).
    """

    def __init__(self, dirpath: str, every_minutes: float | None = 10.0) -> None:
        self.path = Path(dirpath) / LAST_CHECKPOINT
        self.every_s = None if every_minutes is None else 60.0 * float(every_minutes)
        self.signum: int | None = None
        self._last_save = 0.0
        self._previous: dict[int, Any] = {}

    def save(self, trainer: pl.Trainer) -> None:
        """Write ``last.ckpt`` now (atomic with :class:`AtomicCheckpointIO`; under DDP every rank
        calls it, rank 0 writes)."""
        if not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path, weights_only=False)
        self._last_save = time.monotonic()

    def _note_signal(self, signum: int, _frame: Any) -> None:
        self.signum = signum

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_save = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._note_signal) for s in STOP_SIGNALS}

    def agreed(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[int, bool]:
        """(signal received or 0, timer due), the largest over the ranks: under DDP a save is a
        collective (a barrier), so every rank must decide alike, whichever rank got the signal."""
        due = self.every_s is not None and time.monotonic() - self._last_save >= self.every_s
        flags = torch.tensor([self.signum or 0, int(due)], device=pl_module.device)
        signum, due = trainer.strategy.reduce(flags, reduce_op="max").tolist()
        return int(signum), bool(due)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        signum, due = self.agreed(trainer, pl_module)
        if signum:
            self.save(trainer)
            name = signal.Signals(signum).name
            raise RunInterrupted(
                f"{name} after step {trainer.global_step}: saved {self.path}; rerun the same "
                "command to resume from it",
                signum,
            )
        if (due or last_step(trainer)) and finite_weights(pl_module):
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()


def rounded(values: Tensor) -> list | float:
    """A tensor as nested lists of floats with 6 significant digits (compact JSON)."""
    return [rounded(v) for v in values] if values.dim() else float(f"{values.item():.6g}")


def taafs_modules(model: nn.Module) -> list[tuple[str, TAAFS]]:
    """Every TAAFS activation of ``model`` with its qualified name, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, TAAFS)]


def plot_range(act: TAAFS, points: int) -> Tensor:
    """x grid (float64) of a curve: the fit domain widened by half its width on each side."""
    lo, hi = act.domain
    pad = 0.5 * (hi - lo)
    return torch.linspace(lo - pad, hi + pad, points, dtype=torch.float64)


@torch.no_grad()
def curve(act: TAAFS, x: Tensor, max_channels: int) -> list[list[float]]:
    """``a(x)`` on the grid: one list per curve (the first ``max_channels`` for share=channel)."""
    coeff = next(act.parameters())
    xs = x.to(device=coeff.device, dtype=coeff.dtype)
    if act.num_channels is None:
        return [rounded(act(xs).cpu())]
    channels = min(act.num_channels, max_channels)
    y = act(xs[:, None].expand(-1, act.num_channels).contiguous())
    return rounded(y[:, :channels].T.cpu())


class ActivationSnapshot(pl.Callback):
    """Save the TAAFS curves, their input histograms and the first curve's evolution.

    Args:
        points: grid points per curve.
        bins: histogram bins over the same range (inputs outside it are counted apart).
        hist_batches: validation batches whose activation inputs make the histograms.
        max_channels: curves stored per layer with ``share="channel"``.
        log_image: log the curves as an image to W&B when the run's logger is W&B.
    """

    def __init__(
        self,
        points: int = 101,
        bins: int = 50,
        hist_batches: int = 2,
        max_channels: int = 4,
        log_image: bool = True,
    ) -> None:
        self.points, self.bins, self.hist_batches = points, bins, hist_batches
        self.max_channels, self.log_image = max_channels, log_image
        self.evolution: list[dict[str, Any]] = []

    def _first_curve(self, pl_module: pl.LightningModule, trainer: pl.Trainer, label: str) -> None:
        modules = taafs_modules(pl_module.model)
        if not modules:
            return
        _, act = modules[0]
        if self.evolution and self.evolution[-1]["step"] == trainer.global_step:
            return  # the last epoch ended at the last step: one snapshot of it
        self.evolution.append(
            {
                "label": label,
                "epoch": int(trainer.current_epoch),
                "step": int(trainer.global_step),
                "y": curve(act, plot_range(act, self.points), self.max_channels)[0],
            }
        )

    def state_dict(self) -> dict[str, Any]:
        return {"evolution": self.evolution}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.evolution = list(state_dict.get("evolution", []))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.evolution:  # a resumed run continues the evolution of its checkpoint
            self._first_curve(pl_module, trainer, "start")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._first_curve(pl_module, trainer, f"epoch {trainer.current_epoch}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        modules = taafs_modules(pl_module.model)
        if not modules or not trainer.is_global_zero:
            return
        self._first_curve(pl_module, trainer, "end")
        histograms = self.input_histograms(trainer, pl_module, modules)
        layers = []
        for name, act in modules:
            x = plot_range(act, self.points)
            layers.append(
                {
                    "name": name,
                    "kind": type(act).__name__,
                    "base": act.base,
                    "domain": list(act.domain),
                    "share": act.share,
                    "x": rounded(x),
                    "y": curve(act, x, self.max_channels),
                    "y_base": rounded(act.base_function(x)),
                    "inputs": histograms[name],
                }
            )
        snapshot = {
            "first_layer": modules[0][0],
            "x_first": rounded(plot_range(modules[0][1], self.points)),
            "evolution": self.evolution,
            "layers": layers,
        }
        path = Path(trainer.default_root_dir) / SNAPSHOT_FILE
        write_json_atomic(path, snapshot, indent=None)
        if self.log_image:
            self._log_image(trainer, snapshot)

    def input_histograms(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, modules: list[tuple[str, TAAFS]]
    ) -> dict[str, dict[str, Any]]:
        """Histogram of every TAAFS module's inputs over ``hist_batches`` validation batches."""
        edges = {name: plot_range(act, self.bins + 1) for name, act in modules}
        counts = {name: torch.zeros(self.bins, dtype=torch.float64) for name, _ in modules}
        outside = {name: [0, 0] for name, _ in modules}

        def hook(name: str):
            def record(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
                x = args[0].detach().double().reshape(-1).cpu()
                e = edges[name]
                counts[name] += torch.histc(x, bins=self.bins, min=float(e[0]), max=float(e[-1]))
                outside[name][0] += int((x < e[0]).sum())
                outside[name][1] += int((x > e[-1]).sum())

            return record

        handles = [act.register_forward_pre_hook(hook(name)) for name, act in modules]
        try:
            loader = trainer.datamodule.val_dataloader()
            with torch.no_grad():
                for i, batch in enumerate(loader):
                    if i >= self.hist_batches:
                        break
                    batch = pl_module.transfer_batch_to_device(batch, pl_module.device, 0)
                    pl_module.model(cast_floats(batch, pl_module.model_dtype))
        finally:
            for handle in handles:
                handle.remove()
        return {
            name: {
                "edges": rounded(edges[name]),
                "counts": [int(c) for c in counts[name]],
                "below": outside[name][0],
                "above": outside[name][1],
            }
            for name, _ in modules
        }

    def _log_image(self, trainer: pl.Trainer, snapshot: dict[str, Any]) -> None:
        from lightning.pytorch.loggers import WandbLogger

        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import wandb

        from taafs_exp.analysis.figures import plot_activation_curves

        fig = plot_activation_curves(snapshot)
        for lg in loggers:
            lg.experiment.log({"activations/curves": wandb.Image(fig)}, step=trainer.global_step)
        plt.close(fig)
