"""What a training prints: no third-party deprecation notices or tips, a progress bar of optimizer
steps out of ``trainer.max_steps``, and a last line naming the run folder and the tanh run to
compare with."""

from __future__ import annotations

import logging
import shlex
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar

#: (message regex, module regex) of third-party warnings that ask nothing of this project's user:
#: torchdata's StatefulDataLoader calls the deprecated ``torch.set_vital``, Lightning's pytree
#: helper uses torch's deprecated ``LeafSpec`` (both in their own code, fixed by their authors).
THIRD_PARTY_WARNINGS = (
    (r"'set_vital' is deprecated", r"torchdata\."),
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree"),
)
#: Start of Lightning's log line advertising its cloud logger (an INFO record, not a warning).
LIGHTNING_TIP = "💡 Tip:"


class DropLightningTip(logging.Filter):
    """Drops Lightning's ``💡 Tip: ... litlogger`` advertisement, passes every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(LIGHTNING_TIP)


def quiet_third_party() -> None:
    """Hide the notices of :data:`THIRD_PARTY_WARNINGS` and Lightning's tip (idempotent)."""
    for message, module in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)
    tip_logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, DropLightningTip) for f in tip_logger.filters):
        tip_logger.addFilter(DropLightningTip())


class StepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar counting optimizer steps out of ``trainer.max_steps`` in one bar
    across epochs (Lightning's counts the batches of each epoch, "Epoch 3/-2" with
    ``max_epochs=-1``); with ``max_steps=-1`` it is Lightning's bar."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.max_steps <= 0:
            return super().on_train_epoch_start(trainer, *args)
        bar = self.train_progress_bar
        bar.set_description("steps", refresh=False)
        bar.reset(total=trainer.max_steps)
        bar.n = bar.initial = trainer.global_step  # a resumed run starts where it stopped
        bar.refresh()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        # Lightning's bar shows batch_idx + 1: pass the index of the step just taken
        index = trainer.global_step - 1 if trainer.max_steps > 0 else batch_idx
        super().on_train_batch_end(trainer, pl_module, outputs, batch, index)


#: Activation a TAAFS run is compared with (the base the backbones use), and the TAAFS
#: activation suggested when the run was that base.
BASELINE, DEFAULT_TAAFS = "tanh", "chebyshev"


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory when inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def final_line(output_dir: str | Path, activation: str, overrides: list[str]) -> str:
    """``run folder: <dir> — compare with tanh: python run.py activation=tanh <overrides>``: the
    same command line (``overrides`` as typed) with the other activation; the options of this
    activation and Hydra's own ``hydra.*`` (the other run gets its own folder) are dropped."""
    other = DEFAULT_TAAFS if activation == BASELINE else BASELINE
    dropped = ("activation=", "activation.", "hydra.", "hydra/")
    kept = [o for o in overrides if not o.lstrip("+~").startswith(dropped)]
    command = shlex.join(["python", "run.py", f"activation={other}", *kept])
    return f"run folder: {shown_path(output_dir)} — compare with {other}: {command}"
