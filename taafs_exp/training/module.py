"""One LightningModule for every backbone: forces by autograd, DeePMD-kit's loss and schedule."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import Strategy
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection

from taafs_exp.activations import extra_parameter_count, taafs_parameters
from taafs_exp.data import keys as K
from taafs_exp.models.base import Potential
from taafs_exp.training.errors import NonFiniteError
from taafs_exp.training.rebuild import build_optimizer, build_potential
from taafs_exp.training.schedule import ExponentialDecay, prefactor

#: Metric names, shared by the logger, metrics.json and the results tables (meV, Å).
METRIC_NAMES = (
    "rmse_e_per_atom_meV",
    "rmse_f_meV_per_A",
    "mae_e_per_atom_meV",
    "mae_f_meV_per_A",
)


def predict(
    model: Potential, batch: dict[str, Tensor], *, create_graph: bool, virial: bool = False
) -> dict[str, Tensor]:
    """Energy (F,) eV, forces -∂E/∂R (N, 3) eV/Å and, if asked, virial -∂E/∂ε (F, 3, 3) eV.

    The virial comes from a symmetric homogeneous strain ε applied to positions, image
    shifts and cell (r → r (1 + ε)), so every backbone that reads those fields gets it.
    ``create_graph`` keeps the graph of the derivatives, needed when a loss uses them.
    """
    batch = dict(batch)
    positions = batch[K.POSITIONS].detach().requires_grad_(True)
    inputs = [positions]
    batch[K.POSITIONS] = positions
    if virial:
        num_frames = batch[K.NUM_ATOMS].shape[0]
        strain = torch.zeros(num_frames, 3, 3, dtype=positions.dtype, device=positions.device)
        strain.requires_grad_(True)
        deform = torch.eye(3, dtype=positions.dtype, device=positions.device) + 0.5 * (
            strain + strain.transpose(1, 2)
        )
        atom_frame = batch[K.BATCH]
        edge_frame = atom_frame[batch[K.EDGE_INDEX][0]]
        batch[K.POSITIONS] = torch.einsum("ni,nij->nj", positions, deform[atom_frame])
        batch[K.SHIFTS] = torch.einsum("ei,eij->ej", batch[K.SHIFTS], deform[edge_frame])
        batch[K.CELL] = torch.bmm(batch[K.CELL], deform)
        inputs.append(strain)
    energy = model(batch)
    grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph)
    out = {K.ENERGY: energy, K.FORCES: -grads[0]}
    if virial:
        out[K.VIRIAL] = -grads[1]
    return out


def cast_floats(batch: dict[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    """The batch with its floating-point fields in ``dtype`` (the model's precision)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}


class PotentialModule(pl.LightningModule):
    """Trains a :class:`~taafs_exp.models.base.Potential` on energies and forces (and virials).

    Loss (DeePMD-kit's ``ener`` loss): L = p_e·⟨ΔE²/N⟩ + p_f·⟨ΔF²⟩ + p_v·⟨ΔW²/N⟩ over frames
    (forces: over components), N the frame's atom count; with ``intensive_ener_virial`` the energy
    and virial terms are divided by N² instead (⟨(ΔE/N)²⟩, size-independent). Each prefactor
    moves from its start to its limit value as the learning rate decays:
    p = limit + (start − limit)·lr/start_lr. Energies in eV, forces in eV/Å, virials in eV.

    Args:
        model: the backbone config (a node with ``_target_``, already resolved against the data,
            e.g. DP's ``sel``); stored in the checkpoint so the module rebuilds itself, always
            through the allow-list of :mod:`taafs_exp.training.rebuild` (never Hydra's
            instantiate: a loaded checkpoint must not run what it names).
        training: ``lr`` (start_lr, stop_lr, decay_steps), ``num_steps``, ``loss`` prefactors
            (start_pref_e, limit_pref_e, start_pref_f, limit_pref_f, start_pref_v, limit_pref_v)
            and ``optimizer`` (a ``_partial_`` Hydra node, Adam by default).
    """

    def __init__(self, model: dict[str, Any], training: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model: Potential = build_potential(model, "hyper_parameters.model")
        lr = training["lr"]
        self.schedule = ExponentialDecay(
            start_lr=float(lr["start_lr"]),
            stop_lr=float(lr["stop_lr"]),
            decay_steps=int(lr["decay_steps"]),
            num_steps=int(training["num_steps"]),
        )
        loss_cfg = dict(training["loss"])
        #: DeePMD-kit's intensive_ener_virial: false (its default) divides ΔE² by N, true by N²
        self.energy_norm_exp = 2 if loss_cfg.pop("intensive_ener_virial", False) else 1
        self.loss_prefs = {k: float(v) for k, v in loss_cfg.items()}
        metrics = MetricCollection(
            {
                "rmse_e_per_atom_meV": MeanSquaredError(squared=False),
                "mae_e_per_atom_meV": MeanAbsoluteError(),
                "rmse_f_meV_per_A": MeanSquaredError(squared=False),
                "mae_f_meV_per_A": MeanAbsoluteError(),
            }
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        #: after every validation: step, rmse_e_per_atom_meV, rmse_f_meV_per_A and train_s, the
        #: training time so far (sum of step times, s; validation excluded), for equal-time reads
        self.val_curve: list[dict[str, float]] = []
        #: wall time of each training step (forward, forces, loss, backward, optimizer), s
        self.step_times: list[float] = []
        #: sum of all step times since step 0 (carried across a resume), s
        self.train_time_s = 0.0
        self._step_start = 0.0

    @property
    def model_dtype(self) -> torch.dtype:
        """Precision of the backbone (DP: float64 by default); batches are cast to it."""
        return next(self.model.parameters()).dtype

    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def n_extra_params(self) -> int:
        return extra_parameter_count(self.model)

    def forward(self, batch: dict[str, Tensor], create_graph: bool = False) -> dict[str, Tensor]:
        batch = cast_floats(batch, self.model_dtype)
        virial = self.loss_prefs.get("start_pref_v", 0.0) > 0 and bool(batch[K.HAS_VIRIAL].any())
        return predict(self.model, batch, create_graph=create_graph, virial=virial)

    def prefactors(self, step: int) -> dict[str, float]:
        lr = self.schedule.lr(step)
        start_lr = self.schedule.start_lr
        p = self.loss_prefs
        return {
            q: prefactor(p.get(f"start_pref_{q}", 0.0), p.get(f"limit_pref_{q}", 0.0), lr, start_lr)
            for q in ("e", "f", "v")
        }

    def loss_terms(
        self, batch: dict[str, Tensor], pred: dict[str, Tensor], step: int
    ) -> dict[str, Tensor]:
        """The terms of DeePMD-kit's ``ener`` loss at ``step``, prefactors applied: energy,
        force and (when predicted) virial (see class docstring)."""
        pref = self.prefactors(step)
        natoms = batch[K.NUM_ATOMS].to(pred[K.ENERGY].dtype)
        norm = natoms**self.energy_norm_exp
        terms = {
            "energy": pref["e"] * torch.mean((pred[K.ENERGY] - batch[K.ENERGY]) ** 2 / norm),
            "force": pref["f"] * torch.mean((pred[K.FORCES] - batch[K.FORCES]) ** 2),
        }
        if K.VIRIAL in pred:
            mask = batch[K.HAS_VIRIAL]
            diff2 = (pred[K.VIRIAL] - batch[K.VIRIAL])[mask] ** 2 / norm[mask, None, None]
            terms["virial"] = pref["v"] * torch.mean(diff2)
        return terms

    def loss(self, batch: dict[str, Tensor], pred: dict[str, Tensor], step: int) -> Tensor:
        """DeePMD-kit's ``ener`` loss at ``step``: the sum of :meth:`loss_terms`, in order."""
        return sum_terms(self.loss_terms(batch, pred, step))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        batch = cast_floats(batch, self.model_dtype)
        pred = self(batch, create_graph=True)
        terms = self.loss_terms(batch, pred, self.global_step)
        check_finite(  # each rank checks its own batch: all stop together (DDP)
            {f"{name} loss term": term.detach() for name, term in terms.items()},
            f"step {self.global_step}: training loss",
            self.trainer.strategy,
        )
        loss = sum_terms(terms)
        size = int(batch[K.NUM_ATOMS].shape[0])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/lr", self.schedule.lr(self.global_step), batch_size=size)
        return loss

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._step_start = time.perf_counter()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.step_times.append(time.perf_counter() - self._step_start)
        self.train_time_s += self.step_times[-1]
        check_finite(
            {f"weight {name}": p.detach() for name, p in self.named_parameters()},
            f"step {self.global_step - 1}: after the optimizer step (lr "
            f"{self.schedule.lr(self.global_step - 1):.3g})",
        )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        check_finite(
            {f"gradient of {name}": p.grad for name, p in self.named_parameters()
             if p.grad is not None},
            f"step {self.global_step}: backward pass",
        )

    def median_step_time(self) -> float | None:
        """Median training-step time, s, skipping the first steps (allocation warm-up)."""
        times = sorted(self.step_times[min(5, len(self.step_times) // 2) :])
        return times[len(times) // 2] if times else None

    def _evaluate(self, batch: dict[str, Tensor], metrics: MetricCollection) -> None:
        batch = cast_floats(batch, self.model_dtype)
        with torch.enable_grad():
            pred = self(batch)
        natoms = batch[K.NUM_ATOMS].to(self.model_dtype)
        e_pred = 1000.0 * pred[K.ENERGY].detach() / natoms
        e_ref = 1000.0 * batch[K.ENERGY] / natoms
        f_pred = 1000.0 * pred[K.FORCES].detach().flatten()
        f_ref = 1000.0 * batch[K.FORCES].flatten()
        for name, metric in metrics.items(keep_base=True):
            if "_e_" in name:
                metric.update(e_pred, e_ref)
            else:
                metric.update(f_pred, f_ref)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        values = {k: float(v) for k, v in self.val_metrics.compute().items()}
        self.val_metrics.reset()
        check_finite({k: torch.tensor(v) for k, v in values.items()},
                     f"step {self.global_step}: validation")
        # compute() summed the metric states over the ranks (RMSE = √(Σ rank sums / Σ counts)),
        # so every rank holds the global value: sync_dist averages identical copies (a no-op
        # in one process) and tells Lightning the epoch value is global
        self.log_dict(values, sync_dist=True)
        if self.trainer.sanity_checking:
            return
        rmse_e, rmse_f = values["val/rmse_e_per_atom_meV"], values["val/rmse_f_meV_per_A"]
        self.val_curve.append({"step": int(self.global_step), "rmse_e_per_atom_meV": rmse_e,
                               "rmse_f_meV_per_A": rmse_f, "train_s": round(self.train_time_s, 3)})
        best = min(row["rmse_f_meV_per_A"] for row in self.val_curve)
        self.log("val/rmse_f_meV_per_A_best", best, sync_dist=True)
        # rank 0 only, through the progress bar when one is drawn (a print would land inside it)
        self.print(
            f"[val] step {self.global_step:6d}  lr {self.schedule.lr(self.global_step):.2e}  "
            f"E rmse {rmse_e:9.3f} meV/atom  F rmse {rmse_f:9.2f} meV/Å"
        )
        sys.stdout.flush()

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics)

    def on_test_epoch_end(self) -> None:
        # global values, as in on_validation_epoch_end
        self.log_dict({k: float(v) for k, v in self.test_metrics.compute().items()},
                      sync_dist=True)
        self.test_metrics.reset()

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: one, or with ``training.activation_lr_scale`` = s
        (absent: 1) the TAAFS coefficients in a group of their own at s × the schedule's lr,
        both decayed by the same schedule."""
        scale = float(self.hparams["training"].get("activation_lr_scale", 1.0))
        if scale == 1.0:
            return [{"params": list(self.parameters())}]
        coefficients = taafs_parameters(self.model)
        taafs = {id(p) for p in coefficients}
        return [
            {"params": [p for p in self.parameters() if id(p) not in taafs]},
            {"params": coefficients, "lr": scale * self.schedule.start_lr},
        ]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(
            self.hparams["training"].get("optimizer"), self.parameter_groups(),
            self.schedule.start_lr,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule.factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["val_curve"] = [dict(row) for row in self.val_curve]
        checkpoint["train_time_s"] = self.train_time_s

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.val_curve = [dict(row) for row in checkpoint.get("val_curve", [])]
        self.train_time_s = float(checkpoint.get("train_time_s", 0.0))


def sum_terms(terms: dict[str, Tensor]) -> Tensor:
    """The loss: its terms added in order (energy, force, virial)."""
    values = list(terms.values())
    total = values[0]
    for term in values[1:]:
        total = total + term
    return total


def check_finite(values: dict[str, Tensor], where: str, strategy: Strategy | None = None) -> None:
    """NonFiniteError naming ``where`` and the first entry of ``values`` holding a NaN or inf
    (training stops there; no checkpoint of the non-finite state is written).

    With ``strategy``, for values that differ between ranks (each rank's own batch under DDP):
    every rank raises when any rank found one, so no rank is left waiting in a collective.
    """
    bad = None
    for name, value in values.items():
        if not bool(torch.isfinite(value).all()):
            shown = f"{value.item():.4g}" if value.numel() == 1 else "nan/inf entries"
            bad = f"{name} ({shown})"
            break
    if strategy is not None and strategy.reduce_boolean_decision(bad is not None, all=False):
        bad = bad or "value on another rank"
    if bad is not None:
        raise NonFiniteError(
            f"{where}: non-finite {bad}; training stopped, the last finite "
            "checkpoint is kept and no metrics.json is written (lower training.lr.start_lr?)"
        )


def as_plain_dict(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """A resolved, container-free copy of a config node (safe to store in a checkpoint)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


