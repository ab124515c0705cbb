"""TAAFS experiment suite: trainable adaptive activations for neural force fields."""

__version__ = "0.1.0"
