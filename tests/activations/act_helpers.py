"""Shared helpers of the activation tests."""

from __future__ import annotations

from taafs_exp.activations import TAAFS, available_activations, build_activation

TRAINABLE = [n for n in available_activations() if isinstance(build_activation(n), TAAFS)]
FIXED = [n for n in available_activations() if n not in TRAINABLE]


def make(name: str, share: str = "layer", channels: int = 3, **options) -> TAAFS:
    """A float64 TAAFS instance with the given sharing."""
    return build_activation(name, share=share, num_channels=channels, **options).double()
