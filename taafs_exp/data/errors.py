"""The one error type the data layer raises for bad input."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or inconsistent input data.

    The message always names the file (or array), the field, what was found and what was
    expected, e.g. ``data_0/set.000/coord.npy: shape (80, 575), expected (80, 576) = 3 x 192``.
    """
