"""DeePMD-kit's exponential learning-rate decay and the loss prefactors that follow it."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ExponentialDecay:
    """lr(t) = start_lr · r^⌊t / decay_steps⌋ with r chosen so that lr(num_steps) = stop_lr.

    As DeePMD-kit's ``"exp"`` schedule: r = (stop_lr / start_lr)^(decay_steps / num_steps),
    lr never below stop_lr, and a ``decay_steps`` not shorter than the run replaced by DeePMD-kit's
    default (100 when num_steps // 10 > 100, i.e. from 1010 steps on, else num_steps // 100 + 1).
    """

    start_lr: float
    stop_lr: float
    decay_steps: int
    num_steps: int

    def __post_init__(self) -> None:
        if not 0 < self.stop_lr <= self.start_lr:
            raise ValueError(
                f"learning rate: expected 0 < stop_lr <= start_lr, got start_lr={self.start_lr}, "
                f"stop_lr={self.stop_lr}"
            )
        if self.decay_steps < 1 or self.num_steps < 1:
            raise ValueError(
                f"learning rate: decay_steps and num_steps must be >= 1, got "
                f"decay_steps={self.decay_steps}, num_steps={self.num_steps}"
            )

    @property
    def effective_decay_steps(self) -> int:
        if self.decay_steps < self.num_steps:
            return self.decay_steps
        return 100 if self.num_steps // 10 > 100 else self.num_steps // 100 + 1

    @property
    def decay_rate(self) -> float:
        steps = self.effective_decay_steps
        return math.exp(math.log(self.stop_lr / self.start_lr) * steps / self.num_steps)

    def factor(self, step: int) -> float:
        """lr(step) / start_lr: the multiplier ``LambdaLR`` applies."""
        value = self.decay_rate ** (step // self.effective_decay_steps)
        return max(value, self.stop_lr / self.start_lr)

    def lr(self, step: int) -> float:
        return self.start_lr * self.factor(step)


def prefactor(start: float, limit: float, lr: float, start_lr: float) -> float:
    """DeePMD-kit's loss prefactor: p = limit + (start - limit) · lr / start_lr."""
    return limit + (start - limit) * lr / start_lr
